//! Response shapes built from catalog records (Consul's `ServiceNode`, `CheckServiceNode`, ...).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::state::Tables;
use crate::state::catalog;
use crate::state::types::{HealthCheck, Node, NodeService};

/// Any record as JSON.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A catalog service entry (`/v1/catalog/service`): node fields plus `Service*` fields.
pub(crate) fn service_node(node: &Node, s: &NodeService) -> Value {
    let mut m = Map::new();
    m.insert("ID".into(), json!(node.id));
    m.insert("Node".into(), json!(node.node));
    m.insert("Address".into(), json!(node.address));
    m.insert("Datacenter".into(), json!(node.datacenter));
    m.insert("TaggedAddresses".into(), to_json(&node.tagged_addresses));
    m.insert("NodeMeta".into(), to_json(&node.meta));
    m.insert("ServiceKind".into(), json!(s.kind));
    m.insert("ServiceID".into(), json!(s.id));
    m.insert("ServiceName".into(), json!(s.service));
    m.insert("ServiceTags".into(), to_json(&s.tags));
    m.insert("ServiceAddress".into(), json!(s.address));
    if !s.tagged_addresses.is_empty() {
        m.insert(
            "ServiceTaggedAddresses".into(),
            to_json(&s.tagged_addresses),
        );
    }
    m.insert(
        "ServiceWeights".into(),
        to_json(&s.weights.clone().unwrap_or_default()),
    );
    m.insert("ServiceMeta".into(), to_json(&s.meta));
    m.insert("ServicePort".into(), json!(s.port));
    m.insert("ServiceSocketPath".into(), json!(s.socket_path));
    m.insert(
        "ServiceEnableTagOverride".into(),
        json!(s.enable_tag_override),
    );
    m.insert("ServiceProxy".into(), to_json(&s.proxy));
    m.insert("ServiceConnect".into(), Value::Object(s.connect.clone()));
    m.insert("ServiceLocality".into(), to_json(&s.locality));
    if !s.peer_name.is_empty() {
        m.insert("PeerName".into(), json!(s.peer_name));
    }
    if !s.namespace.is_empty() {
        m.insert("Namespace".into(), json!(s.namespace));
    }
    if !s.partition.is_empty() {
        m.insert("Partition".into(), json!(s.partition));
    }
    m.insert("CreateIndex".into(), json!(s.create_index));
    m.insert("ModifyIndex".into(), json!(s.modify_index));
    Value::Object(m)
}

/// A health entry (`/v1/health/service`): `{Node, Service, Checks}`.
pub(crate) fn health_entry(t: &Tables, node: &Node, s: &NodeService) -> Value {
    let checks: Vec<Value> = catalog::instance_checks(t, &node.node, &s.id)
        .into_iter()
        .map(to_json)
        .collect();
    json!({"Node": to_json(node), "Service": to_json(s), "Checks": checks})
}

/// Whether every check of a health entry passes.
pub(crate) fn all_passing(t: &Tables, node: &Node, s: &NodeService) -> bool {
    catalog::instance_checks(t, &node.node, &s.id)
        .iter()
        .all(|c| c.status == "passing")
}

/// A check as JSON.
pub(crate) fn check(c: &HealthCheck) -> Value {
    to_json(c)
}
