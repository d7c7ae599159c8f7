//! Config reading: the JSON consul-ecs writes, the layers, and errors that name the field.

#![allow(clippy::unwrap_used)]

use super::*;

/// What consul-ecs mesh-init writes with login enabled (keys as in its writer).
const ECS_JSON: &str = r#"{"consul":{"addresses":"consul.dc1","grpcPort":8503,"serverWatchDisabled":false,
 "tls":{"disabled":false,"caCertsPath":"/consul/consul-grpc-ca-cert.pem","tlsServerName":"server.dc1.consul"},
 "credentials":{"type":"login","login":{"authMethod":"iam-ecs-service-token","datacenter":"dc1",
   "bearerToken":"eyJ...","meta":{"consul.hashicorp.com/task-id":"abc","consul.hashicorp.com/cluster":"arn:c"}}}},
 "proxy":{"nodeName":"arn:aws:ecs:us-east-1:1:cluster/c","id":"web-abc-sidecar-proxy","namespace":"","partition":""},
 "xdsServer":{"bindAddress":"127.0.0.1"},
 "envoy":{"readyBindAddress":"127.0.0.1","readyBindPort":22000},
 "logging":{"logLevel":"INFO"},
 "dnsServer":{"bindAddress":"127.0.0.1","bindPort":8600},
 "somethingNew":{"x":1}}"#;

fn consul(c: &Config) -> &ConsulSettings {
    match &c.source {
        Source::Consul(s) => s,
        Source::Static(_) => panic!("expected the consul source"),
    }
}

#[test]
fn reads_the_json_consul_ecs_writes() {
    let c = Config::from_json(ECS_JSON).unwrap();
    let s = consul(&c);
    assert_eq!(s.addresses, "consul.dc1");
    assert_eq!(s.http_port, DEFAULT_HTTP_PORT);
    assert!(s.https);
    // consul-ecs' spelling `tlsServerName` is honoured.
    assert_eq!(s.server_name.as_deref(), Some("server.dc1.consul"));
    assert_eq!(
        s.ca_certs_path.as_deref(),
        Some(Path::new("/consul/consul-grpc-ca-cert.pem"))
    );
    assert_eq!(s.node_name, "arn:aws:ecs:us-east-1:1:cluster/c");
    assert_eq!(s.proxy_id, "web-abc-sidecar-proxy");
    match &s.credentials {
        Credentials::Login(l) => {
            assert_eq!(l.auth_method, "iam-ecs-service-token");
            assert_eq!(l.datacenter, "dc1");
            assert_eq!(l.meta["consul.hashicorp.com/task-id"], "abc");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.log_level, "info");
    assert_eq!(c.proxy.ready_addr, "127.0.0.1:22000".parse().unwrap());
    assert_eq!(c.proxy.graceful_addr, "127.0.0.1:20300".parse().unwrap());
    assert_eq!(c.proxy.drain_time, DEFAULT_DRAIN_TIME);
    assert_eq!(c.concurrency, None);
    // Secrets stay out of Debug output.
    assert!(!format!("{c:?}").contains("eyJ"));
}

#[test]
fn server_name_spellings_and_our_http_keys() {
    let c = Config::from_json(
        r#"{"consul":{"addresses":"10.0.0.5","tls":{"serverName":"a","tlsServerName":"b"},
            "http":{"port":8500,"https":false}},"proxy":{"nodeName":"n","id":"p"}}"#,
    )
    .unwrap();
    let s = consul(&c);
    assert_eq!(s.server_name.as_deref(), Some("a"), "serverName wins");
    assert_eq!((s.http_port, s.https), (8500, false));
    // An IP address is never a server name.
    let c = Config::from_json(
        r#"{"consul":{"addresses":"10.0.0.5"},"proxy":{"nodeName":"n","id":"p"}}"#,
    )
    .unwrap();
    assert_eq!(consul(&c).server_name, None);
    let c = Config::from_json(
        r#"{"consul":{"addresses":"exec=discover -q addrs","tls":{"disabled":true}},"proxy":{"nodeName":"n","id":"p"}}"#,
    )
    .unwrap();
    assert_eq!(consul(&c).server_name, None);
    assert!(
        !consul(&c).https,
        "tls.disabled turns HTTPS off unless http.https says otherwise"
    );
}

