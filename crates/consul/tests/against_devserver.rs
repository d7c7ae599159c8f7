//! End to end: our Consul client drives our dev server, both in this process, over real loopback
//! sockets. Each test starts its own server on a free port and checks what a user of the client
//! observes: registrations as consul-ecs mesh-init writes them, health-sync's check updates,
//! blocking watches, KV, config entries, Connect, and state kept across a restart.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use consul_client::agent::AuthorizeRequest;
use consul_client::catalog::{
    AgentService, CatalogDeregistration, CatalogRegistration, ExposeConfig, ExposePath, Locality,
    MeshGatewayConfig, MeshGatewayMode, ProxyConfig, ProxyMode, ServiceAddress, ServiceKind,
    Upstream, UpstreamDestinationType, Weights,
};
use consul_client::config_entry::{
    ConfigEntry, IntentionAction, SERVICE_DEFAULTS, SERVICE_INTENTIONS, ServiceDefaults,
    SourceIntention, UntypedConfigEntry,
};
use consul_client::connect::{CaRoot, CaRootList, IntentionMatchBy};
use consul_client::health::{HealthCheck, HealthStatus, ServiceEntry, ServiceHealthOptions};
use consul_client::{Client, ClientConfig, QueryOptions, RetryPolicy, WriteOptions, watch};
use devserver::DevServer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;

// === fixtures ===

/// The synthetic node every task of an ECS cluster registers on (mesh-init's `clusterARN`).
const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test-cluster";
/// The task's IP (`NodeIP`).
const NODE_IP: &str = "10.1.2.3";
const DATACENTER: &str = "dc1";

/// Starts a dev server on a free loopback port (durable in `data_dir` if given) and a client for it.
async fn start(data_dir: Option<&Path>) -> (DevServer, Client) {
    let config = devserver::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.map(Path::to_path_buf),
        datacenter: DATACENTER.to_owned(),
        node_name: "dev-server".to_owned(),
        ..devserver::Config::default()
    };
    let server = DevServer::start(config).await.unwrap();
    let client = Client::new(ClientConfig::new(server.http_addr().to_string())).unwrap();
    (server, client)
}

fn q() -> QueryOptions {
    QueryOptions::default()
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

fn filtered(expression: &str) -> QueryOptions {
    QueryOptions {
        filter: Some(expression.to_owned()),
        ..QueryOptions::default()
    }
}

fn passing_only() -> ServiceHealthOptions {
    ServiceHealthOptions {
        passing_only: true,
        ..ServiceHealthOptions::default()
    }
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected a JSON object, got {other}"),
    }
}

/// One ECS task of service `name`, as mesh-init sees it.
struct Task {
    name: String,
    task_id: String,
    port: u16,
}

impl Task {
    fn new(name: &str, task_id: &str, port: u16) -> Self {
        Task {
            name: name.to_owned(),
            task_id: task_id.to_owned(),
            port,
        }
    }

    fn service_id(&self) -> String {
        format!("{}-{}", self.name, self.task_id)
    }

    fn proxy_id(&self) -> String {
        format!("{}-sidecar-proxy", self.service_id())
    }

    fn proxy_name(&self) -> String {
        format!("{}-sidecar-proxy", self.name)
    }

    fn task_arn(&self) -> String {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task/test-cluster/{}",
            self.task_id
        )
    }

    fn meta(&self) -> BTreeMap<String, String> {
        strings(&[
            ("task-id", &self.task_id),
            ("task-arn", &self.task_arn()),
            ("source", "consul-ecs"),
            ("team", "payments"),
        ])
    }

    fn locality() -> Locality {
        Locality {
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
        }
    }

    fn virtual_address(&self) -> BTreeMap<String, ServiceAddress> {
        BTreeMap::from([(
            "virtual".to_owned(),
            ServiceAddress {
                address: NODE_IP.into(),
                port: self.port,
            },
        )])
    }

    /// A check as mesh-init creates it: critical, "not ready".
    fn check(&self, check_id: String, name: &str, service_id: String, owner: &str) -> HealthCheck {
        HealthCheck {
            check_id,
            name: name.into(),
            status: HealthStatus::Critical,
            notes: "consul-ecs created and updates this check".into(),
            output: format!("Service {owner} is not ready"),
            service_id,
            check_type: "consul-ecs-health-check".into(),
            ..HealthCheck::default()
        }
    }

    fn service_checks(&self) -> Vec<HealthCheck> {
        vec![
            self.check(
                format!("{}-app", self.service_id()),
                "Consul ECS health check synced",
                self.service_id(),
                &self.name,
            ),
            self.check(
                format!("{}-consul-dataplane", self.service_id()),
                "Consul dataplane readiness",
                self.service_id(),
                &self.name,
            ),
        ]
    }

    fn proxy_check(&self) -> HealthCheck {
        self.check(
            format!("{}-consul-dataplane", self.proxy_id()),
            "Consul dataplane readiness",
            self.proxy_id(),
            &self.proxy_name(),
        )
    }

    /// The `Service` of mesh-init's service registration (§3.1), transparent proxy on.
    fn service(&self) -> AgentService {
        AgentService {
            id: self.service_id(),
            service: self.name.clone(),
            tags: vec!["v1".into(), "blue".into()],
            meta: self.meta(),
            port: self.port,
            address: NODE_IP.into(),
            tagged_addresses: self.virtual_address(),
            weights: Some(Weights {
                passing: 3,
                warning: 1,
            }),
            enable_tag_override: true,
            locality: Some(Task::locality()),
            ..AgentService::default()
        }
    }

    /// The `Service` of mesh-init's sidecar proxy registration (§3.2).
    fn proxy(&self) -> AgentService {
        let service = self.service();
        AgentService {
            kind: ServiceKind::ConnectProxy,
            id: self.proxy_id(),
            service: self.proxy_name(),
            port: 20000,
            proxy: Some(ProxyConfig {
                destination_service_name: self.name.clone(),
                destination_service_id: self.service_id(),
                local_service_port: self.port,
                mode: ProxyMode::Transparent,
                config: object(json!({"envoy_prometheus_bind_addr": "0.0.0.0:9102"})),
                upstreams: vec![
                    Upstream {
                        destination_type: UpstreamDestinationType::Service,
                        destination_name: "db".into(),
                        datacenter: DATACENTER.into(),
                        local_bind_address: "127.0.0.2".into(),
                        local_bind_port: 5432,
                        config: object(json!({"connect_timeout_ms": 5000})),
                        mesh_gateway: MeshGatewayConfig {
                            mode: MeshGatewayMode::Local,
                        },
                        ..Upstream::default()
                    },
                    Upstream {
                        destination_type: UpstreamDestinationType::Service,
                        destination_name: "cache".into(),
                        local_bind_port: 6379,
                        ..Upstream::default()
                    },
                ],
                mesh_gateway: MeshGatewayConfig {
                    mode: MeshGatewayMode::Local,
                },
                expose: ExposeConfig {
                    checks: false,
                    paths: vec![ExposePath {
                        listener_port: 21500,
                        path: "/health".into(),
                        local_path_port: self.port,
                        protocol: "http".into(),
                        parsed_from_check: false,
                    }],
                },
                ..ProxyConfig::default()
            }),
            // Copied from the service, the virtual address with the *service* port included.
            ..service
        }
    }

    fn envelope(&self, service: AgentService, checks: Vec<HealthCheck>) -> CatalogRegistration {
        CatalogRegistration {
            node: CLUSTER_ARN.into(),
            node_meta: strings(&[("synthetic-node", "true")]),
            address: NODE_IP.into(),
            skip_node_update: true,
            service: Some(service),
            checks,
            ..CatalogRegistration::default()
        }
    }

    /// Registers the service and its sidecar proxy as mesh-init does: two requests.
    async fn register(&self, client: &Client) {
        let service = self.envelope(self.service(), self.service_checks());
        client.catalog().register(&service, &w()).await.unwrap();
        let proxy = self.envelope(self.proxy(), vec![self.proxy_check()]);
        client.catalog().register(&proxy, &w()).await.unwrap();
    }

    async fn deregister(&self, client: &Client, service_id: String) {
        let body = CatalogDeregistration {
            node: CLUSTER_ARN.into(),
            service_id,
            ..CatalogDeregistration::default()
        };
        client.catalog().deregister(&body, &w()).await.unwrap();
    }
}

