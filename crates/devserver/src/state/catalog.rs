//! Catalog writes (register, deregister) and reads (instances of a service, checks of an instance).
//!
//! Registration follows Consul's state store: the node is written unless `SkipNodeUpdate` is set and it
//! exists; the service and each check are written only when they differ from what is stored (so an
//! unchanged re-registration keeps its ModifyIndex and wakes no watcher); a check with a `ServiceID`
//! belongs to that instance and takes its name and tags; a node-level check affects the health of every
//! service on the node, so it touches all of their topics.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::types::{self, HealthCheck, Locality, Node, NodeService};
use super::{Mutation, Plan, Tables, Topic};

/// Why a catalog write was refused. Consul answers most of these with 500 (they come from its RPC layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejected {
    /// Answered with 400.
    #[error("{0}")]
    BadRequest(String),
    /// Answered with 500, as Consul does for validation failures inside its RPC layer.
    #[error("{0}")]
    Failed(String),
}

/// The body of `PUT /v1/catalog/register`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct RegisterRequest {
    pub(crate) datacenter: String,
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) node: String,
    pub(crate) address: String,
    pub(crate) tagged_addresses: BTreeMap<String, String>,
    pub(crate) node_meta: BTreeMap<String, String>,
    pub(crate) service: Option<NodeService>,
    pub(crate) check: Option<HealthCheck>,
    pub(crate) checks: Vec<HealthCheck>,
    pub(crate) locality: Option<Locality>,
    pub(crate) skip_node_update: bool,
    pub(crate) peer_name: String,
    pub(crate) namespace: String,
    pub(crate) partition: String,
}

/// The body of `PUT /v1/catalog/deregister`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct DeregisterRequest {
    pub(crate) datacenter: String,
    pub(crate) node: String,
    #[serde(rename = "ServiceID")]
    pub(crate) service_id: String,
    #[serde(rename = "CheckID")]
    pub(crate) check_id: String,
    pub(crate) namespace: String,
    pub(crate) partition: String,
}

fn lc(s: &str) -> String {
    s.to_lowercase()
}

/// Touches the topics whose output shows this instance.
fn touch_instance(plan: &mut Plan, node: &str, svc: &NodeService) {
    plan.touch(Topic::Service(lc(&svc.service)));
    plan.touch(Topic::Node(lc(node)));
    if let Some(target) = svc.connect_target() {
        plan.touch(Topic::Connect(lc(target)));
    }
}

/// The services registered on a node (by lower-cased node name).
pub(crate) fn node_services<'a>(
    t: &'a Tables,
    node_lc: &str,
) -> impl Iterator<Item = &'a NodeService> + 'a {
    let owned = node_lc.to_owned();
    t.services
        .range((owned.clone(), String::new())..)
        .take_while(move |((n, _), _)| *n == owned)
        .map(|(_, s)| s)
}

/// The checks registered on a node (by lower-cased node name).
pub(crate) fn node_checks<'a>(
    t: &'a Tables,
    node_lc: &str,
) -> impl Iterator<Item = &'a HealthCheck> + 'a {
    let owned = node_lc.to_owned();
    t.checks
        .range((owned.clone(), String::new())..)
        .take_while(move |((n, _), _)| *n == owned)
        .map(|(_, c)| c)
}

/// The instances under `keys`, as (node, instance), skipping any whose node is gone.
fn instances_at<'a>(
    t: &'a Tables,
    keys: Option<&std::collections::BTreeSet<super::InstanceKey>>,
) -> Vec<(&'a Node, &'a NodeService)> {
    keys.into_iter()
        .flatten()
        .filter_map(|k| {
            let s = t.services.get(k)?;
            t.nodes.get(&k.0).map(|node| (node, s))
        })
        .collect()
}

/// Every instance of a service, as (node, instance), in node then ID order.
pub(crate) fn service_instances<'a>(t: &'a Tables, name: &str) -> Vec<(&'a Node, &'a NodeService)> {
    instances_at(t, t.idx.by_service.get(&lc(name)))
}

