//! `/v1/acl/*`: bootstrap, tokens, policies, roles, auth methods, binding rules, login and logout.
//!
//! Every endpoint needs ACLs on (else `401 ACL support disabled`, as Consul). Reads need `acl:read`,
//! writes `acl:write`; `token/self`, `login` and `logout` need only the token they act on. Secrets are
//! shown only to tokens with `acl:write` (others see `<hidden>`), and to the token itself.
//!
//! ```text
//! curl -X PUT http://127.0.0.1:8500/v1/acl/bootstrap
//! curl -H "X-Consul-Token: $T" -X PUT -d '{"Name":"web","Rules":"service \"web\" { policy = \"write\" }"}' \
//!      http://127.0.0.1:8500/v1/acl/policy
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AppState;
use super::acl::{Access, Authorizer, Resource, acl_not_found};
use super::error::ApiError;
use super::query::{QueryOpts, json_reply, query_reply};
use crate::acl::login::{self, LoginFailure, MethodConfig};
use crate::acl::records::{
    self, ANONYMOUS_ACCESSOR, AUTH_METHODS, AuthMethod, BINDING_RULES, BindingRule, Grants, Link,
    MANAGEMENT_POLICY_ID, POLICIES, Policy, READ_ONLY_POLICY_ID, ROLES, Role, TOKENS,
    TemplateVariables, Token,
};
use crate::acl::{self as aclsys, rules};
use crate::state::{Tables, Topic};

/// Shortest and longest `ExpirationTTL` (Consul's `acl.token_min_expiration_ttl` / `max` defaults).
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/acl/bootstrap", put(bootstrap))
        .route("/v1/acl/token", put(token_create))
        .route("/v1/acl/token/self", get(token_self))
        .route(
            "/v1/acl/token/{id}",
            get(token_read).put(token_update).delete(token_delete),
        )
        .route("/v1/acl/token/{id}/clone", put(token_clone))
        .route("/v1/acl/tokens", get(token_list))
        .route("/v1/acl/policy", put(policy_create))
        .route(
            "/v1/acl/policy/{id}",
            get(policy_read).put(policy_update).delete(policy_delete),
        )
        .route("/v1/acl/policy/name/{name}", get(policy_read_by_name))
        .route("/v1/acl/policies", get(policy_list))
        .route("/v1/acl/role", put(role_create))
        .route(
            "/v1/acl/role/{id}",
            get(role_read).put(role_update).delete(role_delete),
        )
        .route("/v1/acl/role/name/{name}", get(role_read_by_name))
        .route("/v1/acl/roles", get(role_list))
        .route("/v1/acl/auth-method", put(method_create))
        .route(
            "/v1/acl/auth-method/{name}",
            get(method_read).put(method_update).delete(method_delete),
        )
        .route("/v1/acl/auth-methods", get(method_list))
        .route("/v1/acl/binding-rule", put(rule_create))
        .route(
            "/v1/acl/binding-rule/{id}",
            get(rule_read).put(rule_update).delete(rule_delete),
        )
        .route("/v1/acl/binding-rules", get(rule_list))
        .route("/v1/acl/login", post(login_).put(login_))
        .route("/v1/acl/logout", post(logout).put(logout))
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.acl_settings().enabled {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "ACL support disabled",
        ))
    }
}

fn acl_read(state: &AppState, authz: &Authorizer) -> Result<(), ApiError> {
    enabled(state)?;
    authz.require(Resource::Acl, "", Access::Read)
}

fn acl_write(state: &AppState, authz: &Authorizer) -> Result<(), ApiError> {
    enabled(state)?;
    authz.require(Resource::Acl, "", Access::Write)
}

fn decode<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::decode::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn topic(table: &str) -> Topic {
    Topic::Ext(table.to_owned())
}

fn index_of(t: &Tables, table: &str) -> u64 {
    t.topic_index(&topic(table))
}

fn not_found_empty() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

// === bootstrap ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct BootstrapBody {
    bootstrap_secret: String,
}

async fn bootstrap(
    State(state): State<AppState>,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let req: BootstrapBody = decode(&body)?;
    if !req.bootstrap_secret.is_empty() && !is_uuid(&req.bootstrap_secret) {
        return Err(ApiError::bad_request(
            "Invalid bootstrap secret: the secret must be a UUID",
        ));
    }
    let now = state.clock().now();
    let (_, token) = state
        .write(move |t, idx, plan| {
            if let Some(reset) = aclsys::bootstrap_index(t) {
                return Err(ApiError::forbidden(format!(
                    "Permission denied: ACL bootstrap no longer allowed (reset index: {reset})"
                )));
            }
            let secret = if req.bootstrap_secret.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                req.bootstrap_secret.clone()
            };
            if records::token_by_secret(t, &secret).is_some() {
                return Err(ApiError::bad_request(
                    "Invalid bootstrap secret: it is already in use",
                ));
            }
            let token =
                aclsys::management_token(idx, secret, "Bootstrap Token (Global Management)", now);
            records::put(plan, TOKENS, &token.accessor_id, &token);
            aclsys::plan_bootstrapped(plan, idx);
            Ok(token)
        })
        .await?;
    tracing::info!(accessor = %token.accessor_id, "ACL system bootstrapped");
    let shown = state.store().read(|t| records::show_token(t, &token, true));
    json_reply(q.pretty, &shown)
}

