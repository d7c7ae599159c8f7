//! `/v1/connect/intentions`: the intention API over `service-intentions` config entries.
//!
//! - `GET /v1/connect/intentions` (list, highest precedence first, `?filter`, blocking),
//! - `GET`/`PUT`/`DELETE /v1/connect/intentions/exact?source=&destination=`,
//! - `GET /v1/connect/intentions/match?by=source|destination&name=..` (evaluation order; blocking, woken
//!   only when the answer changes),
//! - `GET /v1/connect/intentions/check?source=&destination=` (`{"Allowed": bool}`; L7 counts as deny).
//!
//! Names are `name`, `namespace/name` or `partition/namespace/name` (only the default namespace and
//! partition exist here). The legacy ID-based endpoints answer with a 400 or 404 that says so.
//!
//! ```text
//! curl -X PUT -d '{"Action": "allow"}' 'http://127.0.0.1:8500/v1/connect/intentions/exact?source=web&destination=db'
//! ```

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use connect::intention::{IntentionTarget, MatchType, check, match_intentions};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::acl::{self, Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, blocking_on_change, json_reply, query_reply};
use super::render::to_json;
use crate::state::intentions::{self, IntentionName, Upsert};
use crate::state::{Rejected, Topic};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/connect/intentions", get(list).post(legacy_create))
        .route(
            "/v1/connect/intentions/exact",
            get(read_exact).put(put_exact).delete(delete_exact),
        )
        .route("/v1/connect/intentions/match", get(match_))
        .route("/v1/connect/intentions/check", get(check_))
        .route(
            "/v1/connect/intentions/{id}",
            get(legacy_read).put(legacy_write).delete(legacy_write),
        )
}

/// Parses one side as Consul's `parseIntentionStringComponent` does, then applies the rules of a
/// server without namespaces or partitions.
fn parse_name(field: &str, input: &str, allow_peer: bool) -> Result<IntentionName, ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("{field} {input:?} is invalid: {why}"));
    if input.starts_with("peer:") && !allow_peer {
        return Err(invalid("cannot specify a peer here"));
    }
    let parts: Vec<&str> = input.split('/').collect();
    let mut out = IntentionName {
        peer: String::new(),
        partition: String::new(),
        namespace: String::new(),
        name: String::new(),
    };
    match parts.as_slice() {
        [name] => {
            if name.starts_with("peer:") {
                return Err(invalid("need to specify the service name as well"));
            }
            out.name = (*name).to_owned();
        }
        [first, name] => {
            match first.strip_prefix("peer:") {
                Some(peer) => out.peer = peer.to_owned(),
                None => out.namespace = (*first).to_owned(),
            }
            out.name = (*name).to_owned();
        }
        [first, ns, name] => {
            match first.strip_prefix("peer:") {
                Some(peer) => out.peer = peer.to_owned(),
                None => out.partition = (*first).to_owned(),
            }
            out.namespace = (*ns).to_owned();
            out.name = (*name).to_owned();
        }
        _ => return Err(invalid("input can contain at most two '/'")),
    }
    if out.name.is_empty() {
        return Err(invalid("the service name is empty"));
    }
    if !matches!(out.namespace.as_str(), "" | "default") {
        return Err(ApiError::bad_request(format!(
            "Invalid {field} namespace ({}): Namespaces is a Consul Enterprise feature",
            out.namespace
        )));
    }
    if !matches!(out.partition.as_str(), "" | "default") {
        return Err(ApiError::bad_request(format!(
            "Invalid {field} partition ({}): Partitions is a Consul Enterprise feature",
            out.partition
        )));
    }
    Ok(out)
}

fn target(n: &IntentionName) -> IntentionTarget {
    IntentionTarget {
        name: n.name.clone(),
        namespace: n.namespace.clone(),
        partition: n.partition.clone(),
        peer: n.peer.clone(),
    }
}

/// The single value of a required query parameter, with Consul's message when it is missing.
fn required<'a>(q: &'a QueryOpts, name: &'a str) -> Result<&'a str, ApiError> {
    let mut values = q.params.all(name);
    match (values.next(), values.next()) {
        (Some(v), None) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "required query parameter '{name}' not set"
        ))),
    }
}

fn exact_names(
    q: &QueryOpts,
    allow_peer: bool,
) -> Result<(IntentionName, IntentionName), ApiError> {
    let source = parse_name("source", required(q, "source")?, allow_peer)?;
    let dest = parse_name("destination", required(q, "destination")?, false)?;
    Ok((source, dest))
}