/// A service instance as read back, with what the server fills in (indexes, datacenter, empty
/// sections Consul always renders) cleared, so it can be compared with what was registered.
fn as_registered(mut service: AgentService) -> AgentService {
    assert!(service.create_index > 0, "CreateIndex is set: {service:?}");
    assert!(service.modify_index >= service.create_index);
    service.create_index = 0;
    service.modify_index = 0;
    service.datacenter.clear();
    service.content_hash.clear();
    // Consul renders `Proxy` (with its `TransparentProxy`) and `Connect` even when empty.
    if let Some(proxy) = &mut service.proxy
        && proxy.transparent_proxy == Some(Default::default())
    {
        proxy.transparent_proxy = None;
    }
    if service.proxy == Some(ProxyConfig::default()) {
        service.proxy = None;
    }
    if service.connect == Some(Default::default()) {
        service.connect = None;
    }
    service
}

/// The checks of `entry` sorted by ID.
fn check_ids(checks: &[HealthCheck]) -> Vec<String> {
    let mut ids: Vec<String> = checks.iter().map(|c| c.check_id.clone()).collect();
    ids.sort();
    ids
}

fn entry_ids(entries: &[ServiceEntry]) -> Vec<String> {
    let mut ids: Vec<String> = entries.iter().map(|e| e.service.id.clone()).collect();
    ids.sort();
    ids
}

// === 1. mesh-init registration ===