// === tokens ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct TokenBody {
    #[serde(rename = "AccessorID")]
    accessor_id: String,
    #[serde(rename = "SecretID")]
    secret_id: String,
    description: String,
    policies: Vec<Link>,
    roles: Vec<Link>,
    service_identities: Vec<records::ServiceIdentity>,
    node_identities: Vec<records::NodeIdentity>,
    templated_policies: Vec<records::TemplatedPolicy>,
    local: bool,
    auth_method: String,
    expiration_time: Option<String>,
    #[serde(rename = "ExpirationTTL")]
    expiration_ttl: Value,
}

fn resolve_links(
    t: &Tables,
    table: &str,
    kind: &str,
    links: &[Link],
) -> Result<Vec<Link>, ApiError> {
    let mut out: Vec<Link> = Vec::new();
    for l in links {
        let found = if !l.id.is_empty() {
            t.ext
                .get(table)
                .and_then(|m| m.get(&l.id))
                .map(|v| (l.id.clone(), v))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("No such ACL {kind} with ID {:?}", l.id))
                })?
        } else if !l.name.is_empty() {
            t.ext
                .get(table)
                .and_then(|m| {
                    m.iter().find(|(_, v)| {
                        v.get("Name").and_then(Value::as_str) == Some(l.name.as_str())
                    })
                })
                .map(|(k, v)| (k.clone(), v))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("No such ACL {kind} with name {:?}", l.name))
                })?
        } else {
            return Err(ApiError::bad_request(format!(
                "Invalid {kind} link: it needs an ID or a Name"
            )));
        };
        let name = found
            .1
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !out.iter().any(|o| o.id == found.0) {
            out.push(Link { id: found.0, name });
        }
    }
    Ok(out)
}

fn check_grants(g: &Grants, what: &str) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for si in &g.service_identities {
        if si.service_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Service identity is missing the service name field on this {what}"
            )));
        }
        if !login::valid_service_name(&si.service_name) {
            return Err(ApiError::bad_request(format!(
                "Service identity {:?} has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed",
                si.service_name
            )));
        }
        seen.insert(si.service_name.clone());
    }
    for ni in &g.node_identities {
        if ni.node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Node identity is missing the node name field on this {what}"
            )));
        }
        if ni.datacenter.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Node identity is missing the datacenter field on this {what}"
            )));
        }
        if !login::valid_node_name(&ni.node_name) {
            return Err(ApiError::bad_request(format!(
                "Node identity has an invalid name. Only alphanumeric characters, '-' and '_' are allowed: {:?}",
                ni.node_name
            )));
        }
    }
    for tp in &g.templated_policies {
        let var = tp
            .template_variables
            .as_ref()
            .map(|v| v.name.as_str())
            .filter(|v| !v.is_empty());
        match tp.template_name.as_str() {
            "builtin/service" | "builtin/node" if var.is_none() => {
                return Err(ApiError::bad_request(format!(
                    "Failed to validate templated policy variables for template {}: name is required",
                    tp.template_name
                )));
            }
            "builtin/service" | "builtin/node" | "builtin/dns" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "no such ACL templated policy with name {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn ttl(v: &Value) -> Result<Option<Duration>, ApiError> {
    let d = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => crate::duration::parse_go(s).map_err(|e| {
            ApiError::bad_request(format!("Request decode failed: ExpirationTTL: {e}"))
        })?,
        Value::Number(n) => Duration::from_nanos(n.as_u64().ok_or_else(|| {
            ApiError::bad_request("Request decode failed: ExpirationTTL must not be negative")
        })?),
        _ => {
            return Err(ApiError::bad_request(
                "Request decode failed: ExpirationTTL must be a duration",
            ));
        }
    };
    Ok((!d.is_zero()).then_some(d))
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, ApiError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: ExpirationTime: {e}")))
}

