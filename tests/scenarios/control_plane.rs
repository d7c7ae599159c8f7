//! `consul-ecs mesh-init`, `health-sync` and `control-plane` as ECS runs them: the real binary as separate
//! processes, a `consul-ecs dev-server` process as Consul, a task metadata endpoint on a real socket, and
//! real SIGTERMs.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use serde_json::{Value, json};
use support::{DevServer, consul_ecs_bin, http_get, patience};

/// The node (the cluster ARN), as a path segment.
const NODE: &str = "arn:aws:ecs:us-east-1:123456789012:cluster%2Ftest";

struct Task {
    rt: tokio::runtime::Runtime,
    metadata: MetadataServer,
    consul: DevServer,
    dir: tempfile::TempDir,
}

impl Task {
    fn start() -> Task {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let task = TaskBuilder::fargate("test")
            .family("web", 1)
            .task_id("abcdef0123")
            .container_with_health_check("app")
            .container_with_health_check("consul-dataplane")
            .build();
        let metadata = rt
            .block_on(MetadataServer::start("127.0.0.1:0".parse().unwrap(), task))
            .unwrap();
        let consul = DevServer::start(None);
        let dir = tempfile::tempdir().unwrap();
        Task {
            rt,
            metadata,
            consul,
            dir,
        }
    }

    fn config(&self, consul_port: u16) -> String {
        json!({
            "bootstrapDir": self.dir.path(),
            "consulServers": {"hosts": "127.0.0.1", "http": {"port": consul_port, "https": false},
                              "grpc": {"tls": false}},
            "healthSyncContainers": ["app"],
            "service": {"name": "web", "port": 8080},
            "transparentProxy": {"enabled": false},
        })
        .to_string()
    }

    fn command(&self, subcommand: &str, consul_port: u16) -> Command {
        let mut cmd = Command::new(consul_ecs_bin());
        cmd.arg(subcommand)
            .env("CONSUL_ECS_CONFIG_JSON", self.config(consul_port))
            .env("ECS_CONTAINER_METADATA_URI_V4", self.metadata.base_url())
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("AWS_REGION");
        cmd
    }

    fn checks(&self) -> Value {
        let (status, body) =
            http_get(self.consul.addr, &format!("/v1/health/node/{NODE}")).unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn statuses(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .checks()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["CheckID"].as_str().unwrap().to_owned(),
                    c["Status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn services(&self) -> Vec<String> {
        let (_, body) = http_get(
            self.consul.addr,
            &format!("/v1/catalog/node-services/{NODE}"),
        )
        .unwrap();
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut ids: Vec<String> = value["Services"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["ID"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn wait_for_statuses(&self, wanted: &[(&str, &str)]) {
        let wanted: Vec<(String, String)> = wanted
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        let deadline = Instant::now() + patience();
        loop {
            let now = self.statuses();
            if now == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "checks {now:?}, wanted {wanted:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(mut child: Child) -> Output {
    let deadline = Instant::now() + patience();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {:?}", patience());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const APP: &str = "web-abcdef0123-app";
const DP: &str = "web-abcdef0123-consul-dataplane";
const PROXY_DP: &str = "web-abcdef0123-sidecar-proxy-consul-dataplane";

#[test]
fn mesh_init_then_health_sync_register_sync_and_leave_the_mesh_on_sigterm() {
    let task = Task::start();
    let port = task.consul.addr.port();
    let out = task.command("mesh-init", port).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("successfully initialized the task to operate as part of the mesh")
    );
    assert_eq!(
        task.services(),
        ["web-abcdef0123", "web-abcdef0123-sidecar-proxy"]
    );
    let dir = task.dir.path();
    assert!(is_executable(&dir.join("consul-ecs")));
    // The copy is the real program: it runs.
    let version = Command::new(dir.join("consul-ecs"))
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("consul-ecs v"));
    let dataplane: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("consul-dataplane.json")).unwrap())
            .unwrap();
    assert_eq!(dataplane["proxy"]["id"], "web-abcdef0123-sidecar-proxy");

    let health_sync = task
        .command("health-sync", port)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    task.metadata.set_container_health("app", "HEALTHY");
    task.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    task.wait_for_statuses(&[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")]);

    sigterm(&health_sync);
    task.wait_for_statuses(&[(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")]);
    assert!(
        task.services().len() == 2,
        "still registered while the dataplane drains"
    );
    task.metadata
        .set_container_status("consul-dataplane", "STOPPED", "STOPPED");
    let out = wait_exit(health_sync);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(task.services().is_empty(), "deregistered");
    assert!(
        stderr.contains("set Consul health status to critical"),
        "{stderr}"
    );
    drop(task.rt);
}

#[test]
fn control_plane_runs_mesh_init_then_health_sync_in_one_process() {
    let task = Task::start();
    let port = task.consul.addr.port();
    let child = task
        .command("control-plane", port)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    task.wait_for_statuses(&[(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")]);
    task.metadata.set_container_health("app", "HEALTHY");
    task.wait_for_statuses(&[(APP, "passing"), (DP, "critical"), (PROXY_DP, "critical")]);
    task.metadata.remove_container("consul-dataplane");
    sigterm(&child);
    let out = wait_exit(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(task.services().is_empty());
    assert!(task.dir.path().join("consul-dataplane.json").exists());
}

#[test]
fn health_sync_leaves_at_once_on_sigterm_while_consul_is_unreachable() {
    let task = Task::start();
    let unused = support::free_port();
    let child = task
        .command("health-sync", unused)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let started = Instant::now();
    let out = wait_exit(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_subcommands_refuse_arguments_and_bad_config_as_upstream() {
    for subcommand in ["mesh-init", "health-sync", "control-plane"] {
        let out = Command::new(consul_ecs_bin())
            .args([subcommand, "some-arg"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "unexpected argument: some-arg\n"
        );

        let out = Command::new(consul_ecs_bin())
            .arg(subcommand)
            .env_remove("CONSUL_ECS_CONFIG_JSON")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "invalid config: \"CONSUL_ECS_CONFIG_JSON\" isn't populated\n"
        );

        let out = Command::new(consul_ecs_bin())
            .arg(subcommand)
            .env("CONSUL_ECS_CONFIG_JSON", "{}")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("invalid config: 2 errors occurred:")
        );
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777 == 0o755)
        .unwrap_or(false)
}
