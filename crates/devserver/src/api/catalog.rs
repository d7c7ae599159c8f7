//! `/v1/catalog/*`: register and deregister, and the catalog reads.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use serde_json::{Map, Value, json};

use super::AppState;
use super::acl::{Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, json_reply, query_reply};
use super::render::{self, to_json};
use crate::central_config;
use crate::state::catalog::{self, DeregisterRequest, RegisterRequest};
use crate::state::types::{Node, NodeService};
use crate::state::{Tables, Topic};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/catalog/register", put(register))
        .route("/v1/catalog/deregister", put(deregister))
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/catalog/nodes", get(nodes))
        .route("/v1/catalog/node/{node}", get(node))
        .route("/v1/catalog/node-services/{node}", get(node_services))
        .route("/v1/catalog/services", get(services))
        .route("/v1/catalog/service/{name}", get(service))
        .route("/v1/catalog/connect/{name}", get(connect))
}

fn check_dc(state: &AppState, dc: &str) -> Result<(), ApiError> {
    if !dc.is_empty() && dc != state.datacenter() {
        Err(ApiError::no_path_to_dc())
    } else {
        Ok(())
    }
}

async fn register(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterRequest = crate::decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    check_dc(&state, &req.datacenter)?;
    let dc = state.datacenter().to_owned();
    state
        .write(move |t, idx, plan| {
            if authz.enforcing() {
                vet_register(&authz, t, &req, &dc)?;
            }
            catalog::plan_register(t, idx, plan, req, &dc).map_err(ApiError::from)
        })
        .await?;
    json_reply(q.pretty, &true)
}

/// Consul's ACL rules for a registration: `node:write` when the node is new or changes (so
/// `SkipNodeUpdate` registrations of services need no node rights), `service:write` on the service and
/// on any instance it replaces, `service:write` on a sidecar's destination, `node:write` for node-level
/// checks and `service:write` for checks of other instances.
fn vet_register(
    authz: &Authorizer,
    t: &Tables,
    req: &RegisterRequest,
    local_dc: &str,
) -> Result<(), ApiError> {
    let node_lc = req.node.to_lowercase();
    let existing = t.nodes.get(&node_lc);
    let dc = if req.datacenter.is_empty() {
        local_dc
    } else {
        req.datacenter.as_str()
    };
    let changes_node = match existing {
        None => true,
        Some(_) if req.skip_node_update => false,
        Some(n) => {
            n.id != req.id
                || n.address != req.address
                || n.datacenter != dc
                || n.tagged_addresses != req.tagged_addresses
                || n.meta != req.node_meta
        }
    };
    if changes_node {
        authz.require(Resource::Node, &req.node, Access::Write)?;
    }
    if let Some(s) = &req.service {
        if s.service != "consul" {
            authz.require(Resource::Service, &s.service, Access::Write)?;
        }
        if s.kind == "connect-proxy" {
            authz.require(
                Resource::Service,
                &s.proxy.destination_service_name,
                Access::Write,
            )?;
        }
        let id = if s.id.is_empty() { &s.service } else { &s.id };
        if let Some(other) = t.services.get(&(node_lc.clone(), id.to_lowercase())) {
            authz.require(Resource::Service, &other.service, Access::Write)?;
        }
    }
    for c in req.check.iter().chain(req.checks.iter()) {
        if c.service_id.is_empty() {
            authz.require(Resource::Node, &req.node, Access::Write)?;
            continue;
        }
        if let Some(s) = &req.service {
            let id = if s.id.is_empty() { &s.service } else { &s.id };
            if id.eq_ignore_ascii_case(&c.service_id) {
                continue;
            }
        }
        let other = t
            .services
            .get(&(node_lc.clone(), c.service_id.to_lowercase()))
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "Unknown service ID '{}' for check ID '{}'",
                    c.service_id, c.check_id
                ))
            })?;
        authz.require(Resource::Service, &other.service, Access::Write)?;
    }
    Ok(())
}

/// Consul's ACL rules for a deregistration: `node:write` allows all; else `service:write` on the
/// instance, or on the instance a check belongs to.
fn vet_deregister(authz: &Authorizer, t: &Tables, req: &DeregisterRequest) -> Result<(), ApiError> {
    if authz.allowed(Resource::Node, &req.node, Access::Write) {
        return Ok(());
    }
    let node_lc = req.node.to_lowercase();
    if !req.service_id.is_empty() {
        let s = t
            .services
            .get(&(node_lc, req.service_id.to_lowercase()))
            .ok_or_else(|| {
                ApiError::internal(format!("Unknown service ID '{}'", req.service_id))
            })?;
        return authz.require(Resource::Service, &s.service, Access::Write);
    }
    if !req.check_id.is_empty() {
        let c = t
            .checks
            .get(&(node_lc, req.check_id.to_lowercase()))
            .ok_or_else(|| ApiError::internal(format!("Unknown check ID '{}'", req.check_id)))?;
        if !c.service_id.is_empty() {
            return authz.require(Resource::Service, &c.service_name, Access::Write);
        }
    }
    Err(authz.denied(Resource::Node, &req.node, Access::Write))
}

async fn deregister(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: DeregisterRequest = crate::decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    check_dc(&state, &req.datacenter)?;
    state
        .write(move |t, _idx, plan| {
            if authz.enforcing() {
                vet_deregister(&authz, t, &req)?;
            }
            catalog::plan_deregister(t, plan, &req).map_err(ApiError::from)
        })
        .await?;
    json_reply(q.pretty, &true)
}

