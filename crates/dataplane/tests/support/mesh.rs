//! Tasks registered in a dev server exactly as consul-ecs mesh-init registers them (the service and
//! its `-sidecar-proxy` on the cluster's synthetic node), the consul-dataplane.json it would write,
//! and probes of the data path.

use std::net::SocketAddr;

use consul_client::catalog::{
    AgentService, CatalogRegistration, ProxyConfig, ServiceKind, Upstream,
};
use consul_client::health::{HealthCheck, HealthStatus};
use consul_client::{Client, WriteOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{metric, patience, round_trip};

pub const NODE: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn check(id: &str, service_id: &str, status: HealthStatus) -> HealthCheck {
    HealthCheck {
        check_id: id.into(),
        name: "Consul dataplane readiness".into(),
        service_id: service_id.into(),
        status,
        output: String::new(),
        notes: "consul-ecs created and updates this check to indicate consul-dataplane container's readiness".into(),
        check_type: "consul-ecs-health-check".into(),
        ..HealthCheck::default()
    }
}

/// One task: the service and its `-sidecar-proxy`, registered as consul-ecs mesh-init does.
pub struct Task {
    pub service: String,
    pub task_id: String,
    pub app_port: u16,
    pub public_port: u16,
    pub upstreams: Vec<Upstream>,
}

impl Task {
    pub fn service_id(&self) -> String {
        format!("{}-{}", self.service, self.task_id)
    }
    pub fn proxy_id(&self) -> String {
        format!("{}-sidecar-proxy", self.service_id())
    }

    pub fn registrations(&self, status: HealthStatus) -> [CatalogRegistration; 2] {
        let meta = [
            ("task-id".to_owned(), self.task_id.clone()),
            (
                "task-arn".to_owned(),
                format!(
                    "arn:aws:ecs:us-east-1:123456789012:task/test/{}",
                    self.task_id
                ),
            ),
            ("source".to_owned(), "consul-ecs".to_owned()),
        ]
        .into_iter()
        .collect();
        let envelope = |service: AgentService, checks: Vec<HealthCheck>| CatalogRegistration {
            node: NODE.into(),
            node_meta: [("synthetic-node".to_owned(), "true".to_owned())]
                .into_iter()
                .collect(),
            address: "127.0.0.1".into(),
            skip_node_update: true,
            service: Some(service),
            checks,
            ..CatalogRegistration::default()
        };
        let service = AgentService {
            id: self.service_id(),
            service: self.service.clone(),
            port: self.app_port,
            address: "127.0.0.1".into(),
            meta: std::collections::BTreeMap::clone(&meta),
            ..AgentService::default()
        };
        let proxy = AgentService {
            kind: ServiceKind::ConnectProxy,
            id: self.proxy_id(),
            service: format!("{}-sidecar-proxy", self.service),
            port: self.public_port,
            address: "127.0.0.1".into(),
            meta,
            proxy: Some(ProxyConfig {
                destination_service_name: self.service.clone(),
                destination_service_id: self.service_id(),
                local_service_port: self.app_port,
                upstreams: self.upstreams.clone(),
                ..ProxyConfig::default()
            }),
            ..AgentService::default()
        };
        [
            envelope(
                service,
                vec![check(
                    &format!("{}-consul-dataplane", self.service_id()),
                    &self.service_id(),
                    status.clone(),
                )],
            ),
            envelope(
                proxy,
                vec![check(
                    &format!("{}-consul-dataplane", self.proxy_id()),
                    &self.proxy_id(),
                    status,
                )],
            ),
        ]
    }

    pub async fn register(&self, client: &Client, status: HealthStatus) {
        for r in self.registrations(status) {
            client
                .catalog()
                .register(&r, &WriteOptions::default())
                .await
                .unwrap();
        }
    }

    /// The consul-dataplane.json mesh-init would write, plus our `consul.http` keys.
    pub fn dataplane_json(&self, consul: SocketAddr) -> serde_json::Value {
        json!({
            "consul": {
                "addresses": consul.ip().to_string(), "grpcPort": 8503, "serverWatchDisabled": false,
                "tls": {"disabled": true},
                "http": {"port": consul.port(), "https": false}
            },
            "proxy": {"nodeName": NODE, "id": self.proxy_id(), "namespace": "", "partition": ""},
            "xdsServer": {"bindAddress": "127.0.0.1"},
            "envoy": {"readyBindAddress": "127.0.0.1", "readyBindPort": 0, "adminBindPort": 0,
                      "gracefulPort": 0, "publicBindAddress": "127.0.0.1"},
            "telemetry": {"prometheus": {"bindPort": 0}},
            "logging": {"logLevel": "INFO"}
        })
    }

    pub async fn start_dataplane(&self, consul: SocketAddr) -> dataplane::Dataplane {
        self.start_dataplane_with(self.dataplane_json(consul)).await
    }

    /// Starts a data plane from `json` (a [`Task::dataplane_json`], perhaps with credentials
    /// added) and waits until it is ready.
    pub async fn start_dataplane_with(&self, json: serde_json::Value) -> dataplane::Dataplane {
        let config = dataplane::Config::from_json(&json.to_string()).unwrap();
        let dp = dataplane::Dataplane::start(config).await.unwrap();
        let ready = tokio::time::timeout(patience(), dp.wait_ready()).await;
        if !matches!(ready, Ok(true)) {
            dp.shutdown();
            let end = tokio::time::timeout(patience(), dp.wait()).await;
            panic!("{} never became ready: {end:?}", self.proxy_id());
        }
        dp
    }
}

pub fn healthy(dp: &dataplane::Dataplane, upstream: &str) -> u64 {
    metric(
        &dp.metrics_text(),
        &format!("consul_dataplane_upstream_endpoints_healthy{{upstream=\"{upstream}\"}}"),
    )
}

pub fn opened(dp: &dataplane::Dataplane) -> u64 {
    metric(
        &dp.metrics_text(),
        "consul_dataplane_connections_opened_total{listener=\"public\"}",
    )
}

pub async fn echo_once(addr: SocketAddr, data: &[u8]) -> bool {
    matches!(round_trip(addr, data).await, Ok(b) if b == data)
}

/// A connection kept open: writes a line and expects it back.
pub async fn ping(s: &mut TcpStream, data: &[u8]) -> bool {
    if s.write_all(data).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; data.len()];
    matches!(
        tokio::time::timeout(patience(), s.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && buf == data
}
