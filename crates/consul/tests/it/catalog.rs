//! Catalog: the registration payloads consul-ecs sends (spec §3, §4.2, §6.3) go out exactly, and
//! the read endpoints send the right paths and parameters and decode Consul's shapes.

use std::collections::BTreeMap;

use consul_client::catalog::{
    AgentService, CatalogDeregistration, CatalogRegistration, ExposeConfig, ExposePath, Locality,
    MeshGatewayConfig, MeshGatewayMode, ProxyConfig, ProxyMode, ServiceAddress, ServiceKind,
    Upstream, UpstreamDestinationType, Weights,
};
use consul_client::health::{HealthCheck, HealthStatus};
use consul_client::{QueryOptions, Secret, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";

fn meta() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("task-id".to_string(), "abcdef".to_string()),
        (
            "task-arn".to_string(),
            "arn:aws:ecs:us-east-1:123456789012:task/test/abcdef".to_string(),
        ),
        ("source".to_string(), "consul-ecs".to_string()),
    ])
}

fn app_check(service_id: &str, container: &str) -> HealthCheck {
    HealthCheck {
        check_id: format!("{service_id}-{container}"),
        name: "Consul ECS health check synced".into(),
        check_type: "consul-ecs-health-check".into(),
        service_id: service_id.into(),
        namespace: "ns1".into(),
        status: HealthStatus::Critical,
        output: "Service web is not ready".into(),
        notes: format!(
            "consul-ecs created and updates this check because the {container} container has an ECS health check."
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn service_registration_sends_the_consul_ecs_payload() {
    let consul = FakeConsul::always(Reply::ok_true()).await;
    let client = consul.client_with(|c| {
        c.token = Some(Secret::new("reg-token"));
        c.namespace = Some("ns1".into());
        c.partition = Some("p1".into());
    });
    let service = AgentService {
        id: "web-abcdef".into(),
        service: "web".into(),
        tags: vec!["a".into(), "b".into()],
        meta: meta(),
        port: 8080,
        address: "10.1.2.3".into(),
        tagged_addresses: BTreeMap::from([(
            "virtual".to_string(),
            ServiceAddress {
                address: "10.1.2.3".into(),
                port: 8080,
            },
        )]),
        weights: Some(Weights {
            passing: 1,
            warning: 1,
        }),
        enable_tag_override: true,
        namespace: "ns1".into(),
        partition: "p1".into(),
        locality: Some(Locality {
            region: "us-east-1".into(),
            zone: "us-east-1a".into(),
        }),
        ..Default::default()
    };
    let registration = CatalogRegistration {
        node: CLUSTER.into(),
        node_meta: BTreeMap::from([("synthetic-node".to_string(), "true".to_string())]),
        address: "10.1.2.3".into(),
        skip_node_update: true,
        partition: "p1".into(),
        service: Some(service),
        checks: vec![app_check("web-abcdef", "app")],
        ..Default::default()
    };
    client
        .catalog()
        .register(&registration, &WriteOptions::default())
        .await
        .unwrap();

    let request = consul.only_request();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/v1/catalog/register");
    assert_eq!(request.param("ns"), Some("ns1"));
    assert_eq!(request.param("partition"), Some("p1"));
    assert_eq!(request.token(), Some("reg-token"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "Node": CLUSTER,
            "NodeMeta": {"synthetic-node": "true"},
            "Address": "10.1.2.3",
            "SkipNodeUpdate": true,
            "Partition": "p1",
            "Service": {
                "ID": "web-abcdef",
                "Service": "web",
                "Tags": ["a", "b"],
                "Meta": {
                    "task-id": "abcdef",
                    "task-arn": "arn:aws:ecs:us-east-1:123456789012:task/test/abcdef",
                    "source": "consul-ecs"
                },
                "Port": 8080,
                "Address": "10.1.2.3",
                "TaggedAddresses": {"virtual": {"Address": "10.1.2.3", "Port": 8080}},
                "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": true,
                "Namespace": "ns1",
                "Partition": "p1",
                "Locality": {"Region": "us-east-1", "Zone": "us-east-1a"}
            },
            "Checks": [{
                "CheckID": "web-abcdef-app",
                "Name": "Consul ECS health check synced",
                "Type": "consul-ecs-health-check",
                "ServiceID": "web-abcdef",
                "Namespace": "ns1",
                "Status": "critical",
                "Output": "Service web is not ready",
                "Notes": "consul-ecs created and updates this check because the app container has an ECS health check."
            }]
        })
    );
}

#[tokio::test]
async fn sidecar_registration_carries_proxy_upstreams_and_expose() {
    let consul = FakeConsul::always(Reply::ok_true()).await;
    let proxy = ProxyConfig {
        destination_service_name: "web".into(),
        destination_service_id: "web-abcdef".into(),
        local_service_port: 8080,
        local_service_address: "127.0.0.2".into(),
        mode: ProxyMode::Transparent,
        config: json!({"protocol": "http"}).as_object().cloned().unwrap(),
        upstreams: vec![Upstream {
            destination_type: UpstreamDestinationType::Service,
            destination_namespace: "ns2".into(),
            destination_partition: "p2".into(),
            destination_name: "db".into(),
            destination_peer: "peer1".into(),
            datacenter: "dc2".into(),
            local_bind_address: "127.0.0.1".into(),
            local_bind_port: 1234,
            config: json!({"connect_timeout_ms": 500})
                .as_object()
                .cloned()
                .unwrap(),
            mesh_gateway: MeshGatewayConfig {
                mode: MeshGatewayMode::Local,
            },
            ..Default::default()
        }],
        mesh_gateway: MeshGatewayConfig {
            mode: MeshGatewayMode::Remote,
        },
        expose: ExposeConfig {
            checks: true,
            paths: vec![ExposePath {
                listener_port: 21500,
                path: "/health".into(),
                local_path_port: 8080,
                protocol: "http".into(),
                ..Default::default()
            }],
        },
        ..Default::default()
    };
    let registration = CatalogRegistration {
        node: CLUSTER.into(),
        address: "10.1.2.3".into(),
        skip_node_update: true,
        service: Some(AgentService {
            kind: ServiceKind::ConnectProxy,
            id: "web-abcdef-sidecar-proxy".into(),
            service: "web-sidecar-proxy".into(),
            port: 20000,
            address: "10.1.2.3".into(),
            proxy: Some(proxy),
            ..Default::default()
        }),
        ..Default::default()
    };
    consul
        .client()
        .catalog()
        .register(&registration, &WriteOptions::default())
        .await
        .unwrap();

    let body = consul.only_request().json();
    assert_eq!(body["Service"]["Kind"], "connect-proxy");
    assert_eq!(
        body["Service"]["Proxy"],
        json!({
            "DestinationServiceName": "web",
            "DestinationServiceID": "web-abcdef",
            "LocalServiceAddress": "127.0.0.2",
            "LocalServicePort": 8080,
            "Mode": "transparent",
            "Config": {"protocol": "http"},
            "Upstreams": [{
                "DestinationType": "service",
                "DestinationNamespace": "ns2",
                "DestinationPartition": "p2",
                "DestinationName": "db",
                "DestinationPeer": "peer1",
                "Datacenter": "dc2",
                "LocalBindAddress": "127.0.0.1",
                "LocalBindPort": 1234,
                "Config": {"connect_timeout_ms": 500},
                "MeshGateway": {"Mode": "local"}
            }],
            "MeshGateway": {"Mode": "remote"},
            "Expose": {"Checks": true, "Paths": [{
                "ListenerPort": 21500, "Path": "/health", "LocalPathPort": 8080, "Protocol": "http"
            }]}
        })
    );
    // Nothing consul-ecs leaves unset goes out.
    let service = body["Service"].as_object().unwrap();
    for absent in [
        "Tags",
        "Meta",
        "Weights",
        "Locality",
        "TaggedAddresses",
        "Namespace",
    ] {
        assert!(
            !service.contains_key(absent),
            "{absent} should be omitted: {body}"
        );
    }
}

#[tokio::test]
async fn mesh_gateway_registration_has_lan_and_wan_addresses() {
    let consul = FakeConsul::always(Reply::ok_true()).await;
    let registration = CatalogRegistration {
        node: CLUSTER.into(),
        address: "10.1.2.3".into(),
        skip_node_update: true,
        service: Some(AgentService {
            kind: ServiceKind::MeshGateway,
            id: "gw-abcdef".into(),
            service: "gw".into(),
            address: "10.9.9.9".into(),
            port: 9443,
            tagged_addresses: BTreeMap::from([
                (
                    "lan".to_string(),
                    ServiceAddress {
                        address: "10.9.9.9".into(),
                        port: 9443,
                    },
                ),
                (
                    "wan".to_string(),
                    ServiceAddress {
                        address: "203.0.113.7".into(),
                        port: 8443,
                    },
                ),
            ]),
            proxy: Some(ProxyConfig {
                config: json!({"envoy_dns_discovery_type": "STRICT_DNS"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    consul
        .client()
        .catalog()
        .register(&registration, &WriteOptions::default())
        .await
        .unwrap();
    let body = consul.only_request().json();
    assert_eq!(
        body["Service"],
        json!({
            "Kind": "mesh-gateway",
            "ID": "gw-abcdef",
            "Service": "gw",
            "Address": "10.9.9.9",
            "Port": 9443,
            "TaggedAddresses": {
                "lan": {"Address": "10.9.9.9", "Port": 9443},
                "wan": {"Address": "203.0.113.7", "Port": 8443}
            },
            "Proxy": {"Config": {"envoy_dns_discovery_type": "STRICT_DNS"}}
        })
    );
}

#[tokio::test]
async fn health_sync_resends_fetched_checks_without_losing_fields() {
    // What /v1/health/checks returns, including fields this crate does not name.
    let fetched = json!([{
        "Node": CLUSTER,
        "CheckID": "web-abcdef-app",
        "Name": "Consul ECS health check synced",
        "Status": "critical",
        "Notes": "n",
        "Output": "Service web is not ready",
        "ServiceID": "web-abcdef",
        "ServiceName": "web",
        "ServiceTags": [],
        "Type": "consul-ecs-health-check",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {"Interval": "0s", "Timeout": "0s", "DeregisterCriticalServiceAfter": "0s",
                        "HTTP": "", "Header": null, "Method": "", "Body": "", "TLSServerName": "",
                        "TLSSkipVerify": false, "TCP": "", "TCPUseTLS": false, "UDP": "", "GRPC": "",
                        "OSService": "", "GRPCUseTLS": false, "H2PING": "", "H2PingUseTLS": false},
        "CreateIndex": 12,
        "ModifyIndex": 15
    }]);
    let consul = FakeConsul::scripted(vec![Reply::json(fetched).index(15), Reply::ok_true()]).await;
    let client = consul.client();
    let options = QueryOptions {
        filter: Some("ServiceID == `web-abcdef`".into()),
        ..Default::default()
    };
    let mut checks = client.health().checks("web", &options).await.unwrap().value;
    assert_eq!(checks.len(), 1);
    checks[0].status = HealthStatus::Passing;
    checks[0].output = "ECS health status is \"HEALTHY\" for container \"web-abcdef-app\"".into();
    let update = CatalogRegistration {
        node: CLUSTER.into(),
        skip_node_update: true,
        checks,
        ..Default::default()
    };
    client
        .catalog()
        .register(&update, &WriteOptions::default())
        .await
        .unwrap();

    let requests = consul.requests();
    assert_eq!(requests[0].path, "/v1/health/checks/web");
    assert_eq!(
        requests[0].param("filter"),
        Some("ServiceID == `web-abcdef`")
    );
    let body = requests[1].json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["Node", "Checks", "SkipNodeUpdate"],
        "no Address, no Service"
    );
    let check = &body["Checks"][0];
    assert_eq!(check["Status"], "passing");
    assert_eq!(check["ModifyIndex"], 15);
    assert_eq!(
        check["Definition"]["H2PING"], "",
        "unknown definition fields survive"
    );
    assert_eq!(check["Definition"]["Interval"], "0s");
    assert_eq!(check["Interval"], "", "unknown check fields survive");
}

#[tokio::test]
async fn controller_node_registration_and_task_cleanup() {
    let consul = FakeConsul::always(Reply::ok_true()).await;
    let client = consul.client();
    let partition = WriteOptions {
        partition: Some("p1".into()),
        ..Default::default()
    };
    let node = CatalogRegistration {
        node: CLUSTER.into(),
        node_meta: BTreeMap::from([("synthetic-node".to_string(), "true".to_string())]),
        address: "10.0.0.5".into(),
        partition: "p1".into(),
        ..Default::default()
    };
    client.catalog().register(&node, &partition).await.unwrap();
    let gone = CatalogDeregistration {
        node: CLUSTER.into(),
        service_id: "web-abcdef".into(),
        namespace: "ns1".into(),
        partition: "p1".into(),
        ..Default::default()
    };
    client
        .catalog()
        .deregister(&gone, &partition)
        .await
        .unwrap();

    let requests = consul.requests();
    assert_eq!(requests[0].param("partition"), Some("p1"));
    assert_eq!(
        requests[0].json(),
        json!({"Node": CLUSTER, "NodeMeta": {"synthetic-node": "true"}, "Address": "10.0.0.5", "Partition": "p1"})
    );
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path, "/v1/catalog/deregister");
    assert_eq!(
        requests[1].json(),
        json!({"Node": CLUSTER, "ServiceID": "web-abcdef", "Namespace": "ns1", "Partition": "p1"})
    );
}

#[tokio::test]
async fn an_empty_node_is_refused_before_sending() {
    let consul = FakeConsul::always(Reply::ok_true()).await;
    let err = consul
        .client()
        .catalog()
        .register(&CatalogRegistration::default(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, consul_client::Error::InvalidArgument(_)),
        "{err}"
    );
    assert!(consul.requests().is_empty());
}

#[tokio::test]
async fn node_services_escapes_the_cluster_arn_and_lists_every_namespace() {
    let consul = FakeConsul::always(
        Reply::json(json!({
            "Node": {"ID": "", "Node": CLUSTER, "Address": "10.0.0.5", "Datacenter": "dc1",
                     "TaggedAddresses": null, "Meta": {"synthetic-node": "true"},
                     "CreateIndex": 5, "ModifyIndex": 6},
            "Services": [
                {"ID": "web-abcdef", "Service": "web", "Tags": null, "Meta": {"task-id": "abcdef"},
                 "Port": 8080, "Address": "10.1.2.3", "Weights": {"Passing": 1, "Warning": 1},
                 "EnableTagOverride": false, "Namespace": "ns1", "Partition": "p1",
                 "CreateIndex": 7, "ModifyIndex": 7},
                {"Kind": "connect-proxy", "ID": "web-abcdef-sidecar-proxy", "Service": "web-sidecar-proxy",
                 "Tags": [], "Meta": null, "Port": 20000, "Address": "10.1.2.3",
                 "Proxy": {"DestinationServiceName": "web", "Upstreams": null, "MeshGateway": {}, "Expose": {}},
                 "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false}
            ]
        }))
        .index(42),
    )
    .await;
    let options = QueryOptions {
        namespace: Some("*".into()),
        partition: Some("p1".into()),
        merge_central_config: true,
        ..Default::default()
    };
    let response = consul
        .client()
        .catalog()
        .node_services(CLUSTER, &options)
        .await
        .unwrap();
    let request = consul.only_request();
    assert_eq!(
        request.path,
        "/v1/catalog/node-services/arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acluster%2Ftest"
    );
    assert_eq!(request.param("ns"), Some("*"));
    assert_eq!(request.param("partition"), Some("p1"));
    assert_eq!(request.param("merge-central-config"), Some(""));
    assert_eq!(response.meta.last_index, 42);
    let list = response.value.unwrap();
    assert_eq!(list.node.unwrap().meta["synthetic-node"], "true");
    assert_eq!(list.services.len(), 2);
    assert_eq!(list.services[0].meta["task-id"], "abcdef");
    assert!(list.services[0].tags.is_empty(), "null tags read as empty");
    assert_eq!(list.services[1].kind, ServiceKind::ConnectProxy);
    assert!(list.services[1].meta.is_empty());
}

#[tokio::test]
async fn catalog_reads_send_their_parameters() {
    let consul = FakeConsul::start(|request| match request.path.as_str() {
        "/v1/catalog/datacenters" => Reply::json(json!(["dc1", "dc2"])),
        "/v1/catalog/nodes" => Reply::json(json!([{"ID": "id1", "Node": "n1", "Address": "10.0.0.1",
            "Datacenter": "dc1", "TaggedAddresses": {"lan": "10.0.0.1"}, "Meta": null,
            "CreateIndex": 1, "ModifyIndex": 2}]))
        .index(2),
        "/v1/catalog/services" => Reply::json(json!({"consul": [], "web": ["a", "b"], "db": null})).index(3),
        "/v1/catalog/service/web" => Reply::json(json!([{"ID": "id1", "Node": "n1", "Address": "10.0.0.1",
            "Datacenter": "dc1", "TaggedAddresses": null, "NodeMeta": null, "ServiceKind": "",
            "ServiceID": "web-1", "ServiceName": "web", "ServiceAddress": "", "ServiceTaggedAddresses": null,
            "ServiceTags": ["a"], "ServiceMeta": {}, "ServicePort": 80,
            "ServiceWeights": {"Passing": 1, "Warning": 1}, "ServiceEnableTagOverride": false,
            "ServiceProxy": {"MeshGateway": {}, "Expose": {}}, "ServiceConnect": {},
            "CreateIndex": 4, "ModifyIndex": 4}]))
        .index(4),
        "/v1/catalog/node/unknown" => Reply::json(json!(null)).index(5),
        other => Reply::raw(404, &format!("no route {other}")),
    })
    .await;
    let client = consul.client_with(|c| c.datacenter = Some("dc1".into()));
    let catalog = client.catalog();
    assert_eq!(catalog.datacenters().await.unwrap(), ["dc1", "dc2"]);
    let nodes = catalog.nodes(&QueryOptions::default()).await.unwrap();
    assert_eq!(nodes.value[0].tagged_addresses["lan"], "10.0.0.1");
    let services = catalog.services(&QueryOptions::default()).await.unwrap();
    assert_eq!(services.value["web"], ["a", "b"]);
    assert!(services.value["db"].is_empty());
    let filter = QueryOptions {
        filter: Some("ServiceMeta.version == \"2\"".into()),
        datacenter: Some("dc2".into()),
        ..Default::default()
    };
    let web = catalog.service("web", &["a", "b"], &filter).await.unwrap();
    assert_eq!(web.value[0].service_port, 80);
    assert_eq!(web.value[0].service_weights.passing, 1);
    assert!(
        catalog
            .node("unknown", &QueryOptions::default())
            .await
            .unwrap()
            .value
            .is_none()
    );

    let requests = consul.requests();
    assert!(requests.iter().all(|r| r.method == "GET"));
    assert_eq!(
        requests[1].param("dc"),
        Some("dc1"),
        "client default datacenter"
    );
    let service = &requests[3];
    assert_eq!(service.params("tag"), ["a", "b"]);
    assert_eq!(
        service.param("filter"),
        Some("ServiceMeta.version == \"2\"")
    );
    assert_eq!(service.param("dc"), Some("dc2"), "per-call datacenter wins");
}
