//! Readiness, lifecycle endpoints and the drain, observed from outside as ECS and the app would.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn readiness_listener_answers_once_ready_and_closes_on_drain() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    let ready = {
        let b = &b;
        let mut addr = None;
        eventually("the readiness listener is bound", || {
            addr = b.ready_addr();
            let found = addr.is_some();
            async move { found }
        })
        .await;
        addr.unwrap()
    };
    // net-dial: a TCP connect succeeds; an HTTP probe gets 200.
    assert_eq!(http_get(ready, "/ready").await.unwrap().0, 200);
    assert_eq!(
        http_get(b.addresses().admin, "/ready").await.unwrap().0,
        200
    );
    assert_eq!(
        http_get(b.addresses().prometheus, "/metrics")
            .await
            .unwrap()
            .0,
        200
    );
    let (status, body) = http_get(b.addresses().admin, "/stats/prometheus")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("consul_dataplane_ready 1"), "{body}");

    b.shutdown();
    eventually(
        "the readiness listener refuses connections",
        || async move { TcpStream::connect(ready).await.is_err() },
    )
    .await;
    b.wait().await.unwrap();
}

#[tokio::test]
async fn graceful_endpoints_wait_for_ready_and_start_the_drain() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    let graceful = b.addresses().graceful;
    assert_eq!(
        http_get(graceful, "/graceful_startup").await.unwrap().0,
        200
    );
    assert_eq!(http_get(graceful, "/nope").await.unwrap().0, 404);
    assert!(!b.is_draining());
    assert_eq!(
        http_get(graceful, "/graceful_shutdown").await.unwrap().0,
        200
    );
    assert!(b.is_draining());
    assert!(!b.is_ready());
    // Nothing is open, so the drain ends at once and the process would exit 0.
    tokio::time::timeout(patience(), b.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn drain_refuses_new_connections_and_lets_open_ones_finish() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let web = pki.leaf("web");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    let a = Sidecar::new(pki.write("web", &web), 1)
        .upstream("api", &[b.public_addr().unwrap()])
        .start()
        .await;
    let up = a.upstream_addrs()["api"];
    let mut open = TcpStream::connect(up).await.unwrap();
    open.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    open.read_exact(&mut buf).await.unwrap();

    a.shutdown();
    eventually(
        "the upstream listener refuses new connections",
        || async move { TcpStream::connect(up).await.is_err() },
    )
    .await;
    // The open connection still carries traffic during the drain.
    open.write_all(b"during").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"during");
    open.shutdown().await.unwrap();
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).await.unwrap();
    // With the last connection gone, the drain ends well before its 30 s bound.
    tokio::time::timeout(patience(), a.wait())
        .await
        .expect("drain did not end after the last connection closed")
        .unwrap();
}

#[tokio::test]
async fn drain_bound_cuts_connections_that_stay_open() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let web = pki.leaf("web");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    let mut a =
        Sidecar::new(pki.write("web", &web), 1).upstream("api", &[b.public_addr().unwrap()]);
    a.envoy = json!({"drainTimeSeconds": 1});
    let a = a.start().await;
    let mut open = TcpStream::connect(a.upstream_addrs()["api"]).await.unwrap();
    open.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await.unwrap();
    a.shutdown();
    tokio::time::timeout(patience(), a.wait())
        .await
        .expect("drain bound not applied")
        .unwrap();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(patience(), open.read_to_end(&mut rest)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "connection survived the drain: {r:?}"
    );
}

#[tokio::test]
async fn a_busy_ready_port_stops_the_proxy_instead_of_hanging() {
    let mut pki = Pki::new(CLUSTER);
    let api = pki.leaf("api");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = Sidecar::new(pki.write("api", &api), 1);
    s.envoy = json!({"readyBindPort": taken.local_addr().unwrap().port()});
    let config = dataplane::Config::from_json(&s.json().to_string()).unwrap();
    let dp = dataplane::Dataplane::start(config).await.unwrap();
    tokio::time::timeout(patience(), dp.wait())
        .await
        .expect("proxy kept running without its readiness port")
        .unwrap();
}

#[tokio::test]
async fn bad_certificate_files_fail_at_start() {
    let mut pki = Pki::new(CLUSTER);
    let api = pki.leaf("api");
    let paths = pki.write("api", &api);
    std::fs::write(&paths.1, "not a key").unwrap();
    let s = Sidecar::new(paths, 1);
    let config = dataplane::Config::from_json(&s.json().to_string()).unwrap();
    let err = dataplane::Dataplane::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("private key"), "{err}");
}
