//! Config entries: store, read, list, delete, check-and-set, and validation errors.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn store_read_list_delete() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/config/service-defaults/web").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Config entry not found for \"service-defaults\" / \"web\""
    );
    // mesh-init's network resilience entry: durations as Go nanoseconds, newer outlier fields included.
    let entry = json!({
        "Kind": "service-defaults", "Name": "web", "Protocol": "http",
        "UpstreamConfig": {"Defaults": {"PassiveHealthCheck": {"Interval": 10_000_000_000u64, "MaxFailures": 5,
            "EnforcingConsecutiveGatewayFailure": 100, "MaxEjectionPercent": 50}}}
    });
    let r = put_json(addr, "/v1/config", &entry).await;
    assert_eq!((r.status, r.json()), (200, json!(true)), "{}", r.text());
    let r = get(addr, "/v1/config/service-defaults/web").await;
    let got = r.json();
    assert_eq!(got["Kind"], "service-defaults");
    assert_eq!(got["Protocol"], "http");
    assert_eq!(got["UpstreamConfig"], entry["UpstreamConfig"]);
    let ci = got["CreateIndex"].as_u64().unwrap();
    assert_eq!(got["ModifyIndex"].as_u64().unwrap(), ci);
    assert_eq!(r.index(), ci);
    // snake_case and lower-case keys are accepted and come back in Consul's spelling.
    let r = put_json(addr, "/v1/config", &json!({"kind": "proxy-defaults", "name": "global", "config": {"protocol": "http"}, "mesh_gateway": {"mode": "local"}})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = get(addr, "/v1/config/proxy-defaults/global").await.json();
    assert_eq!(got["MeshGateway"], json!({"Mode": "local"}));
    assert_eq!(got["Config"], json!({"protocol": "http"}));
    // The path form of PUT.
    let r = put_json(
        addr,
        "/v1/config/mesh/mesh",
        &json!({"TransparentProxy": {"MeshDestinationsOnly": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        get(addr, "/v1/config/mesh/mesh").await.json()["TransparentProxy"]["MeshDestinationsOnly"],
        true
    );
    for (kind, body) in [
        (
            "service-intentions",
            json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow"}, {"Name": "*", "Action": "deny"}]}),
        ),
        (
            "service-resolver",
            json!({"Kind": "service-resolver", "Name": "db", "ConnectTimeout": "15s", "DefaultSubset": "v1", "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"}}}),
        ),
        (
            "service-router",
            json!({"Kind": "service-router", "Name": "web", "Routes": [{"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "admin"}}]}),
        ),
        (
            "service-splitter",
            json!({"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 90}, {"Weight": 10, "ServiceSubset": "v2"}]}),
        ),
        (
            "exported-services",
            json!({"Kind": "exported-services", "Name": "default", "Services": [{"Name": "web", "Consumers": [{"Peer": "other"}]}]}),
        ),
    ] {
        let r = put_json(addr, "/v1/config", &body).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let list = get(addr, &format!("/v1/config/{kind}")).await.json();
        assert_eq!(list.as_array().unwrap().len(), 1, "{kind}");
        assert_eq!(list[0]["Name"], body["Name"]);
    }
    let list = get(addr, "/v1/config/service-defaults").await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let r = delete(addr, "/v1/config/service-defaults/web").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(addr, "/v1/config/service-defaults/web").await.status,
        404
    );
    assert_eq!(
        get(addr, "/v1/config/service-defaults").await.json(),
        json!([])
    );
}

#[tokio::test]
async fn check_and_set() {
    let server = start().await;
    let addr = server.http_addr();
    let e = json!({"Kind": "service-defaults", "Name": "api", "Protocol": "http"});
    assert_eq!(
        put_json(addr, "/v1/config?cas=0", &e).await.json(),
        json!(true)
    );
    assert_eq!(
        put_json(addr, "/v1/config?cas=0", &e).await.json(),
        json!(false)
    );
    let idx = get(addr, "/v1/config/service-defaults/api").await.json()["ModifyIndex"]
        .as_u64()
        .unwrap();
    let e2 = json!({"Kind": "service-defaults", "Name": "api", "Protocol": "grpc"});
    assert_eq!(
        put_json(addr, &format!("/v1/config?cas={}", idx + 5), &e2)
            .await
            .json(),
        json!(false)
    );
    assert_eq!(
        put_json(addr, &format!("/v1/config?cas={idx}"), &e2)
            .await
            .json(),
        json!(true)
    );
    let idx2 = get(addr, "/v1/config/service-defaults/api").await.json()["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert!(idx2 > idx);
    assert_eq!(
        delete(addr, &format!("/v1/config/service-defaults/api?cas={idx}"))
            .await
            .json(),
        json!(false)
    );
    assert_eq!(
        delete(addr, &format!("/v1/config/service-defaults/api?cas={idx2}"))
            .await
            .json(),
        json!(true)
    );
    assert_eq!(
        get(addr, "/v1/config/service-defaults/api").await.status,
        404
    );
}

#[tokio::test]
async fn validation_errors_name_the_problem() {
    let server = start().await;
    let addr = server.http_addr();
    let cases = [
        (
            json!({"Kind": "bogus-kind", "Name": "x"}),
            "invalid config entry kind: bogus-kind",
        ),
        (json!({"Name": "x"}), "Kind is required"),
        (json!({"Kind": "service-defaults"}), "Name is required"),
        (
            json!({"Kind": "service-defaults", "Name": "x", "Protocol": 7}),
            "Protocol: expected a string, got number 7",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "x", "Unknown": true}),
            "invalid config key \"Unknown\"",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "x", "UpstreamConfig": {"Defaults": {"PassiveHealthCheck": {"Interval": "often"}}}}),
            "UpstreamConfig.Defaults.PassiveHealthCheck.Interval",
        ),
        (
            json!({"Kind": "proxy-defaults", "Name": "web"}),
            "only \"global\" is supported",
        ),
        (
            json!({"Kind": "mesh", "Name": "default"}),
            "only \"mesh\" is supported",
        ),
        (
            json!({"Kind": "service-defaults", "Name": "x", "Mode": "sideways"}),
            "Mode: invalid value",
        ),
        (
            json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web"}]}),
            "Sources[0].Action must be set",
        ),
        (
            json!({"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 50}]}),
            "must add up to 100",
        ),
    ];
    for (body, msg) in cases {
        let r = put_json(addr, "/v1/config", &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.text().starts_with("Request decoding failed: "),
            "{}",
            r.text()
        );
        assert!(r.text().contains(msg), "{body}: {}", r.text());
    }
    let r = put(addr, "/v1/config", "{\"Kind\": ").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("line 1 column"), "{}", r.text());
    let r = get(addr, "/v1/config/bogus-kind/x").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "invalid config entry kind: bogus-kind")
    );
    let r = get(addr, "/v1/config/bogus-kind").await;
    assert_eq!(r.status, 400);
    let r = put_json(
        addr,
        "/v1/config/service-defaults/a",
        &json!({"Kind": "service-defaults", "Name": "b"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        get(addr, "/v1/config/service-defaults").await.json(),
        json!([])
    );
}
