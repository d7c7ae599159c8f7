//! Retries: on 5xx, 429 and connection errors, never on other 4xx; bounded or until cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use consul_client::catalog::CatalogRegistration;
use consul_client::{Client, ClientConfig, Error, RetryPolicy, WriteOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{FakeConsul, Reply};

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(Duration::from_millis(1), Duration::from_millis(4)).with_max_attempts(attempts)
}

fn registration() -> CatalogRegistration {
    CatalogRegistration {
        node: "n1".into(),
        address: "10.0.0.1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn retries_server_errors_until_success() {
    let consul = FakeConsul::scripted(vec![
        Reply::raw(500, "rpc error making call: No cluster leader"),
        Reply::raw(503, "unavailable"),
        Reply::raw(429, "too many requests"),
        Reply::ok_true(),
    ])
    .await;
    let client = consul.client();
    let cancel = CancellationToken::new();
    let reg = registration();
    let options = WriteOptions::default();
    policy(5)
        .run(&cancel, || client.catalog().register(&reg, &options))
        .await
        .unwrap();
    let requests = consul.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| r.json() == requests[0].json()),
        "same body each time"
    );
}

#[tokio::test]
async fn gives_up_after_the_attempt_limit_with_the_last_error() {
    let consul = FakeConsul::always(Reply::raw(500, "still broken")).await;
    let client = consul.client();
    let reg = registration();
    let options = WriteOptions::default();
    let err = policy(3)
        .run(&CancellationToken::new(), || {
            client.catalog().register(&reg, &options)
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.message(), Some("still broken"));
    assert_eq!(consul.requests().len(), 3);
}

#[tokio::test]
async fn never_retries_a_client_error() {
    let consul = FakeConsul::always(Reply::raw(400, "Invalid service address")).await;
    let client = consul.client();
    let reg = registration();
    let options = WriteOptions::default();
    let err = policy(5)
        .run(&CancellationToken::new(), || {
            client.catalog().register(&reg, &options)
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert_eq!(consul.requests().len(), 1);
}

#[tokio::test]
async fn retries_a_refused_connection() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead = Client::new(ClientConfig::new(format!("127.0.0.1:{port}"))).unwrap();
    let consul = FakeConsul::always(Reply::json(json!("10.0.0.1:8300"))).await;
    let live = consul.client();
    // The first two attempts go to the dead address, the third to the live one.
    let attempts = Arc::new(AtomicU32::new(0));
    let leader = policy(5)
        .run(&CancellationToken::new(), || {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            let client = if attempt < 2 {
                dead.clone()
            } else {
                live.clone()
            };
            async move { client.status().leader().await }
        })
        .await
        .unwrap();
    assert_eq!(leader, "10.0.0.1:8300");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let err = policy(2)
        .run(&CancellationToken::new(), || dead.status().leader())
        .await
        .unwrap_err();
    match &err {
        Error::Transport { address, path, .. } => {
            assert_eq!(address, &format!("127.0.0.1:{port}"));
            assert_eq!(path, "/v1/status/leader");
        }
        other => panic!("expected a transport error, got {other}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn cancellation_stops_retrying() {
    let consul = FakeConsul::always(Reply::raw(500, "down")).await;
    let client = consul.client();
    let cancel = CancellationToken::new();
    let calls = AtomicU32::new(0);
    let err = RetryPolicy::new(Duration::from_millis(1), Duration::from_millis(2))
        .run(&cancel, || {
            if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                cancel.cancel();
            }
            client.status().leader()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(consul.requests().len() <= 3);
}