/// The Connect-capable instances serving a service: its sidecar proxies and its native instances.
pub(crate) fn connect_instances<'a>(t: &'a Tables, name: &str) -> Vec<(&'a Node, &'a NodeService)> {
    instances_at(t, t.idx.by_connect.get(&lc(name)))
}

/// The checks of one instance (not the node's own), in check ID order.
fn own_checks<'a>(
    t: &'a Tables,
    node_lc: &str,
    id_lc: &str,
) -> impl Iterator<Item = &'a HealthCheck> + 'a {
    let key = (node_lc.to_owned(), id_lc.to_owned());
    let node = key.0.clone();
    t.idx
        .instance_checks
        .get(&key)
        .into_iter()
        .flatten()
        .filter_map(move |c| t.checks.get(&(node.clone(), c.clone())))
}

/// The checks that decide an instance's health: the node's own checks and the instance's checks, in
/// check ID order.
pub(crate) fn instance_checks<'a>(
    t: &'a Tables,
    node: &str,
    service_id: &str,
) -> Vec<&'a HealthCheck> {
    let node_lc = lc(node);
    let mut ids: Vec<&'a String> = t
        .idx
        .node_checks
        .get(&node_lc)
        .into_iter()
        .flatten()
        .chain(
            t.idx
                .instance_checks
                .get(&(node_lc.clone(), lc(service_id)))
                .into_iter()
                .flatten(),
        )
        .collect();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| t.checks.get(&(node_lc.clone(), id.clone())))
        .collect()
}

fn validate_service(svc: &NodeService) -> Result<(), Rejected> {
    let fail = |m: String| Err(Rejected::Failed(m));
    if !svc.id.is_empty() && svc.service.is_empty() {
        return fail("Must provide service name (Service.Service) with ID (Service.ID)".into());
    }
    if svc.service.is_empty() {
        return fail("Must provide service name (Service.Service) with ID (Service.ID)".into());
    }
    if matches!(svc.address.as_str(), "0.0.0.0" | "::" | "[::]") {
        return fail("Invalid service address".into());
    }
    match svc.kind.as_str() {
        ""
        | "connect-proxy"
        | "mesh-gateway"
        | "terminating-gateway"
        | "ingress-gateway"
        | "api-gateway" => {}
        k => return Err(Rejected::BadRequest(format!("Invalid service kind: {k:?}"))),
    }
    if !matches!(svc.proxy.mode.as_str(), "" | "direct" | "transparent") {
        return Err(Rejected::BadRequest(format!(
            "Invalid Proxy Mode: {:?}",
            svc.proxy.mode
        )));
    }
    let mesh_modes = |m: &str| matches!(m, "" | "none" | "local" | "remote");
    if !mesh_modes(&svc.proxy.mesh_gateway.mode) {
        return Err(Rejected::BadRequest(format!(
            "Invalid Mesh Gateway Mode: {:?}",
            svc.proxy.mesh_gateway.mode
        )));
    }
    if svc.kind == "connect-proxy" {
        if svc.proxy.destination_service_name.is_empty() {
            return fail(
                "Proxy.DestinationServiceName must be non-empty for Connect proxy services".into(),
            );
        }
        if svc.port == 0 && svc.socket_path.is_empty() && svc.proxy.mode != "transparent" {
            return fail("Port or SocketPath must be set for a Connect proxy".into());
        }
        for (i, u) in svc.proxy.upstreams.iter().enumerate() {
            if !matches!(
                u.destination_type.as_str(),
                "" | "service" | "prepared_query"
            ) {
                return fail(format!(
                    "upstream {i}: unknown upstream destination type: {:?}",
                    u.destination_type
                ));
            }
            if u.destination_name.is_empty() {
                return fail(format!(
                    "upstream {i}: upstream destination name cannot be empty"
                ));
            }
            if !mesh_modes(&u.mesh_gateway.mode) {
                return Err(Rejected::BadRequest(format!(
                    "Invalid Mesh Gateway Mode: {:?}",
                    u.mesh_gateway.mode
                )));
            }
        }
    }
    if svc.kind.ends_with("-gateway") {
        if svc.kind == "mesh-gateway" && svc.port == 0 {
            return fail("Port must be non-zero for a Mesh Gateway".into());
        }
        let p = &svc.proxy;
        for (set, field) in [
            (
                !p.destination_service_name.is_empty(),
                "Proxy.DestinationServiceName",
            ),
            (
                !p.destination_service_id.is_empty(),
                "Proxy.DestinationServiceID",
            ),
            (
                !p.local_service_address.is_empty(),
                "Proxy.LocalServiceAddress",
            ),
            (p.local_service_port != 0, "Proxy.LocalServicePort"),
            (!p.upstreams.is_empty(), "Proxy.Upstreams"),
        ] {
            if set {
                return fail(format!(
                    "The {field} configuration is invalid for a {}",
                    svc.kind
                ));
            }
        }
    }
    for (k, v) in &svc.meta {
        validate_meta_pair(k, v, svc.kind == "mesh-gateway")?;
    }
    Ok(())
}

