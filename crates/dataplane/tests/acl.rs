//! Our data planes against the real dev server (in process) with ACLs on, default policy `deny` and
//! a bootstrap (management) token: sidecars that log in through a `jwt` auth method (a binding
//! rule gives each the service identity its JWT names) or use a static token, traffic once an
//! intention allows it, a token deleted under a running proxy, a login token renewed before it
//! expires, logout at shutdown, and a refused login.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use consul_client::acl::{
    AclAuthMethod, AclBindingRule, AclServiceIdentity, AclToken, AclTokenFilter,
    BindingRuleBindType,
};
use consul_client::catalog::Upstream;
use consul_client::config_entry::{IntentionAction, SourceIntention};
use consul_client::health::HealthStatus;
use consul_client::{Client, ClientConfig, QueryOptions, Secret, WriteOptions};
use serde_json::{Value, json};
use support::mesh::*;
use support::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The management token the server is started with.
const MANAGEMENT: &str = "0f8e4b5c-2f43-4a8e-9b62-5d7a1c3e9f00";
/// The auth method the sidecars log in with.
const METHOD: &str = "ecs-jwt";

struct AclMesh {
    server: devserver::DevServer,
    /// A client with the management token.
    admin: Client,
    clock: devserver::Clock,
    /// Signs the JWTs; its public half is the auth method's validation key.
    key: rcgen::KeyPair,
}

/// A dev server with ACLs on (default deny, [`MANAGEMENT`]), a `jwt` auth method whose tokens live
/// `max_token_ttl` (none when `None`), and the binding rule consul-ecs' controller would make:
/// a service identity named by the JWT's `service` claim.
async fn acl_mesh(max_token_ttl: Option<&str>) -> AclMesh {
    init_logs();
    let clock = devserver::Clock::system();
    let mut config = devserver::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        node_name: "dev".into(),
        clock: clock.clone(),
        ..devserver::Config::default()
    };
    config.acl.enabled = true;
    config.acl.default_policy = devserver::DefaultPolicy::Deny;
    config.acl.bootstrap_token = Some(MANAGEMENT.into());
    let server = devserver::DevServer::start(config).await.unwrap();
    let admin = Client::new(ClientConfig::new(server.http_addr().to_string()))
        .unwrap()
        .with_token(Some(Secret::new(MANAGEMENT.to_owned())));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let method: AclAuthMethod = serde_json::from_value(json!({
        "Name": METHOD,
        "Type": "jwt",
        "MaxTokenTTL": max_token_ttl,
        "Config": {
            "JWTValidationPubKeys": [key.public_key_pem()],
            "JWTSupportedAlgs": ["ES256"],
            "BoundAudiences": ["consul"],
            "ClaimMappings": {"service": "service"},
        },
    }))
    .unwrap();
    admin
        .acl()
        .auth_method_create(&method, &WriteOptions::default())
        .await
        .unwrap();
    let rule = AclBindingRule {
        auth_method: METHOD.into(),
        bind_type: BindingRuleBindType::Service,
        bind_name: "${value.service}".into(),
        ..AclBindingRule::default()
    };
    admin
        .acl()
        .binding_rule_create(&rule, &WriteOptions::default())
        .await
        .unwrap();
    AclMesh {
        server,
        admin,
        clock,
        key,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT for `service`, signed with `key`, valid for an hour.
fn jwt(key: &rcgen::KeyPair, service: &str) -> String {
    let claims =
        json!({"aud": "consul", "service": service, "iat": unix_now(), "exp": unix_now() + 3600});
    let k = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &k,
    )
    .unwrap()
}

/// `consul.credentials` for a login with `bearer` (a `bearerToken` value, or a
/// `{"bearerTokenPath": ...}` object) and the meta consul-ecs attaches.
fn login(task: &Task, bearer: Value) -> Value {
    let mut login = json!({
        "authMethod": METHOD,
        "meta": {"consul.hashicorp.com/task-id": task.task_id, "consul.hashicorp.com/cluster": "test"},
    });
    match bearer {
        Value::Object(fields) => login.as_object_mut().unwrap().extend(fields),
        token => {
            login["bearerToken"] = token;
        }
    }
    json!({"type": "login", "login": login})
}

fn static_token(secret: &str) -> Value {
    json!({"type": "static", "static": {"token": secret}})
}

