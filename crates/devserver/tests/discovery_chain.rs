//! The compiled discovery chain (default, redirect, failover, subsets, splitter, overrides) and
//! `?merge-central-config` on the catalog and health endpoints.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{Value, json};

async fn chain(addr: SocketAddr, path: &str) -> Value {
    let r = get(addr, path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Chain"].clone()
}

async fn set(addr: SocketAddr, entry: Value) {
    let r = put_json(addr, "/v1/config", &entry).await;
    assert_eq!(r.status, 200, "{entry}: {}", r.text());
}

#[tokio::test]
async fn the_default_chain_resolves_to_the_service_itself() {
    let server = start().await;
    let addr = server.http_addr();
    let td = trust_domain(addr).await;
    let c = chain(addr, "/v1/discovery-chain/web").await;
    let id = "web.default.default.dc1";
    let sni = format!("web.default.dc1.internal.{td}");
    assert_eq!(
        c,
        json!({
            "ServiceName": "web",
            "Namespace": "default",
            "Partition": "default",
            "Datacenter": "dc1",
            "Default": true,
            "Protocol": "tcp",
            "StartNode": format!("resolver:{id}"),
            "Nodes": {
                format!("resolver:{id}"): {
                    "Type": "resolver",
                    "Name": id,
                    "Resolver": {"ConnectTimeout": "5s", "Default": true, "Target": id}
                }
            },
            "Targets": {
                id: {
                    "ConnectTimeout": "5s",
                    "ID": id,
                    "Service": "web",
                    "Namespace": "default",
                    "Partition": "default",
                    "Datacenter": "dc1",
                    "MeshGateway": {},
                    "Subset": {},
                    "TransparentProxy": {},
                    "SNI": sni,
                    "Name": sni
                }
            },
            "AutoVirtualIPs": null,
            "ManualVirtualIPs": null
        })
    );

    // The protocol comes from service-defaults, else proxy-defaults.
    set(addr, json!({"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}, "MeshGateway": {"Mode": "local"}})).await;
    let c = chain(addr, "/v1/discovery-chain/web").await;
    assert_eq!(c["Protocol"], "http");
    assert_eq!(c["Targets"][id]["MeshGateway"], json!({"Mode": "local"}));
    set(
        addr,
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "GRPC"}),
    )
    .await;
    assert_eq!(
        chain(addr, "/v1/discovery-chain/web").await["Protocol"],
        "grpc"
    );

    // Another datacenter.
    let c = chain(addr, "/v1/discovery-chain/web?compile-dc=dc2").await;
    assert_eq!(c["Datacenter"], "dc2");
    assert_eq!(c["StartNode"], "resolver:web.default.default.dc2");
    assert_eq!(
        c["Targets"]["web.default.default.dc2"]["SNI"],
        format!("web.default.dc2.internal.{td}")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn redirects_and_failover_add_targets() {
    let server = start().await;
    let addr = server.http_addr();
    let td = trust_domain(addr).await;

    // Failover to other datacenters, with the resolver's timeout.
    set(
        addr,
        json!({"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "15s",
        "Failover": {"*": {"Datacenters": ["dc3", "dc4"]}}}),
    )
    .await;
    let c = chain(addr, "/v1/discovery-chain/web").await;
    assert!(c.get("Default").is_none(), "a resolver entry is in play");
    let node = &c["Nodes"]["resolver:web.default.default.dc1"]["Resolver"];
    assert_eq!(node["ConnectTimeout"], "15s");
    assert!(node.get("Default").is_none());
    assert_eq!(
        node["Failover"],
        json!({"Targets": ["web.default.default.dc3", "web.default.default.dc4"]})
    );
    let targets = c["Targets"].as_object().unwrap();
    assert_eq!(targets.len(), 3);
    assert_eq!(
        targets["web.default.default.dc4"]["SNI"],
        format!("web.default.dc4.internal.{td}")
    );

    // Failover to another service.
    set(addr, json!({"Kind": "service-resolver", "Name": "api",
        "Failover": {"*": {"Targets": [{"Service": "api-backup"}, {"Service": "api", "Datacenter": "dc2"}]}}})).await;
    let c = chain(addr, "/v1/discovery-chain/api").await;
    assert_eq!(
        c["Nodes"]["resolver:api.default.default.dc1"]["Resolver"]["Failover"]["Targets"],
        json!(["api-backup.default.default.dc1", "api.default.default.dc2"])
    );
    assert_eq!(
        c["Targets"]["api-backup.default.default.dc1"]["Service"],
        "api-backup"
    );

    // A redirect to another datacenter starts the chain there.
    set(
        addr,
        json!({"Kind": "service-resolver", "Name": "db", "Redirect": {"Datacenter": "dc2"}}),
    )
    .await;
    let c = chain(addr, "/v1/discovery-chain/db").await;
    assert_eq!(c["StartNode"], "resolver:db.default.default.dc2");
    assert_eq!(c["Targets"].as_object().unwrap().len(), 1);
    assert_eq!(
        c["Targets"]["db.default.default.dc2"]["SNI"],
        format!("db.default.dc2.internal.{td}")
    );

    // A redirect to another service uses that service's resolver.
    set(
        addr,
        json!({"Kind": "service-resolver", "Name": "legacy", "Redirect": {"Service": "db-v2"}}),
    )
    .await;
    set(addr, json!({"Kind": "service-resolver", "Name": "db-v2", "ConnectTimeout": "3s",
        "DefaultSubset": "v2", "Subsets": {"v2": {"Filter": "Service.Meta.version == v2", "OnlyPassing": true}}})).await;
    let c = chain(addr, "/v1/discovery-chain/legacy").await;
    let id = "v2.db-v2.default.default.dc1";
    assert_eq!(c["ServiceName"], "legacy");
    assert_eq!(c["StartNode"], format!("resolver:{id}"));
    assert_eq!(
        c["Nodes"][format!("resolver:{id}")]["Resolver"]["ConnectTimeout"],
        "3s"
    );
    let t = &c["Targets"][id];
    assert_eq!(t["ServiceSubset"], "v2");
    assert_eq!(
        t["Subset"],
        json!({"Filter": "Service.Meta.version == v2", "OnlyPassing": true})
    );
    assert_eq!(t["SNI"], format!("v2.db-v2.default.dc1.internal.{td}"));

    // A redirect loop is reported, not followed forever.
    set(
        addr,
        json!({"Kind": "service-resolver", "Name": "ping", "Redirect": {"Service": "pong"}}),
    )
    .await;
    set(
        addr,
        json!({"Kind": "service-resolver", "Name": "pong", "Redirect": {"Service": "ping"}}),
    )
    .await;
    let r = get(addr, "/v1/discovery-chain/ping").await;
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("circular resolver redirect"),
        "{}",
        r.text()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn splitters_overrides_and_blocking() {
    let server = start().await;
    let addr = server.http_addr();
    set(
        addr,
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http"}),
    )
    .await;
    set(addr, json!({"Kind": "service-resolver", "Name": "web",
        "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}})).await;
    set(
        addr,
        json!({"Kind": "service-splitter", "Name": "web",
        "Splits": [{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}]}),
    )
    .await;
    let r = get(addr, "/v1/discovery-chain/web").await;
    let index = r.index();
    let c = r.json()["Chain"].clone();
    assert_eq!(c["StartNode"], "splitter:web");
    let splits = c["Nodes"]["splitter:web"]["Splits"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(splits[0]["Weight"], 90);
    assert_eq!(splits[0]["NextNode"], "resolver:v1.web.default.default.dc1");
    assert_eq!(splits[1]["NextNode"], "resolver:v2.web.default.default.dc1");

    // Overrides: TCP drops the splitter; the timeout and gateway mode apply to every target.
    let r = request(
        addr,
        "POST",
        "/v1/discovery-chain/web",
        Some(serde_json::to_vec(&json!({"OverrideProtocol": "tcp", "OverrideConnectTimeout": "7s", "OverrideMeshGateway": {"Mode": "remote"}})).unwrap()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json()["Chain"].clone();
    assert_eq!(c["Protocol"], "tcp");
    assert_eq!(c["StartNode"], "resolver:web.default.default.dc1");
    assert!(c["CustomizationHash"].as_str().unwrap().len() == 8);
    assert_eq!(
        c["Nodes"]["resolver:web.default.default.dc1"]["Resolver"]["ConnectTimeout"],
        "7s"
    );
    assert_eq!(
        c["Targets"]["web.default.default.dc1"]["MeshGateway"],
        json!({"Mode": "remote"})
    );

    // A blocked read wakes when a config entry changes.
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/discovery-chain/web?index={index}&wait=5m"),
        )
        .await
    });
    let r = delete(addr, "/v1/config/service-splitter/web").await;
    assert_eq!(r.status, 200);
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    assert_eq!(
        r.json()["Chain"]["StartNode"],
        "resolver:web.default.default.dc1"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn merge_central_config_fills_proxy_registrations() {
    let server = start().await;
    let addr = server.http_addr();
    register(addr, &ecs_service_registration()).await;
    let mut proxy = ecs_proxy_registration();
    proxy["Service"]["Proxy"]["Config"] = json!({"bind_port": 21000});
    proxy["Service"]["Proxy"]["MeshGateway"] = json!({});
    register(addr, &proxy).await;
    set(
        addr,
        json!({"Kind": "proxy-defaults", "Name": "global",
        "Config": {"protocol": "tcp", "envoy_prometheus_bind_addr": "0.0.0.0:9102", "bind_port": 1},
        "MeshGateway": {"Mode": "local"}, "Mode": "transparent",
        "TransparentProxy": {"OutboundListenerPort": 15002}}),
    )
    .await;
    set(
        addr,
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
        "Expose": {"Checks": true},
        "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 3000}}}),
    )
    .await;

    let node = "arn:aws:ecs:us-east-1:123456789012:cluster%2Ftest";
    let plain = get(addr, &format!("/v1/catalog/node-services/{node}")).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let r = get(
        addr,
        &format!("/v1/catalog/node-services/{node}?filter=ID%20%3D%3D%20%22web-abcdef-sidecar-proxy%22&merge-central-config"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.index() >= plain.index());
    let services = r.json()["Services"].as_array().unwrap().clone();
    assert_eq!(services.len(), 1);
    let p = &services[0]["Proxy"];
    assert_eq!(p["Config"]["bind_port"], 21000, "the registration wins");
    assert_eq!(p["Config"]["protocol"], "http");
    assert_eq!(p["Config"]["envoy_prometheus_bind_addr"], "0.0.0.0:9102");
    assert_eq!(p["Mode"], "transparent");
    assert_eq!(p["MeshGateway"], json!({"Mode": "local"}));
    assert_eq!(p["TransparentProxy"]["OutboundListenerPort"], 15002);
    assert_eq!(p["Expose"]["Checks"], true);
    let db = p["Upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["DestinationName"] == "db")
        .unwrap();
    assert_eq!(
        db["Config"]["connect_timeout_ms"], 5000,
        "the upstream's own value wins"
    );
    assert_eq!(db["MeshGateway"], json!({"Mode": "local"}));
    let cache = p["Upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["DestinationName"] == "cache")
        .unwrap();
    assert_eq!(cache["Config"]["connect_timeout_ms"], 3000);
    assert_eq!(cache["Config"]["protocol"], "tcp");
    assert!(
        p["Upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["DestinationName"] == "*" && u["CentrallyConfigured"] == true),
        "transparent mode adds the centrally configured wildcard upstream"
    );

    // Without the flag the registration comes back as registered; the service itself is never merged.
    let plain_services = plain.json()["Services"].as_array().unwrap().clone();
    let plain_proxy = plain_services
        .iter()
        .find(|s| s["Kind"] == "connect-proxy")
        .unwrap();
    assert_eq!(plain_proxy["Proxy"]["Config"], json!({"bind_port": 21000}));
    assert_eq!(plain_proxy["Proxy"]["Mode"], "");

    // The health endpoint merges too, and a blocked merged read wakes on a config entry change.
    let r = get(
        addr,
        "/v1/health/service/web-sidecar-proxy?merge-central-config",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()[0]["Service"]["Proxy"]["Config"]["protocol"],
        "http"
    );
    let web = get(addr, "/v1/health/service/web?merge-central-config")
        .await
        .json();
    assert!(
        web[0]["Service"]["Proxy"].get("Config").is_none(),
        "plain services are not merged"
    );
    let index = r.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!(
                "/v1/health/service/web-sidecar-proxy?merge-central-config&index={index}&wait=5m"
            ),
        )
        .await
    });
    set(
        addr,
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"}),
    )
    .await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    assert_eq!(
        r.json()[0]["Service"]["Proxy"]["Config"]["protocol"],
        "grpc"
    );
    server.shutdown().await;
}
