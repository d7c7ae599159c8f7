//! The typed model: derived predicates, name and namespace helpers, TLS resolution, and the error API.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consul_ecs_config::{
    Config, ConfigError, DEFAULT_GATEWAY_PORT, GatewayKind, MeshGatewayMode, TlsSettings, Violation,
};
use serde_json::{Value, json};

/// A small valid config with `extra` merged in at the top level.
fn config(extra: Value) -> Config {
    let mut document = json!({
        "bootstrapDir": "/consul",
        "consulServers": { "hosts": "consul.example" },
        "service": { "port": 8080 }
    });
    for (key, value) in extra.as_object().unwrap() {
        document[key] = value.clone();
    }
    Config::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{document}: {e}"))
}

#[test]
fn mesh_predicates() {
    // (extra top-level fields, is_gateway, transparent_proxy_enabled, consul_dns_enabled)
    let cases = [
        (json!({}), false, true, false),
        (
            json!({"transparentProxy": {"consulDNS": {"enabled": true}}}),
            false,
            true,
            true,
        ),
        (
            json!({"transparentProxy": {"enabled": false, "consulDNS": {"enabled": true}}}),
            false,
            false,
            false,
        ),
        (
            json!({"gateway": {"kind": "mesh-gateway"}}),
            true,
            false,
            false,
        ),
        (
            json!({"gateway": {"kind": "api-gateway"},
                   "transparentProxy": {"enabled": true, "consulDNS": {"enabled": true}}}),
            true,
            false,
            false,
        ),
    ];
    for (extra, gateway, tproxy, dns) in cases {
        let c = config(extra.clone());
        assert_eq!(c.is_gateway(), gateway, "is_gateway for {extra}");
        assert_eq!(c.transparent_proxy_enabled(), tproxy, "tproxy for {extra}");
        assert_eq!(c.consul_dns_enabled(), dns, "dns for {extra}");
    }
}

#[test]
fn service_name_falls_back_to_the_lower_cased_family() {
    let cases = [
        (json!({}), "Web-Frontend", "web-frontend"),
        (
            json!({"service": {"name": "api", "port": 1}}),
            "Web-Frontend",
            "api",
        ),
        (
            json!({"service": {"name": "", "port": 1}}),
            "ORDERS",
            "orders",
        ),
        (
            json!({"gateway": {"kind": "mesh-gateway"}}),
            "Mesh-GW",
            "mesh-gw",
        ),
        (
            json!({"gateway": {"kind": "mesh-gateway", "name": "edge"}}),
            "Mesh-GW",
            "edge",
        ),
        // A gateway ignores the service's name.
        (
            json!({"service": {"name": "api", "port": 1}, "gateway": {"kind": "api-gateway"}}),
            "Family",
            "family",
        ),
    ];
    for (extra, family, expected) in cases {
        assert_eq!(
            config(extra.clone()).service_name(family),
            expected,
            "{extra}"
        );
    }
}

#[test]
fn namespace_partition_and_health_port_come_from_the_gateway_or_the_service() {
    let service = config(json!({
        "service": {"port": 1, "namespace": "svc-ns", "partition": "svc-part"},
        "proxy": {"healthCheckPort": 23000}
    }));
    assert_eq!(
        (
            service.namespace(),
            service.partition(),
            service.health_check_port()
        ),
        ("svc-ns", "svc-part", 23000)
    );

    let gateway = config(json!({
        "service": {"port": 1, "namespace": "svc-ns", "partition": "svc-part"},
        "proxy": {"healthCheckPort": 23000},
        "gateway": {"kind": "terminating-gateway", "namespace": "gw-ns", "partition": "gw-part"}
    }));
    assert_eq!(
        (
            gateway.namespace(),
            gateway.partition(),
            gateway.health_check_port()
        ),
        ("gw-ns", "gw-part", 22000)
    );
}

#[test]
fn tls_settings_resolve_against_the_defaults() {
    let c = config(json!({"consulServers": {
        "hosts": "consul.example",
        "defaults": {"caCertFile": "/ca.pem", "tls": false, "tlsServerName": "server.dc1.consul"},
        "http": {"https": false, "tlsServerName": "http.dc1.consul"},
        "grpc": {"caCertFile": "/grpc.pem"}
    }}));
    let servers = &c.consul_servers;
    assert_eq!(
        servers.http_tls(),
        TlsSettings {
            enabled: false,
            ca_cert_file: Some("/ca.pem".into()),
            server_name: Some("http.dc1.consul".into()),
        }
    );
    assert_eq!(
        servers.grpc_tls(),
        TlsSettings {
            enabled: false,
            ca_cert_file: Some("/grpc.pem".into()),
            server_name: Some("server.dc1.consul".into()),
        }
    );
    assert_eq!(servers.http_scheme(), "http");

    // `http.tls` has no say over the scheme; `https` alone decides.
    let c = config(json!({"consulServers": {"hosts": "h", "http": {"tls": false}}}));
    assert_eq!(c.consul_servers.http_scheme(), "https");
    assert!(c.consul_servers.http_tls().enabled);
    // gRPC TLS follows `defaults.tls` unless overridden.
    assert!(c.consul_servers.grpc_tls().enabled);
}