fn validate_meta_pair(key: &str, value: &str, gateway: bool) -> Result<(), Rejected> {
    let bad = |why: &str| {
        Err(Rejected::Failed(format!(
            "Couldn't load metadata pair ('{key}', '{value}'): {why}"
        )))
    };
    if key.is_empty() {
        return bad("Key cannot be blank");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("Key contains invalid characters");
    }
    if key.len() > 128 {
        return bad("Key is too long (limit: 128 characters)");
    }
    if key.starts_with("consul-") && !(gateway && key == "consul-wan-federation") {
        return bad("Key prefix 'consul-' is reserved for internal use");
    }
    if value.len() > 512 {
        return bad("Value is too long (limit: 512 characters)");
    }
    Ok(())
}

/// Plans a registration. `local_dc` fills in an empty datacenter.
pub(crate) fn plan_register(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    req: RegisterRequest,
    local_dc: &str,
) -> Result<(), Rejected> {
    plan_register_inner(t, index, plan, req, local_dc, false)
}

/// Plans the server's own registration, whose node meta uses the reserved `consul-` prefix.
pub(crate) fn plan_register_trusted(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    req: RegisterRequest,
    local_dc: &str,
) -> Result<(), Rejected> {
    plan_register_inner(t, index, plan, req, local_dc, true)
}

