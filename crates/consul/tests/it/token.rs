//! The token: sent as `X-Consul-Token` (the client's, or a per-call override), absent when there is
//! none, and never shown by `Debug`. Tenancy defaults and overrides go out as query parameters.

use consul_client::{Client, ClientConfig, QueryOptions, Secret, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn token_header_default_override_and_absence() {
    let consul = FakeConsul::always(Reply::json(json!([]))).await;
    let mut config = consul.config();
    config.token = Some(Secret::new("s3cr3t-token-value"));
    config.namespace = Some("ns-default".into());
    config.partition = Some("p-default".into());
    config.datacenter = Some("dc-default".into());
    let client = Client::new(config.clone()).unwrap();

    client
        .catalog()
        .nodes(&QueryOptions::default())
        .await
        .unwrap();
    let override_options = QueryOptions {
        token: Some(Secret::new("per-call")),
        namespace: Some("ns-call".into()),
        ..Default::default()
    };
    client.catalog().nodes(&override_options).await.unwrap();
    consul
        .client()
        .catalog()
        .nodes(&QueryOptions::default())
        .await
        .unwrap();
    client
        .with_token(None)
        .catalog()
        .nodes(&QueryOptions::default())
        .await
        .unwrap();
    client
        .acl()
        .logout(&WriteOptions {
            token: Some(Secret::new("write-override")),
            partition: Some("p-call".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    let requests = consul.requests();
    assert_eq!(requests[0].token(), Some("s3cr3t-token-value"));
    assert_eq!(requests[0].param("ns"), Some("ns-default"));
    assert_eq!(requests[0].param("partition"), Some("p-default"));
    assert_eq!(requests[0].param("dc"), Some("dc-default"));
    assert_eq!(requests[1].token(), Some("per-call"));
    assert_eq!(requests[1].param("ns"), Some("ns-call"));
    assert_eq!(requests[1].param("partition"), Some("p-default"));
    assert_eq!(requests[2].token(), None);
    assert!(requests[2].query.is_empty());
    assert_eq!(requests[3].token(), None);
    assert_eq!(requests[4].token(), Some("write-override"));
    assert_eq!(requests[4].param("partition"), Some("p-call"));
    // The token never travels in the URL.
    assert!(requests.iter().all(|r| !r.raw_query.contains("s3cr3t")));

    let shown = format!("{client:?} {config:?} {override_options:?}");
    assert!(!shown.contains("s3cr3t-token-value"), "{shown}");
    assert!(!shown.contains("per-call"), "{shown}");
    assert!(client.has_token());
    assert_eq!(client.address(), consul.address());
}

#[tokio::test]
async fn basic_auth_and_path_prefix() {
    let consul = FakeConsul::always(Reply::json(json!("leader:8300"))).await;
    let mut config = ClientConfig::new(format!("http://{}/consul/", consul.address()));
    config.basic_auth = Some(consul_client::BasicAuth {
        username: "user".into(),
        password: Secret::new("pass"),
    });
    let client = Client::new(config).unwrap();
    client.status().leader().await.unwrap();
    let request = consul.only_request();
    assert_eq!(request.path, "/consul/v1/status/leader");
    assert_eq!(request.header("authorization"), Some("Basic dXNlcjpwYXNz"));
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_refused_without_leaking_it() {
    let consul = FakeConsul::always(Reply::json(json!([]))).await;
    let client = consul.client_with(|c| c.token = Some(Secret::new("bad\ntoken")));
    let err = client
        .catalog()
        .nodes(&QueryOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, consul_client::Error::InvalidArgument(_)),
        "{err}"
    );
    assert!(!err.to_string().contains("bad\ntoken"));
    assert!(consul.requests().is_empty());
}
