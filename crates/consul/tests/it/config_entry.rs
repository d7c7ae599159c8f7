//! Config entries: typed kinds keep unknown fields through a read-modify-write (what mesh-init does
//! to service-defaults, spec §3.6), other kinds stay untyped, CAS and deletes send the right calls.

use std::time::Duration;

use consul_client::config_entry::{
    ConfigEntry, PassiveHealthCheck, ProxyDefaults, SERVICE_DEFAULTS, ServiceDefaults,
    UpstreamConfig, UpstreamConfiguration,
};
use consul_client::{NanosDuration, QueryOptions, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn service_defaults_round_trip_keeps_unknown_fields() {
    let existing = json!({
        "Kind": "service-defaults", "Name": "web", "Protocol": "http",
        "RateLimits": {"InstanceLevel": {"RequestsPerSecond": 10}},
        "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 500, "FutureKnob": 3}},
        "CreateIndex": 30, "ModifyIndex": 31
    });
    let consul = FakeConsul::start(move |request| match request.method.as_str() {
        "GET" => Reply::json(existing.clone()).index(31),
        "PUT" => Reply::json(json!(true)),
        _ => Reply::raw(405, "no"),
    })
    .await;
    let client = consul.client();
    let read = QueryOptions {
        namespace: Some("ns1".into()),
        partition: Some("p1".into()),
        ..Default::default()
    };
    let entry = client
        .config_entries()
        .get(SERVICE_DEFAULTS, "web", &read)
        .await
        .unwrap()
        .value
        .unwrap();
    let ConfigEntry::ServiceDefaults(mut defaults) = entry else {
        panic!("expected service-defaults");
    };
    assert_eq!(defaults.protocol, "http");
    assert!(defaults.extra.contains_key("RateLimits"));
    let upstream = defaults
        .upstream_config
        .get_or_insert_with(Default::default);
    let upstream = upstream.defaults.get_or_insert_with(Default::default);
    assert!(upstream.passive_health_check.is_none());
    upstream.passive_health_check = Some(PassiveHealthCheck {
        interval: Some(NanosDuration(Duration::from_secs(10))),
        max_failures: 5,
        enforcing_consecutive_gateway_failure: Some(100),
        max_ejection_percent: Some(50),
        ..Default::default()
    });
    let index = defaults.modify_index;
    let written = client
        .config_entries()
        .set_cas(
            &ConfigEntry::ServiceDefaults(defaults),
            index,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert!(written);

    let requests = consul.requests();
    assert_eq!(requests[0].path, "/v1/config/service-defaults/web");
    assert_eq!(requests[0].param("ns"), Some("ns1"));
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path, "/v1/config");
    assert_eq!(requests[1].param("cas"), Some("31"));
    assert_eq!(
        requests[1].json(),
        json!({
            "Kind": "service-defaults", "Name": "web", "Protocol": "http",
            "UpstreamConfig": {"Defaults": {
                "ConnectTimeoutMs": 500,
                "PassiveHealthCheck": {"Interval": 10_000_000_000u64, "MaxFailures": 5,
                                       "EnforcingConsecutiveGatewayFailure": 100,
                                       "MaxEjectionPercent": 50},
                "FutureKnob": 3
            }},
            "CreateIndex": 30, "ModifyIndex": 31,
            "RateLimits": {"InstanceLevel": {"RequestsPerSecond": 10}}
        })
    );
}

#[tokio::test]
async fn a_missing_entry_is_none_and_a_false_answer_is_reported() {
    let consul = FakeConsul::start(|request| match request.method.as_str() {
        "GET" => Reply::raw(
            404,
            "Config entry not found for \"service-defaults\" / \"api\"",
        )
        .index(12),
        "PUT" => Reply::json(json!(false)),
        _ => Reply::raw(405, "no"),
    })
    .await;
    let client = consul.client();
    let missing = client
        .config_entries()
        .get(SERVICE_DEFAULTS, "api", &QueryOptions::default())
        .await
        .unwrap();
    assert!(missing.value.is_none());
    assert_eq!(missing.meta.last_index, 12);
    let entry = ConfigEntry::ServiceDefaults(ServiceDefaults {
        name: "api".into(),
        upstream_config: Some(UpstreamConfiguration {
            defaults: Some(UpstreamConfig::default()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let applied = client
        .config_entries()
        .set(&entry, &WriteOptions::default())
        .await
        .unwrap();
    assert!(!applied);
    let put = consul.requests().pop().unwrap();
    assert_eq!(put.param("cas"), None);
    assert_eq!(
        put.json(),
        json!({"Kind": "service-defaults", "Name": "api", "UpstreamConfig": {"Defaults": {}}})
    );
}

#[tokio::test]
async fn list_mixes_typed_and_untyped_kinds() {
    let consul = FakeConsul::always(
        Reply::json(json!([
            {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"},
             "MeshGateway": {"Mode": "local"}, "CreateIndex": 1, "ModifyIndex": 2},
            {"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": true},
             "TLS": {"Incoming": {"TLSMinVersion": "TLSv1_2", "CipherSuites": null}},
             "ModifyIndex": 3},
            {"Kind": "service-router", "Name": "web", "Routes": [{"Match": {}}], "ModifyIndex": 4}
        ]))
        .index(4),
    )
    .await;
    let entries = consul
        .client()
        .config_entries()
        .list("proxy-defaults", &QueryOptions::default())
        .await
        .unwrap()
        .value;
    assert_eq!(entries.len(), 3);
    let ConfigEntry::ProxyDefaults(ProxyDefaults {
        config,
        mesh_gateway,
        ..
    }) = &entries[0]
    else {
        panic!("expected proxy-defaults, got {:?}", entries[0]);
    };
    assert_eq!(config["protocol"], "http");
    assert_eq!(
        mesh_gateway.mode,
        consul_client::catalog::MeshGatewayMode::Local
    );
    let ConfigEntry::Mesh(mesh) = &entries[1] else {
        panic!("expected mesh");
    };
    assert!(
        mesh.transparent_proxy
            .as_ref()
            .unwrap()
            .mesh_destinations_only
    );
    assert_eq!(
        mesh.tls
            .as_ref()
            .unwrap()
            .incoming
            .as_ref()
            .unwrap()
            .tls_min_version,
        "TLSv1_2"
    );
    assert_eq!(entries[1].name(), "mesh");
    assert_eq!(entries[2].kind(), "service-router");
    assert_eq!(entries[2].name(), "web");
    assert_eq!(entries[2].modify_index(), 4);
    // An untyped entry goes back out as it came in.
    assert_eq!(
        serde_json::to_value(&entries[2]).unwrap(),
        json!({"Kind": "service-router", "Name": "web", "Routes": [{"Match": {}}], "ModifyIndex": 4})
    );
    assert_eq!(consul.only_request().path, "/v1/config/proxy-defaults");
}

#[tokio::test]
async fn deletes_with_and_without_cas() {
    let consul =
        FakeConsul::scripted(vec![Reply::json(json!({})), Reply::json(json!(false))]).await;
    let client = consul.client();
    client
        .config_entries()
        .delete("service-defaults", "web", &WriteOptions::default())
        .await
        .unwrap();
    let deleted = client
        .config_entries()
        .delete_cas("service-defaults", "web", 31, &WriteOptions::default())
        .await
        .unwrap();
    assert!(!deleted);
    let requests = consul.requests();
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(requests[0].path, "/v1/config/service-defaults/web");
    assert_eq!(requests[0].param("cas"), None);
    assert_eq!(requests[1].param("cas"), Some("31"));
}

#[tokio::test]
async fn a_bad_field_in_an_entry_is_named() {
    let consul = FakeConsul::always(Reply::json(json!([
        {"Kind": "service-defaults", "Name": "ok"},
        {"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": "soon"}}}
    ])))
    .await;
    let err = consul
        .client()
        .config_entries()
        .list("service-defaults", &QueryOptions::default())
        .await
        .unwrap_err();
    match &err {
        consul_client::Error::Decode { field, path, .. } => {
            assert_eq!(field, "[1].UpstreamConfig.Defaults.ConnectTimeoutMs");
            assert_eq!(path, "/v1/config/service-defaults");
        }
        other => panic!("expected a decode error, got {other}"),
    }
    for (value, field) in [
        (json!({"Name": "x"}), "Kind"),
        (json!({"Kind": 3}), "Kind"),
        (json!([]), "."),
        (
            json!({"Kind": "mesh", "TLS": {"Incoming": {"CipherSuites": "all"}}}),
            "TLS.Incoming.CipherSuites",
        ),
    ] {
        let err = ConfigEntry::from_value(value).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}
