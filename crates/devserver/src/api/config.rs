//! `/v1/config`: config entries (store, read, list, delete, with `?cas` and blocking reads).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::AppState;
use super::acl::{Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, json_reply, query_reply};
use crate::config_entry;
use crate::state::config_entries;
use crate::state::{Rejected, Topic};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/config", put(apply))
        .route("/v1/config/{kind}", get(list))
        .route(
            "/v1/config/{kind}/{name}",
            get(read).put(apply_named).delete(delete),
        )
}

/// The ACL resource that governs writing a kind (Consul's `CanWrite`): `service:write` on the name for
/// service-level entries, intentions write on the destination for `service-intentions`, `mesh:write`
/// (which falls back to `operator:write`) for `proxy-defaults`, `mesh` and `exported-services`.
fn resource(kind: &str) -> Resource {
    match kind {
        "service-intentions" => Resource::Intentions,
        "service-defaults" | "service-resolver" | "service-router" | "service-splitter" => {
            Resource::Service
        }
        _ => Resource::Mesh,
    }
}

/// Consul's `CanRead`: `proxy-defaults` and `mesh` are readable by anyone; the others need read on the
/// resource that governs writing them.
fn read_needs(kind: &str) -> Option<Resource> {
    match kind {
        "proxy-defaults" | "mesh" => None,
        other => Some(resource(other)),
    }
}

fn known_kind(kind: &str) -> Result<(), ApiError> {
    config_entry::kind(kind)
        .map(|_| ())
        .ok_or_else(|| ApiError::bad_request(config_entry::unknown_kind(kind)))
}

async fn store(
    state: &AppState,
    authz: &Authorizer,
    q: &QueryOpts,
    body: Value,
    path: Option<(String, String)>,
) -> Result<Response, ApiError> {
    let hint = path.as_ref().map(|(k, _)| k.as_str());
    let (kind, name, body) = config_entry::decode(body, hint)
        .map_err(|e| ApiError::bad_request(format!("Request decoding failed: {e}")))?;
    if let Some((pk, pn)) = path
        && (pk != kind || pn != name)
    {
        return Err(ApiError::bad_request(format!(
            "Request decoding failed: the body names {kind:?} / {name:?} but the path names {pk:?} / {pn:?}"
        )));
    }
    authz.require(resource(&kind), &name, Access::Write)?;
    let cas = q.params.u64("cas")?;
    let (_, done) = state
        .write(move |t, idx, plan| {
            Ok::<_, Rejected>(config_entries::plan_set(
                t, idx, plan, &kind, &name, body, cas,
            ))
        })
        .await?;
    json_reply(q.pretty, &done)
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Request decoding failed: {e}")))
}

async fn apply(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    store(&state, &authz, &q, body, None).await
}

async fn apply_named(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    known_kind(&kind)?;
    let mut body = parse_body(&body)?;
    if let Value::Object(m) = &mut body
        && !m.keys().any(|k| k.eq_ignore_ascii_case("Name"))
    {
        m.insert("Name".into(), Value::String(name.clone()));
    }
    store(&state, &authz, &q, body, Some((kind, name))).await
}

async fn read(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    known_kind(&kind)?;
    if let Some(r) = read_needs(&kind) {
        authz.require(r, &name, Access::Read)?;
    }
    let topic = Topic::ConfigEntry(kind.clone(), name.clone());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let entry = t.config.get(&(kind.clone(), name.clone()));
        let idx = entry.map_or_else(|| t.topic_index(&topic), |e| e.modify_index);
        Ok((idx, entry.map(config_entries::ConfigEntry::to_json)))
    })
    .await?;
    match out {
        Some(v) => query_reply(&q, index, &v),
        None => Err(ApiError::not_found(format!(
            "Config entry not found for {kind:?} / {name:?}"
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(kind): Path<String>,
) -> Result<Response, ApiError> {
    known_kind(&kind)?;
    let topic = Topic::ConfigKind(kind.clone());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let items: Vec<Value> = config_entries::list(t, &kind)
            .filter(|e| read_needs(&kind).is_none_or(|r| authz.can_read(r, &e.name)))
            .map(config_entries::ConfigEntry::to_json)
            .collect();
        Ok((t.topic_index(&topic), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn delete(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    known_kind(&kind)?;
    authz.require(resource(&kind), &name, Access::Write)?;
    let cas = q.params.u64("cas")?;
    let (_, done) = state
        .write(move |t, _idx, plan| {
            Ok::<_, Rejected>(config_entries::plan_delete(t, plan, &kind, &name, cas))
        })
        .await?;
    if cas.is_some() {
        json_reply(q.pretty, &done)
    } else {
        json_reply(q.pretty, &json!({}))
    }
}
