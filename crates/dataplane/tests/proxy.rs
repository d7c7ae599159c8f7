//! In-process sidecars with certificates minted by `connect-ca`, real sockets and real TLS:
//! app → sidecar A (upstream listener) → sidecar B (public listener) → app, and what each side
//! does with bad peers.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn app_traffic_crosses_two_sidecars_with_half_close() {
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
    let upstream = a.upstream_addrs()["api"];

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let back = round_trip(upstream, &payload).await.unwrap();
    assert_eq!(back, payload, "bytes differ after two sidecars");

    let ma = a.metrics_text();
    let mb = b.metrics_text();
    assert_eq!(
        metric(
            &ma,
            "consul_dataplane_connections_opened_total{listener=\"upstream:api\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &mb,
            "consul_dataplane_connections_opened_total{listener=\"public\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &ma,
            "consul_dataplane_received_bytes_total{listener=\"upstream:api\"}"
        ),
        payload.len() as u64
    );
    eventually("B counts the connection closed", || {
        let b = &b;
        async move {
            metric(
                &b.metrics_text(),
                "consul_dataplane_connections_closed_total{listener=\"public\"}",
            ) == 1
        }
    })
    .await;
    assert!(ma.contains("consul_dataplane_leaf_cert_expiry_timestamp_seconds "));
    assert_eq!(
        metric(
            &ma,
            "consul_dataplane_upstream_endpoints_healthy{upstream=\"api\"}"
        ),
        1
    );
}

#[tokio::test]
async fn upstream_refuses_a_valid_certificate_for_another_service() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let db = pki.leaf("db");
    let web = pki.leaf("web");
    // The instance answering for "api" holds a perfectly valid leaf of "db".
    let impostor = Sidecar::new(pki.write("db", &db), app.port()).start().await;
    let a = Sidecar::new(pki.write("web", &web), 1)
        .upstream("api", &[impostor.public_addr().unwrap()])
        .start()
        .await;
    let got = round_trip(a.upstream_addrs()["api"], b"secret").await;
    assert!(
        got.as_ref().map_or(true, |b| b.is_empty()),
        "data crossed to the wrong service: {got:?}"
    );
    let text = a.metrics_text();
    assert_eq!(
        metric(
            &text,
            "consul_dataplane_tls_handshake_failures_total{listener=\"upstream:api\",reason=\"wrong_identity\"}"
        ),
        1,
        "{text}"
    );
    assert_eq!(
        metric(
            &impostor.metrics_text(),
            "consul_dataplane_connections_opened_total{listener=\"public\"}"
        ),
        1
    );
}