/// A token with only the service identity of `service`, made with the management token; returns
/// (accessor, secret).
async fn identity_token(m: &AclMesh, service: &str) -> (String, String) {
    let token = AclToken {
        description: format!("{service} sidecar"),
        service_identities: vec![AclServiceIdentity {
            service_name: service.into(),
            datacenters: Vec::new(),
        }],
        ..AclToken::default()
    };
    let made = m
        .admin
        .acl()
        .token_create(&token, &WriteOptions::default())
        .await
        .unwrap();
    let secret = made.secret_id.unwrap().expose().to_owned();
    (made.accessor_id, secret)
}

/// The login tokens of `service` (made by [`METHOD`]).
async fn login_tokens(m: &AclMesh, service: &str) -> Vec<AclToken> {
    let filter = AclTokenFilter {
        auth_method: Some(METHOD.into()),
        service_name: Some(service.into()),
        ..AclTokenFilter::default()
    };
    m.admin
        .acl()
        .token_list(&filter, &QueryOptions::default())
        .await
        .unwrap()
        .value
}

/// The accessor of the one login token of `service`.
async fn only_login_token(m: &AclMesh, service: &str) -> AclToken {
    let tokens = login_tokens(m, service).await;
    assert_eq!(tokens.len(), 1, "login tokens of {service}: {tokens:?}");
    tokens.into_iter().next().unwrap()
}

/// Whether the server still knows the token (read with the management token).
async fn token_exists(m: &AclMesh, accessor: &str) -> bool {
    match m
        .admin
        .acl()
        .token_read(accessor, &QueryOptions::default())
        .await
    {
        Ok(r) => r.value.is_some(),
        Err(e) if e.is_acl_not_found() || e.is_not_found() => false,
        Err(e) => panic!("reading token {accessor}: {e}"),
    }
}

fn errors(dp: &dataplane::Dataplane) -> u64 {
    metric(&dp.metrics_text(), "consul_dataplane_consul_errors_total")
}

fn denials(dp: &dataplane::Dataplane) -> u64 {
    metric(
        &dp.metrics_text(),
        "consul_dataplane_intention_denials_total{source=\"web\"}",
    )
}

async fn intention(m: &AclMesh, action: IntentionAction) {
    let source = SourceIntention {
        name: "web".into(),
        action: Some(action),
        ..SourceIntention::default()
    };
    m.admin
        .connect()
        .upsert_intention("api", source, &WriteOptions::default())
        .await
        .unwrap();
}

/// The api and web tasks (web has api as upstream), registered with the management token as
/// consul-ecs does.
async fn tasks(m: &AclMesh) -> (Task, Task) {
    let (api_app, _) = echo_app().await;
    let api = Task {
        service: "api".into(),
        task_id: "1111".into(),
        app_port: api_app.port(),
        public_port: free_port(),
        upstreams: Vec::new(),
    };
    let web = Task {
        service: "web".into(),
        task_id: "2222".into(),
        app_port: free_port(),
        public_port: free_port(),
        upstreams: vec![Upstream {
            destination_name: "api".into(),
            local_bind_port: free_port(),
            ..Upstream::default()
        }],
    };
    api.register(&m.admin, HealthStatus::Critical).await;
    web.register(&m.admin, HealthStatus::Critical).await;
    (api, web)
}

/// Starts both sidecars with the given credentials, waits until each is ready, then marks the
/// checks passing (health-sync's part) and waits until web sees the api instance.
async fn start_pair(
    m: &AclMesh,
    api: &Task,
    web: &Task,
    api_credentials: Value,
    web_credentials: Value,
) -> (dataplane::Dataplane, dataplane::Dataplane) {
    let addr = m.server.http_addr();
    let mut json = api.dataplane_json(addr);
    json["consul"]["credentials"] = api_credentials;
    let api_dp = api.start_dataplane_with(json).await;
    let mut json = web.dataplane_json(addr);
    json["consul"]["credentials"] = web_credentials;
    let web_dp = web.start_dataplane_with(json).await;
    api.register(&m.admin, HealthStatus::Passing).await;
    web.register(&m.admin, HealthStatus::Passing).await;
    eventually("web sees one healthy api instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 1 }
    })
    .await;
    (api_dp, web_dp)
}

/// Default deny: web → api is refused by api's sidecar until an allow intention exists, then it
/// flows.
async fn denied_until_allowed(m: &AclMesh, api_dp: &dataplane::Dataplane, up: SocketAddr) {
    assert!(!echo_once(up, b"no intention yet").await);
    assert!(denials(api_dp) >= 1, "{}", api_dp.metrics_text());
    intention(m, IntentionAction::Allow).await;
    eventually("web → api flows once allowed", || async move {
        echo_once(up, b"allowed").await
    })
    .await;
}