/// Plans a token create (`path_id` None) or update.
fn plan_token(
    t: &Tables,
    idx: u64,
    plan: &mut crate::state::Plan,
    body: TokenBody,
    path_id: Option<String>,
    now: time::OffsetDateTime,
) -> Result<Token, ApiError> {
    if !body.auth_method.is_empty() && path_id.is_none() {
        return Err(ApiError::bad_request(
            "AuthMethod field is disallowed outside of Login",
        ));
    }
    let grants = Grants {
        policies: resolve_links(t, POLICIES, "policy", &body.policies)?,
        service_identities: body.service_identities,
        node_identities: body.node_identities,
        templated_policies: body.templated_policies,
    };
    check_grants(&grants, "token")?;
    let roles = resolve_links(t, ROLES, "role", &body.roles)?;
    let mut token = match path_id {
        None => {
            let accessor = if body.accessor_id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else if !is_uuid(&body.accessor_id) {
                return Err(ApiError::bad_request(
                    "Invalid Token: AccessorID is not a valid UUID",
                ));
            } else if records::get::<Token>(t, TOKENS, &body.accessor_id).is_some() {
                return Err(ApiError::bad_request(
                    "Invalid Token: AccessorID is already in use",
                ));
            } else {
                body.accessor_id.clone()
            };
            let secret = if body.secret_id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else if !is_uuid(&body.secret_id) {
                return Err(ApiError::bad_request(
                    "Invalid Token: SecretID is not a valid UUID",
                ));
            } else if records::token_by_secret(t, &body.secret_id).is_some() {
                return Err(ApiError::bad_request(
                    "Invalid Token: SecretID is already in use",
                ));
            } else {
                body.secret_id.clone()
            };
            let ttl = ttl(&body.expiration_ttl)?;
            let expiration = match (ttl, &body.expiration_time) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::bad_request(
                        "Expiration TTL and Expiration Time cannot both be set",
                    ));
                }
                (Some(d), None) => {
                    if d < MIN_TTL || d > MAX_TTL {
                        return Err(ApiError::bad_request(format!(
                            "Token Expiration TTL '{}' should be between {} and {}",
                            crate::duration::format_go(d),
                            crate::duration::format_go(MIN_TTL),
                            crate::duration::format_go(MAX_TTL)
                        )));
                    }
                    Some(records::format_time(now + d))
                }
                (None, Some(s)) => {
                    let at = parse_time(s)?;
                    if at <= now {
                        return Err(ApiError::bad_request(
                            "ExpirationTime cannot be in the past",
                        ));
                    }
                    Some(records::format_time(at))
                }
                (None, None) => None,
            };
            Token {
                accessor_id: accessor,
                secret_id: secret,
                local: body.local,
                expiration_time: expiration,
                create_time: records::format_time(now),
                create_index: idx,
                ..Token::default()
            }
        }
        Some(id) => {
            if !body.accessor_id.is_empty() && body.accessor_id != id {
                return Err(ApiError::bad_request(
                    "Token Accessor ID in URL and payload do not match",
                ));
            }
            let old = records::get::<Token>(t, TOKENS, &id)
                .filter(|tok| !tok.expired(now))
                .ok_or_else(|| ApiError::bad_request(format!("Cannot find token {id:?}")))?;
            if !body.secret_id.is_empty() && body.secret_id != old.secret_id {
                return Err(ApiError::bad_request(
                    "Changing a token's SecretID is not permitted",
                ));
            }
            if !body.auth_method.is_empty() && body.auth_method != old.auth_method {
                return Err(ApiError::bad_request("Cannot change AuthMethod of token"));
            }
            if body.local != old.local {
                return Err(ApiError::bad_request(format!(
                    "Cannot toggle local mode of {id}"
                )));
            }
            if let Some(e) = &body.expiration_time
                && Some(parse_time(e)?)
                    != old.expiration_time.as_deref().map(parse_time).transpose()?
            {
                return Err(ApiError::bad_request(
                    "Cannot change expiration time of token",
                ));
            }
            old
        }
    };
    token.description = body.description;
    token.policies = grants.policies;
    token.roles = roles;
    token.service_identities = grants.service_identities;
    token.node_identities = grants.node_identities;
    token.templated_policies = grants.templated_policies;
    token.modify_index = idx;
    token.rehash();
    records::put(plan, TOKENS, &token.accessor_id, &token);
    Ok(token)
}

async fn token_create(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: TokenBody = decode(&body)?;
    let now = state.clock().now();
    let (_, token) = state
        .write(move |t, idx, plan| plan_token(t, idx, plan, body, None, now))
        .await?;
    let shown = state.store().read(|t| records::show_token(t, &token, true));
    json_reply(q.pretty, &shown)
}

async fn token_update(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: TokenBody = decode(&body)?;
    let now = state.clock().now();
    let (_, token) = state
        .write(move |t, idx, plan| plan_token(t, idx, plan, body, Some(id), now))
        .await?;
    let shown = state.store().read(|t| records::show_token(t, &token, true));
    json_reply(q.pretty, &shown)
}

async fn token_read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let reveal = authz.allowed(Resource::Acl, "", Access::Write);
    let now = state.clock().now();
    let (index, shown) = state.store().read(|t| {
        let token = records::get::<Token>(t, TOKENS, &id).filter(|tok| !tok.expired(now));
        (
            index_of(t, TOKENS),
            token.map(|tok| records::show_token(t, &tok, reveal)),
        )
    });
    match shown {
        Some(v) => query_reply(&q, index, &v),
        None => Err(acl_not_found()),
    }
}

