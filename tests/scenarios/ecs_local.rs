//! `consul-ecs local` as a user drives it: detached tasks on real network namespaces, our images
//! mapped to our binaries, a mesh-shaped task (init copies the binary into `/consul`, a sidecar made
//! healthy by `consul-ecs net-dial`, an app wrapped by `app-entrypoint`), and a clean stop.
//! Needs root, like the runtime itself.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{consul_ecs_bin, http_get, patience};

/// Runs `consul-ecs local <args>` with its own state directory, bridge and range.
fn local(state: &Path, network: u8, args: &[&str]) -> Output {
    let mut command = Command::new(consul_ecs_bin());
    command.arg("local").args(args);
    if args.first() == Some(&"run") {
        command.args([
            "--bridge",
            &format!("ecsls{network}"),
            "--subnet",
            &format!("198.19.{}.0/24", 200 + u32::from(network)),
        ]);
    }
    command
        .env("CONSUL_ECS_LOCAL_STATE_DIR", state)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn records(state: &Path) -> Value {
    serde_json::from_slice(&local(state, 0, &["ps", "--all", "--json"]).stdout).unwrap()
}

fn record(state: &Path, id: &str) -> Value {
    records(state)
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience();
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_detached(state: &Path, network: u8, taskdef: &str) -> String {
    let run = local(state, network, &["run", "--detach", taskdef]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    text(&run.stdout).trim().to_owned()
}

/// Nothing of the task is left: no namespace, no veth, no process naming it.
fn assert_gone(id: &str) {
    let id8 = &id[..8];
    let namespaces = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!namespaces.contains(&format!("ecsl-{id8}")), "{namespaces}");
    let links = text(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!links.contains(&format!("ecslv{id8}")), "{links}");
    wait_for("the task's processes to end", || {
        std::fs::read_dir("/proc").unwrap().flatten().all(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            !String::from_utf8_lossy(&cmdline).contains(id8)
        })
    });
}

fn fake_service(name: &str, upstreams: &str) -> Value {
    json!({
        "family": name,
        "containerDefinitions": [{
            "name": "app",
            "image": "ghcr.io/nicholasjackson/fake-service:v0.26.2",
            "environment": [
                {"name": "NAME", "value": name},
                {"name": "LISTEN_ADDR", "value": "0.0.0.0:9090"},
                {"name": "UPSTREAM_URIS", "value": upstreams}
            ]
        }]
    })
}

#[test]
fn two_fake_service_tasks_call_each_other_across_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let b = run_detached(
        &state,
        1,
        &write(dir.path(), "b.json", &fake_service("b", "")),
    );
    let b_ip = record(&state, &b)["ip"].as_str().unwrap().to_owned();
    let a_def = fake_service("a", &format!("http://{b_ip}:9090/"));
    let a = run_detached(&state, 1, &write(dir.path(), "a.json", &a_def));
    let a_ip = record(&state, &a)["ip"].as_str().unwrap().to_owned();
    let addr: SocketAddr = format!("{a_ip}:9090").parse().unwrap();
    let mut reply = None;
    wait_for("task a to answer", || {
        reply = http_get(addr, "/")
            .ok()
            .filter(|(status, _)| *status == 200);
        reply.is_some()
    });
    let body: Value = serde_json::from_str(&reply.unwrap().1).unwrap();
    assert_eq!(body["name"], "a");
    assert_eq!(body["upstream_calls"][0]["name"], "b", "{body}");
    let ps = text(&local(&state, 0, &["ps"]).stdout);
    assert!(ps.contains(&a) && ps.contains(&b), "{ps}");
    let stop = local(&state, 0, &["stop", "--all"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    for id in [&a, &b] {
        assert_eq!(record(&state, id)["lastStatus"], "STOPPED");
        assert_gone(id);
    }
}

#[test]
fn a_mesh_shaped_task_starts_in_dependency_order_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let consul_data_ro =
        json!([{"sourceVolume": "consul_data", "containerPath": "/consul", "readOnly": true}]);
    let taskdef = json!({
        "family": "mesh",
        "networkMode": "awsvpc",
        "volumes": [{"name": "consul_data"}, {"name": "consul_binary"}],
        "containerDefinitions": [
            {
                "name": "app",
                "image": "ghcr.io/nicholasjackson/fake-service:v0.26.2",
                "essential": true,
                "entryPoint": ["/consul/consul-ecs", "app-entrypoint", "-shutdown-delay", "1s"],
                "command": ["/bin/sh", "-c",
                    "echo app up; trap 'echo app got TERM; exit 0' TERM; while :; do sleep 0.1; done"],
                "mountPoints": consul_data_ro,
                "dependsOn": [{"containerName": "sidecar", "condition": "HEALTHY"}]
            },
            {
                // Like mesh-init: our image, copying its own binary into the shared volume.
                "name": "init",
                "image": "public.ecr.aws/hashicorp/consul-ecs:0.10.0",
                "essential": false,
                "entryPoint": ["/bin/sh", "-c"],
                "command": ["cp \"$(command -v consul-ecs)\" /consul/consul-ecs && consul-ecs version"],
                "mountPoints": [
                    {"sourceVolume": "consul_data", "containerPath": "/consul"},
                    {"sourceVolume": "consul_binary", "containerPath": "/bin/consul-inject", "readOnly": true}
                ]
            },
            {
                // Like the dataplane: healthy once its port answers `consul-ecs net-dial`.
                "name": "sidecar",
                "image": "fake-service",
                "essential": false,
                "user": "5995",
                "environment": [{"name": "LISTEN_ADDR", "value": "127.0.0.1:22000"}],
                "mountPoints": consul_data_ro,
                "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
                "healthCheck": {"command": ["/consul/consul-ecs", "net-dial", "127.0.0.1:22000"],
                                "interval": 0.3, "timeout": 2, "retries": 10}
            }
        ]
    });
    let id = run_detached(&state, 2, &write(dir.path(), "mesh.json", &taskdef));
    wait_for("the app to start", || {
        text(&local(&state, 0, &["logs", &id, "app"]).stdout).contains("app up")
    });
    let running = record(&state, &id);
    let container = |r: &Value, name: &str| {
        r["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(container(&running, "init")["exitCode"], 0);
    assert_eq!(container(&running, "sidecar")["health"], "HEALTHY");
    assert_eq!(container(&running, "app")["lastStatus"], "RUNNING");
    let init_log = text(&local(&state, 0, &["logs", &id, "init"]).stdout);
    assert!(init_log.starts_with("consul-ecs"), "{init_log}");
    let stop = local(&state, 0, &["stop", &id]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let stopped = record(&state, &id);
    assert_eq!(stopped["stoppedReason"], "Task stopped by user");
    // app-entrypoint held SIGTERM for its delay, then passed it on; the app left cleanly first.
    assert_eq!(container(&stopped, "app")["exitCode"], 0);
    assert_eq!(container(&stopped, "sidecar")["exitCode"], 0);
    let app_log = text(&local(&state, 0, &["logs", &id, "app"]).stdout);
    assert!(app_log.contains("app got TERM"), "{app_log}");
    assert_gone(&id);
    assert!(!Path::new("/consul").exists());
}