#[test]
fn server_name_falls_back_to_hosts_unless_discovery_runs_a_command() {
    let cases = [
        (json!({"hosts": "consul.example"}), Some("consul.example")),
        (
            json!({"hosts": "consul.example", "defaults": {"tlsServerName": "sni"}}),
            Some("sni"),
        ),
        (json!({"hosts": "exec=/bin/discover -q addrs"}), None),
        (json!({"hosts": ""}), None),
    ];
    for (servers, expected) in cases {
        let c = config(json!({ "consulServers": servers.clone() }));
        let servers_cfg = &c.consul_servers;
        let tls = servers_cfg.grpc_tls();
        assert_eq!(
            servers_cfg.server_name(&tls).as_deref(),
            expected,
            "{servers}"
        );
    }
}

#[test]
fn controller_partition() {
    let cases = [
        (json!({}), None),
        (
            json!({"controller": {"partition": "ignored-when-off"}}),
            None,
        ),
        (
            json!({"controller": {"partitionsEnabled": true}}),
            Some("default"),
        ),
        (
            json!({"controller": {"partitionsEnabled": true, "partition": "p1"}}),
            Some("p1"),
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(
            config(extra.clone()).controller.effective_partition(),
            expected,
            "{extra}"
        );
    }
}

#[test]
fn gateway_service_port() {
    let cases = [
        (json!({"kind": "mesh-gateway"}), 8443),
        (
            json!({"kind": "mesh-gateway", "lanAddress": {"port": 9443}}),
            9443,
        ),
        (
            json!({"kind": "mesh-gateway", "lanAddress": {"address": "10.0.0.1"}}),
            8443,
        ),
        (
            json!({"kind": "terminating-gateway", "lanAddress": {"port": 9443}}),
            8443,
        ),
    ];
    for (gateway, expected) in cases {
        let c = config(json!({ "gateway": gateway.clone() }));
        assert_eq!(
            c.gateway.as_ref().unwrap().service_port(),
            expected,
            "{gateway}"
        );
    }
    let c = config(json!({"gateway": {"kind": "mesh-gateway", "wanAddress": {"address": "x"}}}));
    let gateway = c.gateway.unwrap();
    assert_eq!(gateway.kind, GatewayKind::MeshGateway);
    assert_eq!(
        gateway.wan_address.unwrap().port_or_default(),
        DEFAULT_GATEWAY_PORT
    );
}

#[test]
fn typed_values_of_an_extensive_config() {
    let c = config(json!({
        "service": {"port": 9000, "weights": {"passing": 3, "warning": 1},
                    "networkResilienceConfig": {"enabled": true, "outlierDetection": {"interval": 1500000000}}},
        "proxy": {"upstreams": [{"destinationName": "db", "localBindPort": 5432,
                                 "meshGateway": {"mode": "remote"}}],
                  "meshGateway": {"mode": "none"}},
        "transparentProxy": {"excludeInboundPorts": [9102], "excludeUIDs": ["1000"]}
    }));
    assert_eq!(c.service.port, 9000);
    assert_eq!(c.service.weights.unwrap().passing, 3);
    let od = &c
        .service
        .network_resilience
        .as_ref()
        .unwrap()
        .outlier_detection;
    assert_eq!(od.interval, Duration::from_millis(1500));
    assert_eq!(od.max_failures, 0);
    assert_eq!(od.enforcing_consecutive_gateway_failure, 100);
    assert_eq!(od.enforcing_consecutive_5xx, None);
    assert_eq!(
        c.proxy.upstreams[0].mesh_gateway,
        Some(MeshGatewayMode::Remote)
    );
    assert_eq!(c.proxy.mesh_gateway, Some(MeshGatewayMode::None));
    assert_eq!(c.transparent_proxy.exclude_inbound_ports, vec![9102]);
    assert_eq!(c.transparent_proxy.exclude_uids, vec!["1000".to_owned()]);
}

#[test]
fn error_lists_every_violation_like_upstream() {
    let err = Config::from_json(r#"{"bootstrapDir":""}"#).unwrap_err();
    assert_eq!(
        err.violations(),
        &[
            Violation {
                path: "bootstrapDir".into(),
                message: "String length must be greater than or equal to 1".into()
            },
            Violation {
                path: "(root)".into(),
                message: "consulServers is required".into()
            },
        ]
    );
    assert_eq!(
        err.to_string(),
        "2 errors occurred:\n\
         \t* bootstrapDir: String length must be greater than or equal to 1\n\
         \t* (root): consulServers is required\n"
    );

    let err = Config::from_json(
        r#"{"bootstrapDir":"/c","consulServers":{"hosts":"h"},"service":{"port":1,"checks":[]}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 error occurred:\n\t* service: Additional property checks is not allowed\n"
    );
}

#[test]
fn text_that_is_not_json_names_line_and_column() {
    let err = Config::from_json("{\n  \"bootstrapDir\": /consul\n}").unwrap_err();
    match &err {
        ConfigError::NotJson { line, column, .. } => assert_eq!((*line, *column), (2, 19)),
        other => panic!("expected NotJson, got {other:?}"),
    }
    assert!(err.violations().is_empty());
    assert_eq!(
        err.to_string(),
        "not valid JSON: expected value at line 2 column 19"
    );
}

#[test]
fn meta_keys_with_dots_keep_their_path() {
    let err = Config::from_json(
        r#"{"bootstrapDir":"/c","consulServers":{"hosts":"h"},
            "consulLogin":{"meta":{"consul.hashicorp.com/task-id":5}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 error occurred:\n\t* consulLogin.meta.consul.hashicorp.com/task-id: \
         Invalid type. Expected: string, given: integer\n"
    );
}
