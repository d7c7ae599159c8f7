//! The catalog indexes stay equal to what a full scan of the tables finds, through every kind of catalog
//! write and across restarts from the log alone and from a snapshot.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::json;

use super::catalog::{self, DeregisterRequest, RegisterRequest};
use super::types::{HealthCheck, Node, NodeService};
use super::{Indexes, Store, Tables};

/// The indexes built from nothing but the tables.
fn rebuilt(t: &Tables) -> Indexes {
    let mut idx = Indexes::default();
    for (k, s) in &t.services {
        idx.add_service(k, s);
    }
    for ((n, id), c) in &t.checks {
        idx.add_check(n, id, c);
    }
    idx
}

/// What the queries answered before there were indexes: a walk over every service and check.
fn scan_instances<'a>(t: &'a Tables, name: &str) -> Vec<(&'a Node, &'a NodeService)> {
    let name = name.to_lowercase();
    t.services
        .iter()
        .filter(|(_, s)| s.service.to_lowercase() == name)
        .filter_map(|((n, _), s)| t.nodes.get(n).map(|node| (node, s)))
        .collect()
}

fn scan_connect<'a>(t: &'a Tables, name: &str) -> Vec<(&'a Node, &'a NodeService)> {
    let name = name.to_lowercase();
    t.services
        .iter()
        .filter(|(_, s)| {
            s.connect_target()
                .is_some_and(|target| target.to_lowercase() == name)
        })
        .filter_map(|((n, _), s)| t.nodes.get(n).map(|node| (node, s)))
        .collect()
}

fn scan_checks<'a>(t: &'a Tables, node: &str, id: &str) -> Vec<&'a HealthCheck> {
    let (node, id) = (node.to_lowercase(), id.to_lowercase());
    t.checks
        .iter()
        .filter(|((n, _), _)| *n == node)
        .map(|(_, c)| c)
        .filter(|c| c.service_id.is_empty() || c.service_id.to_lowercase() == id)
        .collect()
}

/// Asserts that the indexes match the tables and that every indexed query equals the full scan, for
/// the names given (which may include names no longer registered) and every name in the tables.
fn assert_consistent(store: &Store, names: &[&str]) {
    store.read(|t| {
        assert_eq!(t.idx, rebuilt(t), "indexes drifted from the tables");
        let mut all: BTreeSet<String> = names.iter().map(|s| (*s).to_owned()).collect();
        all.extend(t.services.values().map(|s| s.service.clone()));
        all.extend(t.services.values().map(|s| s.service.to_uppercase()));
        for name in &all {
            assert_eq!(
                catalog::service_instances(t, name),
                scan_instances(t, name),
                "instances of {name}"
            );
            assert_eq!(
                catalog::connect_instances(t, name),
                scan_connect(t, name),
                "connect instances of {name}"
            );
        }
        let node_names: Vec<String> = t.nodes.values().map(|n| n.node.clone()).collect();
        for node in &node_names {
            let mut ids: Vec<String> = t.services.values().map(|s| s.id.clone()).collect();
            ids.push("no-such-instance".into());
            for id in ids {
                assert_eq!(
                    catalog::instance_checks(t, node, &id),
                    scan_checks(t, node, &id),
                    "checks of {node}/{id}"
                );
            }
        }
    });
}

fn register(store: &Store, body: serde_json::Value) {
    let req: RegisterRequest = serde_json::from_value(body).unwrap();
    store
        .write(|t, idx, plan| catalog::plan_register(t, idx, plan, req, "dc1"))
        .unwrap();
}

fn deregister(store: &Store, body: serde_json::Value) {
    let req: DeregisterRequest = serde_json::from_value(body).unwrap();
    store
        .write(|t, _, plan| catalog::plan_deregister(t, plan, &req))
        .unwrap();
}

fn instance(node: &str, id: &str, name: &str, checks: &[&str]) -> serde_json::Value {
    let checks: Vec<_> = checks
        .iter()
        .map(|c| json!({"CheckID": c, "Name": c, "ServiceID": id, "Status": "passing"}))
        .collect();
    json!({
        "Node": node, "Address": "10.0.0.1",
        "Service": {"ID": id, "Service": name, "Port": 80},
        "Checks": checks,
    })
}