fn plan_register_inner(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    mut req: RegisterRequest,
    local_dc: &str,
    trusted: bool,
) -> Result<(), Rejected> {
    if req.node.is_empty() {
        return Err(Rejected::Failed("Must provide node".into()));
    }
    if req.address.is_empty() && !req.skip_node_update {
        return Err(Rejected::Failed(
            "Must provide address if SkipNodeUpdate is not set".into(),
        ));
    }
    if !req.id.is_empty() && uuid::Uuid::parse_str(&req.id).is_err() {
        return Err(Rejected::Failed(format!(
            "Bad node ID: {:?} is not a UUID",
            req.id
        )));
    }
    if !trusted {
        for (k, v) in &req.node_meta {
            validate_meta_pair(k, v, false)?;
        }
    }
    if req.datacenter.is_empty() {
        req.datacenter = local_dc.to_owned();
    }
    let node_lc = lc(&req.node);

    // Validate everything before planning anything.
    let mut service = req.service.take();
    if let Some(svc) = service.as_mut() {
        svc.apply_defaults();
        validate_service(svc)?;
        if svc.namespace.is_empty() {
            svc.namespace.clone_from(&req.namespace);
        }
        if svc.partition.is_empty() {
            svc.partition.clone_from(&req.partition);
        }
    }
    let mut checks: Vec<HealthCheck> = req
        .check
        .take()
        .into_iter()
        .chain(std::mem::take(&mut req.checks))
        .collect();
    for c in &mut checks {
        if c.node.is_empty() {
            c.node.clone_from(&req.node);
        } else if lc(&c.node) != node_lc {
            return Err(Rejected::Failed(format!(
                "Check node {:?} does not match the registration node {:?}",
                c.node, req.node
            )));
        }
        c.node.clone_from(&req.node);
        if c.check_id.is_empty() {
            c.check_id.clone_from(&c.name);
        }
        if c.check_id.is_empty() {
            return Err(Rejected::Failed(
                "Missing check ID: provide CheckID or Name".into(),
            ));
        }
        if c.status.is_empty() {
            c.status = "critical".into();
        }
        if !types::STATUSES.contains(&c.status.as_str()) {
            return Err(Rejected::BadRequest(format!(
                "Invalid check status: {:?}",
                c.status
            )));
        }
        c.definition = types::normalize_definition(std::mem::take(&mut c.definition))
            .map_err(Rejected::BadRequest)?;
        if c.check_type.is_empty() {
            c.check_type = types::infer_check_type(&c.definition).to_owned();
        }
    }

    // The node.
    let existing_node = t.nodes.get(&node_lc);
    let node_changed = match existing_node {
        Some(n) if req.skip_node_update => {
            let _ = n;
            false
        }
        _ => {
            let mut node = Node {
                id: req.id.clone(),
                node: req.node.clone(),
                address: req.address.clone(),
                datacenter: req.datacenter.clone(),
                partition: req.partition.clone(),
                peer_name: req.peer_name.clone(),
                tagged_addresses: req.tagged_addresses.clone(),
                meta: req.node_meta.clone(),
                locality: req.locality.clone(),
                create_index: index,
                modify_index: index,
            };
            match existing_node {
                Some(old) if node.same_as(old) => false,
                old => {
                    if let Some(old) = old {
                        node.create_index = old.create_index;
                        if node.id.is_empty() {
                            node.id.clone_from(&old.id);
                        }
                    }
                    plan.push(Mutation::PutNode(node));
                    plan.touch(Topic::Nodes);
                    plan.touch(Topic::Node(node_lc.clone()));
                    true
                }
            }
        }
    };
    if node_changed {
        for s in node_services(t, &node_lc) {
            touch_instance(plan, &req.node, s);
        }
    }

    // The service.
    if let Some(mut svc) = service.clone() {
        let key = (node_lc.clone(), lc(&svc.id));
        let old = t.services.get(&key);
        svc.create_index = old.map_or(index, |o| o.create_index);
        svc.modify_index = index;
        if !old.is_some_and(|o| svc.same_as(o)) {
            if let Some(old) = old {
                touch_instance(plan, &req.node, old);
            }
            touch_instance(plan, &req.node, &svc);
            plan.touch(Topic::Services);
            plan.push(Mutation::PutService {
                node: req.node.clone(),
                service: svc,
            });
        }
    }

    // The checks.
    for mut c in checks {
        let owner: Option<NodeService> = if c.service_id.is_empty() {
            None
        } else {
            let sid = lc(&c.service_id);
            match service.as_ref().filter(|s| lc(&s.id) == sid) {
                Some(s) => Some(s.clone()),
                None => match t.services.get(&(node_lc.clone(), sid)) {
                    Some(s) => Some(s.clone()),
                    None => {
                        return Err(Rejected::Failed(format!(
                            "Missing service registration for check {:?}: service {:?} is not on node {:?}",
                            c.check_id, c.service_id, req.node
                        )));
                    }
                },
            }
        };
        match &owner {
            Some(s) => {
                c.service_id.clone_from(&s.id);
                c.service_name.clone_from(&s.service);
                c.service_tags.clone_from(&s.tags);
                if c.namespace.is_empty() {
                    c.namespace.clone_from(&s.namespace);
                }
                if c.partition.is_empty() {
                    c.partition.clone_from(&s.partition);
                }
            }
            None => {
                c.service_name.clear();
                c.service_tags.clear();
            }
        }
        let key = (node_lc.clone(), lc(&c.check_id));
        let old = t.checks.get(&key);
        c.create_index = old.map_or(index, |o| o.create_index);
        c.modify_index = index;
        if old.is_some_and(|o| c.same_as(o)) {
            continue;
        }
        plan.touch(Topic::Checks);
        plan.touch(Topic::Node(node_lc.clone()));
        match &owner {
            Some(s) => touch_instance(plan, &req.node, s),
            None => {
                for s in node_services(t, &node_lc) {
                    touch_instance(plan, &req.node, s);
                }
                if let Some(s) = &service {
                    touch_instance(plan, &req.node, s);
                }
            }
        }
        plan.push(Mutation::PutCheck(c));
    }
    Ok(())
}

