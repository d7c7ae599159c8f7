//! How mesh-init reaches Consul: TLS, ACL credentials (static token and login), tenancy, an unreachable
//! server, SIGTERM, re-runs on the same volume, and the service-defaults entry.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_client::config_entry::ConfigEntry;
use consul_client::{QueryOptions, WriteOptions};
use consul_ecs_mesh_init::testing::fake_secret;
use consul_ecs_mesh_init::{Error, run};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

// === TLS ===

struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

fn ca(name: &str) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        ca_cert: cert,
        ca_key: key,
    }
}

fn leaf(pki: &Pki, name: &str) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(pki.ca_cert.der(), &pki.ca_key).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A dev server with HTTPS (certificate for `server.dc1.consul`, signed by `pki`).
async fn https_server(pki: &Pki, dir: &std::path::Path) -> devserver::DevServer {
    let (cert, key) = leaf(pki, "server.dc1.consul");
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server-key.pem"), key).unwrap();
    devserver::DevServer::start(devserver::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        https: Some(devserver::HttpsConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server-key.pem"),
            client_ca_file: None,
        }),
        ..devserver::Config::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn over_https_the_ca_comes_from_the_environment_and_is_written_for_the_dataplane() {
    let h = Harness::start(task("web")).await;
    let pki = ca("consul CA");
    let tls = https_server(&pki, h.dir.path()).await;
    let port = tls.https_addr().unwrap().port();
    let config = h.config(json!({
        "service": {"port": 8080},
        "consulServers": {
            "http": {"port": port, "https": true, "tlsServerName": "server.dc1.consul"},
            "grpc": {"tls": true},
        },
    }));
    let mut env = h.env();
    env.set_var(
        consul_ecs_mesh_init::ENV_HTTPS_CACERT_PEM,
        Some(&pki.ca_pem),
    );
    env.set_var(consul_ecs_mesh_init::ENV_GRPC_CACERT_PEM, Some(&pki.ca_pem));
    run(&config, &env).await.unwrap();

    let services = tls.http_addr().to_string();
    let client = consul_client::Client::new(consul_client::ClientConfig::new(services)).unwrap();
    let listed = client
        .catalog()
        .node_services(CLUSTER_ARN, &QueryOptions::default())
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(listed.services.len(), 2);

    let dir = h.bootstrap();
    let https_ca = dir.join("consul-https-ca-cert.pem");
    let grpc_ca = dir.join("consul-grpc-ca-cert.pem");
    assert_eq!(std::fs::read_to_string(&https_ca).unwrap(), pki.ca_pem);
    assert_eq!(std::fs::read_to_string(&grpc_ca).unwrap(), pki.ca_pem);
    assert_eq!(mode(&https_ca), 0o444);
    assert_eq!(mode(&grpc_ca), 0o444);
    let dataplane = read_json(&dir.join("consul-dataplane.json"));
    assert_eq!(
        dataplane["consul"],
        json!({
            "addresses": "127.0.0.1", "grpcPort": 8503, "serverWatchDisabled": false,
            "tls": {"disabled": false, "caCertsPath": grpc_ca.display().to_string()},
            "http": {"port": port, "https": true, "caCertsPath": https_ca.display().to_string(),
                     "serverName": "server.dc1.consul"},
        })
    );
    tls.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails_at_once_and_says_why() {
    let h = Harness::start(task("web")).await;
    let pki = ca("consul CA");
    let other = ca("someone else");
    let tls = https_server(&pki, h.dir.path()).await;
    let config = h.config(json!({
        "service": {"port": 8080},
        "consulServers": {"http": {"port": tls.https_addr().unwrap().port(), "https": true,
                                   "tlsServerName": "server.dc1.consul"}},
    }));
    let mut env = h.env();
    env.set_var(
        consul_ecs_mesh_init::ENV_HTTPS_CACERT_PEM,
        Some(&other.ca_pem),
    );
    env.retry_budget = Duration::from_secs(600);
    let started = std::time::Instant::now();
    let err = run(&config, &env).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a TLS failure is not retried for the whole budget"
    );
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(!h.bootstrap().join("consul-dataplane.json").exists());
    tls.shutdown().await;
}

// === ACL credentials ===

#[tokio::test]
async fn a_static_token_is_sent_and_no_login_happens_even_when_login_is_enabled() {
    let h = Harness::start(task("web")).await;
    h.proxy.fake_acl();
    let config = h.config(json!({"service": {"port": 8080}, "consulLogin": {"enabled": true}}));
    let mut env = h.env();
    env.set_var(
        consul_ecs_mesh_init::ENV_HTTP_TOKEN,
        Some("static-token-123"),
    );
    run(&config, &env).await.unwrap();
    let seen = h.proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.path != "/v1/acl/login" && s.path != "/v1/acl/logout")
    );
    let writes = h.proxy.writes();
    assert_eq!(writes.len(), 2);
    assert!(
        writes
            .iter()
            .all(|w| w.token.as_deref() == Some("static-token-123"))
    );
    let dataplane = read_json(&h.bootstrap().join("consul-dataplane.json"));
    assert!(
        dataplane["consul"].get("credentials").is_none(),
        "the static token stays out of the file: {dataplane}"
    );
    assert_eq!(mode(&h.bootstrap().join("consul-dataplane.json")), 0o444);
}