async fn datacenters(State(state): State<AppState>, q: QueryOpts) -> Result<Response, ApiError> {
    json_reply(q.pretty, &[state.datacenter()])
}

/// `?node-meta=key:value` filters (deprecated in Consul, still accepted).
fn node_meta_filters(q: &QueryOpts) -> Vec<(String, String)> {
    q.params
        .all("node-meta")
        .map(|kv| match kv.split_once(':') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

fn meta_matches(meta: &BTreeMap<String, String>, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| meta.get(k) == Some(v))
}

async fn nodes(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let meta = node_meta_filters(&q);
    let (index, out) = blocking(&state, &q, vec![Topic::Nodes], |t| {
        let items = t
            .nodes
            .values()
            .filter(|n| authz.can_read(Resource::Node, &n.node) && meta_matches(&n.meta, &meta))
            .map(to_json)
            .collect();
        Ok((t.topic_index(&Topic::Nodes), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn node(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let topic = Topic::Node(name.to_lowercase());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let idx = t.topic_index(&topic);
        let node_lc = name.to_lowercase();
        let Some(node) = t
            .nodes
            .get(&node_lc)
            .filter(|n| authz.can_read(Resource::Node, &n.node))
        else {
            return Ok((idx, Value::Null));
        };
        let services: Vec<Value> = catalog::node_services(t, &node_lc)
            .filter(|s| authz.can_read(Resource::Service, &s.service))
            .map(to_json)
            .collect();
        let mut map = Map::new();
        for s in q.apply_filter(services) {
            let id = s
                .get("ID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            map.insert(id, s);
        }
        Ok((idx, json!({"Node": to_json(node), "Services": map})))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn node_services(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let merge = q.params.flag("merge-central-config")?;
    let topic = Topic::Node(name.to_lowercase());
    let mut topics = vec![topic.clone()];
    if merge {
        topics.extend(central_config::topics());
    }
    let (index, out) = blocking(&state, &q, topics, |t| {
        let mut idx = t.topic_index(&topic);
        if merge {
            idx = idx.max(central_config::index(t));
        }
        let node_lc = name.to_lowercase();
        let Some(node) = t
            .nodes
            .get(&node_lc)
            .filter(|n| authz.can_read(Resource::Node, &n.node))
        else {
            return Ok((idx, None));
        };
        let services: Vec<Value> = catalog::node_services(t, &node_lc)
            .filter(|s| authz.can_read(Resource::Service, &s.service))
            .map(|s| {
                if merge {
                    to_json(&central_config::merge(t, s))
                } else {
                    to_json(s)
                }
            })
            .collect();
        Ok((
            idx,
            Some(json!({"Node": to_json(node), "Services": q.apply_filter(services)})),
        ))
    })
    .await?;
    match out {
        Some(v) => query_reply(&q, index, &v),
        None => Err(ApiError::not_found(format!("Node not found: {name:?}"))),
    }
}

async fn services(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let meta = node_meta_filters(&q);
    let (index, out) = blocking(&state, &q, vec![Topic::Services], |t| {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ((node_lc, _), s) in &t.services {
            let Some(node) = t.nodes.get(node_lc) else {
                continue;
            };
            if !authz.can_read(Resource::Service, &s.service) || !meta_matches(&node.meta, &meta) {
                continue;
            }
            if let Some(f) = &q.filter
                && !f.matches(&render::service_node(node, s))
            {
                continue;
            }
            out.entry(s.service.clone())
                .or_default()
                .extend(s.tags.iter().cloned());
        }
        Ok((t.topic_index(&Topic::Services), out))
    })
    .await?;
    query_reply(&q, index, &out)
}

fn service_nodes_reply(
    t: &Tables,
    q: &QueryOpts,
    authz: &Authorizer,
    connect: bool,
    name: &str,
) -> Vec<Value> {
    let meta = node_meta_filters(q);
    let items = visible_instances(t, q, authz, connect, name)
        .into_iter()
        .filter(|(n, _)| meta_matches(&n.meta, &meta))
        .map(|(n, s)| render::service_node(n, s))
        .collect();
    q.apply_filter(items)
}

/// The instances of `name` (or the Connect-capable ones, for `connect`) that the token may read and that carry
/// every `?tag=` of the request: the selection the catalog and health endpoints share.
pub(super) fn visible_instances<'a>(
    t: &'a Tables,
    q: &QueryOpts,
    authz: &Authorizer,
    connect: bool,
    name: &str,
) -> Vec<(&'a Node, &'a NodeService)> {
    let tags: Vec<&str> = q.params.all("tag").collect();
    let instances = if connect {
        catalog::connect_instances(t, name)
    } else {
        catalog::service_instances(t, name)
    };
    instances
        .into_iter()
        .filter(|(n, s)| {
            authz.can_read(Resource::Node, &n.node) && authz.can_read(Resource::Service, &s.service)
        })
        .filter(|(_, s)| {
            tags.iter()
                .all(|tag| s.tags.iter().any(|x| x.eq_ignore_ascii_case(tag)))
        })
        .collect()
}

async fn service(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let topic = Topic::Service(name.to_lowercase());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        Ok((
            t.topic_index(&topic),
            service_nodes_reply(t, &q, &authz, false, &name),
        ))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn connect(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let topic = Topic::Connect(name.to_lowercase());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        Ok((
            t.topic_index(&topic),
            service_nodes_reply(t, &q, &authz, true, &name),
        ))
    })
    .await?;
    query_reply(&q, index, &out)
}