fn sidecar(node: &str, id: &str, target: &str) -> serde_json::Value {
    json!({
        "Node": node, "Address": "10.0.0.1",
        "Service": {"ID": id, "Service": format!("{target}-sidecar-proxy"), "Kind": "connect-proxy",
                    "Port": 21000, "Proxy": {"DestinationServiceName": target}},
        "Checks": [{"CheckID": format!("{id}-alive"), "ServiceID": id, "Status": "critical"}],
    })
}

#[test]
fn indexes_follow_every_catalog_write_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["web", "api", "db", "Web-Renamed", "web-sidecar-proxy"];
    let store = Store::open(Some(dir.path())).unwrap();

    // Two nodes, one with a node-level check; instances with mixed-case names and IDs.
    register(
        &store,
        instance("cluster", "web-1", "web", &["web-1-http", "web-1-tcp"]),
    );
    register(&store, instance("cluster", "Web-2", "WEB", &["web-2-http"]));
    register(&store, instance("cluster", "api-1", "api", &["api-1-http"]));
    register(&store, instance("other", "db-1", "db", &["db-1-tcp"]));
    register(&store, sidecar("cluster", "web-1-sidecar", "web"));
    register(
        &store,
        json!({"Node": "cluster", "Address": "10.0.0.1",
               "Check": {"CheckID": "serfHealth", "Name": "node alive", "Status": "passing"}}),
    );
    assert_consistent(&store, &names);
    store.read(|t| {
        assert_eq!(catalog::service_instances(t, "web").len(), 2);
        assert_eq!(catalog::connect_instances(t, "WEB").len(), 1);
        assert_eq!(catalog::instance_checks(t, "CLUSTER", "web-1").len(), 3);
    });

    // Re-registering an instance under another name moves it between names; a check that changes
    // owner (node-level → instance) moves too.
    register(
        &store,
        instance("cluster", "web-1", "Web-Renamed", &["web-1-http"]),
    );
    register(
        &store,
        json!({"Node": "cluster", "Address": "10.0.0.1",
               "Check": {"CheckID": "serfHealth", "ServiceID": "api-1", "Status": "warning"}}),
    );
    assert_consistent(&store, &names);
    store.read(|t| {
        assert_eq!(catalog::service_instances(t, "web").len(), 1);
        assert_eq!(catalog::service_instances(t, "web-renamed").len(), 1);
        assert_eq!(catalog::instance_checks(t, "cluster", "api-1").len(), 2);
        assert_eq!(catalog::instance_checks(t, "cluster", "web-1").len(), 2);
    });

    // Deregister a check, an instance (its checks go with it), then a whole node (a cascade).
    deregister(&store, json!({"Node": "cluster", "CheckID": "WEB-1-TCP"}));
    deregister(&store, json!({"Node": "cluster", "ServiceID": "web-2"}));
    assert_consistent(&store, &names);
    deregister(&store, json!({"Node": "Other"}));
    assert_consistent(&store, &names);
    store.read(|t| {
        assert!(catalog::service_instances(t, "db").is_empty());
        assert!(
            !t.idx
                .instance_checks
                .contains_key(&("other".into(), "db-1".into()))
        );
    });
    register(&store, instance("other", "db-2", "db", &["db-2-tcp"]));
    let before = store.read(|t| t.idx.clone());

    // Restart from the log alone (no snapshot, as after kill -9).
    drop(store);
    let store = Store::open(Some(dir.path())).unwrap();
    assert_consistent(&store, &names);
    assert_eq!(store.read(|t| t.idx.clone()), before);

    // Restart from a snapshot, then write more on top of it and restart again from snapshot + log.
    store.compact().unwrap();
    drop(store);
    let store = Store::open(Some(dir.path())).unwrap();
    assert_consistent(&store, &names);
    assert_eq!(store.read(|t| t.idx.clone()), before);
    deregister(&store, json!({"Node": "cluster", "ServiceID": "WEB-1"}));
    register(&store, sidecar("other", "db-2-sidecar", "db"));
    let before = store.read(|t| t.idx.clone());
    drop(store);
    let store = Store::open(Some(dir.path())).unwrap();
    assert_consistent(&store, &names);
    assert_eq!(store.read(|t| t.idx.clone()), before);
}
