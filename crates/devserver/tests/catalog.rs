//! Catalog: registration and deregistration as consul-ecs and other clients do them, and the read
//! endpoints' shapes.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const NODE: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn consul_ecs_service_registration_round_trips() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_service_registration()).await;

    let r = get(addr, "/v1/health/service/web").await;
    assert_eq!(r.status, 200);
    let entries = r.json();
    let entry = &entries[0];
    assert_eq!(entries.as_array().unwrap().len(), 1);
    // The node was created by a SkipNodeUpdate registration, with the given address and meta.
    assert_eq!(entry["Node"]["Node"], NODE);
    assert_eq!(entry["Node"]["Address"], "10.1.2.3");
    assert_eq!(entry["Node"]["Datacenter"], "dc1");
    assert_eq!(entry["Node"]["Meta"], json!({"synthetic-node": "true"}));
    let svc = &entry["Service"];
    assert_eq!(svc["ID"], "web-abcdef");
    assert_eq!(svc["Service"], "web");
    assert_eq!(svc["Tags"], json!(["a", "b"]));
    assert_eq!(svc["Port"], 8080);
    assert_eq!(svc["Address"], "10.1.2.3");
    assert_eq!(
        svc["TaggedAddresses"],
        json!({"virtual": {"Address": "10.1.2.3", "Port": 8080}})
    );
    assert_eq!(
        svc["Meta"]["task-arn"],
        "arn:aws:ecs:us-east-1:123456789012:task/test/abcdef"
    );
    assert_eq!(svc["Weights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(
        svc["Locality"],
        json!({"Region": "us-east-1", "Zone": "us-east-1a"})
    );
    assert_eq!(
        svc["Proxy"],
        json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
    );
    assert_eq!(svc["Connect"], json!({}));
    assert!(
        svc.get("Kind").is_none(),
        "a typical service has no Kind key: {svc}"
    );
    let checks = entry["Checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    let app = checks
        .iter()
        .find(|c| c["CheckID"] == "web-abcdef-app")
        .unwrap();
    assert_eq!(app["Node"], NODE);
    assert_eq!(app["Status"], "critical");
    assert_eq!(app["ServiceID"], "web-abcdef");
    assert_eq!(app["ServiceName"], "web");
    assert_eq!(app["ServiceTags"], json!(["a", "b"]));
    assert_eq!(app["Type"], "consul-ecs-health-check");
    assert_eq!(app["Output"], "Service web is not ready");
    assert_eq!(app["Definition"], json!({}));
    assert!(app["CreateIndex"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn sidecar_proxy_payload_is_stored_faithfully() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_service_registration()).await;
    let sent = ecs_proxy_registration();
    register(addr, &sent).await;

    let r = get(addr, "/v1/catalog/service/web-sidecar-proxy").await;
    let list = r.json();
    let got = &list[0];
    assert_eq!(got["ServiceKind"], "connect-proxy");
    assert_eq!(got["ServiceID"], "web-abcdef-sidecar-proxy");
    assert_eq!(got["ServiceName"], "web-sidecar-proxy");
    assert_eq!(got["ServicePort"], 20000);
    assert_eq!(got["Node"], NODE);
    let proxy = &got["ServiceProxy"];
    let sent_proxy = &sent["Service"]["Proxy"];
    assert_eq!(proxy["DestinationServiceName"], "web");
    assert_eq!(proxy["DestinationServiceID"], "web-abcdef");
    assert_eq!(proxy["LocalServicePort"], 8080);
    assert_eq!(
        proxy["Config"], sent_proxy["Config"],
        "free-form proxy config comes back unchanged"
    );
    assert_eq!(proxy["MeshGateway"], json!({"Mode": "local"}));
    assert_eq!(proxy["Expose"], sent_proxy["Expose"]);
    assert_eq!(
        proxy["Upstreams"][0],
        json!({
            "DestinationType": "service", "DestinationName": "db", "Datacenter": "dc2",
            "LocalBindAddress": "127.0.0.1", "LocalBindPort": 5432,
            "Config": {"connect_timeout_ms": 5000, "limits": {"max_connections": 10}},
            "MeshGateway": {"Mode": "local"}
        })
    );
    assert_eq!(
        proxy["Upstreams"][1],
        json!({"DestinationType": "service", "DestinationNamespace": "ns1", "DestinationPartition": "p1", "DestinationName": "cache", "Datacenter": "", "LocalBindPort": 6379, "MeshGateway": {}})
    );

    // The proxy is the Connect endpoint of "web".
    let r = get(addr, "/v1/catalog/connect/web").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["ServiceID"], "web-abcdef-sidecar-proxy");
    let r = get(addr, "/v1/health/connect/web").await;
    assert_eq!(r.json()[0]["Service"]["ID"], "web-abcdef-sidecar-proxy");
    assert_eq!(
        r.json()[0]["Checks"][0]["CheckID"],
        "web-abcdef-sidecar-proxy-consul-dataplane"
    );
}

#[tokio::test]
async fn mesh_gateway_keeps_lan_and_wan_addresses() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_mesh_gateway_registration()).await;
    let r = get(addr, "/v1/health/service/mgw").await;
    let svc = &r.json()[0]["Service"];
    assert_eq!(svc["Kind"], "mesh-gateway");
    assert_eq!(svc["Port"], 8443);
    assert_eq!(
        svc["TaggedAddresses"],
        json!({"lan": {"Address": "10.1.2.9", "Port": 8443}, "wan": {"Address": "203.0.113.7", "Port": 443}})
    );
    assert_eq!(
        svc["Proxy"]["Config"],
        json!({"envoy_gateway_no_default_bind": true})
    );
    let r = get(addr, "/v1/catalog/service/mgw").await;
    assert_eq!(
        r.json()[0]["ServiceTaggedAddresses"]["wan"],
        json!({"Address": "203.0.113.7", "Port": 443})
    );
}

