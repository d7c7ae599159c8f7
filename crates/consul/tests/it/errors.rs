//! Errors and response metadata: Consul's status and text are kept, decode errors name the field,
//! headers become `QueryMeta`.

use consul_client::{Error, QueryOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn decode_errors_name_the_field() {
    let consul = FakeConsul::always(Reply::json(json!([
        {"Node": "n1", "Address": "10.0.0.1"},
        {"Node": "n2", "Address": 5}
    ])))
    .await;
    let err = consul
        .client()
        .catalog()
        .nodes(&QueryOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::Decode {
            method,
            path,
            field,
            message,
        } => {
            assert_eq!(method, "GET");
            assert_eq!(path, "/v1/catalog/nodes");
            assert_eq!(field, "[1].Address");
            assert!(message.contains("expected a string"), "{message}");
        }
        other => panic!("expected a decode error, got {other}"),
    }
    assert!(err.to_string().contains("[1].Address"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn nested_and_trailing_garbage_are_reported() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(json!([{"Node": {}, "Service": {"ID": "x", "Port": 70000}, "Checks": []}])),
        Reply {
            status: 200,
            headers: vec![],
            body: b"[] trailing".to_vec(),
        },
        Reply {
            status: 200,
            headers: vec![],
            body: b"<html>not json</html>".to_vec(),
        },
    ])
    .await;
    let client = consul.client();
    let health = client.health();
    let options = QueryOptions::default();
    let filters = Default::default();
    let field = |err: Error| match err {
        Error::Decode { field, .. } => field,
        other => panic!("expected a decode error, got {other}"),
    };
    let err = health.service("web", &filters, &options).await.unwrap_err();
    assert_eq!(field(err), "[0].Service.Port");
    let err = health.service("web", &filters, &options).await.unwrap_err();
    assert_eq!(field(err), ".");
    let err = health.service("web", &filters, &options).await.unwrap_err();
    assert_eq!(field(err), ".");
}

#[tokio::test]
async fn status_errors_keep_consuls_answer() {
    let consul = FakeConsul::scripted(vec![
        Reply::raw(404, "Unknown service \"web\"\n"),
        Reply::raw(500, ""),
    ])
    .await;
    let client = consul.client();
    let err = client
        .agent()
        .leaf_cert("web", &QueryOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::Status {
            status,
            message,
            method,
            path,
        } => {
            assert_eq!(*status, 404);
            assert_eq!(message, "Unknown service \"web\"");
            assert_eq!(method, "GET");
            assert_eq!(path, "/v1/agent/connect/ca/leaf/web");
        }
        other => panic!("expected a status error, got {other}"),
    }
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "consul answered 404 to GET /v1/agent/connect/ca/leaf/web: Unknown service \"web\""
    );
    let err = client.status().leader().await.unwrap_err();
    assert_eq!(
        err.message(),
        Some("Internal Server Error"),
        "empty bodies get the reason"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn response_headers_become_query_meta() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(json!([]))
            .index(1234)
            .header("X-Consul-KnownLeader", "true")
            .header("X-Consul-LastContact", "250")
            .header("X-Consul-Results-Filtered-By-ACLs", "true")
            .header("X-Consul-Default-ACL-Policy", "deny")
            .header("X-Cache", "HIT")
            .header("X-Consul-Query-Backend", "streaming"),
        Reply::json(json!([])),
        Reply::json(json!([])).header("X-Consul-Index", "not-a-number"),
    ])
    .await;
    let client = consul.client();
    let catalog = client.catalog();
    let meta = catalog.nodes(&QueryOptions::default()).await.unwrap().meta;
    assert_eq!(meta.last_index, 1234);
    assert!(meta.known_leader);
    assert_eq!(meta.last_contact, std::time::Duration::from_millis(250));
    assert!(meta.results_filtered_by_acls);
    assert_eq!(meta.default_acl_policy.as_deref(), Some("deny"));
    assert_eq!(meta.cache_hit, Some(true));
    assert_eq!(meta.query_backend.as_deref(), Some("streaming"));

    let bare = catalog.nodes(&QueryOptions::default()).await.unwrap().meta;
    assert_eq!(bare.last_index, 0);
    assert!(!bare.known_leader);
    assert!(!bare.results_filtered_by_acls);

    let err = catalog.nodes(&QueryOptions::default()).await.unwrap_err();
    match err {
        Error::Decode { field, .. } => assert_eq!(field, "X-Consul-Index"),
        other => panic!("expected a decode error, got {other}"),
    }
}
