//! The request's authority. Every handler takes an [`Authorizer`] and asks it before reading or writing;
//! today it allows everything (`X-Consul-Default-ACL-Policy: allow`). ACL enforcement replaces the body of
//! [`Authorizer::require`] and [`Authorizer::can_read`] without touching the handlers.
//!
//! The ACL default also decides connections no intention covers (see [`intention_defaults`]); both it and
//! the `X-Consul-Default-ACL-Policy` header come from [`ACL_DEFAULT`], so they cannot disagree.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use connect::intention::{AclDefault, DefaultPolicy};

use super::AppState;
use super::error::ApiError;

/// The ACL system's default. ACLs are not enforced yet, which Consul treats as "allow everything";
/// when they land, this becomes the configured `acl.default_policy`.
pub(crate) const ACL_DEFAULT: AclDefault = AclDefault::Disabled;

/// The decision for a connection no intention matches (Consul's order: `default_intention_policy` if
/// set, which this server has no setting for, else the ACL default).
pub(crate) fn intention_defaults() -> DefaultPolicy {
    DefaultPolicy {
        default_intention_policy: None,
        acl: ACL_DEFAULT,
    }
}

/// The value of the `X-Consul-Default-ACL-Policy` header.
pub(crate) fn default_policy_header() -> &'static str {
    match ACL_DEFAULT {
        AclDefault::Disabled | AclDefault::Allow => "allow",
        AclDefault::Deny => "deny",
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read.
    Read,
    /// Write.
    Write,
}

/// The kind of resource a rule governs (Consul's ACL resources). Some are only named by the areas that
/// later work adds.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `node` rules.
    Node,
    /// `service` rules.
    Service,
    /// `key` rules.
    Key,
    /// `operator` rules.
    Operator,
    /// `mesh` rules.
    Mesh,
    /// `intentions` rules.
    Intentions,
    /// `agent` rules.
    Agent,
}

/// The request's token and the decisions made with it.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    token: Option<String>,
}

impl Authorizer {
    /// The secret the request presented, if any.
    #[allow(dead_code)]
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Fails with 403 unless the request may `access` the named resource.
    pub(crate) fn require(
        &self,
        _resource: Resource,
        _name: &str,
        _access: Access,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Whether a result naming this resource may be shown (results the token may not read are dropped).
    pub(crate) fn can_read(&self, _resource: Resource, _name: &str) -> bool {
        true
    }
}

impl FromRequestParts<AppState> for Authorizer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let token = header("x-consul-token")
            .map(str::to_owned)
            .or_else(|| {
                header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
            })
            .or_else(|| {
                super::query::Params::parse(parts.uri.query())
                    .get("token")
                    .map(str::to_owned)
            });
        Ok(Authorizer { token })
    }
}
