//! `/v1/status/*` and the agent endpoints a single-node server can answer (`/v1/agent/self`,
//! `/v1/agent/members`).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::AppState;
use super::acl::{Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, json_reply};
use crate::CONSUL_VERSION;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(members))
}

fn server_rpc_addr(state: &AppState) -> String {
    format!("{}:8300", state.address())
}

async fn leader(State(state): State<AppState>, q: QueryOpts) -> Result<Response, ApiError> {
    json_reply(q.pretty, &server_rpc_addr(&state))
}

async fn peers(State(state): State<AppState>, q: QueryOpts) -> Result<Response, ApiError> {
    json_reply(q.pretty, &[server_rpc_addr(&state)])
}

fn member(state: &AppState) -> serde_json::Value {
    json!({
        "Name": state.node_name(),
        "Addr": state.address(),
        "Port": 8301,
        "Tags": {
            "role": "consul",
            "dc": state.datacenter(),
            "segment": "",
            "id": state.node_id(),
            "build": format!("{CONSUL_VERSION}:devserver"),
            "vsn": "2",
            "vsn_min": "2",
            "vsn_max": "3",
            "raft_vsn": "3",
            "port": "8300",
            "bootstrap": "1",
            "expect": "1"
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4
    })
}

async fn agent_self(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    authz.require(Resource::Agent, state.node_name(), Access::Read)?;
    let ports = json!({
        "HTTP": state.http_port(),
        "HTTPS": state.https_port().map_or(-1, i64::from),
        "GRPC": -1,
        "GRPCTLS": -1,
        "DNS": -1,
        "SerfLan": 8301,
        "SerfWan": 8302,
        "Server": 8300
    });
    let body = json!({
        "Config": {
            "Datacenter": state.datacenter(),
            "PrimaryDatacenter": state.datacenter(),
            "NodeName": state.node_name(),
            "NodeID": state.node_id(),
            "Partition": "",
            "Revision": "devserver",
            "Server": true,
            "Version": CONSUL_VERSION,
            "BuildDate": "1970-01-01T00:00:00Z"
        },
        "DebugConfig": {
            "Datacenter": state.datacenter(),
            "PrimaryDatacenter": state.datacenter(),
            "NodeName": state.node_name(),
            "NodeID": state.node_id(),
            "ServerMode": true,
            "DevMode": true,
            "ACLsEnabled": state.acl_settings().enabled,
            "ConnectEnabled": true,
            "HTTPPort": state.http_port(),
            "HTTPSPort": state.https_port().map_or(-1, i64::from),
            "Version": CONSUL_VERSION
        },
        "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-05},
        "Member": member(&state),
        "Stats": {
            "consul": {"server": "true", "leader": "true", "known_datacenters": "1", "bootstrap": "true"},
            "build": {"version": CONSUL_VERSION, "revision": "devserver", "prerelease": ""}
        },
        "Meta": {"consul-network-segment": "", "consul-version": CONSUL_VERSION},
        "xDS": {"SupportedProxies": {"envoy": []}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
        "Ports": ports
    });
    json_reply(q.pretty, &body)
}

async fn members(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    let shown: Vec<serde_json::Value> = if authz.can_read(Resource::Node, state.node_name()) {
        vec![member(&state)]
    } else {
        Vec::new()
    };
    json_reply(q.pretty, &shown)
}
