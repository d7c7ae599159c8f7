//! Shared set-up: our dev server in-process, a recording proxy in front of it, an in-process task
//! metadata endpoint, a bootstrap directory, and helpers that read the catalog back.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use consul_client::catalog::AgentService;
use consul_client::health::HealthCheck;
use consul_client::{Client, ClientConfig, QueryOptions};
use consul_ecs_aws::TaskMetadata;
use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use consul_ecs_config::Config;
use consul_ecs_mesh_init::Environment;
use consul_ecs_mesh_init::testing::ConsulProxy;
use serde_json::{Value, json};

/// The cluster every test task runs in.
pub const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";
/// The task ID of every test task.
pub const TASK_ID: &str = "abcdef0123";
/// The task ARN.
pub const TASK_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task/test/abcdef0123";
/// The task's address.
pub const TASK_IP: &str = "10.0.1.23";

/// A Fargate task of family `family` with an `app` and a `consul-dataplane` container, both with
/// health checks.
pub fn task(family: &str) -> TaskMetadata {
    TaskBuilder::fargate("test")
        .family(family, 1)
        .task_id(TASK_ID)
        .ip(TASK_IP)
        .container_with_health_check("app")
        .container_with_health_check("consul-dataplane")
        .build()
}

/// Everything one test task needs.
pub struct Harness {
    /// The Consul-compatible server (`None` while it is stopped).
    pub consul: Option<devserver::DevServer>,
    /// Its HTTP address (kept across restarts).
    pub consul_http: SocketAddr,
    /// Its data directory, when its state survives restarts.
    pub consul_data: Option<PathBuf>,
    /// The recording proxy the task talks to.
    pub proxy: ConsulProxy,
    /// The task metadata endpoint.
    pub metadata: MetadataServer,
    /// A recording proxy in front of the metadata endpoint (the task reads through it).
    pub metadata_proxy: ConsulProxy,
    /// Holds the bootstrap directory and other files.
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a dev server, a proxy in front of it and a metadata endpoint serving `task`.
    pub async fn start(task: TaskMetadata) -> Harness {
        Harness::start_with(task, None).await
    }

    /// Like [`Harness::start`]; with `consul_data` the dev server keeps its state on disk there.
    pub async fn start_with(task: TaskMetadata, consul_data: Option<PathBuf>) -> Harness {
        let consul = devserver::DevServer::start(devserver::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: consul_data.clone(),
            ..devserver::Config::default()
        })
        .await
        .unwrap();
        let consul_http = consul.http_addr();
        let proxy = ConsulProxy::start(consul_http).await.unwrap();
        let metadata = MetadataServer::start("127.0.0.1:0".parse().unwrap(), task)
            .await
            .unwrap();
        let metadata_proxy = ConsulProxy::start(metadata.addr()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("consul")).unwrap();
        std::fs::write(
            dir.path().join("consul-ecs-src"),
            b"#!/bin/sh\necho consul-ecs\n",
        )
        .unwrap();
        Harness {
            consul: Some(consul),
            consul_http,
            consul_data,
            proxy,
            metadata,
            metadata_proxy,
            dir,
        }
    }

    /// How many times the task has read its metadata document.
    pub fn metadata_reads(&self) -> usize {
        self.metadata_proxy
            .seen()
            .iter()
            .filter(|s| s.path == "/task")
            .count()
    }

    /// Waits until the task has read its metadata `n` more times than it had when called, i.e. the
    /// health-sync loop has run that many more steps.
    pub async fn wait_for_steps(&self, n: usize) {
        let target = self.metadata_reads() + n;
        wait_until("metadata reads", || async {
            self.metadata_reads() >= target
        })
        .await;
    }

    /// The bootstrap directory.
    pub fn bootstrap(&self) -> PathBuf {
        self.dir.path().join("consul")
    }

    /// A config reaching Consul through the proxy over plain HTTP, transparent proxy off, with `extra`
    /// merged in (objects merge key by key).
    pub fn config(&self, extra: Value) -> Config {
        let mut doc = json!({
            "bootstrapDir": self.bootstrap(),
            "consulServers": {
                "hosts": "127.0.0.1",
                "http": {"port": self.proxy.addr().port(), "https": false},
                "grpc": {"tls": false},
            },
            "transparentProxy": {"enabled": false},
        });
        merge(&mut doc, extra);
        Config::from_json(&doc.to_string()).unwrap()
    }

    /// An environment pointing at the metadata endpoint, with fast retries and a small stand-in for
    /// the executable.
    pub fn env(&self) -> Environment {
        let mut env = Environment::from_vars([(
            consul_ecs_mesh_init::ENV_METADATA_URI,
            format!("http://{}", self.metadata_proxy.addr()),
        )]);
        env.executable = Some(self.dir.path().join("consul-ecs-src"));
        env.resolv_conf = self.dir.path().join("resolv.conf");
        env.iptables = PathBuf::from("false");
        env.retry_budget = Duration::from_secs(20);
        env.retry_initial_backoff = Duration::from_millis(20);
        env.retry_max_backoff = Duration::from_millis(200);
        env.poll_interval = Duration::from_millis(50);
        env
    }

    /// A client straight to the dev server.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.consul_http.to_string())).unwrap()
    }

    /// The services on the task's node, as JSON without Raft indexes, keyed by ID.
    pub async fn services(&self) -> serde_json::Map<String, Value> {
        let list = self
            .client()
            .catalog()
            .node_services(CLUSTER_ARN, &QueryOptions::default())
            .await
            .unwrap()
            .value
            .map(|l| l.services)
            .unwrap_or_default();
        list.into_iter()
            .map(|s: AgentService| {
                (
                    s.id.clone(),
                    strip_indexes(serde_json::to_value(s).unwrap()),
                )
            })
            .collect()
    }

    /// The checks on the task's node, as JSON without Raft indexes, keyed by check ID.
    pub async fn checks(&self) -> serde_json::Map<String, Value> {
        let list = self
            .client()
            .health()
            .node(CLUSTER_ARN, &QueryOptions::default())
            .await
            .unwrap()
            .value;
        list.into_iter()
            .map(|c: HealthCheck| {
                (
                    c.check_id.clone(),
                    strip_indexes(serde_json::to_value(c).unwrap()),
                )
            })
            .collect()
    }

    /// The dev server's HTTP address.
    pub fn consul_addr(&self) -> SocketAddr {
        self.consul_http
    }

    /// Stops the dev server (its state is lost unless it has a data directory).
    pub async fn stop_consul(&mut self) {
        if let Some(consul) = self.consul.take() {
            consul.shutdown().await;
        }
    }

    /// Starts the dev server again on the same address.
    pub async fn start_consul(&mut self) {
        let consul = devserver::DevServer::start(devserver::Config {
            http_addr: self.consul_http,
            data_dir: self.consul_data.clone(),
            ..devserver::Config::default()
        })
        .await
        .unwrap();
        self.consul = Some(consul);
    }
}

/// Merges `extra` into `doc`: objects key by key, everything else replaced.
pub fn merge(doc: &mut Value, extra: Value) {
    match (doc, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Removes `CreateIndex` and `ModifyIndex` at any depth.
pub fn strip_indexes(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("CreateIndex");
                map.remove("ModifyIndex");
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().mode() & 0o777
}

/// The file's owner.
pub fn owner(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).unwrap().uid()
}

/// The file as JSON.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// How long eventual assertions wait; raise `E2E_PATIENCE_SECS` on a slow machine.
pub fn patience() -> Duration {
    let secs = std::env::var("E2E_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// Polls `condition` until it holds; panics naming `what` when patience runs out.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience();
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {:?}",
            patience()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
