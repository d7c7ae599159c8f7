//! Health: service and connect endpoints with their filters, checks by service, node and state.

use consul_client::catalog::ServiceKind;
use consul_client::health::{HealthState, HealthStatus, ServiceHealthOptions};
use consul_client::{Consistency, QueryOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

fn entry(kind: &str, id: &str, status: &str) -> serde_json::Value {
    json!({
        "Node": {"ID": "n-1", "Node": "node-1", "Address": "10.0.0.1", "Datacenter": "dc1",
                 "TaggedAddresses": {"lan": "10.0.0.1"}, "Meta": {}, "CreateIndex": 1, "ModifyIndex": 1},
        "Service": {"Kind": kind, "ID": id, "Service": "db-sidecar-proxy", "Tags": ["v1"],
                    "Address": "10.0.0.9", "Port": 20000, "Weights": {"Passing": 1, "Warning": 1},
                    "EnableTagOverride": false, "Meta": null,
                    "Proxy": {"DestinationServiceName": "db", "DestinationServiceID": "db-1",
                              "LocalServicePort": 5432, "Mode": "", "MeshGateway": {}, "Expose": {},
                              "Config": {"protocol": "tcp"}},
                    "TaggedAddresses": {"lan_ipv4": {"Address": "10.0.0.9", "Port": 20000}},
                    "Datacenter": "dc1", "PeerName": ""},
        "Checks": [{"Node": "node-1", "CheckID": "serfHealth", "Name": "Serf Health Status",
                    "Status": "passing", "Notes": "", "Output": "Agent alive", "ServiceID": "",
                    "ServiceName": "", "ServiceTags": [], "Type": "", "Definition": {},
                    "CreateIndex": 1, "ModifyIndex": 1},
                   {"Node": "node-1", "CheckID": format!("{id}-consul-dataplane"), "Name": "Consul dataplane readiness",
                    "Status": status, "ServiceID": id, "ServiceName": "db-sidecar-proxy",
                    "Type": "consul-ecs-health-check", "Definition": {}, "CreateIndex": 2, "ModifyIndex": 3}]
    })
}

#[tokio::test]
async fn connect_health_finds_upstream_proxies() {
    let consul = FakeConsul::always(
        Reply::json(json!([entry(
            "connect-proxy",
            "db-1-sidecar-proxy",
            "passing"
        )]))
        .index(77)
        .header("X-Consul-KnownLeader", "true")
        .header("X-Consul-LastContact", "12"),
    )
    .await;
    let filters = ServiceHealthOptions {
        passing_only: true,
        tags: vec!["v1".into()],
    };
    let options = QueryOptions {
        consistency: Consistency::Stale,
        index: Some(70),
        wait: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    let response = consul
        .client()
        .health()
        .connect("db", &filters, &options)
        .await
        .unwrap();

    let request = consul.only_request();
    assert_eq!(request.path, "/v1/health/connect/db");
    assert_eq!(request.param("passing"), Some("1"));
    assert_eq!(request.params("tag"), ["v1"]);
    assert_eq!(request.param("index"), Some("70"));
    assert_eq!(request.param("wait"), Some("30000ms"));
    assert_eq!(request.param("stale"), Some(""));
    assert_eq!(response.meta.last_index, 77);
    assert!(response.meta.known_leader);
    assert_eq!(
        response.meta.last_contact,
        std::time::Duration::from_millis(12)
    );
    let entry = &response.value[0];
    assert_eq!(entry.service.kind, ServiceKind::ConnectProxy);
    let proxy = entry.service.proxy.as_ref().unwrap();
    assert_eq!(proxy.destination_service_name, "db");
    assert_eq!(proxy.local_service_port, 5432);
    assert_eq!(entry.service.tagged_addresses["lan_ipv4"].port, 20000);
    assert_eq!(entry.node.address, "10.0.0.1");
    assert_eq!(entry.aggregated_status(), HealthStatus::Passing);
}

#[tokio::test]
async fn service_health_reports_critical_instances() {
    let consul =
        FakeConsul::always(Reply::json(json!([entry("", "web-1", "critical")])).index(3)).await;
    let response = consul
        .client()
        .health()
        .service(
            "web",
            &ServiceHealthOptions::default(),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let request = consul.only_request();
    assert_eq!(request.path, "/v1/health/service/web");
    assert_eq!(request.param("passing"), None);
    assert_eq!(response.value[0].service.kind, ServiceKind::Typical);
    assert_eq!(
        response.value[0].aggregated_status(),
        HealthStatus::Critical
    );
}

#[tokio::test]
async fn checks_by_service_node_and_state() {
    let check = json!([{"Node": "node-1", "CheckID": "c1", "Name": "c", "Status": "warning",
                        "ServiceID": "web-1", "ServiceName": "web", "Type": "http",
                        "Definition": {"HTTP": "http://10.0.0.1/health", "Interval": "10s",
                                       "Timeout": "1s", "Header": {"X-A": ["b"]}},
                        "CreateIndex": 1, "ModifyIndex": 9}]);
    let consul = FakeConsul::always(Reply::json(check).index(9)).await;
    let client = consul.client_with(|c| {
        c.namespace = Some("team".into());
        c.partition = Some("p".into());
    });
    let options = QueryOptions {
        filter: Some("ServiceID == `web-1`".into()),
        ..Default::default()
    };
    let by_service = client.health().checks("web", &options).await.unwrap();
    let definition = &by_service.value[0].definition;
    assert_eq!(definition.http, "http://10.0.0.1/health");
    assert_eq!(
        definition.interval.unwrap().0,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(definition.header["X-A"], ["b"]);
    assert_eq!(by_service.value[0].status, HealthStatus::Warning);
    client
        .health()
        .node("node-1", &QueryOptions::default())
        .await
        .unwrap();
    client
        .health()
        .state(HealthState::Critical, &QueryOptions::default())
        .await
        .unwrap();
    client
        .health()
        .state(HealthState::Any, &QueryOptions::default())
        .await
        .unwrap();

    let requests = consul.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/health/checks/web",
            "/v1/health/node/node-1",
            "/v1/health/state/critical",
            "/v1/health/state/any"
        ]
    );
    // The filter is sent exactly as consul-ecs writes it, backticks included.
    assert_eq!(requests[0].param("filter"), Some("ServiceID == `web-1`"));
    assert_eq!(
        requests[0].raw_query,
        "filter=ServiceID%20%3D%3D%20%60web-1%60&ns=team&partition=p"
    );
    assert!(requests.iter().all(|r| r.param("ns") == Some("team")));
}