async fn token_self(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let now = state.clock().now();
    let (index, shown) = state.store().read(|t| {
        let token = aclsys::lookup(t, authz.token(), now).ok();
        (
            index_of(t, TOKENS),
            token.map(|tok| records::show_token(t, &tok, true)),
        )
    });
    match shown {
        Some(v) => query_reply(&q, index, &v),
        None => Err(acl_not_found()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct CloneBody {
    description: String,
}

async fn token_clone(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let req: CloneBody = decode(&body)?;
    let now = state.clock().now();
    let (_, token) = state
        .write(move |t, idx, plan| {
            let src = records::get::<Token>(t, TOKENS, &id)
                .filter(|tok| !tok.expired(now))
                .ok_or_else(acl_not_found)?;
            if !src.auth_method.is_empty() {
                return Err(ApiError::bad_request(
                    "Cannot clone a token created from an auth method",
                ));
            }
            let mut token = Token {
                accessor_id: uuid::Uuid::new_v4().to_string(),
                secret_id: uuid::Uuid::new_v4().to_string(),
                description: if req.description.is_empty() {
                    src.description.clone()
                } else {
                    req.description.clone()
                },
                create_time: records::format_time(now),
                create_index: idx,
                modify_index: idx,
                ..src
            };
            token.rehash();
            records::put(plan, TOKENS, &token.accessor_id, &token);
            Ok::<_, ApiError>(token)
        })
        .await?;
    let shown = state.store().read(|t| records::show_token(t, &token, true));
    json_reply(q.pretty, &shown)
}

async fn token_delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    if id == ANONYMOUS_ACCESSOR {
        return Err(ApiError::bad_request(
            "Delete operation not permitted on the anonymous token",
        ));
    }
    if id == authz.accessor_id() {
        return Err(ApiError::bad_request(
            "Deletion of the request's authorization token is not permitted",
        ));
    }
    state
        .write(move |t, _idx, plan| {
            if t.ext.get(TOKENS).is_some_and(|m| m.contains_key(&id)) {
                records::remove(plan, TOKENS, &id);
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    json_reply(q.pretty, &true)
}

async fn token_list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let reveal = authz.allowed(Resource::Acl, "", Access::Write);
    let now = state.clock().now();
    let policy = q
        .params
        .get("policy")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let role = q
        .params
        .get("role")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let method = q
        .params
        .get("authmethod")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let service = q
        .params
        .get("servicename")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let (index, items) = state.store().read(|t| {
        let mut tokens: Vec<Token> = records::all::<Token>(t, TOKENS)
            .into_iter()
            .filter(|tok| !tok.expired(now))
            .filter(|tok| {
                policy
                    .as_ref()
                    .is_none_or(|p| tok.policies.iter().any(|l| &l.id == p))
            })
            .filter(|tok| {
                role.as_ref()
                    .is_none_or(|r| tok.roles.iter().any(|l| &l.id == r))
            })
            .filter(|tok| method.as_ref().is_none_or(|m| &tok.auth_method == m))
            .filter(|tok| {
                service.as_ref().is_none_or(|s| {
                    tok.service_identities
                        .iter()
                        .any(|si| &si.service_name == s)
                })
            })
            .collect();
        tokens.sort_by_key(|tok| (tok.create_index, tok.accessor_id.clone()));
        let items: Vec<Value> = tokens
            .iter()
            .map(|tok| {
                let mut v = records::show_token(t, tok, reveal);
                if let Value::Object(m) = &mut v {
                    m.insert("Legacy".into(), Value::Bool(false));
                }
                v
            })
            .collect();
        (index_of(t, TOKENS), items)
    });
    query_reply(&q, index, &q.apply_filter(items))
}

// === policies ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PolicyBody {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    rules: String,
    datacenters: Vec<String>,
}

fn plan_policy(
    t: &Tables,
    idx: u64,
    plan: &mut crate::state::Plan,
    body: PolicyBody,
    path_id: Option<String>,
) -> Result<Policy, ApiError> {
    if !login::valid_object_name(&body.name, 128) {
        return Err(ApiError::bad_request("Invalid Policy: invalid Name"));
    }
    rules::parse(&body.rules)
        .map_err(|e| ApiError::bad_request(format!("Failed to parse ACL rules: {e}")))?;
    if let Some(other) = records::policy_by_name(t, &body.name)
        && Some(&other.id) != path_id.as_ref()
    {
        return Err(ApiError::bad_request(format!(
            "Invalid Policy: A Policy with Name {:?} already exists",
            body.name
        )));
    }
    let mut policy = match &path_id {
        None => Policy {
            id: uuid::Uuid::new_v4().to_string(),
            create_index: idx,
            ..Policy::default()
        },
        Some(id) => {
            if !body.id.is_empty() && &body.id != id {
                return Err(ApiError::bad_request(
                    "Policy ID in URL and payload do not match",
                ));
            }
            let old = records::get::<Policy>(t, POLICIES, id)
                .ok_or_else(|| ApiError::bad_request(format!("Cannot find policy {id:?}")))?;
            if id == MANAGEMENT_POLICY_ID && old.rules != body.rules {
                return Err(ApiError::bad_request(
                    "Changing the Rules for the builtin global-management policy is not permitted",
                ));
            }
            if id == MANAGEMENT_POLICY_ID && !body.datacenters.is_empty() {
                return Err(ApiError::bad_request(
                    "Changing the Datacenters of the builtin global-management policy is not permitted",
                ));
            }
            old
        }
    };
    policy.name = body.name;
    policy.description = body.description;
    policy.rules = body.rules;
    policy.datacenters = body.datacenters;
    policy.modify_index = idx;
    policy.rehash();
    records::put(plan, POLICIES, &policy.id, &policy);
    Ok(policy)
}

async fn policy_create(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: PolicyBody = decode(&body)?;
    if !body.id.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot specify an ID when creating a policy",
        ));
    }
    let (_, p) = state
        .write(move |t, idx, plan| plan_policy(t, idx, plan, body, None))
        .await?;
    json_reply(q.pretty, &p)
}

