//! `/v1/health/*`: checks by node, service and state, and service instances with their health.
//!
//! An instance's health is decided by its own checks and its node's checks: with `?passing`, an instance
//! is listed only if all of them pass (a failing node check hides every service on the node). With
//! `?merge-central-config`, proxies and gateways come back with their central configuration merged in
//! (see [`crate::central_config`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::AppState;
use super::acl::{Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, query_reply};
use super::render;
use crate::central_config;
use crate::state::catalog;
use crate::state::{Tables, Topic};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/health/node/{node}", get(node))
        .route("/v1/health/checks/{service}", get(checks))
        .route("/v1/health/service/{service}", get(service))
        .route("/v1/health/connect/{service}", get(connect))
        .route("/v1/health/state/{state}", get(state_checks))
}

async fn node(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let node_lc = name.to_lowercase();
    let topic = Topic::Node(node_lc.clone());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let items = if authz.can_read(Resource::Node, &name) {
            catalog::node_checks(t, &node_lc)
                .map(render::check)
                .collect()
        } else {
            Vec::new()
        };
        Ok((t.topic_index(&topic), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn checks(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let topic = Topic::Service(name.to_lowercase());
    let (index, out) = blocking(&state, &q, vec![topic.clone()], |t| {
        let items = if authz.can_read(Resource::Service, &name) {
            t.checks
                .values()
                .filter(|c| !c.service_id.is_empty() && c.service_name.eq_ignore_ascii_case(&name))
                .map(render::check)
                .collect()
        } else {
            Vec::new()
        };
        Ok((t.topic_index(&topic), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}

fn entries(
    t: &Tables,
    q: &QueryOpts,
    authz: &Authorizer,
    connect: bool,
    name: &str,
) -> Result<Vec<Value>, ApiError> {
    let passing = q.params.flag("passing")?;
    let merge = q.params.flag("merge-central-config")?;
    let items = super::catalog::visible_instances(t, q, authz, connect, name)
        .into_iter()
        .filter(|(n, s)| !passing || render::all_passing(t, n, s))
        .map(|(n, s)| {
            if merge {
                render::health_entry(t, n, &central_config::merge(t, s))
            } else {
                render::health_entry(t, n, s)
            }
        })
        .collect();
    Ok(q.apply_filter(items))
}

async fn service(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    q.params.flag("passing")?;
    let merge = q.params.flag("merge-central-config")?;
    let topic = Topic::Service(name.to_lowercase());
    let mut topics = vec![topic.clone()];
    if merge {
        topics.extend(central_config::topics());
    }
    let (index, out) = blocking(&state, &q, topics, |t| {
        let mut idx = t.topic_index(&topic);
        if merge {
            idx = idx.max(central_config::index(t));
        }
        Ok((idx, entries(t, &q, &authz, false, &name)?))
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
    q.params.flag("passing")?;
    let merge = q.params.flag("merge-central-config")?;
    let topic = Topic::Connect(name.to_lowercase());
    let mut topics = vec![topic.clone()];
    if merge {
        topics.extend(central_config::topics());
    }
    let (index, out) = blocking(&state, &q, topics, |t| {
        let mut idx = t.topic_index(&topic);
        if merge {
            idx = idx.max(central_config::index(t));
        }
        Ok((idx, entries(t, &q, &authz, true, &name)?))
    })
    .await?;
    query_reply(&q, index, &out)
}

async fn state_checks(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(want): Path<String>,
) -> Result<Response, ApiError> {
    if !matches!(
        want.as_str(),
        "any" | "passing" | "warning" | "critical" | "maintenance"
    ) {
        return Err(ApiError::bad_request(format!(
            "Invalid check state: {want:?}"
        )));
    }
    let (index, out) = blocking(&state, &q, vec![Topic::Checks], |t| {
        let items = t
            .checks
            .values()
            .filter(|c| want == "any" || c.status == want)
            .filter(|c| {
                authz.can_read(Resource::Node, &c.node)
                    && (c.service_name.is_empty()
                        || authz.can_read(Resource::Service, &c.service_name))
            })
            .map(render::check)
            .collect();
        Ok((t.topic_index(&Topic::Checks), q.apply_filter(items)))
    })
    .await?;
    query_reply(&q, index, &out)
}