#[tokio::test]
async fn defaults_are_applied_like_consul() {
    let server = start().await;
    let addr = server.http_addr();
    // No ID, no weights, lower-case keys in tagged addresses (Go decodes case-insensitively).
    register(
        addr,
        &json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "redis", "Port": 6379,
            "TaggedAddresses": {"lan": {"address": "10.0.0.1", "port": 6379}}},
            "Check": {"Name": "redis alive", "ServiceID": "redis"}}),
    )
    .await;
    let r = get(addr, "/v1/catalog/service/redis").await;
    let s = &r.json()[0];
    assert_eq!(s["ServiceID"], "redis");
    assert_eq!(s["ServiceWeights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(
        s["ServiceTaggedAddresses"]["lan"],
        json!({"Address": "10.0.0.1", "Port": 6379})
    );
    assert_eq!(s["ServiceTags"], json!([]));
    let r = get(addr, "/v1/health/checks/redis").await;
    let c = &r.json()[0];
    assert_eq!(c["CheckID"], "redis alive", "CheckID defaults to the name");
    assert_eq!(c["Status"], "critical", "status defaults to critical");
    // Invalid weights fall back to {1,1}, as consul-ecs's zero weights do.
    register(addr, &json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "w", "Weights": {"Passing": 0, "Warning": 0}}}))
        .await;
    let r = get(addr, "/v1/catalog/service/w").await;
    assert_eq!(
        r.json()[0]["ServiceWeights"],
        json!({"Passing": 1, "Warning": 1})
    );
}

#[tokio::test]
async fn skip_node_update_keeps_existing_node_fields() {
    let server = start().await;
    let addr = server.http_addr();
    // The controller registers the node first (no SkipNodeUpdate).
    register(
        addr,
        &json!({"Node": NODE, "Address": "10.9.9.9", "NodeMeta": {"synthetic-node": "true"}}),
    )
    .await;
    let before = get(addr, &format!("/v1/catalog/node/{}", enc(NODE)))
        .await
        .json();
    register(addr, &ecs_service_registration()).await;
    let after = get(addr, &format!("/v1/catalog/node/{}", enc(NODE)))
        .await
        .json();
    assert_eq!(
        after["Node"]["Address"], "10.9.9.9",
        "SkipNodeUpdate must not rewrite the node address"
    );
    assert_eq!(after["Node"]["ModifyIndex"], before["Node"]["ModifyIndex"]);
    assert_eq!(after["Services"]["web-abcdef"]["Service"], "web");
    // Without SkipNodeUpdate the node is rewritten.
    register(addr, &json!({"Node": NODE, "Address": "10.8.8.8"})).await;
    let again = get(addr, &format!("/v1/catalog/node/{}", enc(NODE)))
        .await
        .json();
    assert_eq!(again["Node"]["Address"], "10.8.8.8");
}