#[tokio::test]
async fn login_uses_the_iam_bearer_token_registers_with_the_login_token_and_logs_out() {
    let h = Harness::start(task("web")).await;
    h.proxy.fake_acl();
    let config = h.config(json!({
        "service": {"port": 8080, "partition": "", "namespace": ""},
        "consulLogin": {"enabled": true, "includeEntity": false, "datacenter": "dc1",
                        "meta": {"env": "test"}, "stsEndpoint": "https://sts.example.test"},
    }));
    let mut env = h.env();
    env.aws_credentials = Some(consul_ecs_aws::Credentials::new(
        "AKIDEXAMPLE",
        "secret-key-example",
        None,
        None,
        "test",
    ));
    run(&config, &env).await.unwrap();

    let seen = h.proxy.seen();
    let login = seen.iter().find(|s| s.path == "/v1/acl/login").unwrap();
    assert!(login.token.is_none(), "the login request carries no token");
    assert!(login.query.contains("dc=dc1"), "{}", login.query);
    let body = login.json();
    assert_eq!(body["AuthMethod"], "iam-ecs-service-token");
    assert_eq!(
        body["Meta"],
        json!({"consul.hashicorp.com/task-id": TASK_ID, "consul.hashicorp.com/cluster": CLUSTER_ARN, "env": "test"})
    );
    let bearer = body["BearerToken"].as_str().unwrap().to_owned();
    let request = consul_ecs_aws::bearer_token::parse_bearer_token_with(
        &bearer,
        &consul_ecs_aws::TokenRules {
            sts_endpoint: Some("https://sts.example.test".into()),
            ..consul_ecs_aws::TokenRules::default()
        },
    )
    .unwrap();
    assert!(request.entity.is_none(), "includeEntity false");

    let secret = fake_secret(1);
    let writes: Vec<_> = h
        .proxy
        .writes()
        .into_iter()
        .filter(|w| w.path == "/v1/catalog/register")
        .collect();
    assert_eq!(writes.len(), 2);
    assert!(
        writes
            .iter()
            .all(|w| w.token.as_deref() == Some(secret.as_str()))
    );
    let logout = seen.iter().find(|s| s.path == "/v1/acl/logout").unwrap();
    assert_eq!(logout.token.as_deref(), Some(secret.as_str()));
    assert_eq!(
        seen.last().map(|s| s.path.as_str()),
        Some("/v1/acl/logout"),
        "the logout is the last call"
    );

    let path = h.bootstrap().join("consul-dataplane.json");
    let dataplane = read_json(&path);
    assert_eq!(
        dataplane["consul"]["credentials"],
        json!({"type": "login", "login": {
            "authMethod": "iam-ecs-service-token", "datacenter": "dc1", "bearerToken": bearer,
            "meta": {"consul.hashicorp.com/cluster": CLUSTER_ARN, "consul.hashicorp.com/task-id": TASK_ID, "env": "test"},
        }})
    );
    // The file holds a replayable credential: only the dataplane's user may read it.
    assert_eq!(mode(&path), 0o400);
    assert_eq!(owner(&path), 5995);
}

// === Tenancy ===

#[tokio::test]
async fn namespace_and_partition_go_on_the_registrations_the_checks_and_every_request() {
    let h = Harness::start(task("web")).await;
    let config = h.config(json!({
        "healthSyncContainers": ["app"],
        "service": {"port": 8080, "namespace": "team1", "partition": "part1"},
    }));
    run(&config, &h.env()).await.unwrap();
    let writes = h.proxy.writes();
    assert_eq!(writes.len(), 2);
    for write in &writes {
        assert!(write.query.contains("ns=team1"), "{}", write.query);
        assert!(write.query.contains("partition=part1"), "{}", write.query);
        let body = write.json();
        assert_eq!(body["Partition"], "part1");
        assert_eq!(body["Service"]["Namespace"], "team1");
        assert_eq!(body["Service"]["Partition"], "part1");
        for check in body["Checks"].as_array().unwrap() {
            assert_eq!(check["Namespace"], "team1");
        }
    }
    assert_eq!(writes[0].json()["Checks"].as_array().unwrap().len(), 2);
    let dataplane = read_json(&h.bootstrap().join("consul-dataplane.json"));
    assert_eq!(dataplane["proxy"]["namespace"], "team1");
    assert_eq!(dataplane["proxy"]["partition"], "part1");
}

// === Consul unreachable, SIGTERM, re-runs ===

