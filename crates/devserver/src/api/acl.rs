//! The request's authority. Every handler takes an [`Authorizer`] and asks it before reading or writing.
//!
//! With ACLs off it allows everything (`X-Consul-Default-ACL-Policy: allow`). With ACLs on, the
//! extractor resolves the request's token (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`; none
//! means the anonymous token) to the merged rules of its policies, roles and identities; an unknown or
//! expired secret is `403 ACL not found`. [`Authorizer::require`] answers `403 Permission denied: token
//! with AccessorID '…' lacks permission '…' on "…"`, and [`Authorizer::can_read`] drops what may not be
//! shown and marks the reply with `X-Consul-Results-Filtered-By-ACLs: true`.
//!
//! The ACL default also decides connections no intention covers (see [`intention_defaults`]); both it
//! and the `X-Consul-Default-ACL-Policy` header come from the configured default, so they cannot
//! disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use connect::intention::{AclDefault, DefaultPolicy as IntentionDefaults};

pub(crate) use crate::acl::rules::{Access, Resource};

use super::AppState;
use super::error::ApiError;
use crate::acl::rules::RuleSet;
use crate::acl::{self, DefaultPolicy};

/// The server's ACL mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Whether ACLs are enforced.
    pub(crate) enabled: bool,
    /// The configured default.
    pub(crate) default_policy: DefaultPolicy,
}

fn acl_default(state: &AppState) -> AclDefault {
    let s = state.acl_settings();
    match (s.enabled, s.default_policy) {
        (false, _) => AclDefault::Disabled,
        (true, DefaultPolicy::Allow) => AclDefault::Allow,
        (true, DefaultPolicy::Deny) => AclDefault::Deny,
    }
}

/// The decision for a connection no intention matches (Consul's order: `default_intention_policy` if
/// set, which this server has no setting for, else the ACL default).
pub(crate) fn intention_defaults(state: &AppState) -> IntentionDefaults {
    IntentionDefaults {
        default_intention_policy: None,
        acl: acl_default(state),
    }
}

/// The value of the `X-Consul-Default-ACL-Policy` header.
pub(crate) fn default_policy_header(state: &AppState) -> &'static str {
    match acl_default(state) {
        AclDefault::Disabled | AclDefault::Allow => "allow",
        AclDefault::Deny => "deny",
    }
}

/// Set when a reply left out something the token may not read; the middleware turns it into the
/// `X-Consul-Results-Filtered-By-ACLs` header.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilteredFlag(Arc<AtomicBool>);

impl FilteredFlag {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether something was hidden.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Resolved {
    accessor_id: String,
    rules: RuleSet,
    default_allow: bool,
}

/// The request's token and the decisions made with it. Cheap to clone; `Debug` does not show the secret.
#[derive(Clone)]
pub(crate) struct Authorizer {
    token: Option<String>,
    resolved: Option<Arc<Resolved>>,
    filtered: FilteredFlag,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("accessor_id", &self.accessor_id())
            .finish_non_exhaustive()
    }
}

/// `403 ACL not found`.
pub(crate) fn acl_not_found() -> ApiError {
    ApiError::forbidden("ACL not found")
}

impl Authorizer {
    /// The secret the request presented, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether ACLs are enforced for this request.
    pub(crate) fn enforcing(&self) -> bool {
        self.resolved.is_some()
    }

    /// The accessor ID of the request's token (empty with ACLs off).
    pub(crate) fn accessor_id(&self) -> &str {
        self.resolved
            .as_ref()
            .map_or("", |r| r.accessor_id.as_str())
    }

    /// Whether the request may `access` the named resource.
    pub(crate) fn allowed(&self, resource: Resource, name: &str, access: Access) -> bool {
        let Some(r) = &self.resolved else {
            return true;
        };
        match r.rules.decide(resource, name, access) {
            Some(decision) => decision,
            // Without a rule the default decides, except for ACL management, which needs a rule even
            // when the default is allow (as Consul).
            None => resource != Resource::Acl && r.default_allow,
        }
    }

    /// The 403 for a denied request.
    pub(crate) fn denied(&self, resource: Resource, name: &str, access: Access) -> ApiError {
        let mut msg = format!(
            "Permission denied: token with AccessorID '{}' lacks permission '{resource}:{access}'",
            self.accessor_id()
        );
        if !name.is_empty() {
            msg.push_str(&format!(" on {name:?}"));
        }
        ApiError::forbidden(msg)
    }

    /// Fails with 403 unless the request may `access` the named resource.
    pub(crate) fn require(
        &self,
        resource: Resource,
        name: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        if self.allowed(resource, name, access) {
            Ok(())
        } else {
            Err(self.denied(resource, name, access))
        }
    }

    /// Whether a result naming this resource may be shown (results the token may not read are dropped,
    /// and the reply says so).
    pub(crate) fn can_read(&self, resource: Resource, name: &str) -> bool {
        let ok = self.allowed(resource, name, Access::Read);
        if !ok {
            self.filtered.set();
        }
        ok
    }

    /// Like [`Authorizer::can_read`] for a check of `allowed` that was computed elsewhere.
    pub(crate) fn note_filtered(&self) {
        self.filtered.set();
    }

    /// Consul's `KeyWritePrefix`: write on the prefix and on every rule below it (recursive deletes).
    pub(crate) fn require_key_write_prefix(&self, prefix: &str) -> Result<(), ApiError> {
        let Some(r) = &self.resolved else {
            return Ok(());
        };
        let ok = match r.rules.key_write_prefix(prefix) {
            Some(ok) => ok,
            None => r.default_allow,
        };
        if ok {
            Ok(())
        } else {
            Err(self.denied(Resource::Key, prefix, Access::Write))
        }
    }
}

impl FromRequestParts<AppState> for Authorizer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
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
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            });
        let filtered = parts
            .extensions
            .get::<FilteredFlag>()
            .cloned()
            .unwrap_or_default();
        let settings = state.acl_settings();
        if !settings.enabled {
            return Ok(Authorizer {
                token,
                resolved: None,
                filtered,
            });
        }
        let now = state.clock().now();
        let dc = state.datacenter().to_owned();
        let identity = state
            .store()
            .read(|t| acl::resolve(t, token.as_deref(), now, &dc))
            .map_err(|_| acl_not_found())?;
        Ok(Authorizer {
            token,
            resolved: Some(Arc::new(Resolved {
                accessor_id: identity.accessor_id,
                rules: identity.rules,
                default_allow: settings.default_policy == DefaultPolicy::Allow,
            })),
            filtered,
        })
    }
}