async fn policy_update(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: PolicyBody = decode(&body)?;
    let (_, p) = state
        .write(move |t, idx, plan| plan_policy(t, idx, plan, body, Some(id)))
        .await?;
    json_reply(q.pretty, &p)
}

async fn policy_read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, p) = state.store().read(|t| {
        (
            index_of(t, POLICIES),
            records::get::<Policy>(t, POLICIES, &id),
        )
    });
    match p {
        Some(p) => query_reply(&q, index, &p),
        None => Err(acl_not_found()),
    }
}

async fn policy_read_by_name(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, p) = state
        .store()
        .read(|t| (index_of(t, POLICIES), records::policy_by_name(t, &name)));
    match p {
        Some(p) => query_reply(&q, index, &p),
        None => Err(acl_not_found()),
    }
}

async fn policy_list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, items) = state.store().read(|t| {
        let mut ps = records::all::<Policy>(t, POLICIES);
        ps.sort_by_key(|p| (p.create_index, p.id.clone()));
        (
            index_of(t, POLICIES),
            ps.iter().map(Policy::stub).collect::<Vec<_>>(),
        )
    });
    query_reply(&q, index, &q.apply_filter(items))
}

async fn policy_delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    if id == MANAGEMENT_POLICY_ID || id == READ_ONLY_POLICY_ID {
        return Err(ApiError::bad_request(
            "Delete operation not permitted on builtin policy",
        ));
    }
    state
        .write(move |t, _idx, plan| {
            if t.ext.get(POLICIES).is_some_and(|m| m.contains_key(&id)) {
                records::remove(plan, POLICIES, &id);
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    json_reply(q.pretty, &true)
}

// === roles ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RoleBody {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    policies: Vec<Link>,
    service_identities: Vec<records::ServiceIdentity>,
    node_identities: Vec<records::NodeIdentity>,
    templated_policies: Vec<records::TemplatedPolicy>,
}

fn plan_role(
    t: &Tables,
    idx: u64,
    plan: &mut crate::state::Plan,
    body: RoleBody,
    path_id: Option<String>,
) -> Result<Role, ApiError> {
    if !login::valid_object_name(&body.name, 256) {
        return Err(ApiError::bad_request("Invalid Role: invalid Name"));
    }
    if let Some(other) = records::role_by_name(t, &body.name)
        && Some(&other.id) != path_id.as_ref()
    {
        return Err(ApiError::bad_request(format!(
            "Invalid Role: A Role with Name {:?} already exists",
            body.name
        )));
    }
    let grants = Grants {
        policies: resolve_links(t, POLICIES, "policy", &body.policies)?,
        service_identities: body.service_identities,
        node_identities: body.node_identities,
        templated_policies: body.templated_policies,
    };
    check_grants(&grants, "role")?;
    let mut role = match &path_id {
        None => Role {
            id: uuid::Uuid::new_v4().to_string(),
            create_index: idx,
            ..Role::default()
        },
        Some(id) => {
            if !body.id.is_empty() && &body.id != id {
                return Err(ApiError::bad_request(
                    "Role ID in URL and payload do not match",
                ));
            }
            records::get::<Role>(t, ROLES, id)
                .ok_or_else(|| ApiError::bad_request(format!("Cannot find role {id:?}")))?
        }
    };
    role.name = body.name;
    role.description = body.description;
    role.grants = grants;
    role.modify_index = idx;
    role.rehash();
    records::put(plan, ROLES, &role.id, &role);
    Ok(role)
}

async fn role_create(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: RoleBody = decode(&body)?;
    if !body.id.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot specify an ID when creating a role",
        ));
    }
    let (_, role) = state
        .write(move |t, idx, plan| plan_role(t, idx, plan, body, None))
        .await?;
    let shown = state.store().read(|t| records::show_role(t, &role));
    json_reply(q.pretty, &shown)
}

async fn role_update(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: RoleBody = decode(&body)?;
    let (_, role) = state
        .write(move |t, idx, plan| plan_role(t, idx, plan, body, Some(id)))
        .await?;
    let shown = state.store().read(|t| records::show_role(t, &role));
    json_reply(q.pretty, &shown)
}