#[tokio::test]
async fn mesh_init_registration_round_trips_through_catalog_and_health() {
    let (server, client) = start(None).await;
    let web = Task::new("web", "abcdef", 8080);
    web.register(&client).await;

    // Catalog, service view: node and service fields side by side.
    let instances = client
        .catalog()
        .service("web", &[], &q())
        .await
        .unwrap()
        .value;
    assert_eq!(instances.len(), 1, "{instances:?}");
    let i = &instances[0];
    assert_eq!(i.node, CLUSTER_ARN);
    assert_eq!(
        i.address, NODE_IP,
        "SkipNodeUpdate creates a missing node with the task IP"
    );
    assert_eq!(i.datacenter, DATACENTER);
    assert_eq!(i.node_meta, strings(&[("synthetic-node", "true")]));
    assert_eq!(i.service_kind, ServiceKind::Typical);
    assert_eq!(i.service_id, "web-abcdef");
    assert_eq!(i.service_name, "web");
    assert_eq!(i.service_address, NODE_IP);
    assert_eq!(i.service_port, 8080);
    assert_eq!(i.service_tags, vec!["v1".to_owned(), "blue".to_owned()]);
    assert_eq!(i.service_meta, web.meta());
    assert_eq!(i.service_tagged_addresses, web.virtual_address());
    assert_eq!(
        i.service_weights,
        Weights {
            passing: 3,
            warning: 1
        }
    );
    assert!(i.service_enable_tag_override);
    assert_eq!(i.service_locality, Some(Task::locality()));
    assert!(i.create_index > 0 && i.modify_index >= i.create_index);

    // Catalog, the proxy by name: kind, proxy block and upstreams in order.
    let proxies = client
        .catalog()
        .service("web-sidecar-proxy", &[], &q())
        .await
        .unwrap()
        .value;
    assert_eq!(proxies.len(), 1, "{proxies:?}");
    let p = &proxies[0];
    assert_eq!(p.service_kind, ServiceKind::ConnectProxy);
    assert_eq!(p.service_id, "web-abcdef-sidecar-proxy");
    assert_eq!(p.service_port, 20000);
    assert_eq!(
        p.service_tagged_addresses,
        web.virtual_address(),
        "the proxy carries the service's virtual address and port"
    );
    let mut proxy_block = p.service_proxy.clone().unwrap();
    if proxy_block.transparent_proxy == Some(Default::default()) {
        proxy_block.transparent_proxy = None;
    }
    assert_eq!(Some(proxy_block), web.proxy().proxy);

    // The `tag` filter keeps instances carrying every tag.
    let tagged = client.catalog().service("web", &["v1", "blue"], &q()).await;
    assert_eq!(tagged.unwrap().value.len(), 1);
    let untagged = client.catalog().service("web", &["green"], &q()).await;
    assert!(untagged.unwrap().value.is_empty());

    // Catalog, node-services view: every field of both registrations comes back.
    let node = client
        .catalog()
        .node_services(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .expect("the synthetic node exists");
    let n = node.node.as_ref().unwrap();
    assert_eq!(n.node, CLUSTER_ARN);
    assert_eq!(n.address, NODE_IP);
    assert_eq!(n.meta, strings(&[("synthetic-node", "true")]));
    let mut services: Vec<AgentService> = node.services.into_iter().map(as_registered).collect();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(services, vec![web.service(), web.proxy()]);

    // mesh-init's transparent-proxy lookup: the node's services filtered to the proxy's ID.
    let found = client
        .catalog()
        .node_services(CLUSTER_ARN, &filtered("ID == \"web-abcdef-sidecar-proxy\""))
        .await
        .unwrap()
        .value
        .unwrap()
        .services;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ServiceKind::ConnectProxy);
    assert_eq!(
        found[0].proxy.as_ref().unwrap().mode,
        ProxyMode::Transparent
    );

    // The map-shaped node view agrees.
    let by_id = client
        .catalog()
        .node(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .unwrap()
        .services;
    assert_eq!(
        by_id.keys().cloned().collect::<Vec<_>>(),
        vec!["web-abcdef", "web-abcdef-sidecar-proxy"]
    );
    assert_eq!(as_registered(by_id["web-abcdef"].clone()), web.service());

    // Health, service view: the instance with both of its checks, critical.
    let health = client
        .health()
        .service("web", &ServiceHealthOptions::default(), &q())
        .await
        .unwrap()
        .value;
    assert_eq!(health.len(), 1, "{health:?}");
    let e = &health[0];
    assert_eq!(e.node.node, CLUSTER_ARN);
    assert_eq!(as_registered(e.service.clone()), web.service());
    assert_eq!(
        check_ids(&e.checks),
        vec!["web-abcdef-app", "web-abcdef-consul-dataplane"]
    );
    for (sent, got) in web.service_checks().iter().zip(sorted_checks(&e.checks)) {
        assert_eq!(got.node, CLUSTER_ARN);
        assert_eq!(got.check_id, sent.check_id);
        assert_eq!(got.name, sent.name);
        assert_eq!(got.status, HealthStatus::Critical);
        assert_eq!(got.notes, sent.notes);
        assert_eq!(got.output, "Service web is not ready");
        assert_eq!(got.service_id, "web-abcdef");
        assert_eq!(got.service_name, "web", "Consul fills in ServiceName");
        assert_eq!(got.service_tags, vec!["v1".to_owned(), "blue".to_owned()]);
        assert_eq!(got.check_type, "consul-ecs-health-check");
    }
    assert_eq!(e.aggregated_status(), HealthStatus::Critical);
    let healthy = client
        .health()
        .service("web", &passing_only(), &q())
        .await
        .unwrap();
    assert!(
        healthy.value.is_empty(),
        "critical instances are not passing"
    );

    // Health, connect view: the sidecar proxy that carries traffic for web, with its own check.
    let connect = client
        .health()
        .connect("web", &ServiceHealthOptions::default(), &q())
        .await
        .unwrap()
        .value;
    assert_eq!(connect.len(), 1, "{connect:?}");
    assert_eq!(as_registered(connect[0].service.clone()), web.proxy());
    assert_eq!(
        check_ids(&connect[0].checks),
        vec!["web-abcdef-sidecar-proxy-consul-dataplane"]
    );
    assert_eq!(
        connect[0].checks[0].output,
        "Service web-sidecar-proxy is not ready"
    );
    let catalog_connect = client.catalog().connect("web", &[], &q()).await.unwrap();
    assert_eq!(
        catalog_connect
            .value
            .iter()
            .map(|c| c.service_id.as_str())
            .collect::<Vec<_>>(),
        vec!["web-abcdef-sidecar-proxy"]
    );
    // The proxy's name is not a Connect destination.
    let none = client
        .health()
        .connect("web-sidecar-proxy", &ServiceHealthOptions::default(), &q())
        .await;
    assert!(none.unwrap().value.is_empty());

    // Deregister both, as health-sync does at shutdown: service then proxy.
    web.deregister(&client, web.service_id()).await;
    web.deregister(&client, web.proxy_id()).await;
    assert!(
        client
            .catalog()
            .service("web", &[], &q())
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert!(
        client
            .catalog()
            .service("web-sidecar-proxy", &[], &q())
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert!(
        client
            .health()
            .connect("web", &ServiceHealthOptions::default(), &q())
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert!(
        client
            .health()
            .checks("web", &q())
            .await
            .unwrap()
            .value
            .is_empty(),
        "a service's checks go with it"
    );
    assert!(
        !client
            .catalog()
            .services(&q())
            .await
            .unwrap()
            .value
            .contains_key("web")
    );
    // The synthetic node stays (other tasks share it), now without services.
    let node = client
        .catalog()
        .node_services(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .expect("the node outlives its services");
    assert!(node.services.is_empty(), "{:?}", node.services);
    server.shutdown().await;
}

#[tokio::test]
async fn skip_node_update_leaves_the_controllers_node_alone() {
    let (server, client) = start(None).await;
    // The controller registers the synthetic node first, without SkipNodeUpdate.
    let node = CatalogRegistration {
        node: CLUSTER_ARN.into(),
        node_meta: strings(&[("synthetic-node", "true")]),
        address: "10.0.0.99".into(),
        ..CatalogRegistration::default()
    };
    client.catalog().register(&node, &w()).await.unwrap();
    let before = client.catalog().node(CLUSTER_ARN, &q()).await.unwrap();
    let before = before.value.unwrap().node.unwrap();
    assert_eq!(before.address, "10.0.0.99");

    // A task registers with its own IP and SkipNodeUpdate: the node keeps the controller's.
    let web = Task::new("web", "abcdef", 8080);
    let mut registration = web.envelope(web.service(), web.service_checks());
    registration.node_meta = strings(&[("synthetic-node", "true"), ("task", "abcdef")]);
    client
        .catalog()
        .register(&registration, &w())
        .await
        .unwrap();
    let after = client.catalog().node(CLUSTER_ARN, &q()).await.unwrap();
    let after = after.value.unwrap();
    assert_eq!(after.node.as_ref().unwrap(), &before, "node untouched");
    assert_eq!(after.services["web-abcdef"].address, NODE_IP);

    // Without SkipNodeUpdate the same request rewrites the node.
    registration.skip_node_update = false;
    client
        .catalog()
        .register(&registration, &w())
        .await
        .unwrap();
    let rewritten = client.catalog().node(CLUSTER_ARN, &q()).await.unwrap();
    let rewritten = rewritten.value.unwrap().node.unwrap();
    assert_eq!(rewritten.address, NODE_IP);
    assert_eq!(
        rewritten.meta,
        strings(&[("synthetic-node", "true"), ("task", "abcdef")])
    );
    server.shutdown().await;
}

fn sorted_checks(checks: &[HealthCheck]) -> Vec<HealthCheck> {
    let mut checks = checks.to_vec();
    checks.sort_by(|a, b| a.check_id.cmp(&b.check_id));
    checks
}

// === 2. health-sync ===

#[tokio::test]
async fn health_sync_flips_checks_with_one_node_only_registration() {
    let (server, client) = start(None).await;
    let web = Task::new("web", "abcdef", 8080);
    let other = Task::new("web", "123456", 8080);
    web.register(&client).await;
    other.register(&client).await;

    // Check discovery, as health-sync does it: by service name, narrowed to one instance.
    let service_checks = client
        .health()
        .checks("web", &filtered("ServiceID == `web-abcdef`"))
        .await
        .unwrap()
        .value;
    assert_eq!(
        check_ids(&service_checks),
        vec!["web-abcdef-app", "web-abcdef-consul-dataplane"],
        "the filter keeps only this task's checks"
    );
    let all = client.health().checks("web", &q()).await.unwrap().value;
    assert_eq!(all.len(), 4, "both tasks' checks without the filter");
    let proxy_checks = client
        .health()
        .checks(
            "web-sidecar-proxy",
            &filtered("ServiceID == `web-abcdef-sidecar-proxy`"),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(proxy_checks.len(), 1, "exactly one check on the proxy");

    // One sync tick: every check passing, sent back as fetched, in one request without Address
    // or Service.
    let before = client
        .catalog()
        .node_services(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .unwrap();
    let mut staged: Vec<HealthCheck> = service_checks
        .into_iter()
        .chain(proxy_checks)
        .collect::<Vec<_>>();
    for check in &mut staged {
        check.status = HealthStatus::Passing;
        check.output = format!(
            "ECS health status is \"HEALTHY\" for container \"{}\"",
            check.check_id
        );
    }
    let update = CatalogRegistration {
        node: CLUSTER_ARN.into(),
        skip_node_update: true,
        checks: staged.clone(),
        ..CatalogRegistration::default()
    };
    client.catalog().register(&update, &w()).await.unwrap();

    let healthy = client
        .health()
        .service("web", &passing_only(), &q())
        .await
        .unwrap()
        .value;
    assert_eq!(
        entry_ids(&healthy),
        vec!["web-abcdef"],
        "only this task passes"
    );
    assert_eq!(healthy[0].aggregated_status(), HealthStatus::Passing);
    let synced = client
        .health()
        .checks("web", &filtered("ServiceID == `web-abcdef`"))
        .await
        .unwrap()
        .value;
    assert_eq!(synced.len(), 2);
    for check in &synced {
        assert_eq!(check.status, HealthStatus::Passing, "{check:?}");
        assert_eq!(
            check.output,
            format!(
                "ECS health status is \"HEALTHY\" for container \"{}\"",
                check.check_id
            )
        );
        assert_eq!(check.service_name, "web");
        assert_eq!(
            check.name == "Consul ECS health check synced",
            check.check_id.ends_with("-app")
        );
    }
    let proxy_check = client
        .health()
        .checks(
            "web-sidecar-proxy",
            &filtered("ServiceID == `web-abcdef-sidecar-proxy`"),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(proxy_check[0].status, HealthStatus::Passing);
    // One request, one Raft index for every check it carried.
    let indexes: Vec<u64> = synced
        .iter()
        .chain(&proxy_check)
        .map(|c| c.modify_index)
        .collect();
    assert!(
        indexes.iter().all(|i| *i == indexes[0]),
        "all checks land at one index: {indexes:?}"
    );
    // The other task is untouched.
    let other_checks = client
        .health()
        .checks("web", &filtered("ServiceID == `web-123456`"))
        .await
        .unwrap()
        .value;
    assert!(
        other_checks
            .iter()
            .all(|c| c.status == HealthStatus::Critical),
        "{other_checks:?}"
    );
    // The proxy of the synced task now passes in the connect view.
    let connect = client
        .health()
        .connect("web", &passing_only(), &q())
        .await
        .unwrap()
        .value;
    assert_eq!(entry_ids(&connect), vec!["web-abcdef-sidecar-proxy"]);
    // Neither the node nor the services changed.
    let after = client
        .catalog()
        .node_services(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(
        after.node, before.node,
        "SkipNodeUpdate leaves the node alone"
    );
    assert_eq!(after.services, before.services, "services are not touched");

    // Back to critical (health-sync on SIGTERM): the instance leaves the passing list.
    for check in &mut staged {
        check.status = HealthStatus::Critical;
    }
    let update = CatalogRegistration {
        node: CLUSTER_ARN.into(),
        skip_node_update: true,
        checks: staged,
        ..CatalogRegistration::default()
    };
    client.catalog().register(&update, &w()).await.unwrap();
    let healthy = client
        .health()
        .service("web", &passing_only(), &q())
        .await
        .unwrap();
    assert!(healthy.value.is_empty());
    server.shutdown().await;
}

// === 3. blocking queries ===

#[tokio::test]
async fn watch_on_connect_wakes_for_relevant_changes_only_and_stops_on_cancel() {
    let (server, client) = start(None).await;
    let web = Task::new("web", "abcdef", 8080);
    web.register(&client).await;

    let cancel = CancellationToken::new();
    let watcher_client = client.clone();
    let options = QueryOptions {
        wait: Some(Duration::from_secs(30)),
        ..QueryOptions::default()
    };
    let mut proxies = watch(options, RetryPolicy::default(), cancel.clone(), move |q| {
        let client = watcher_client.clone();
        async move {
            client
                .health()
                .connect("web", &ServiceHealthOptions::default(), &q)
                .await
        }
    });

    // The first read returns at once.
    let first = tokio::time::timeout(Duration::from_secs(10), proxies.next())
        .await
        .expect("the first value comes without blocking")
        .unwrap()
        .unwrap();
    assert_eq!(entry_ids(&first), vec!["web-abcdef-sidecar-proxy"]);
    let index = proxies.index();
    assert!(index > 0);

    // An unrelated service on another node: no new value...
    let billing = CatalogRegistration {
        node: "other-node".into(),
        address: "10.9.9.9".into(),
        service: Some(AgentService {
            id: "billing-1".into(),
            service: "billing".into(),
            port: 9000,
            ..AgentService::default()
        }),
        ..CatalogRegistration::default()
    };
    client.catalog().register(&billing, &w()).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(400), proxies.next()).await;
    assert!(quiet.is_err(), "woke for an unrelated service: {quiet:?}");
    // ...and the server itself keeps the blocking query waiting, rather than answering with the
    // same data at a new index.
    let blocked = QueryOptions {
        index: Some(index),
        wait: Some(Duration::from_secs(30)),
        ..QueryOptions::default()
    };
    let raw = tokio::time::timeout(
        Duration::from_millis(400),
        client
            .health()
            .connect("web", &ServiceHealthOptions::default(), &blocked),
    )
    .await;
    assert!(
        raw.is_err(),
        "the blocking query returned for an unrelated change: {raw:?}"
    );

    // A second task of web registers its proxy: the watch wakes with both.
    let second = Task::new("web", "123456", 8080);
    second.register(&client).await;
    let next = tokio::time::timeout(Duration::from_secs(10), proxies.next())
        .await
        .expect("a relevant change wakes the watch")
        .unwrap()
        .unwrap();
    assert_eq!(
        entry_ids(&next),
        vec!["web-123456-sidecar-proxy", "web-abcdef-sidecar-proxy"]
    );
    assert!(proxies.index() > index, "the index moved forward");

    // Cancelling ends a watch that is blocked in a query.
    let waiting = tokio::spawn(async move {
        let outcome = proxies.next().await;
        (outcome.is_none(), proxies)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let (ended, mut proxies) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("cancel ends the blocked watch promptly")
        .unwrap();
    assert!(ended, "a cancelled watch yields None");
    assert!(proxies.next().await.is_none(), "and keeps yielding None");
    server.shutdown().await;
}

// === 4. KV ===

#[tokio::test]
async fn kv_put_get_cas_list_keys_and_delete_tree() {
    let (server, client) = start(None).await;
    let kv = client.kv();

    assert!(kv.get("app/config", &q()).await.unwrap().value.is_none());
    assert!(kv.put("app/config", "v1", 0, &w()).await.unwrap());
    let pair = kv.get("app/config", &q()).await.unwrap();
    let v1 = pair.value.unwrap();
    assert_eq!(v1.key, "app/config");
    assert_eq!(v1.value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(v1.flags, 0);
    assert!(v1.create_index > 0);
    assert_eq!(v1.modify_index, v1.create_index);
    assert!(pair.meta.last_index >= v1.modify_index);

    // Bytes that are not UTF-8 and flags round-trip.
    let binary: Vec<u8> = vec![0, 159, 146, 150, 255, b'\n'];
    assert!(kv.put("app/blob", binary.clone(), 42, &w()).await.unwrap());
    let blob = kv.get("app/blob", &q()).await.unwrap().value.unwrap();
    assert_eq!(blob.value, Some(binary));
    assert_eq!(blob.flags, 42);
    // An empty value is a value, not a missing key.
    assert!(kv.put("app/empty", "", 0, &w()).await.unwrap());
    let empty = kv.get("app/empty", &q()).await.unwrap().value.unwrap();
    assert!(empty.value.unwrap_or_default().is_empty());

    // Check-and-set: a stale index loses and changes nothing; the current index wins.
    assert!(
        !kv.cas("app/config", "stale", 0, v1.modify_index - 1, &w())
            .await
            .unwrap()
    );
    assert!(
        !kv.cas("app/config", "exists", 0, 0, &w()).await.unwrap(),
        "cas=0 only creates"
    );
    let unchanged = kv.get("app/config", &q()).await.unwrap().value.unwrap();
    assert_eq!(unchanged.value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(unchanged.modify_index, v1.modify_index);
    assert!(
        kv.cas("app/config", "v2", 0, v1.modify_index, &w())
            .await
            .unwrap()
    );
    let v2 = kv.get("app/config", &q()).await.unwrap().value.unwrap();
    assert_eq!(v2.value.as_deref(), Some(&b"v2"[..]));
    assert_eq!(v2.create_index, v1.create_index);
    assert!(v2.modify_index > v1.modify_index);
    assert!(kv.cas("app/new", "fresh", 0, 0, &w()).await.unwrap());

    // Listing and keys, sorted; a separator folds deeper keys into their "directory".
    assert!(kv.put("app/nested/a", "1", 0, &w()).await.unwrap());
    assert!(kv.put("app/nested/b", "2", 0, &w()).await.unwrap());
    assert!(kv.put("other/x", "x", 0, &w()).await.unwrap());
    let listed = kv.list("app/", &q()).await.unwrap().value;
    assert_eq!(
        listed.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
        vec![
            "app/blob",
            "app/config",
            "app/empty",
            "app/nested/a",
            "app/nested/b",
            "app/new"
        ]
    );
    assert_eq!(listed[1].value.as_deref(), Some(&b"v2"[..]));
    let keys = kv.keys("app/", None, &q()).await.unwrap().value;
    assert_eq!(keys.len(), 6);
    let folded = kv.keys("app/", Some("/"), &q()).await.unwrap().value;
    assert_eq!(
        folded,
        vec![
            "app/blob",
            "app/config",
            "app/empty",
            "app/nested/",
            "app/new"
        ]
    );
    assert!(kv.list("missing/", &q()).await.unwrap().value.is_empty());
    assert!(
        kv.keys("missing/", None, &q())
            .await
            .unwrap()
            .value
            .is_empty()
    );

    // Deleting one key, with check-and-set, then a whole tree.
    let new = kv.get("app/new", &q()).await.unwrap().value.unwrap();
    assert!(
        !kv.delete_cas("app/new", new.modify_index + 100, &w())
            .await
            .unwrap()
    );
    assert!(kv.get("app/new", &q()).await.unwrap().value.is_some());
    assert!(
        kv.delete_cas("app/new", new.modify_index, &w())
            .await
            .unwrap()
    );
    assert!(kv.get("app/new", &q()).await.unwrap().value.is_none());
    assert!(kv.delete("app/empty", &w()).await.unwrap());
    assert!(kv.delete_tree("app/", &w()).await.unwrap());
    assert!(kv.list("app/", &q()).await.unwrap().value.is_empty());
    assert!(kv.get("app/config", &q()).await.unwrap().value.is_none());
    assert_eq!(
        kv.keys("", None, &q()).await.unwrap().value,
        vec!["other/x"],
        "keys outside the tree survive"
    );
    server.shutdown().await;
}

// === 5. config entries ===

fn service_defaults(entry: Option<ConfigEntry>) -> ServiceDefaults {
    match entry {
        Some(ConfigEntry::ServiceDefaults(e)) => e,
        other => panic!("expected a service-defaults entry, got {other:?}"),
    }
}

#[tokio::test]
async fn service_defaults_set_get_cas_delete() {
    let (server, client) = start(None).await;
    let entries = client.config_entries();
    assert!(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value
            .is_none()
    );

    let entry = ConfigEntry::ServiceDefaults(ServiceDefaults {
        name: "web".into(),
        protocol: "http".into(),
        mutual_tls_mode: "strict".into(),
        local_connect_timeout_ms: 2000,
        meta: strings(&[("owner", "payments")]),
        ..ServiceDefaults::default()
    });
    assert!(entries.set(&entry, &w()).await.unwrap());
    let read = entries.get(SERVICE_DEFAULTS, "web", &q()).await.unwrap();
    let stored = service_defaults(read.value);
    assert_eq!(stored.name, "web");
    assert_eq!(stored.protocol, "http");
    assert_eq!(stored.mutual_tls_mode, "strict");
    assert_eq!(stored.local_connect_timeout_ms, 2000);
    assert_eq!(stored.meta, strings(&[("owner", "payments")]));
    assert!(stored.create_index > 0);
    assert_eq!(stored.modify_index, stored.create_index);
    assert!(read.meta.last_index >= stored.modify_index);

    // A stale check-and-set loses and changes nothing.
    let mut changed = stored.clone();
    changed.protocol = "grpc".into();
    let changed = ConfigEntry::ServiceDefaults(changed);
    assert!(
        !entries
            .set_cas(&changed, stored.modify_index + 7, &w())
            .await
            .unwrap()
    );
    assert!(
        !entries.set_cas(&changed, 0, &w()).await.unwrap(),
        "cas=0 only creates"
    );
    let same = service_defaults(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value,
    );
    assert_eq!(same.protocol, "http");
    assert_eq!(same.modify_index, stored.modify_index);
    // The current index wins.
    assert!(
        entries
            .set_cas(&changed, stored.modify_index, &w())
            .await
            .unwrap()
    );
    let updated = service_defaults(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value,
    );
    assert_eq!(updated.protocol, "grpc");
    assert_eq!(updated.create_index, stored.create_index);
    assert!(updated.modify_index > stored.modify_index);

    let listed = entries.list(SERVICE_DEFAULTS, &q()).await.unwrap().value;
    assert_eq!(
        listed.iter().map(ConfigEntry::name).collect::<Vec<_>>(),
        vec!["web"]
    );

    // A stale delete-cas keeps the entry; delete removes it; deleting again still succeeds.
    assert!(
        !entries
            .delete_cas(SERVICE_DEFAULTS, "web", stored.modify_index, &w())
            .await
            .unwrap()
    );
    assert!(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value
            .is_some()
    );
    entries.delete(SERVICE_DEFAULTS, "web", &w()).await.unwrap();
    assert!(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value
            .is_none()
    );
    entries.delete(SERVICE_DEFAULTS, "web", &w()).await.unwrap();
    assert!(
        entries
            .list(SERVICE_DEFAULTS, &q())
            .await
            .unwrap()
            .value
            .is_empty()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_entry_read_changed_and_written_back_keeps_fields_the_client_does_not_model() {
    let (server, client) = start(None).await;
    let entries = client.config_entries();
    // Another tool writes fields this client has no names for (`RateLimits`, and keys inside an
    // upstream's outlier detection).
    let rate_limits = json!({
        "InstanceLevel": {
            "RequestsPerSecond": 50,
            "RequestsMaxBurst": 100,
            "Routes": [{"PathPrefix": "/admin", "RequestsPerSecond": 5, "RequestsMaxBurst": 10}]
        }
    });
    let foreign = ConfigEntry::Other(UntypedConfigEntry {
        kind: SERVICE_DEFAULTS.into(),
        fields: object(json!({
            "Name": "web",
            "Protocol": "http",
            "RateLimits": rate_limits,
            "UpstreamConfig": {
                "Defaults": {
                    "ConnectTimeoutMs": 3000,
                    "PassiveHealthCheck": {"Interval": 10_000_000_000u64, "MaxFailures": 5}
                }
            },
            "Meta": {"owner": "payments"}
        })),
    });
    assert!(entries.set(&foreign, &w()).await.unwrap());

    let read = service_defaults(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value,
    );
    assert_eq!(read.extra.get("RateLimits"), Some(&rate_limits));
    let index = read.modify_index;
    let mut changed = read.clone();
    changed.protocol = "http2".into();
    changed
        .meta
        .insert("reviewed-by".to_owned(), "mesh-init".to_owned());
    assert!(
        entries
            .set_cas(&ConfigEntry::ServiceDefaults(changed), index, &w())
            .await
            .unwrap()
    );

    let after = service_defaults(
        entries
            .get(SERVICE_DEFAULTS, "web", &q())
            .await
            .unwrap()
            .value,
    );
    assert_eq!(after.protocol, "http2");
    assert_eq!(
        after.meta,
        strings(&[("owner", "payments"), ("reviewed-by", "mesh-init")])
    );
    assert_eq!(
        after.extra.get("RateLimits"),
        Some(&rate_limits),
        "an unmodelled field survives the round trip"
    );
    let defaults = after.upstream_config.unwrap().defaults.unwrap();
    assert_eq!(defaults.connect_timeout_ms, 3000);
    let phc = defaults.passive_health_check.unwrap();
    assert_eq!(phc.max_failures, 5);
    assert_eq!(
        phc.interval.map(|d| d.0),
        Some(Duration::from_secs(10)),
        "durations stay integer nanoseconds"
    );
    server.shutdown().await;
}

// === 7. restart ===

#[tokio::test]
async fn state_survives_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let web = Task::new("web", "abcdef", 8080);

    let (server, client) = start(Some(dir.path())).await;
    web.register(&client).await;
    assert!(client.kv().put("app/config", "v1", 7, &w()).await.unwrap());
    let defaults = ConfigEntry::ServiceDefaults(ServiceDefaults {
        name: "web".into(),
        protocol: "http".into(),
        ..ServiceDefaults::default()
    });
    assert!(client.config_entries().set(&defaults, &w()).await.unwrap());

    let catalog_before = client.catalog().service("web", &[], &q()).await.unwrap();
    let health_before = client
        .health()
        .connect("web", &ServiceHealthOptions::default(), &q())
        .await
        .unwrap();
    let kv_before = client.kv().get("app/config", &q()).await.unwrap();
    let entry_before = client
        .config_entries()
        .get(SERVICE_DEFAULTS, "web", &q())
        .await
        .unwrap();
    let highest_before = [
        catalog_before.meta.last_index,
        health_before.meta.last_index,
        kv_before.meta.last_index,
        entry_before.meta.last_index,
    ]
    .into_iter()
    .max()
    .unwrap();
    let old_addr = server.http_addr();
    server.shutdown().await;
    // The old listener is closed.
    assert!(
        client.kv().get("app/config", &q()).await.is_err(),
        "the old server still answers on {old_addr}"
    );

    let (server, client) = start(Some(dir.path())).await;
    let catalog_after = client.catalog().service("web", &[], &q()).await.unwrap();
    assert_eq!(catalog_after.value, catalog_before.value);
    assert!(catalog_after.meta.last_index >= catalog_before.meta.last_index);
    let health_after = client
        .health()
        .connect("web", &ServiceHealthOptions::default(), &q())
        .await
        .unwrap();
    assert_eq!(health_after.value, health_before.value);
    let node = client
        .catalog()
        .node_services(CLUSTER_ARN, &q())
        .await
        .unwrap()
        .value
        .unwrap();
    let mut services: Vec<AgentService> = node.services.into_iter().map(as_registered).collect();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(services, vec![web.service(), web.proxy()]);
    let kv_after = client.kv().get("app/config", &q()).await.unwrap();
    assert_eq!(kv_after.value, kv_before.value);
    assert!(kv_after.meta.last_index >= kv_before.meta.last_index);
    let entry_after = client
        .config_entries()
        .get(SERVICE_DEFAULTS, "web", &q())
        .await
        .unwrap();
    assert_eq!(entry_after.value, entry_before.value);

    // The index did not go backwards: a new write lands above everything seen before.
    assert!(client.kv().put("app/after", "v", 0, &w()).await.unwrap());
    let fresh = client
        .kv()
        .get("app/after", &q())
        .await
        .unwrap()
        .value
        .unwrap();
    assert!(
        fresh.modify_index > highest_before,
        "new write at {} after restart, but {highest_before} was seen before",
        fresh.modify_index
    );
    server.shutdown().await;
}

// === 6. Connect ===

/// Every PEM block of `text`, in order.
fn pems(text: &str) -> Vec<Pem> {
    Pem::iter_from_buffer(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key_id(cert: &X509Certificate<'_>, authority: bool) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) if !authority => Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) if authority => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
}

/// Colon-separated hex, as Consul writes key IDs and serial numbers.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The roots answer has Consul's shape: a trust domain, one active root named by `ActiveRootID`,
/// a self-signed CA certificate whose URI SAN is the trust domain.
fn check_roots(roots: &CaRootList) -> CaRoot {
    let td = &roots.trust_domain;
    assert!(td.ends_with(".consul"), "trust domain {td:?}");
    let cluster_id = td.trim_end_matches(".consul");
    assert_eq!(cluster_id.len(), 36, "a UUID cluster ID: {td:?}");
    assert!(!roots.active_root_id.is_empty());
    assert_eq!(roots.roots.len(), 1, "{roots:?}");
    let active: Vec<&CaRoot> = roots.roots.iter().filter(|r| r.active).collect();
    assert_eq!(active.len(), 1, "exactly one active root");
    let root = active[0].clone();
    assert_eq!(root.id, roots.active_root_id);
    assert_eq!(roots.active(), Some(&root));
    assert!(!root.name.is_empty());
    assert!(!root.not_before.is_empty() && !root.not_after.is_empty());
    assert!(root.create_index > 0);

    let blocks = pems(&root.root_cert);
    assert_eq!(blocks.len(), 1);
    let cert = blocks[0].parse_x509().unwrap();
    assert!(cert.is_ca(), "the root is a CA");
    cert.verify_signature(None)
        .expect("the root is self-signed");
    assert_eq!(uri_sans(&cert), vec![format!("spiffe://{td}")]);
    // IDs are colon-hex: the root's is its SHA-1 fingerprint (20 bytes), SigningKeyID its key ID.
    assert_eq!(root.id.split(':').count(), 20, "{}", root.id);
    let skid = key_id(&cert, false).expect("the root has a subject key ID");
    assert_eq!(root.signing_key_id.to_lowercase(), colon_hex(&skid));
    root
}

#[tokio::test]
async fn connect_ca_roots_leaf_intentions_and_authorize() {
    let (server, client) = start(None).await;

    // CA roots, from both the server and the agent endpoint.
    let roots = client.connect().ca_roots(&q()).await.unwrap();
    let root = check_roots(&roots.value);
    assert!(roots.meta.last_index > 0);
    let agent_roots = client.agent().ca_roots(&q()).await.unwrap().value;
    assert_eq!(agent_roots, roots.value, "agent and server agree");
    let td = roots.value.trust_domain.clone();

    // A leaf for web: the SPIFFE ID exactly, signed by the active root, with its key.
    let leaf = client.agent().leaf_cert("web", &q()).await.unwrap();
    let leaf = leaf.value;
    let spiffe = format!("spiffe://{td}/ns/default/dc/{DATACENTER}/svc/web");
    assert_eq!(leaf.service, "web");
    assert_eq!(leaf.service_uri, spiffe);
    assert!(!leaf.valid_after.is_empty() && !leaf.valid_before.is_empty());
    let chain = pems(&leaf.cert_pem);
    assert!(!chain.is_empty());
    let certs: Vec<X509Certificate<'_>> = chain.iter().map(|p| p.parse_x509().unwrap()).collect();
    let cert = &certs[0];
    assert!(!cert.is_ca(), "a leaf is not a CA");
    assert_eq!(uri_sans(cert), vec![spiffe.clone()], "exactly one URI SAN");
    assert_eq!(
        leaf.serial_number.to_lowercase(),
        colon_hex(cert.raw_serial()),
        "SerialNumber names the certificate"
    );
    // Each certificate is signed by the next; the last (or the leaf) by the active root, through
    // the root's intermediates if it has any.
    let intermediates: Vec<Pem> = root
        .intermediate_certs
        .iter()
        .flat_map(|p| pems(p))
        .collect();
    let mut path: Vec<X509Certificate<'_>> = certs.clone();
    for p in &intermediates {
        let c = p.parse_x509().unwrap();
        if !path.iter().any(|have| have.as_raw() == c.as_raw()) {
            path.push(c);
        }
    }
    let root_pem = pems(&root.root_cert);
    let root_cert = root_pem[0].parse_x509().unwrap();
    path.push(root_cert);
    for pair in path.windows(2) {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .expect("each certificate is signed by the next one up");
    }
    assert_eq!(
        key_id(cert, true),
        key_id(&path[1], false),
        "the leaf names its issuer's key"
    );
    // The private key (SEC1 `EC PRIVATE KEY`, as Consul sends it) is one rustls can sign with,
    // and it belongs to the certificate.
    assert!(
        leaf.private_key_pem
            .contains("-----BEGIN EC PRIVATE KEY-----")
    );
    let key_der = PrivateKeyDer::from_pem_slice(leaf.private_key_pem.as_bytes())
        .expect("a private key in PEM");
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .expect("a key rustls can sign with");
    let spki = signer.public_key().expect("the key's public half");
    assert_eq!(spki.as_ref(), cert.public_key().raw);
    assert!(
        !format!("{leaf:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );
    // The same leaf comes back until it is due for renewal.
    let again = client.agent().leaf_cert("web", &q()).await.unwrap().value;
    assert_eq!(again.serial_number, leaf.serial_number);
    let db_leaf = client.agent().leaf_cert("db", &q()).await.unwrap().value;
    assert_eq!(
        db_leaf.service_uri,
        format!("spiffe://{td}/ns/default/dc/{DATACENTER}/svc/db")
    );
    assert_ne!(db_leaf.serial_number, leaf.serial_number);

    // Intentions: everyone is denied db, except web.
    let connect = client.connect();
    let source = |name: &str, action: IntentionAction| SourceIntention {
        name: name.into(),
        action: Some(action),
        ..SourceIntention::default()
    };
    connect
        .upsert_intention("db", source("*", IntentionAction::Deny), &w())
        .await
        .unwrap();
    connect
        .upsert_intention("db", source("web", IntentionAction::Allow), &w())
        .await
        .unwrap();
    // Upserting the same source again replaces it rather than adding a second one.
    connect
        .upsert_intention("db", source("web", IntentionAction::Allow), &w())
        .await
        .unwrap();
    let entry = client
        .config_entries()
        .get(SERVICE_INTENTIONS, "db", &q())
        .await
        .unwrap()
        .value;
    let Some(ConfigEntry::ServiceIntentions(entry)) = entry else {
        panic!("expected a service-intentions entry, got {entry:?}");
    };
    // One source per name, kept (as Consul keeps them) most specific first, with precedence.
    assert_eq!(
        entry
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.precedence))
            .collect::<Vec<_>>(),
        vec![("web", 9), ("*", 8)]
    );

    // Match by destination: most specific first (exact source 9, wildcard source 8).
    let matched = connect
        .intention_match(IntentionMatchBy::Destination, &["db"], &q())
        .await
        .unwrap()
        .value;
    let for_db = &matched["db"];
    let summary: Vec<(&str, &str, Option<IntentionAction>, i32)> = for_db
        .iter()
        .map(|i| {
            (
                i.source_name.as_str(),
                i.destination_name.as_str(),
                i.action.clone(),
                i.precedence,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("web", "db", Some(IntentionAction::Allow), 9),
            ("*", "db", Some(IntentionAction::Deny), 8),
        ]
    );
    let by_source = connect
        .intention_match(IntentionMatchBy::Source, &["web", "billing"], &q())
        .await
        .unwrap()
        .value;
    assert_eq!(
        by_source["web"]
            .iter()
            .map(|i| (i.source_name.as_str(), i.destination_name.as_str()))
            .collect::<Vec<_>>(),
        vec![("web", "db"), ("*", "db")],
        "a wildcard source matches web too"
    );
    assert_eq!(
        by_source["billing"]
            .iter()
            .map(|i| i.source_name.as_str())
            .collect::<Vec<_>>(),
        vec!["*"]
    );

    // Check and exact lookup.
    assert!(
        connect
            .intention_check("web", "db", &q())
            .await
            .unwrap()
            .value
    );
    assert!(
        !connect
            .intention_check("billing", "db", &q())
            .await
            .unwrap()
            .value
    );
    assert!(
        connect
            .intention_check("billing", "web", &q())
            .await
            .unwrap()
            .value,
        "no intention covers it and ACLs are off: allowed"
    );
    let exact = connect
        .intention_get_exact("web", "db", &q())
        .await
        .unwrap()
        .value
        .expect("web -> db exists");
    assert_eq!(exact.action, Some(IntentionAction::Allow));
    assert!(
        connect
            .intention_get_exact("billing", "db", &q())
            .await
            .unwrap()
            .value
            .is_none()
    );

    // Authorize, as a proxy asks about an incoming connection.
    let ask = |uri: String| AuthorizeRequest {
        target: "db".into(),
        client_cert_uri: uri,
        client_cert_serial: leaf.serial_number.clone(),
        ..AuthorizeRequest::default()
    };
    let allowed = client
        .agent()
        .authorize(&ask(spiffe.clone()), &w())
        .await
        .unwrap();
    assert!(allowed.authorized, "{allowed:?}");
    assert!(!allowed.reason.is_empty());
    let billing = format!("spiffe://{td}/ns/default/dc/{DATACENTER}/svc/billing");
    let denied = client.agent().authorize(&ask(billing), &w()).await.unwrap();
    assert!(!denied.authorized, "{denied:?}");
    assert!(!denied.reason.is_empty());
    let foreign = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web";
    let outsider = client
        .agent()
        .authorize(&ask(foreign.to_owned()), &w())
        .await
        .unwrap();
    // Consul decides on the service name alone here: the trust domain is the TLS layer's business
    // (the proxy verified the chain against the roots before asking), so this is allowed.
    assert!(outsider.authorized, "{outsider:?}");
    let garbage = client
        .agent()
        .authorize(&ask("not a spiffe id".to_owned()), &w())
        .await;
    assert_eq!(
        garbage
            .as_ref()
            .err()
            .and_then(consul_client::Error::status),
        Some(400),
        "{garbage:?}"
    );

    // Removing web's allow leaves the wildcard deny in charge.
    assert!(
        connect
            .delete_intention("db", &source("web", IntentionAction::Allow), &w())
            .await
            .unwrap()
    );
    assert!(
        !connect
            .intention_check("web", "db", &q())
            .await
            .unwrap()
            .value
    );
    let now_denied = client.agent().authorize(&ask(spiffe), &w()).await.unwrap();
    assert!(!now_denied.authorized);
    server.shutdown().await;
}

#[tokio::test]
async fn connect_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = start(Some(dir.path())).await;
    let roots_before = client.connect().ca_roots(&q()).await.unwrap();
    client
        .connect()
        .upsert_intention(
            "db",
            SourceIntention {
                name: "web".into(),
                action: Some(IntentionAction::Allow),
                ..SourceIntention::default()
            },
            &w(),
        )
        .await
        .unwrap();
    server.shutdown().await;

    let (server, client) = start(Some(dir.path())).await;
    let roots_after = client.connect().ca_roots(&q()).await.unwrap();
    assert_eq!(
        roots_after.value, roots_before.value,
        "the same CA and trust domain after a restart"
    );
    assert!(roots_after.meta.last_index >= roots_before.meta.last_index);
    let leaf = client.agent().leaf_cert("web", &q()).await.unwrap().value;
    assert_eq!(
        leaf.service_uri,
        format!(
            "spiffe://{}/ns/default/dc/{DATACENTER}/svc/web",
            roots_before.value.trust_domain
        )
    );
    let exact = client
        .connect()
        .intention_get_exact("web", "db", &q())
        .await
        .unwrap()
        .value;
    assert_eq!(exact.and_then(|i| i.action), Some(IntentionAction::Allow));
    server.shutdown().await;
}