#[tokio::test]
async fn health_sync_updates_checks_with_one_register() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_service_registration()).await;
    register(addr, &ecs_proxy_registration()).await;
    // health-sync's discovery query.
    let r = get(
        addr,
        "/v1/health/checks/web?filter=ServiceID%20%3D%3D%20%60web-abcdef%60",
    )
    .await;
    let mut checks = r.json().as_array().unwrap().clone();
    assert_eq!(checks.len(), 2);
    let service_index = get(addr, "/v1/catalog/service/web").await.json()[0]["ModifyIndex"].clone();
    for c in &mut checks {
        c["Status"] = json!("passing");
        c["Output"] = json!(format!(
            "ECS health status is \"HEALTHY\" for container {:?}",
            c["CheckID"].as_str().unwrap()
        ));
    }
    register(
        addr,
        &json!({"Node": NODE, "SkipNodeUpdate": true, "Checks": checks}),
    )
    .await;
    let r = get(addr, "/v1/health/checks/web").await;
    let after = r.json();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["Status"] == "passing"),
        "{after}"
    );
    let idx: Vec<u64> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ModifyIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(idx[0], idx[1], "both checks land at one index");
    assert_eq!(
        get(addr, "/v1/catalog/service/web").await.json()[0]["ModifyIndex"],
        service_index,
        "the service is untouched"
    );
    // The proxy check is separate and still critical.
    let r = get(addr, "/v1/health/checks/web-sidecar-proxy").await;
    assert_eq!(r.json()[0]["Status"], "critical");
    // Re-sending the same checks changes nothing.
    let before = get(addr, "/v1/health/checks/web").await.index();
    register(
        addr,
        &json!({"Node": NODE, "SkipNodeUpdate": true, "Checks": after}),
    )
    .await;
    assert_eq!(get(addr, "/v1/health/checks/web").await.index(), before);
}

#[tokio::test]
async fn deregister_service_check_and_node() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_service_registration()).await;
    register(addr, &ecs_proxy_registration()).await;
    register(addr, &json!({"Node": NODE, "Address": "10.1.2.3", "SkipNodeUpdate": true, "Check": {"CheckID": "node-check", "Name": "node", "Status": "passing"}})).await;

    // A check.
    let r = put_json(
        addr,
        "/v1/catalog/deregister",
        &json!({"Node": NODE, "CheckID": "web-abcdef-app"}),
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!(true)));
    let ids: Vec<Value> = get(addr, "/v1/health/checks/web")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CheckID"].clone())
        .collect();
    assert_eq!(ids, vec![json!("web-abcdef-consul-dataplane")]);

    // A service takes its checks with it.
    let r = put_json(
        addr,
        "/v1/catalog/deregister",
        &json!({"Node": NODE, "ServiceID": "web-abcdef"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/v1/catalog/service/web").await.json(), json!([]));
    assert_eq!(get(addr, "/v1/health/checks/web").await.json(), json!([]));
    assert!(
        get(addr, "/v1/catalog/services")
            .await
            .json()
            .get("web")
            .is_none()
    );
    assert!(
        get(addr, "/v1/catalog/services")
            .await
            .json()
            .get("web-sidecar-proxy")
            .is_some()
    );

    // Deregistering what is not there succeeds.
    let r = put_json(
        addr,
        "/v1/catalog/deregister",
        &json!({"Node": NODE, "ServiceID": "nope"}),
    )
    .await;
    assert_eq!(r.status, 200);

    // The node takes everything.
    let r = put_json(addr, "/v1/catalog/deregister", &json!({"Node": NODE})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(addr, &format!("/v1/catalog/node/{}", enc(NODE)))
            .await
            .json(),
        Value::Null
    );
    assert_eq!(
        get(addr, "/v1/catalog/service/web-sidecar-proxy")
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        get(addr, &format!("/v1/health/node/{}", enc(NODE)))
            .await
            .json(),
        json!([])
    );
    let nodes = get(addr, "/v1/catalog/nodes").await.json();
    assert_eq!(
        nodes.as_array().unwrap().len(),
        1,
        "only the server's own node is left: {nodes}"
    );
}

#[tokio::test]
async fn catalog_reads_have_consul_shapes_and_headers() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/catalog/datacenters").await;
    assert_eq!(r.json(), json!(["dc1"]));
    // The server's own node and its consul service are there, as on a Consul server.
    let r = get(addr, "/v1/catalog/services").await;
    assert_eq!(r.json(), json!({"consul": []}));
    assert_eq!(r.header("x-consul-knownleader"), Some("true"));
    assert_eq!(r.header("x-consul-lastcontact"), Some("0"));
    assert_eq!(r.header("x-consul-effective-consistency"), Some("leader"));
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("allow"));
    assert!(r.index() > 0);
    let r = get(addr, "/v1/catalog/nodes").await;
    let node = &r.json()[0];
    assert_eq!(node["Node"], "dev-node");
    assert_eq!(node["Meta"]["consul-version"], devserver::CONSUL_VERSION);
    let r = get(addr, "/v1/health/node/dev-node").await;
    assert_eq!(r.json()[0]["CheckID"], "serfHealth");
    assert_eq!(r.json()[0]["Status"], "passing");
    let r = get(addr, "/v1/catalog/node-services/dev-node").await;
    assert_eq!(r.json()["Services"][0]["ID"], "consul");
    let r = get(addr, "/v1/catalog/node-services/nobody").await;
    assert_eq!(r.status, 404);
    let r = get(addr, "/v1/catalog/services?stale").await;
    assert_eq!(r.header("x-consul-effective-consistency"), Some("stale"));
    let r = get(addr, "/v1/catalog/services?stale&consistent").await;
    assert_eq!(r.status, 400);

    register(addr, &json!({"Node": "n2", "Address": "10.0.0.2", "NodeMeta": {"rack": "r1"}, "Service": {"Service": "api", "Tags": ["v2"], "Meta": {"team": "x"}}})).await;
    let r = get(addr, "/v1/catalog/services").await;
    assert_eq!(r.json(), json!({"api": ["v2"], "consul": []}));
    let r = get(
        addr,
        "/v1/catalog/services?filter=ServiceMeta.team%20%3D%3D%20x",
    )
    .await;
    assert_eq!(r.json(), json!({"api": ["v2"]}));
    let r = get(addr, "/v1/catalog/nodes?filter=Meta.rack%20%3D%3D%20r1").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["Node"], "n2");
    let r = get(addr, "/v1/catalog/nodes?node-meta=rack:r1").await;
    assert_eq!(r.json()[0]["Node"], "n2");
    let r = get(addr, "/v1/catalog/service/api?tag=v2").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = get(addr, "/v1/catalog/service/api?tag=v3").await;
    assert_eq!(r.json(), json!([]));
    let r = get(addr, "/v1/catalog/node/n2?filter=Service%20%3D%3D%20api").await;
    assert_eq!(r.json()["Services"]["api"]["Meta"], json!({"team": "x"}));
}