async fn role_read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, r) = state.store().read(|t| {
        (
            index_of(t, ROLES),
            records::get::<Role>(t, ROLES, &id).map(|r| records::show_role(t, &r)),
        )
    });
    match r {
        Some(r) => query_reply(&q, index, &r),
        None => Ok(not_found_empty()),
    }
}

async fn role_read_by_name(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, r) = state.store().read(|t| {
        (
            index_of(t, ROLES),
            records::role_by_name(t, &name).map(|r| records::show_role(t, &r)),
        )
    });
    match r {
        Some(r) => query_reply(&q, index, &r),
        None => Ok(not_found_empty()),
    }
}

async fn role_list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let policy = q
        .params
        .get("policy")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let (index, items) = state.store().read(|t| {
        let mut rs = records::all::<Role>(t, ROLES);
        rs.retain(|r| {
            policy
                .as_ref()
                .is_none_or(|p| r.grants.policies.iter().any(|l| &l.id == p))
        });
        rs.sort_by_key(|r| (r.create_index, r.id.clone()));
        (
            index_of(t, ROLES),
            rs.iter()
                .map(|r| records::show_role(t, r))
                .collect::<Vec<_>>(),
        )
    });
    query_reply(&q, index, &q.apply_filter(items))
}

async fn role_delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    state
        .write(move |t, _idx, plan| {
            if t.ext.get(ROLES).is_some_and(|m| m.contains_key(&id)) {
                records::remove(plan, ROLES, &id);
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    json_reply(q.pretty, &true)
}

// === auth methods ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct MethodBody {
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    display_name: String,
    description: String,
    #[serde(rename = "MaxTokenTTL")]
    max_token_ttl: Value,
    token_locality: String,
    config: Map<String, Value>,
}

fn plan_method(
    t: &Tables,
    idx: u64,
    plan: &mut crate::state::Plan,
    body: MethodBody,
    path_name: Option<String>,
) -> Result<AuthMethod, ApiError> {
    if let Some(n) = &path_name
        && !body.name.is_empty()
        && &body.name != n
    {
        return Err(ApiError::bad_request(
            "Auth Method Name in URL and payload do not match",
        ));
    }
    let name = path_name.unwrap_or(body.name);
    if !login::valid_object_name(&name, 128) {
        return Err(ApiError::bad_request("Invalid Auth Method: invalid Name"));
    }
    let old = records::get::<AuthMethod>(t, AUTH_METHODS, &name);
    let kind = if body.kind.is_empty() {
        old.as_ref().map(|o| o.kind.clone()).unwrap_or_default()
    } else {
        body.kind
    };
    if let Some(o) = &old
        && o.kind != kind
    {
        return Err(ApiError::bad_request(format!(
            "the Type field is immutable: {:?} != {:?}",
            kind, o.kind
        )));
    }
    login::check_config(&kind, &body.config)
        .map_err(|e| ApiError::bad_request(format!("Invalid Auth Method: {e}")))?;
    if !matches!(body.token_locality.as_str(), "" | "local" | "global") {
        return Err(ApiError::bad_request(format!(
            "Invalid Auth Method: invalid TokenLocality {:?}",
            body.token_locality
        )));
    }
    let max_ttl = match ttl(&body.max_token_ttl)? {
        None => String::new(),
        Some(d) if d < MIN_TTL || d > MAX_TTL => {
            return Err(ApiError::bad_request(format!(
                "MaxTokenTTL {} cannot be less than {} or more than {}",
                crate::duration::format_go(d),
                crate::duration::format_go(MIN_TTL),
                crate::duration::format_go(MAX_TTL)
            )));
        }
        Some(d) => crate::duration::format_go(d),
    };
    let method = AuthMethod {
        name: name.clone(),
        kind,
        display_name: body.display_name,
        description: body.description,
        max_token_ttl: max_ttl,
        token_locality: body.token_locality,
        config: body.config,
        create_index: old.as_ref().map_or(idx, |o| o.create_index),
        modify_index: idx,
    };
    records::put(plan, AUTH_METHODS, &name, &method);
    Ok(method)
}

async fn method_create(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: MethodBody = decode(&body)?;
    let (_, m) = state
        .write(move |t, idx, plan| {
            if records::get::<AuthMethod>(t, AUTH_METHODS, &body.name).is_some() {
                return Err(ApiError::bad_request(format!(
                    "Invalid Auth Method: An Auth Method with Name {:?} already exists",
                    body.name
                )));
            }
            plan_method(t, idx, plan, body, None)
        })
        .await?;
    json_reply(q.pretty, &m)
}

async fn method_update(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: MethodBody = decode(&body)?;
    let (_, m) = state
        .write(move |t, idx, plan| {
            if records::get::<AuthMethod>(t, AUTH_METHODS, &name).is_none() {
                return Err(ApiError::bad_request(format!(
                    "Cannot find auth method {name:?}"
                )));
            }
            plan_method(t, idx, plan, body, Some(name))
        })
        .await?;
    json_reply(q.pretty, &m)
}

async fn method_read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, m) = state.store().read(|t| {
        (
            index_of(t, AUTH_METHODS),
            records::get::<AuthMethod>(t, AUTH_METHODS, &name),
        )
    });
    match m {
        Some(m) => query_reply(&q, index, &m),
        None => Ok(not_found_empty()),
    }
}

