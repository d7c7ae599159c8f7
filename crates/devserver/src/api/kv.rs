//! `/v1/kv/<key>`: get (one key, `?recurse`, `?keys` with `?separator`, `?raw`), put (`?flags`, `?cas`) and
//! delete (`?recurse`, `?cas`). Values are base64 in JSON; a missing key is a 404 with an index.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::acl::{Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, json_reply, query_headers, query_not_found, query_reply};
use crate::state::kv::{self, KvEntry};
use crate::state::{Rejected, Topic};

/// Largest KV value, as Consul's default `kv_max_value_size`.
const MAX_VALUE_BYTES: usize = 512 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/kv", get(get_root).put(put_root).delete(delete_root))
        .route("/v1/kv/", get(get_root).put(put_root).delete(delete_root))
        .route(
            "/v1/kv/{*key}",
            get(get_key).put(put_key).delete(delete_key),
        )
}

async fn get_root(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    get_kv(state, authz, q, String::new()).await
}

async fn get_key(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    get_kv(state, authz, q, key).await
}

async fn put_root(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_kv(state, authz, q, String::new(), body).await
}

async fn put_key(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_kv(state, authz, q, key, body).await
}

async fn delete_root(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    delete_kv(state, authz, q, String::new()).await
}

async fn delete_key(
    state: State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    delete_kv(state, authz, q, key).await
}

enum Got {
    Entries(Vec<KvEntry>),
    Keys(Vec<String>),
}

async fn get_kv(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    key: String,
) -> Result<Response, ApiError> {
    let recurse = q.params.flag("recurse")?;
    let keys = q.params.has("keys");
    let raw = q.params.flag("raw")?;
    let separator = q.params.get("separator").unwrap_or_default().to_owned();
    let topic = if recurse || keys {
        Topic::KvPrefix(key.clone())
    } else {
        Topic::KvKey(key.clone())
    };
    // One key needs `key:read` on it; listings show only what may be read (Consul without
    // `acl.enable_key_list_policy`).
    if !recurse && !keys {
        authz.require(Resource::Key, &key, Access::Read)?;
    }
    let (index, got) = blocking(&state, &q, vec![topic], |t| {
        if keys {
            let mut out = BTreeSet::new();
            for e in kv::list(t, &key).filter(|e| authz.can_read(Resource::Key, &e.key)) {
                let rest = &e.key[key.len()..];
                match (!separator.is_empty())
                    .then(|| rest.find(&separator))
                    .flatten()
                {
                    Some(pos) => out.insert(format!("{key}{}", &rest[..pos + separator.len()])),
                    None => out.insert(e.key.clone()),
                };
            }
            Ok((
                kv::prefix_index(t, &key),
                Got::Keys(out.into_iter().collect()),
            ))
        } else if recurse {
            let out = kv::list(t, &key)
                .filter(|e| authz.can_read(Resource::Key, &e.key))
                .cloned()
                .collect();
            Ok((kv::prefix_index(t, &key), Got::Entries(out)))
        } else {
            Ok((
                kv::key_index(t, &key),
                Got::Entries(t.kv.get(&key).cloned().into_iter().collect()),
            ))
        }
    })
    .await?;
    match got {
        Got::Keys(k) if k.is_empty() => Ok(query_not_found(&q, index)),
        Got::Keys(k) => query_reply(&q, index, &k),
        Got::Entries(e) if e.is_empty() => Ok(query_not_found(&q, index)),
        Got::Entries(e) if raw => {
            let value = e
                .into_iter()
                .next()
                .and_then(|e| e.value)
                .unwrap_or_default();
            let mut resp = (query_headers(&q, index), value).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(resp)
        }
        Got::Entries(e) => query_reply(&q, index, &e),
    }
}

async fn put_kv(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    key: String,
    body: Bytes,
) -> Result<Response, ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    if q.params.has("acquire") || q.params.has("release") {
        return Err(ApiError::bad_request(
            "sessions are not supported by this server (?acquire/?release)",
        ));
    }
    if body.len() > MAX_VALUE_BYTES {
        return Err(ApiError::too_large(format!(
            "Request body({} bytes) too large, max size: {MAX_VALUE_BYTES} bytes. See kv_max_value_size.",
            body.len()
        )));
    }
    authz.require(Resource::Key, &key, Access::Write)?;
    let flags = q.params.u64("flags")?.unwrap_or(0);
    let cas = q.params.u64("cas")?;
    let value = if body.is_empty() {
        None
    } else {
        Some(body.to_vec())
    };
    let (_, done) = state
        .write(move |t, idx, plan| {
            Ok::<_, Rejected>(kv::plan_set(t, idx, plan, &key, value, flags, cas))
        })
        .await?;
    json_reply(q.pretty, &done)
}

async fn delete_kv(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    key: String,
) -> Result<Response, ApiError> {
    let recurse = q.params.flag("recurse")?;
    if key.is_empty() && !recurse {
        return Err(ApiError::bad_request("Missing key name"));
    }
    if recurse {
        authz.require_key_write_prefix(&key)?;
    } else {
        authz.require(Resource::Key, &key, Access::Write)?;
    }
    let cas = q.params.u64("cas")?;
    let (_, done) = state
        .write(move |t, _idx, plan| Ok::<_, Rejected>(kv::plan_delete(t, plan, &key, recurse, cas)))
        .await?;
    json_reply(q.pretty, &done)
}