#[tokio::test]
async fn other_datacenters_are_unreachable() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/catalog/services?dc=dc2").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "No path to datacenter")
    );
    let r = get(addr, "/v1/catalog/services?dc=dc1").await;
    assert_eq!(r.status, 200);
    let r = put_json(
        addr,
        "/v1/catalog/register",
        &json!({"Datacenter": "dc9", "Node": "n", "Address": "1.2.3.4"}),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "No path to datacenter")
    );
}

#[tokio::test]
async fn invalid_registrations_are_refused_with_consuls_messages() {
    let server = start().await;
    let addr = server.http_addr();
    let cases = [
        (json!({"Address": "1.2.3.4"}), 500, "Must provide node"),
        (
            json!({"Node": "n"}),
            500,
            "Must provide address if SkipNodeUpdate is not set",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "ID": "not-a-uuid"}),
            500,
            "Bad node ID",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Service": {"ID": "x"}}),
            500,
            "Must provide service name",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Service": {"Service": "p", "Kind": "connect-proxy", "Port": 1}}),
            500,
            "Proxy.DestinationServiceName must be non-empty",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Service": {"Service": "g", "Kind": "mesh-gateway"}}),
            500,
            "Port must be non-zero for a Mesh Gateway",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Service": {"Service": "s", "Kind": "bogus"}}),
            400,
            "Invalid service kind",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Check": {"Name": "c", "ServiceID": "missing"}}),
            500,
            "Missing service registration",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Check": {"Name": "c", "Status": "fine"}}),
            400,
            "Invalid check status",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "NodeMeta": {"consul-x": "y"}}),
            500,
            "reserved for internal use",
        ),
        (
            json!({"Node": "n", "Address": "1.2.3.4", "Service": {"Service": "s", "Port": "eighty"}}),
            400,
            "Service.Port",
        ),
    ];
    for (body, status, msg) in cases {
        let r = put_json(addr, "/v1/catalog/register", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(msg), "{body}: {}", r.text());
    }
    // None of them left anything behind.
    assert!(get(addr, "/v1/catalog/node/n").await.json().is_null());
}