fn plan_delete_service(t: &Tables, plan: &mut Plan, node: &str, id: &str) {
    let node_lc = lc(node);
    let Some(svc) = t.services.get(&(node_lc.clone(), lc(id))) else {
        return;
    };
    let node_name = t
        .service_nodes
        .get(&(node_lc.clone(), lc(id)))
        .cloned()
        .unwrap_or_else(|| node.to_owned());
    touch_instance(plan, &node_name, svc);
    plan.touch(Topic::Services);
    for c in own_checks(t, &node_lc, &lc(&svc.id)) {
        plan.touch(Topic::Checks);
        plan.push(Mutation::DeleteCheck {
            node: node_name.clone(),
            id: c.check_id.clone(),
        });
    }
    plan.push(Mutation::DeleteService {
        node: node_name,
        id: svc.id.clone(),
    });
}

fn plan_delete_check(t: &Tables, plan: &mut Plan, node: &str, id: &str) {
    let node_lc = lc(node);
    let Some(c) = t.checks.get(&(node_lc.clone(), lc(id))) else {
        return;
    };
    plan.touch(Topic::Checks);
    plan.touch(Topic::Node(node_lc.clone()));
    if c.service_id.is_empty() {
        for s in node_services(t, &node_lc) {
            touch_instance(plan, node, s);
        }
    } else if let Some(s) = t.services.get(&(node_lc.clone(), lc(&c.service_id))) {
        touch_instance(plan, node, s);
    }
    plan.push(Mutation::DeleteCheck {
        node: c.node.clone(),
        id: c.check_id.clone(),
    });
}

/// Plans a deregistration: of a service (with its checks), a check, or the whole node.
pub(crate) fn plan_deregister(
    t: &Tables,
    plan: &mut Plan,
    req: &DeregisterRequest,
) -> Result<(), Rejected> {
    if req.node.is_empty() {
        return Err(Rejected::Failed("Must provide node".into()));
    }
    if !req.service_id.is_empty() || !req.check_id.is_empty() {
        if !req.service_id.is_empty() {
            plan_delete_service(t, plan, &req.node, &req.service_id);
        }
        if !req.check_id.is_empty() {
            plan_delete_check(t, plan, &req.node, &req.check_id);
        }
        return Ok(());
    }
    let node_lc = lc(&req.node);
    let Some(node) = t.nodes.get(&node_lc) else {
        return Ok(());
    };
    for s in node_services(t, &node_lc) {
        plan_delete_service(t, plan, &node.node, &s.id);
    }
    for c in node_checks(t, &node_lc).filter(|c| c.service_id.is_empty()) {
        plan.touch(Topic::Checks);
        plan.push(Mutation::DeleteCheck {
            node: node.node.clone(),
            id: c.check_id.clone(),
        });
    }
    plan.touch(Topic::Nodes);
    plan.touch(Topic::Node(node_lc));
    plan.push(Mutation::DeleteNode(node.node.clone()));
    Ok(())
}
