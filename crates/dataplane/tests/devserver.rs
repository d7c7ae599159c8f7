//! Two of our data planes against the real dev server (in process): services and sidecars
//! registered exactly as consul-ecs mesh-init does, app → app traffic, intentions changed live,
//! CA rotation mid-traffic, and an instance going critical.
//!
//! Behaviour asserted (and documented in the README): intentions gate *new* connections; a
//! connection opened before a change to deny keeps running (as Envoy's L4 RBAC filter, which
//! decides once per connection).

#![allow(clippy::unwrap_used)]

mod support;

use consul_client::catalog::Upstream;
use consul_client::config_entry::{IntentionAction, SourceIntention};
use consul_client::connect::CaConfig;
use consul_client::health::HealthStatus;
use consul_client::{Client, ClientConfig, WriteOptions};
use support::mesh::*;
use support::*;
use tokio::net::TcpStream;

struct Mesh {
    server: devserver::DevServer,
    client: Client,
}

async fn mesh() -> Mesh {
    init_logs();
    let config = devserver::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        node_name: "dev".into(),
        ..devserver::Config::default()
    };
    let server = devserver::DevServer::start(config).await.unwrap();
    let client = Client::new(ClientConfig::new(server.http_addr().to_string())).unwrap();
    Mesh { server, client }
}

async fn web_and_api(m: &Mesh) -> (Task, Task, dataplane::Dataplane, dataplane::Dataplane) {
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
    api.register(&m.client, HealthStatus::Critical).await;
    web.register(&m.client, HealthStatus::Critical).await;
    let addr = m.server.http_addr();
    let api_dp = api.start_dataplane(addr).await;
    let web_dp = web.start_dataplane(addr).await;
    // health-sync's part: the dataplane is ready, mark the checks passing.
    api.register(&m.client, HealthStatus::Passing).await;
    web.register(&m.client, HealthStatus::Passing).await;
    eventually("web sees one healthy api instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 1 }
    })
    .await;
    (api, web, api_dp, web_dp)
}

#[tokio::test]
async fn app_to_app_through_sidecars_registered_like_consul_ecs() {
    let m = mesh().await;
    let (_api, _web, api_dp, web_dp) = web_and_api(&m).await;
    let up = web_dp.upstream_addrs()["api"];
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    assert!(echo_once(up, &payload).await);
    assert_eq!(opened(&api_dp), 1);
    assert!(api_dp.ready_addr().is_some());
    web_dp.shutdown();
    api_dp.shutdown();
    web_dp.wait().await.unwrap();
    api_dp.wait().await.unwrap();
    m.server.shutdown().await;
}

#[tokio::test]
async fn intention_changes_apply_to_new_connections_without_restart() {
    let m = mesh().await;
    let (_api, _web, api_dp, web_dp) = web_and_api(&m).await;
    let up = web_dp.upstream_addrs()["api"];
    assert!(echo_once(up, b"allowed by default").await);
    let mut before = TcpStream::connect(up).await.unwrap();
    assert!(ping(&mut before, b"open before the deny").await);

    let deny = SourceIntention {
        name: "web".into(),
        action: Some(IntentionAction::Deny),
        ..SourceIntention::default()
    };
    m.client
        .connect()
        .upsert_intention("api", deny, &WriteOptions::default())
        .await
        .unwrap();
    eventually("new connections are denied", || async move {
        !echo_once(up, b"x").await
    })
    .await;
    assert!(
        metric(
            &api_dp.metrics_text(),
            "consul_dataplane_intention_denials_total{source=\"web\"}"
        ) >= 1
    );
    // Existing connections are not cut by a change to deny (L4 intentions gate new connections).
    assert!(ping(&mut before, b"still flowing").await);

    let allow = SourceIntention {
        name: "web".into(),
        action: Some(IntentionAction::Allow),
        ..SourceIntention::default()
    };
    m.client
        .connect()
        .upsert_intention("api", allow, &WriteOptions::default())
        .await
        .unwrap();
    eventually("new connections are allowed again", || async move {
        echo_once(up, b"y").await
    })
    .await;
    m.server.shutdown().await;
}

#[tokio::test]
async fn ca_rotation_mid_traffic_loses_no_connection() {
    let m = mesh().await;
    let (_api, _web, api_dp, web_dp) = web_and_api(&m).await;
    let up = web_dp.upstream_addrs()["api"];
    let mut long = TcpStream::connect(up).await.unwrap();
    assert!(ping(&mut long, b"before rotation").await);
    let updates = |dp: &dataplane::Dataplane| {
        metric(
            &dp.metrics_text(),
            "consul_dataplane_certificate_updates_total",
        )
    };
    let (web_before, api_before) = (updates(&web_dp), updates(&api_dp));

    let current = m
        .client
        .connect()
        .ca_config(&Default::default())
        .await
        .unwrap()
        .value;
    let rotate = CaConfig {
        provider: "consul".into(),
        config: current.config.clone(),
        force_without_cross_signing: true,
        ..CaConfig::default()
    };
    m.client
        .connect()
        .set_ca_config(&rotate, &WriteOptions::default())
        .await
        .unwrap();
    for dp in [&api_dp, &web_dp] {
        eventually("both roots are trusted", || async move {
            metric(&dp.metrics_text(), "consul_dataplane_ca_roots") == 2
        })
        .await;
    }
    // Traffic keeps flowing on the old connection while the new leafs arrive.
    for i in 0..20u8 {
        assert!(
            ping(&mut long, &[b'r', i]).await,
            "long connection broke at {i}"
        );
        assert!(echo_once(up, &[b'n', i]).await, "new connection {i} failed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // New roots, then a new leaf signed by the new root, on both sides.
    eventually("both sidecars install new roots and a new leaf", || {
        let (web_dp, api_dp) = (&web_dp, &api_dp);
        async move { updates(web_dp) >= web_before + 2 && updates(api_dp) >= api_before + 2 }
    })
    .await;
    assert!(ping(&mut long, b"after rotation").await);
    assert!(echo_once(up, b"new after rotation").await);
    m.server.shutdown().await;
}

#[tokio::test]
async fn a_critical_instance_stops_getting_new_connections() {
    let m = mesh().await;
    let (_api, _web, api_dp, web_dp) = web_and_api(&m).await;
    let (app2, _) = echo_app().await;
    let api2 = Task {
        service: "api".into(),
        task_id: "3333".into(),
        app_port: app2.port(),
        public_port: free_port(),
        upstreams: Vec::new(),
    };
    api2.register(&m.client, HealthStatus::Passing).await;
    let api2_dp = api2.start_dataplane(m.server.http_addr()).await;
    eventually("web sees two api instances", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 2 }
    })
    .await;
    let up = web_dp.upstream_addrs()["api"];
    // Round robin: two held connections land one on each instance.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(up).await.unwrap();
        assert!(ping(&mut s, b"hold").await);
        held.push(s);
    }
    assert_eq!((opened(&api_dp), opened(&api2_dp)), (1, 1));

    api2.register(&m.client, HealthStatus::Critical).await;
    eventually("web drops the critical instance", || {
        let web_dp = &web_dp;
        async move { healthy(web_dp, "api") == 1 }
    })
    .await;
    for i in 0..6u8 {
        assert!(echo_once(up, &[i]).await);
    }
    assert_eq!(
        opened(&api2_dp),
        1,
        "the critical instance got new connections"
    );
    assert_eq!(opened(&api_dp), 7);
    for s in &mut held {
        assert!(ping(s, b"existing connections continue").await);
    }
    m.server.shutdown().await;
}