#[test]
fn env_then_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dp.json");
    std::fs::write(&file, ECS_JSON).unwrap();
    let env = |name: &str| match name {
        ENV_LOG_LEVEL => Some("debug".to_owned()),
        ENV_PROXY_ID => Some("from-env".to_owned()),
        ENV_DRAIN_TIME => Some("5".to_owned()),
        _ => None,
    };
    let args: Vec<String> = [
        "-config-file",
        file.to_str().unwrap(),
        "-proxy-id=from-flag",
        "--envoy-concurrency",
        "3",
        "-tls-disabled",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let c = Config::load(&args, env).unwrap();
    assert_eq!(c.log_level, "debug");
    assert_eq!(consul(&c).proxy_id, "from-flag");
    assert_eq!(c.proxy.drain_time, Duration::from_secs(5));
    assert_eq!(c.concurrency, Some(3));
    assert!(!consul(&c).https);
}

#[test]
fn errors_name_the_field() {
    let check = |json: &str, needle: &str| {
        let err = Config::from_json(json).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    check(r#"{"proxy":{"nodeName":"n","id":"p"}}"#, "consul.addresses");
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n"}}"#,
        "proxy.id",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"id":"p"}}"#,
        "proxy.nodeName",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"},"envoy":{"readyBindPort":"x"}}"#,
        "envoy.readyBindPort",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"},"envoy":{"readyBindPort":70000}}"#,
        "envoy.readyBindPort",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"},"envoy":{"drainTimeSeconds":100000}}"#,
        "envoy.drainTimeSeconds",
    );
    check(
        r#"{"consul":{"addresses":"a","credentials":{"type":"login","login":{"authMethod":"m"}}},"proxy":{"nodeName":"n","id":"p"}}"#,
        "bearerToken",
    );
    check(
        r#"{"consul":{"addresses":"a","credentials":{"type":"oidc"}},"proxy":{"nodeName":"n","id":"p"}}"#,
        "consul.credentials.type",
    );
    check(
        r#"{"mode":"dns-proxy","consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"}}"#,
        "mode",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"},"logging":{"logLevel":"loud"}}"#,
        "logging.logLevel",
    );
    check(
        r#"{"consul":{"addresses":"a"},"proxy":{"nodeName":"n","id":"p"},"envoy":{"balancer":"random"}}"#,
        "envoy.balancer",
    );
    check("[1]", "not a JSON object");
}

#[test]
fn flag_errors() {
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::load(&args, |_| None).unwrap_err().to_string()
    };
    assert!(run(&["-no-such-flag"]).contains("-no-such-flag"));
    assert!(run(&["-proxy-id"]).contains("needs an argument"));
    assert!(run(&["-config-file", "x.yaml"]).contains(".json"));
    assert!(run(&["-envoy-concurrency", "many"]).contains("-envoy-concurrency"));
    assert!(run(&["-log-json=maybe"]).contains("-log-json"));
    assert!(run(&["-config-file", "/nonexistent/dp.json"]).contains("/nonexistent/dp.json"));
}

#[test]
fn deprecated_service_keys_apply_only_without_proxy_keys() {
    let c = Config::from_json(
        r#"{"consul":{"addresses":"a"},"service":{"nodeName":"n","serviceID":"s-sidecar-proxy"}}"#,
    )
    .unwrap();
    assert_eq!(consul(&c).proxy_id, "s-sidecar-proxy");
    let c = Config::from_json(
        r#"{"consul":{"addresses":"a"},"service":{"nodeName":"old","serviceID":"old"},"proxy":{"nodeName":"n","id":"new"}}"#,
    )
    .unwrap();
    assert_eq!(
        (consul(&c).node_name.as_str(), consul(&c).proxy_id.as_str()),
        ("n", "new")
    );
}

#[test]
fn static_section_is_validated() {
    let err = Config::from_json(r#"{"static":{"certFile":"c","keyFile":"k"}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("static.caFile"), "{err}");
    let err = Config::from_json(
        r#"{"static":{"certFile":"c","keyFile":"k","caFile":"a","upstreams":[{"destinationName":"x","endpoints":["nope"]}]}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("static.upstreams[0].endpoints[0]"), "{err}");
}
