//! The dev server driven by a real Consul client library (py-consul), including a crash and restart.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use support::{DevServer, run_py_consul};

#[test]
fn py_consul_drives_catalog_health_kv_config_intentions_and_ca() {
    let server = DevServer::start(None);
    run_py_consul(server.addr, "all");
}

#[test]
fn acknowledged_writes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(Some(dir.path()));
    let port = server.addr.port();
    run_py_consul(server.addr, "persist-write");
    server.kill();
    let server = DevServer::start_on(port, Some(dir.path()));
    run_py_consul(server.addr, "persist-read");
}
