//! Bad input gets Consul's error replies (plain text, the right status), never a crash.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let server = start().await;
    let addr = server.http_addr();
    let r = put(
        addr,
        "/v1/catalog/register",
        "{\n  \"Node\": \"n1\",\n  \"Address\": }",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("Request decode failed: "),
        "{}",
        r.text()
    );
    assert!(r.text().contains("line 3 column"), "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = put(addr, "/v1/catalog/register", "").await;
    assert_eq!(r.status, 400);
    let r = put(addr, "/v1/catalog/register", "[1,2]").await;
    assert_eq!(r.status, 400);
    let r = put(addr, "/v1/catalog/deregister", "{\"Node\": 5}").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Node: invalid type"), "{}", r.text());
    let r = put(addr, "/v1/catalog/register", b"\xff\xfe".to_vec()).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("allow"));
    let r = get(addr, "/").await;
    assert_eq!(r.status, 404);
    let r = get(addr, "/v1/catalog/register").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (405, "method GET not allowed")
    );
    let r = request(addr, "POST", "/v1/kv/x", Some(b"v".to_vec())).await;
    assert_eq!(r.status, 405);
    let r = delete(addr, "/v1/catalog/services").await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let addr = server.http_addr();
    let big = format!(
        "{{\"Node\": \"n\", \"Address\": \"1.2.3.4\", \"NodeMeta\": {{\"k\": \"{}\"}}}}",
        "x".repeat(100 * 1024)
    );
    let r = put(addr, "/v1/catalog/register", big).await;
    assert_eq!(r.status, 413);
    let r = put(addr, "/v1/config", vec![b' '; 100 * 1024]).await;
    assert_eq!(r.status, 413);
    // The server is fine afterwards.
    assert_eq!(get(addr, "/v1/status/leader").await.status, 200);
}

#[tokio::test]
async fn odd_but_valid_input_does_not_break_anything() {
    let server = start().await;
    let addr = server.http_addr();
    // Unicode names, percent-encoded paths, deep nesting in free-form config.
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!({"n": nested});
    }
    register(addr, &json!({"Node": "nœud-1", "Address": "10.0.0.1", "Service": {"Service": "svc", "Port": 1, "Kind": "connect-proxy", "Proxy": {"DestinationServiceName": "x", "Config": {"deep": nested}}}})).await;
    let r = get(addr, "/v1/catalog/node/n%C5%93ud-1").await;
    assert_eq!(r.json()["Node"]["Node"], "nœud-1");
    let r = get(addr, "/v1/catalog/service/svc").await;
    assert_eq!(r.json()[0]["ServiceProxy"]["Config"]["deep"], nested);
    // Token headers are accepted (ACLs allow everything for now).
    let r = request_with_headers(
        addr,
        "GET",
        "/v1/catalog/services",
        None,
        &[("x-consul-token", "secret")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request_with_headers(
        addr,
        "GET",
        "/v1/catalog/services",
        None,
        &[("authorization", "Bearer secret")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(addr, "/v1/catalog/services?pretty").await;
    assert!(r.text().contains("\n"), "pretty output is indented");
    let r = get(addr, "/v1/health/service/svc?filter=%ff%fe").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn status_and_agent_endpoints() {
    let server = start().await;
    let addr = server.http_addr();
    assert_eq!(
        get(addr, "/v1/status/leader").await.json(),
        json!("127.0.0.1:8300")
    );
    assert_eq!(
        get(addr, "/v1/status/peers").await.json(),
        json!(["127.0.0.1:8300"])
    );
    let me = get(addr, "/v1/agent/self").await.json();
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["NodeName"], "dev-node");
    assert_eq!(me["Config"]["Version"], devserver::CONSUL_VERSION);
    assert_eq!(me["Config"]["Server"], true);
    assert_eq!(me["Member"]["Name"], "dev-node");
    let node_id = get(addr, "/v1/catalog/node/dev-node").await.json()["Node"]["ID"].clone();
    assert_eq!(me["Config"]["NodeID"], node_id);
    let members = get(addr, "/v1/agent/members").await.json();
    assert_eq!(members[0]["Status"], 1);
}

/// The router also works in memory, without a socket.
#[tokio::test]
async fn router_answers_in_memory() {
    use tower::ServiceExt as _;
    let state = devserver::AppState::new(&config()).unwrap();
    let app = devserver::app(state);
    let req = http::Request::builder()
        .uri("/v1/catalog/datacenters")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}
