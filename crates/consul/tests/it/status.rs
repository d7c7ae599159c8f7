//! Status: leader and peers.

use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn leader_and_peers() {
    let consul = FakeConsul::start(|request| match request.path.as_str() {
        "/v1/status/leader" => Reply::json(json!("10.0.0.1:8300")),
        "/v1/status/peers" => Reply::json(json!(["10.0.0.1:8300", "10.0.0.2:8300"])),
        _ => Reply::raw(404, "no"),
    })
    .await;
    let client = consul.client();
    assert_eq!(client.status().leader().await.unwrap(), "10.0.0.1:8300");
    assert_eq!(
        client.status().peers().await.unwrap(),
        ["10.0.0.1:8300", "10.0.0.2:8300"]
    );
    assert!(consul.requests().iter().all(|r| r.method == "GET"));
}