async fn stop(dp: dataplane::Dataplane) {
    dp.shutdown();
    tokio::time::timeout(patience(), dp.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn sidecars_that_log_in_get_leafs_and_carry_traffic_once_an_intention_allows_it() {
    let m = acl_mesh(None).await;
    let (api, web) = tasks(&m).await;
    // Anonymous requests get nothing under default deny: the sidecars work only through login.
    let anonymous = Client::new(ClientConfig::new(m.server.http_addr().to_string())).unwrap();
    let e = anonymous
        .agent()
        .leaf_cert("api", &QueryOptions::default())
        .await
        .unwrap_err();
    assert!(e.is_permission_denied(), "{e}");

    let (api_dp, web_dp) = start_pair(
        &m,
        &api,
        &web,
        login(&api, json!(jwt(&m.key, "api"))),
        login(&web, json!(jwt(&m.key, "web"))),
    )
    .await;
    // One token each, from the method, with the service identity and the meta.
    for (task, service) in [(&api, "api"), (&web, "web")] {
        let token = only_login_token(&m, service).await;
        assert_eq!(token.auth_method, METHOD);
        assert_eq!(
            token.service_identities,
            vec![AclServiceIdentity {
                service_name: service.into(),
                datacenters: Vec::new(),
            }]
        );
        assert!(token.policies.is_empty() && token.roles.is_empty());
        assert!(
            token.description.contains(&format!(
                "\"consul.hashicorp.com/task-id\":\"{}\"",
                task.task_id
            )),
            "{}",
            token.description
        );
        assert!(token.expiration_time.is_none());
    }
    // Leafs were issued to each identity (service:write comes from the service identity).
    for dp in [&api_dp, &web_dp] {
        assert!(
            metric(
                &dp.metrics_text(),
                "consul_dataplane_leaf_cert_expiry_timestamp_seconds"
            ) > 0
        );
    }
    let up = web_dp.upstream_addrs()["api"];
    denied_until_allowed(&m, &api_dp, up).await;
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    assert!(echo_once(up, &payload).await);
    // A deny intention is seen through the login token's intentions watch.
    intention(&m, IntentionAction::Deny).await;
    eventually("web → api denied again", || async move {
        !echo_once(up, b"denied").await
    })
    .await;
    assert_eq!(errors(&api_dp), 0, "{}", api_dp.metrics_text());
    assert_eq!(errors(&web_dp), 0, "{}", web_dp.metrics_text());
    stop(web_dp).await;
    stop(api_dp).await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn a_static_token_with_only_the_service_identity_is_enough() {
    let m = acl_mesh(None).await;
    let (api, web) = tasks(&m).await;
    let (_, api_secret) = identity_token(&m, "api").await;
    let (_, web_secret) = identity_token(&m, "web").await;
    let (api_dp, web_dp) = start_pair(
        &m,
        &api,
        &web,
        static_token(&api_secret),
        static_token(&web_secret),
    )
    .await;
    let up = web_dp.upstream_addrs()["api"];
    denied_until_allowed(&m, &api_dp, up).await;
    assert!(login_tokens(&m, "api").await.is_empty());
    assert_eq!(errors(&api_dp) + errors(&web_dp), 0);
    stop(web_dp).await;
    stop(api_dp).await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn a_token_deleted_under_a_running_proxy_is_replaced_by_logging_in_again() {
    let m = acl_mesh(None).await;
    let (api, web) = tasks(&m).await;
    // web reads its bearer token from a file (re-read at every login), api has it inline.
    let dir = tempfile::tempdir().unwrap();
    let bearer_file = dir.path().join("web.jwt");
    std::fs::write(&bearer_file, jwt(&m.key, "web")).unwrap();
    let (api_dp, web_dp) = start_pair(
        &m,
        &api,
        &web,
        login(&api, json!(jwt(&m.key, "api"))),
        login(&web, json!({"bearerTokenPath": bearer_file})),
    )
    .await;
    let up = web_dp.upstream_addrs()["api"];
    intention(&m, IntentionAction::Allow).await;
    eventually("web → api flows", || async move {
        echo_once(up, b"before").await
    })
    .await;
    let (api_before, web_before) = (errors(&api_dp), errors(&web_dp));
    let old_api = only_login_token(&m, "api").await.accessor_id;
    let old_web = only_login_token(&m, "web").await.accessor_id;
    for accessor in [&old_api, &old_web] {
        m.admin
            .acl()
            .token_delete(accessor, &WriteOptions::default())
            .await
            .unwrap();
    }
    // Running blocking queries were authorised when they started; the change wakes them, and
    // the round that follows meets 403 "ACL not found".
    intention(&m, IntentionAction::Deny).await;
    let (app2, _) = echo_app().await;
    let api2 = Task {
        service: "api".into(),
        task_id: "3333".into(),
        app_port: app2.port(),
        public_port: free_port(),
        upstreams: Vec::new(),
    };
    api2.register(&m.admin, HealthStatus::Passing).await;
    eventually("api sees the deny", || async move {
        !echo_once(up, b"denied").await
    })
    .await;
    eventually("web sees the second api instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 2 }
    })
    .await;
    for (service, old) in [("api", &old_api), ("web", &old_web)] {
        let m = &m;
        eventually("the sidecar logs in again", || async move {
            let tokens = login_tokens(m, service).await;
            tokens.len() == 1 && tokens[0].accessor_id != *old
        })
        .await;
    }
    assert!(errors(&api_dp) > api_before, "{}", api_dp.metrics_text());
    assert!(errors(&web_dp) > web_before, "{}", web_dp.metrics_text());
    // The watches work again with the new tokens: later changes arrive, new connections flow.
    api2.register(&m.admin, HealthStatus::Critical).await;
    eventually("web drops the critical instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 1 }
    })
    .await;
    intention(&m, IntentionAction::Allow).await;
    eventually("web → api flows again", || async move {
        echo_once(up, b"after").await
    })
    .await;
    for i in 0..5u8 {
        assert!(echo_once(up, &[b'n', i]).await, "new connection {i}");
    }
    // The dead token was not replaced twice.
    assert_eq!(login_tokens(&m, "api").await.len(), 1);
    assert_eq!(login_tokens(&m, "web").await.len(), 1);
    stop(web_dp).await;
    stop(api_dp).await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn a_login_token_is_renewed_before_it_expires() {
    // The shortest lifetime Consul allows a login token (and the dev server with it).
    let m = acl_mesh(Some("1m")).await;
    let (api, web) = tasks(&m).await;
    let (api_dp, web_dp) = start_pair(
        &m,
        &api,
        &web,
        login(&api, json!(jwt(&m.key, "api"))),
        login(&web, json!(jwt(&m.key, "web"))),
    )
    .await;
    let up = web_dp.upstream_addrs()["api"];
    intention(&m, IntentionAction::Allow).await;
    eventually("web → api flows", || async move {
        echo_once(up, b"before").await
    })
    .await;
    let (api_before, web_before) = (errors(&api_dp), errors(&web_dp));
    let time_of =
        |t: &Option<String>| OffsetDateTime::parse(t.as_deref().unwrap(), &Rfc3339).unwrap();
    let mut old = Vec::new();
    for service in ["api", "web"] {
        let token = only_login_token(&m, service).await;
        let expires = time_of(&token.expiration_time);
        assert_eq!(
            expires - time_of(&token.create_time),
            time::Duration::minutes(1)
        );
        old.push((service, token.accessor_id, expires));
    }
    let first_expiry = old.iter().map(|(_, _, e)| *e).max().unwrap();
    // The renewal comes at 80 % of the minute: wait for it (the one long wait of these tests).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60) + patience();
    for (service, accessor, expires) in &old {
        let renewed = loop {
            let tokens = login_tokens(&m, service).await;
            if tokens.iter().any(|t| t.accessor_id != *accessor) {
                break tokens;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service} never renewed its token: {tokens:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let new = renewed.iter().find(|t| t.accessor_id != *accessor).unwrap();
        assert!(
            time_of(&new.create_time) < *expires,
            "{service} logged in again only after its token expired"
        );
        assert!(time_of(&new.expiration_time) > *expires);
        // The replaced token is logged out, not left to expire.
        let m = &m;
        eventually("the replaced token is logged out", || async move {
            !token_exists(m, accessor).await
        })
        .await;
        assert!(OffsetDateTime::now_utc() < *expires, "too slow to tell");
    }
    // Renewed ahead of time: nothing was refused on the way.
    assert_eq!(errors(&api_dp), api_before, "{}", api_dp.metrics_text());
    assert_eq!(errors(&web_dp), web_before, "{}", web_dp.metrics_text());

    // Move the server's clock past the first tokens' expiry: the proxies neither notice nor care.
    let past = first_expiry - OffsetDateTime::now_utc() + time::Duration::seconds(2);
    m.clock
        .advance(Duration::try_from(past).unwrap_or_default());
    intention(&m, IntentionAction::Deny).await;
    eventually("api sees the deny", || async move {
        !echo_once(up, b"denied").await
    })
    .await;
    intention(&m, IntentionAction::Allow).await;
    eventually("api sees the allow", || async move {
        echo_once(up, b"allowed").await
    })
    .await;
    let (app2, _) = echo_app().await;
    let api2 = Task {
        service: "api".into(),
        task_id: "3333".into(),
        app_port: app2.port(),
        public_port: free_port(),
        upstreams: Vec::new(),
    };
    api2.register(&m.admin, HealthStatus::Passing).await;
    eventually("web sees the second api instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 2 }
    })
    .await;
    assert_eq!(errors(&api_dp), api_before, "{}", api_dp.metrics_text());
    assert_eq!(errors(&web_dp), web_before, "{}", web_dp.metrics_text());
    stop(web_dp).await;
    stop(api_dp).await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_logs_a_login_token_out_and_leaves_a_static_token_alone() {
    let m = acl_mesh(None).await;
    let (api, web) = tasks(&m).await;
    let (api_accessor, api_secret) = identity_token(&m, "api").await;
    let (api_dp, web_dp) = start_pair(
        &m,
        &api,
        &web,
        static_token(&api_secret),
        login(&web, json!(jwt(&m.key, "web"))),
    )
    .await;
    let web_accessor = only_login_token(&m, "web").await.accessor_id;
    stop(web_dp).await;
    assert!(
        !token_exists(&m, &web_accessor).await,
        "the login token outlived the proxy"
    );
    assert!(login_tokens(&m, "web").await.is_empty());
    stop(api_dp).await;
    assert!(token_exists(&m, &api_accessor).await);
    // And it still works.
    let client = Client::new(ClientConfig::new(m.server.http_addr().to_string()))
        .unwrap()
        .with_token(Some(Secret::new(api_secret)));
    let me = client
        .acl()
        .token_read_self(&QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(me.accessor_id, api_accessor);
    m.server.shutdown().await;
}

/// Starts a sidecar for `task` with `credentials` and returns how it ended; it must never become
/// ready.
async fn refused(m: &AclMesh, task: &Task, credentials: Value) -> dataplane::Error {
    let mut json = task.dataplane_json(m.server.http_addr());
    json["consul"]["credentials"] = credentials;
    let config = dataplane::Config::from_json(&json.to_string()).unwrap();
    let dp = dataplane::Dataplane::start(config).await.unwrap();
    let ready = tokio::time::timeout(patience(), dp.wait_ready()).await;
    assert!(matches!(ready, Ok(false)), "{ready:?}");
    assert!(dp.ready_addr().is_none());
    tokio::time::timeout(patience(), dp.wait())
        .await
        .unwrap()
        .unwrap_err()
}

#[tokio::test]
async fn a_refused_login_stops_the_proxy_with_consuls_reason() {
    let m = acl_mesh(None).await;
    let (api, _web) = tasks(&m).await;
    // Not a JWT at all.
    let e = refused(&m, &api, login(&api, json!("not-a-jwt"))).await;
    assert!(matches!(e, dataplane::Error::Login { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(METHOD) && text.contains("400"), "{text}");
    assert!(text.contains("Invalid bearer token"), "{text}");
    // A JWT signed by a key the method does not trust.
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = jwt(&stranger, "api");
    let text = refused(&m, &api, login(&api, json!(forged)))
        .await
        .to_string();
    assert!(
        text.contains("403") && text.contains("Permission denied"),
        "{text}"
    );
    assert!(!text.contains(&forged), "the bearer token is not shown");
    // An auth method that does not exist.
    let mut creds = login(&api, json!(jwt(&m.key, "api")));
    creds["login"]["authMethod"] = json!("no-such-method");
    let text = refused(&m, &api, creds).await.to_string();
    assert!(
        text.contains("no-such-method") && text.contains("ACL not found"),
        "{text}"
    );
    // None of them got a token.
    assert!(login_tokens(&m, "api").await.is_empty());
    m.server.shutdown().await;
}

#[tokio::test]
async fn the_binary_exits_1_and_logs_why_when_the_login_is_refused() {
    let m = acl_mesh(None).await;
    let (api, _web) = tasks(&m).await;
    let mut json = api.dataplane_json(m.server.http_addr());
    json["consul"]["credentials"] = login(&api, json!("not-a-jwt"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consul-dataplane.json");
    std::fs::write(&file, json.to_string()).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_consul-dataplane"))
        .args(["-config-file", file.to_str().unwrap()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(patience(), child)
        .await
        .expect("consul-dataplane kept running after a refused login")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("consul refused the login with auth method"),
        "{stderr}"
    );
    assert!(stderr.contains("Invalid bearer token"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    m.server.shutdown().await;
}
