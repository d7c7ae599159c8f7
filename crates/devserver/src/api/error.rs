//! Errors as Consul sends them: a status code and a plain-text body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::WriteError;
use crate::state::ca::CaFailure;
use crate::state::catalog::Rejected;

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A reply with any status.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 413.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 500.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The error for a `?dc=` that is not this datacenter.
    pub(crate) fn no_path_to_dc() -> Self {
        Self::internal("No path to datacenter")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.message).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

impl From<Rejected> for ApiError {
    fn from(r: Rejected) -> Self {
        match r {
            Rejected::BadRequest(m) => ApiError::bad_request(m),
            Rejected::Failed(m) => ApiError::internal(m),
        }
    }
}

impl From<CaFailure> for ApiError {
    fn from(f: CaFailure) -> Self {
        match f {
            CaFailure::Invalid(m) => ApiError::bad_request(m),
            CaFailure::Denied(m) => ApiError::forbidden(m),
            CaFailure::Internal(m) => ApiError::internal(m),
        }
    }
}

impl<E: Into<ApiError>> From<WriteError<E>> for ApiError {
    fn from(e: WriteError<E>) -> Self {
        match e {
            WriteError::Rejected(e) => e.into(),
            WriteError::Storage(m) => {
                tracing::error!(error = %m, "write failed");
                ApiError::internal(format!("failed to persist the write: {m}"))
            }
        }
    }
}