#[tokio::test]
async fn public_listener_refuses_foreign_expired_and_missing_certificates() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    let addr = b.public_addr().unwrap();

    // A valid client works.
    let web = pki.leaf("web");
    let ok = mtls_round_trip(addr, &web.cert_pem, web.private_key_pem.expose(), b"hi").await;
    assert_eq!(ok.unwrap(), b"hi");

    // Another trust domain's CA.
    let mut other = Pki::new(OTHER_CLUSTER);
    let foreign = other.leaf("web");
    let got = mtls_round_trip(
        addr,
        &foreign.cert_pem,
        foreign.private_key_pem.expose(),
        b"x",
    )
    .await;
    assert!(got.is_err(), "foreign certificate accepted: {got:?}");

    // Our CA, but expired.
    let (cert, key) = pki.expired_leaf("web");
    let got = mtls_round_trip(addr, &cert, &key, b"x").await;
    assert!(got.is_err(), "expired certificate accepted: {got:?}");

    // No client certificate at all.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(patience(), raw.read_to_end(&mut buf))
        .await
        .unwrap();

    let text = b.metrics_text();
    let failures = |reason: &str| {
        metric(
            &text,
            &format!(
                "consul_dataplane_tls_handshake_failures_total{{listener=\"public\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(failures("unknown_ca"), 1, "{text}");
    assert_eq!(failures("expired"), 1, "{text}");
    assert_eq!(failures("not_tls"), 1, "{text}");
    assert!(!buf.starts_with(b"HTTP"), "plaintext got an HTTP answer");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed() {
    let mut pki = Pki::new(CLUSTER);
    let api = pki.leaf("api");
    let mut sidecar = Sidecar::new(pki.write("api", &api), 1);
    sidecar.envoy = json!({"handshakeTimeoutSeconds": 1});
    let b = sidecar.start().await;
    let mut raw = TcpStream::connect(b.public_addr().unwrap()).await.unwrap();
    // Half a ClientHello record header, then silence.
    raw.write_all(&[0x16, 0x03]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(patience(), raw.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "connection not closed: {n:?}"
    );
    let text = b.metrics_text();
    assert_eq!(
        metric(
            &text,
            "consul_dataplane_tls_handshake_failures_total{listener=\"public\",reason=\"timeout\"}"
        ),
        1,
        "{text}"
    );
    eventually("the stalled connection is counted closed", || {
        let b = &b;
        async move {
            let t = b.metrics_text();
            metric(
                &t,
                "consul_dataplane_connections_active{listener=\"public\"}",
            ) == 0
        }
    })
    .await;
}

/// One source against a set of intentions for destination `api`.
struct Case {
    source: &'static str,
    allowed: bool,
}

#[tokio::test]
async fn intention_decision_table() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let mut b = Sidecar::new(pki.write("api", &api), app.port());
    // web: allow (9); billing: deny (9); * : deny (8); so default never applies except for L7.
    b.intentions = vec![
        json!({"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "api", "Action": "allow", "Precedence": 9}),
        json!({"SourceNS": "default", "SourceName": "billing", "DestinationNS": "default", "DestinationName": "api", "Action": "deny", "Precedence": 9}),
        json!({"SourceNS": "default", "SourceName": "*", "DestinationNS": "default", "DestinationName": "api", "Action": "deny", "Precedence": 8}),
        json!({"SourceNS": "default", "SourceName": "frontend", "DestinationNS": "default", "DestinationName": "api",
               "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}], "Precedence": 9}),
    ];
    b.default_allow = true;
    let b = b.start().await;
    let addr = b.public_addr().unwrap();
    let cases = [
        Case {
            source: "web",
            allowed: true,
        },
        Case {
            source: "billing",
            allowed: false,
        },
        Case {
            source: "orders",
            allowed: false,
        },
        // An L7 intention denies plain TCP.
        Case {
            source: "frontend",
            allowed: false,
        },
    ];
    for case in &cases {
        let leaf = pki.leaf(case.source);
        let got =
            mtls_round_trip(addr, &leaf.cert_pem, leaf.private_key_pem.expose(), b"ping").await;
        let passed = matches!(&got, Ok(b) if b == b"ping");
        assert_eq!(passed, case.allowed, "source {}: {got:?}", case.source);
    }
    let text = b.metrics_text();
    for denied in ["billing", "orders", "frontend"] {
        assert_eq!(
            metric(
                &text,
                &format!("consul_dataplane_intention_denials_total{{source=\"{denied}\"}}")
            ),
            1,
            "{text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "consul_dataplane_intention_denials_total{source=\"web\"}"
        ),
        0
    );
}

#[tokio::test]
async fn default_deny_applies_when_no_intention_matches() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let mut b = Sidecar::new(pki.write("api", &api), app.port());
    b.default_allow = false;
    b.intentions = vec![
        json!({"SourceNS": "default", "SourceName": "web", "DestinationNS": "default",
        "DestinationName": "api", "Action": "allow", "Precedence": 9}),
    ];
    let b = b.start().await;
    let addr = b.public_addr().unwrap();
    let web = pki.leaf("web");
    let other = pki.leaf("other");
    assert_eq!(
        mtls_round_trip(addr, &web.cert_pem, web.private_key_pem.expose(), b"a")
            .await
            .unwrap(),
        b"a"
    );
    let got = mtls_round_trip(addr, &other.cert_pem, other.private_key_pem.expose(), b"a").await;
    assert!(!matches!(&got, Ok(b) if b == b"a"), "{got:?}");
}

#[tokio::test]
async fn round_robin_spreads_new_connections_over_instances() {
    let mut pki = Pki::new(CLUSTER);
    let (app1, _t1) = echo_app().await;
    let (app2, _t2) = echo_app().await;
    let api = pki.leaf("api");
    let paths = pki.write("api", &api);
    let b1 = Sidecar::new(paths.clone(), app1.port()).start().await;
    let b2 = Sidecar::new(paths, app2.port()).start().await;
    let web = pki.leaf("web");
    let a = Sidecar::new(pki.write("web", &web), 1)
        .upstream(
            "api",
            &[b1.public_addr().unwrap(), b2.public_addr().unwrap()],
        )
        .start()
        .await;
    for i in 0..6u8 {
        assert_eq!(
            round_trip(a.upstream_addrs()["api"], &[i]).await.unwrap(),
            vec![i]
        );
    }
    let opened = |dp: &dataplane::Dataplane| {
        metric(
            &dp.metrics_text(),
            "consul_dataplane_connections_opened_total{listener=\"public\"}",
        )
    };
    assert_eq!((opened(&b1), opened(&b2)), (3, 3));
}

#[tokio::test]
async fn least_connections_prefers_the_idle_instance() {
    let mut pki = Pki::new(CLUSTER);
    let (app1, _t1) = echo_app().await;
    let (app2, _t2) = echo_app().await;
    let api = pki.leaf("api");
    let paths = pki.write("api", &api);
    let b1 = Sidecar::new(paths.clone(), app1.port()).start().await;
    let b2 = Sidecar::new(paths, app2.port()).start().await;
    let web = pki.leaf("web");
    let mut a = Sidecar::new(pki.write("web", &web), 1).upstream(
        "api",
        &[b1.public_addr().unwrap(), b2.public_addr().unwrap()],
    );
    a.envoy = json!({"balancer": "least_connections"});
    let a = a.start().await;
    let up = a.upstream_addrs()["api"];
    // Hold three connections open: they spread 2/1 at most.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(up).await.unwrap();
        s.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        held.push(s);
    }
    let active = |dp: &dataplane::Dataplane| {
        metric(
            &dp.metrics_text(),
            "consul_dataplane_connections_active{listener=\"public\"}",
        )
    };
    let (x, y) = (active(&b1), active(&b2));
    assert_eq!(x + y, 3);
    assert!(x.abs_diff(y) <= 1, "unbalanced: {x} vs {y}");
}

#[tokio::test]
async fn a_dead_instance_is_skipped_for_the_next_one() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let web = pki.leaf("web");
    let a = Sidecar::new(pki.write("web", &web), 1)
        .upstream("api", &[dead, b.public_addr().unwrap()])
        .start()
        .await;
    for i in 0..4u8 {
        assert_eq!(
            round_trip(a.upstream_addrs()["api"], &[i]).await.unwrap(),
            vec![i]
        );
    }
    assert!(
        metric(
            &a.metrics_text(),
            "consul_dataplane_upstream_connect_failures_total{upstream=\"api\",reason=\"refused\"}"
        ) >= 1
    );
}

#[tokio::test]
async fn idle_spliced_connections_are_closed() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let mut b = Sidecar::new(pki.write("api", &api), app.port());
    b.envoy = json!({"idleTimeoutSeconds": 1});
    let b = b.start().await;
    let web = pki.leaf("web");
    let a = Sidecar::new(pki.write("web", &web), 1)
        .upstream("api", &[b.public_addr().unwrap()])
        .start()
        .await;
    let mut s = TcpStream::connect(a.upstream_addrs()["api"]).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).await.unwrap();
    // Say nothing more: B's idle bound closes the chain.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(patience(), s.read_to_end(&mut rest)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_never_reaches_the_app() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let b = Sidecar::new(pki.write("api", &api), app.port())
        .start()
        .await;
    for garbage in [
        &b"\x00\x00\x00\x00\x00\x00"[..],
        b"\x16\x03\x01\xff\xff",
        &[0x42u8; 4096],
    ] {
        let mut raw = TcpStream::connect(b.public_addr().unwrap()).await.unwrap();
        let _ = raw.write_all(garbage).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(patience(), raw.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(
            !buf.windows(garbage.len().min(4))
                .any(|w| w == &garbage[..garbage.len().min(4)])
                || garbage.len() < 4
        );
    }
    let text = b.metrics_text();
    assert!(
        metric(
            &text,
            "consul_dataplane_tls_handshake_failures_total{listener=\"public\",reason=\"not_tls\"}"
        ) >= 2,
        "{text}"
    );
    // Still serving.
    let web = pki.leaf("web");
    assert_eq!(
        mtls_round_trip(
            b.public_addr().unwrap(),
            &web.cert_pem,
            web.private_key_pem.expose(),
            b"ok"
        )
        .await
        .unwrap(),
        b"ok"
    );
    let _ = Duration::from_secs(0);
}