async fn list(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let topic = intentions::topic();
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let items: Vec<Value> = intentions::all(t)?
            .iter()
            .filter(|i| {
                // Consul shows an intention to a token that may read intentions of either side.
                let ok = authz.allowed(Resource::Intentions, &i.source_name, Access::Read)
                    || authz.allowed(Resource::Intentions, &i.destination_name, Access::Read);
                if !ok {
                    authz.note_filtered();
                }
                ok
            })
            .map(to_json)
            .collect();
        Ok((t.topic_index(&topic), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn read_exact(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let (source, dest) = exact_names(&q, true)?;
    authz.require(Resource::Intentions, &dest.name, Access::Read)?;
    let topic = Topic::ConfigEntry(intentions::KIND.to_owned(), dest.name.clone());
    let (index, found) = blocking(&state, &q, vec![topic.clone()], |t| {
        let found = intentions::exact(t, &source, &dest)?;
        let index = found
            .as_ref()
            .map_or_else(|| t.topic_index(&topic), |i| i.modify_index);
        Ok((index, found))
    })
    .await?;
    match found {
        Some(ixn) => query_reply(&q, index, &ixn),
        None => Err(ApiError::not_found("Intention not found")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct UpsertBody {
    source_type: String,
    action: String,
    description: String,
    meta: BTreeMap<String, String>,
    permissions: Vec<Value>,
}

async fn put_exact(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (source, dest) = exact_names(&q, false)?;
    authz.require(Resource::Intentions, &dest.name, Access::Write)?;
    let body: UpsertBody = crate::decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    let req = Upsert {
        source_type: body.source_type,
        action: body.action,
        description: body.description,
        meta: body
            .meta
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<String, Value>>(),
        permissions: body.permissions,
    };
    state
        .write(move |t, idx, plan| intentions::plan_upsert(t, idx, plan, &source, &dest, req))
        .await?;
    json_reply(q.pretty, &true)
}

async fn delete_exact(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let (source, dest) = exact_names(&q, false)?;
    authz.require(Resource::Intentions, &dest.name, Access::Write)?;
    state
        .write(move |t, idx, plan| intentions::plan_delete(t, idx, plan, &source, &dest))
        .await?;
    json_reply(q.pretty, &true)
}

async fn match_(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let by = {
        let mut values = q.params.all("by");
        match (values.next(), values.next()) {
            (Some("source"), None) => MatchType::Source,
            (Some("destination"), None) => MatchType::Destination,
            (Some(_), None) => {
                return Err(ApiError::bad_request(
                    "'by' parameter must be one of 'source' or 'destination'",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "required query parameter 'by' not set",
                ));
            }
        }
    };
    let raw_names: Vec<String> = q.params.all("name").map(str::to_owned).collect();
    if raw_names.is_empty() {
        return Err(ApiError::bad_request(
            "required query parameter 'name' not set",
        ));
    }
    let mut targets = Vec::with_capacity(raw_names.len());
    for n in &raw_names {
        let parsed = parse_name("name", n, false)?;
        authz.require(Resource::Intentions, &parsed.name, Access::Read)?;
        targets.push((n.clone(), target(&parsed)));
    }
    // By destination, only the entries of the named destinations and of `*` matter, so only their
    // writes move the index. By source any entry may hold a match: watch them all, and let
    // `blocking_on_change` sleep through writes that leave the answer as it was.
    let topics: Vec<Topic> = match by {
        MatchType::Destination => targets
            .iter()
            .map(|(_, t)| t.name.clone())
            .chain(std::iter::once("*".to_owned()))
            .map(|name| Topic::ConfigEntry(intentions::KIND.to_owned(), name))
            .collect(),
        MatchType::Source => vec![intentions::topic()],
    };
    let (index, out) = blocking_on_change(&state, &q, topics.clone(), |t| {
        let all = intentions::all(t)?;
        let mut reply = Map::new();
        for (raw, target) in &targets {
            let matched: Vec<Value> = match_intentions(&all, by, target)
                .into_iter()
                .map(to_json)
                .collect();
            // Consul sends `null` for a name nothing matches.
            let value = if matched.is_empty() {
                Value::Null
            } else {
                Value::Array(matched)
            };
            reply.insert(raw.clone(), value);
        }
        let index = topics.iter().map(|tp| t.topic_index(tp)).max().unwrap_or(1);
        Ok((index, Value::Object(reply)))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn check_(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    if let Some(st) = q.params.get("source-type")
        && !st.is_empty()
        && st != "consul"
    {
        return Err(ApiError::bad_request(format!(
            "unsupported SourceType: {st:?}"
        )));
    }
    let source = parse_name("source", required(&q, "source")?, false)?;
    let dest = parse_name("destination", required(&q, "destination")?, false)?;
    authz.require(Resource::Service, &dest.name, Access::Read)?;
    let defaults = acl::intention_defaults(&state);
    let allowed = state.store().read(|t| {
        let all = intentions::all(t)?;
        Ok::<_, Rejected>(check(&all, &target(&source), &target(&dest), &defaults))
    })?;
    json_reply(q.pretty, &json!({"Allowed": allowed}))
}

const LEGACY: &str = "intentions by ID (the API before Consul 1.9) are not supported by this dev server; use /v1/connect/intentions/exact?source=..&destination=.. or the service-intentions config entry";

async fn legacy_create() -> ApiError {
    ApiError::bad_request(format!("Creating {LEGACY}"))
}

async fn legacy_read(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "Intention not found: no intention has ID {id:?}; {LEGACY}"
    ))
}

async fn legacy_write(Path(id): Path<String>) -> ApiError {
    ApiError::bad_request(format!("Cannot change intention {id:?}: {LEGACY}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_consul() {
        let n = parse_name("source", "web", false).unwrap();
        assert_eq!((n.namespace.as_str(), n.name.as_str()), ("", "web"));
        let n = parse_name("source", "default/web", false).unwrap();
        assert_eq!((n.namespace.as_str(), n.name.as_str()), ("default", "web"));
        let n = parse_name("source", "peer:east/web", true).unwrap();
        assert_eq!((n.peer.as_str(), n.name.as_str()), ("east", "web"));
        let e = |s: &str, peer| parse_name("source", s, peer).unwrap_err();
        assert_eq!(
            e("peer:east/web", false),
            ApiError::bad_request(
                "source \"peer:east/web\" is invalid: cannot specify a peer here"
            )
        );
        assert_eq!(
            e("a/b/c/d", false),
            ApiError::bad_request(
                "source \"a/b/c/d\" is invalid: input can contain at most two '/'"
            )
        );
        assert_eq!(
            e("team/web", false),
            ApiError::bad_request(
                "Invalid source namespace (team): Namespaces is a Consul Enterprise feature"
            )
        );
    }
}