async fn method_list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, items) = state.store().read(|t| {
        let ms = records::all::<AuthMethod>(t, AUTH_METHODS);
        (
            index_of(t, AUTH_METHODS),
            ms.iter().map(AuthMethod::stub).collect::<Vec<_>>(),
        )
    });
    query_reply(&q, index, &q.apply_filter(items))
}

async fn method_delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    state
        .write(move |t, _idx, plan| {
            if records::get::<AuthMethod>(t, AUTH_METHODS, &name).is_none() {
                return Ok::<_, ApiError>(());
            }
            // As Consul: the method's binding rules and login tokens go with it.
            for r in records::all::<BindingRule>(t, BINDING_RULES) {
                if r.auth_method == name {
                    records::remove(plan, BINDING_RULES, &r.id);
                }
            }
            for tok in records::all::<Token>(t, TOKENS) {
                if tok.auth_method == name {
                    records::remove(plan, TOKENS, &tok.accessor_id);
                }
            }
            records::remove(plan, AUTH_METHODS, &name);
            Ok(())
        })
        .await?;
    json_reply(q.pretty, &true)
}

// === binding rules ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RuleBody {
    #[serde(rename = "ID")]
    id: String,
    description: String,
    auth_method: String,
    selector: String,
    bind_type: String,
    bind_name: String,
    bind_vars: Option<TemplateVariables>,
}

fn plan_rule(
    t: &Tables,
    idx: u64,
    plan: &mut crate::state::Plan,
    body: RuleBody,
    path_id: Option<String>,
) -> Result<BindingRule, ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("Invalid Binding Rule: {m}"));
    let old = match &path_id {
        None => None,
        Some(id) => {
            if !body.id.is_empty() && &body.id != id {
                return Err(ApiError::bad_request(
                    "BindingRule ID in URL and payload do not match",
                ));
            }
            Some(
                records::get::<BindingRule>(t, BINDING_RULES, id).ok_or_else(|| {
                    ApiError::bad_request(format!("Cannot find binding rule {id:?}"))
                })?,
            )
        }
    };
    let method_name = if body.auth_method.is_empty() {
        old.as_ref()
            .map(|o| o.auth_method.clone())
            .unwrap_or_default()
    } else {
        body.auth_method
    };
    if method_name.is_empty() {
        return Err(bad("Must specify an AuthMethod".into()));
    }
    if let Some(o) = &old
        && o.auth_method != method_name
    {
        return Err(bad("the AuthMethod field is immutable".into()));
    }
    let method = records::get::<AuthMethod>(t, AUTH_METHODS, &method_name)
        .ok_or_else(|| bad(format!("auth method {method_name:?} not found")))?;
    let config = login::check_config(&method.kind, &method.config).map_err(bad)?;
    if !matches!(
        body.bind_type.as_str(),
        "service" | "node" | "role" | "policy" | "templated-policy"
    ) {
        return Err(bad(format!("Invalid BindType {:?}", body.bind_type)));
    }
    if body.bind_name.is_empty() {
        return Err(bad("no BindName is set".into()));
    }
    let names = config.var_names();
    login::check_bind_name(&body.bind_name, &names)
        .map_err(|e| bad(format!("invalid BindName: {e}")))?;
    if body.bind_type == "templated-policy" {
        let v = body
            .bind_vars
            .as_ref()
            .map(|v| v.name.as_str())
            .unwrap_or_default();
        login::check_bind_name(v, &names).map_err(|e| bad(format!("invalid BindVars: {e}")))?;
    }
    if !body.selector.trim().is_empty() {
        crate::filter::Filter::parse(&body.selector)
            .map_err(|e| bad(format!("Selector is invalid: {e}")))?;
    }
    let rule = BindingRule {
        id: path_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        description: body.description,
        auth_method: method_name,
        selector: body.selector,
        bind_type: body.bind_type,
        bind_name: body.bind_name,
        bind_vars: body.bind_vars,
        create_index: old.as_ref().map_or(idx, |o| o.create_index),
        modify_index: idx,
    };
    records::put(plan, BINDING_RULES, &rule.id, &rule);
    Ok(rule)
}

async fn rule_create(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: RuleBody = decode(&body)?;
    if !body.id.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot specify an ID when creating a binding rule",
        ));
    }
    let (_, r) = state
        .write(move |t, idx, plan| plan_rule(t, idx, plan, body, None))
        .await?;
    json_reply(q.pretty, &r)
}

async fn rule_update(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    let body: RuleBody = decode(&body)?;
    let (_, r) = state
        .write(move |t, idx, plan| plan_rule(t, idx, plan, body, Some(id)))
        .await?;
    json_reply(q.pretty, &r)
}