#[tokio::test]
async fn sigterm_while_consul_is_unreachable_ends_the_run_at_once() {
    let mut h = Harness::start(task("web")).await;
    h.proxy.go_down().await;
    let config = h.config(json!({"service": {"port": 8080}}));
    let mut env = h.env();
    env.retry_budget = Duration::from_secs(600);
    let stop = env.shutdown.clone();
    let running = tokio::spawn(async move { run(&config, &env).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "still trying to reach Consul");
    stop.cancel();
    let err = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the run ends promptly after SIGTERM")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "interrupted by SIGTERM while connecting to Consul"
    );
}

#[tokio::test]
async fn a_consul_that_comes_up_late_is_waited_for() {
    let mut h = Harness::start(task("web")).await;
    h.proxy.go_down().await;
    let config = h.config(json!({"service": {"port": 8080}}));
    let env = h.env();
    let running = tokio::spawn(async move { run(&config, &env).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!running.is_finished());
    h.proxy.come_back().await.unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(h.services().await.len(), 2);
    assert_eq!(h.proxy.writes().len(), 2, "each registration written once");
}

#[tokio::test]
async fn a_second_run_on_the_same_volume_replaces_the_read_only_files() {
    let h = Harness::start(task("web")).await;
    let config = h.config(json!({"service": {"port": 8080}}));
    run(&config, &h.env()).await.unwrap();
    let first = std::fs::read(h.bootstrap().join("consul-dataplane.json")).unwrap();
    run(&config, &h.env()).await.unwrap();
    assert_eq!(
        std::fs::read(h.bootstrap().join("consul-dataplane.json")).unwrap(),
        first
    );
    assert_eq!(mode(&h.bootstrap().join("consul-dataplane.json")), 0o444);
    assert_eq!(h.proxy.writes().len(), 4);
    assert_eq!(h.services().await.len(), 2);
}

#[tokio::test]
async fn a_missing_metadata_endpoint_is_an_error_that_names_the_variable() {
    let h = Harness::start(task("web")).await;
    let config = h.config(json!({"service": {"port": 8080}}));
    let mut env = h.env();
    env.set_var(consul_ecs_mesh_init::ENV_METADATA_URI, None);
    let err = run(&config, &env).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "ECS_CONTAINER_METADATA_URI_V4 env var not set"
    );
    assert!(h.proxy.seen().is_empty());
}

// === service-defaults ===

async fn service_defaults(h: &Harness) -> Value {
    let entry = h
        .client()
        .config_entries()
        .get("service-defaults", "web", &QueryOptions::default())
        .await
        .unwrap()
        .value
        .unwrap();
    strip_indexes(serde_json::to_value(entry).unwrap())
}

#[tokio::test]
async fn network_resilience_creates_service_defaults_with_a_passive_health_check() {
    let h = Harness::start(task("web")).await;
    let config = h.config(json!({"service": {"port": 8080,
        "networkResilienceConfig": {"enabled": true}}}));
    run(&config, &h.env()).await.unwrap();
    assert_eq!(
        service_defaults(&h).await,
        json!({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {"Defaults": {
            "PassiveHealthCheck": {"Interval": 10_000_000_000u64, "MaxFailures": 5,
                "EnforcingConsecutiveGatewayFailure": 100, "MaxEjectionPercent": 50},
        }}})
    );
    assert_eq!(h.proxy.writes_to("/v1/config").len(), 1);
}

#[tokio::test]
async fn network_resilience_merges_into_an_existing_entry_and_keeps_an_existing_check() {
    let h = Harness::start(task("web")).await;
    let existing: ConfigEntry = serde_json::from_value(json!({
        "Kind": "service-defaults", "Name": "web", "Protocol": "http",
        "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 1500}},
    }))
    .unwrap();
    h.client()
        .config_entries()
        .set(&existing, &WriteOptions::default())
        .await
        .unwrap();
    let config = h.config(
        json!({"service": {"port": 8080, "networkResilienceConfig": {
        "enabled": true, "outlierDetection": {"maxFailures": 2, "consecutive5xx": 4}}}}),
    );
    run(&config, &h.env()).await.unwrap();
    assert_eq!(
        service_defaults(&h).await,
        json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http", "UpstreamConfig": {"Defaults": {
            "ConnectTimeoutMs": 1500,
            "PassiveHealthCheck": {"MaxFailures": 2, "Consecutive5xx": 4,
                "EnforcingConsecutiveGatewayFailure": 100, "MaxEjectionPercent": 50},
        }}})
    );

    // A second task finds the check in place and leaves the entry alone.
    h.proxy.clear();
    let config = h.config(
        json!({"service": {"port": 8080, "networkResilienceConfig": {
        "enabled": true, "outlierDetection": {"maxFailures": 9}}}}),
    );
    run(&config, &h.env()).await.unwrap();
    assert!(h.proxy.writes_to("/v1/config").is_empty());
    assert_eq!(
        service_defaults(&h).await["UpstreamConfig"]["Defaults"]["PassiveHealthCheck"]["MaxFailures"],
        2
    );
}
