//! The client's error type: Consul's own answers keep their status code and text; transport, TLS,
//! timeout and decode failures say which request failed and why.

/// Everything a call to Consul can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Consul answered with a status other than 200. `message` is Consul's response text, trimmed.
    #[error("consul answered {status} to {method} {path}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Consul's response body, trimmed (Consul's errors are plain text).
        message: String,
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
    },

    /// The connection could not be opened or broke before a response arrived.
    #[error("cannot reach consul at {address} for {method} {path}: {source}")]
    Transport {
        /// `host:port` of the Consul address.
        address: String,
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
        /// What went wrong underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The TLS handshake failed (untrusted or mismatched server certificate, bad client certificate).
    #[error("TLS handshake with consul at {address} failed for {method} {path}: {message}")]
    Tls {
        /// `host:port` of the Consul address.
        address: String,
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
        /// The TLS library's description of the failure.
        message: String,
    },

    /// No response arrived within the request timeout.
    #[error("consul did not answer {method} {path} within {timeout:?}")]
    Timeout {
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
        /// The timeout that expired.
        timeout: std::time::Duration,
    },

    /// The response did not decode into the expected type.
    #[error("cannot decode consul's answer to {method} {path}: at `{field}`: {message}")]
    Decode {
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
        /// JSON path of the value at fault (`[0].Service.Port`), or the header name.
        field: String,
        /// What was wrong with it.
        message: String,
    },

    /// The request body could not be encoded.
    #[error("cannot encode the body of {method} {path}: {message}")]
    Encode {
        /// HTTP method of the request.
        method: String,
        /// Request path, without the query string.
        path: String,
        /// The encoder's message.
        message: String,
    },

    /// A call was made with an argument Consul cannot accept (for example an empty ID).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The client configuration is unusable.
    #[error("invalid consul client configuration: {field}: {message}")]
    Config {
        /// The setting or environment variable at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// A check-and-set write kept losing to concurrent writers.
    #[error("{what} kept changing under concurrent writes; gave up after {attempts} attempts")]
    CasConflict {
        /// What was being written.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The operation was cancelled through its cancellation token.
    #[error("cancelled")]
    Cancelled,
}

/// Consul's text for a token (or ACL object) that does not exist.
const ACL_NOT_FOUND: &str = "ACL not found";
/// The prefix of Consul's text for a token that lacks a permission.
const PERMISSION_DENIED: &str = "Permission denied";

impl Error {
    /// The HTTP status Consul answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Consul's response text, if it answered with an error status.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True for Consul's "ACL not found": the token in use (or the ACL object asked for) does not
    /// exist. Consul answers 403 with this text; older releases used other codes, so only the text
    /// is required.
    pub fn is_acl_not_found(&self) -> bool {
        matches!(self, Error::Status { message, .. } if message.contains(ACL_NOT_FOUND))
    }

    /// True for Consul's "Permission denied" (403): the token exists but lacks a permission.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Status { status: 403, message, .. } if message.contains(PERMISSION_DENIED))
    }

    /// True for failures that may go away on their own: no connection, timeouts, 5xx and 429.
    /// Every other 4xx, TLS failures and decode errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Status { status, .. } => *status == 429 || (500..600).contains(status),
            _ => false,
        }
    }
}