async fn rule_read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let (index, r) = state.store().read(|t| {
        (
            index_of(t, BINDING_RULES),
            records::get::<BindingRule>(t, BINDING_RULES, &id),
        )
    });
    match r {
        Some(r) => query_reply(&q, index, &r),
        None => Ok(not_found_empty()),
    }
}

fn rules_of(t: &Tables, method: &str) -> Vec<BindingRule> {
    let mut rs: Vec<BindingRule> = records::all::<BindingRule>(t, BINDING_RULES)
        .into_iter()
        .filter(|r| method.is_empty() || r.auth_method == method)
        .collect();
    rs.sort_by_key(|r| (r.create_index, r.id.clone()));
    rs
}

async fn rule_list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    acl_read(&state, &authz)?;
    let method = q.params.get("authmethod").unwrap_or_default().to_owned();
    let (index, items) = state.store().read(|t| {
        let items: Vec<Value> = rules_of(t, &method)
            .iter()
            .map(crate::api::render::to_json)
            .collect();
        (index_of(t, BINDING_RULES), items)
    });
    query_reply(&q, index, &q.apply_filter(items))
}

async fn rule_delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    acl_write(&state, &authz)?;
    state
        .write(move |t, _idx, plan| {
            if t.ext
                .get(BINDING_RULES)
                .is_some_and(|m| m.contains_key(&id))
            {
                records::remove(plan, BINDING_RULES, &id);
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    json_reply(q.pretty, &true)
}

// === login and logout ===

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct LoginBody {
    auth_method: String,
    bearer_token: String,
    meta: BTreeMap<String, String>,
}

async fn login_(
    State(state): State<AppState>,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let req: LoginBody = decode(&body)?;
    if req.auth_method.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid Login request: AuthMethod is required",
        ));
    }
    if req.bearer_token.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid Login request: BearerToken is required",
        ));
    }
    let method = state
        .store()
        .read(|t| records::get::<AuthMethod>(t, AUTH_METHODS, &req.auth_method))
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "ACL not found: auth method {:?} not found",
                req.auth_method
            ))
        })?;
    let config: MethodConfig = login::check_config(&method.kind, &method.config).map_err(|e| {
        ApiError::internal(format!("auth method {:?} is unusable: {e}", method.name))
    })?;
    let verified = config
        .verify(&req.bearer_token)
        .await
        .map_err(|f| match f {
            LoginFailure::BadToken(m) => {
                ApiError::bad_request(format!("Invalid bearer token: {m}"))
            }
            LoginFailure::Denied(m) => {
                tracing::info!(method = %method.name, reason = %m, "login refused");
                ApiError::forbidden(format!("Permission denied: {m}"))
            }
        })?;
    let dc = state.datacenter().to_owned();
    let now = state.clock().now();
    let method_name = method.name.clone();
    let (_, token) = state
        .write(move |t, idx, plan| {
            let rules = rules_of(t, &method_name);
            let bound = login::bind(t, &rules, &verified, &dc).map_err(ApiError::internal)?;
            let Some((grants, roles)) = bound else {
                return Err(ApiError::forbidden("Permission denied"));
            };
            let ttl = if method.max_token_ttl.is_empty() {
                None
            } else {
                crate::duration::parse_go(&method.max_token_ttl).ok()
            };
            let mut token = Token {
                accessor_id: uuid::Uuid::new_v4().to_string(),
                secret_id: uuid::Uuid::new_v4().to_string(),
                description: records::login_description(&req.meta),
                policies: grants.policies,
                roles,
                service_identities: grants.service_identities,
                node_identities: grants.node_identities,
                templated_policies: grants.templated_policies,
                local: method.token_locality != "global",
                auth_method: method.name.clone(),
                expiration_time: ttl.map(|d| records::format_time(now + d)),
                create_time: records::format_time(now),
                create_index: idx,
                modify_index: idx,
                ..Token::default()
            };
            token.rehash();
            records::put(plan, TOKENS, &token.accessor_id, &token);
            Ok(token)
        })
        .await?;
    tracing::info!(accessor = %token.accessor_id, method = %token.auth_method, "login");
    let shown = state.store().read(|t| records::show_token(t, &token, true));
    json_reply(q.pretty, &shown)
}

async fn logout(
    State(state): State<AppState>,
    q: QueryOpts,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let secret = header("x-consul-token")
        .or_else(|| {
            header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim)
        })
        .map(str::to_owned)
        .or_else(|| {
            q.params
                .get("token")
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(acl_not_found)?;
    let now = state.clock().now();
    state
        .write(move |t, _idx, plan| {
            let token = aclsys::lookup(t, Some(&secret), now).map_err(|_| acl_not_found())?;
            if token.auth_method.is_empty() {
                return Err(ApiError::forbidden("Permission denied"));
            }
            records::remove(plan, TOKENS, &token.accessor_id);
            Ok(())
        })
        .await?;
    json_reply(q.pretty, &true)
}
