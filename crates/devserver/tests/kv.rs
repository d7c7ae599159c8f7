//! KV: values, flags, check-and-set, recursive reads and deletes, key listing, raw reads, limits.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn put_get_and_delete() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/kv/missing").await;
    assert_eq!(r.status, 404);
    assert!(r.index() >= 1);
    let r = put(addr, "/v1/kv/app/config?flags=42", "hello").await;
    assert_eq!((r.status, r.json()), (200, json!(true)));
    let r = get(addr, "/v1/kv/app/config").await;
    let e = &r.json()[0];
    assert_eq!(e["Key"], "app/config");
    assert_eq!(e["Value"], "aGVsbG8=");
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["LockIndex"], 0);
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    assert_eq!(r.index(), e["ModifyIndex"].as_u64().unwrap());
    assert!(e.get("Session").is_none());
    let r = get(addr, "/v1/kv/app/config?raw").await;
    assert_eq!(r.body, b"hello");
    // Overwrite keeps CreateIndex.
    put(addr, "/v1/kv/app/config", "bye").await;
    let e2 = get(addr, "/v1/kv/app/config").await.json()[0].clone();
    assert_eq!(e2["CreateIndex"], e["CreateIndex"]);
    assert!(e2["ModifyIndex"].as_u64() > e["ModifyIndex"].as_u64());
    assert_eq!(e2["Flags"], 0);
    // An empty value is null.
    put(addr, "/v1/kv/empty", "").await;
    assert_eq!(
        get(addr, "/v1/kv/empty").await.json()[0]["Value"],
        json!(null)
    );
    // Binary values round-trip.
    let bytes: Vec<u8> = (0..=255).collect();
    put(addr, "/v1/kv/bin", bytes.clone()).await;
    assert_eq!(get(addr, "/v1/kv/bin?raw").await.body, bytes);
    let r = delete(addr, "/v1/kv/app/config").await;
    assert_eq!((r.status, r.json()), (200, json!(true)));
    assert_eq!(get(addr, "/v1/kv/app/config").await.status, 404);
}

#[tokio::test]
async fn check_and_set() {
    let server = start().await;
    let addr = server.http_addr();
    // cas=0 creates only if absent.
    assert_eq!(put(addr, "/v1/kv/k?cas=0", "a").await.json(), json!(true));
    assert_eq!(put(addr, "/v1/kv/k?cas=0", "b").await.json(), json!(false));
    let idx = get(addr, "/v1/kv/k").await.json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        put(addr, &format!("/v1/kv/k?cas={}", idx + 1), "c")
            .await
            .json(),
        json!(false)
    );
    assert_eq!(
        put(addr, &format!("/v1/kv/k?cas={idx}"), "d").await.json(),
        json!(true)
    );
    assert_eq!(get(addr, "/v1/kv/k?raw").await.body, b"d");
    let idx = get(addr, "/v1/kv/k").await.json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        delete(addr, &format!("/v1/kv/k?cas={}", idx - 1))
            .await
            .json(),
        json!(false)
    );
    assert_eq!(get(addr, "/v1/kv/k").await.status, 200);
    assert_eq!(
        delete(addr, &format!("/v1/kv/k?cas={idx}")).await.json(),
        json!(true)
    );
    assert_eq!(get(addr, "/v1/kv/k").await.status, 404);
    assert_eq!(put(addr, "/v1/kv/k?cas=abc", "x").await.status, 400);
}

#[tokio::test]
async fn recurse_keys_and_separator() {
    let server = start().await;
    let addr = server.http_addr();
    for k in ["web/a", "web/b/c", "web/b/d", "webapp", "zzz"] {
        assert_eq!(put(addr, &format!("/v1/kv/{k}"), k).await.status, 200);
    }
    let r = get(addr, "/v1/kv/web?recurse").await;
    let list = r.json();
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["web/a", "web/b/c", "web/b/d", "webapp"]);
    let r = get(addr, "/v1/kv/web/?keys").await;
    assert_eq!(r.json(), json!(["web/a", "web/b/c", "web/b/d"]));
    let r = get(addr, "/v1/kv/web/?keys&separator=/").await;
    assert_eq!(r.json(), json!(["web/a", "web/b/"]));
    let r = get(addr, "/v1/kv/?keys&separator=/").await;
    assert_eq!(r.json(), json!(["web/", "webapp", "zzz"]));
    assert_eq!(get(addr, "/v1/kv/nothing/?keys").await.status, 404);
    assert_eq!(get(addr, "/v1/kv/nothing/?recurse").await.status, 404);
    let r = delete(addr, "/v1/kv/web/?recurse").await;
    assert_eq!(r.json(), json!(true));
    let r = get(addr, "/v1/kv/?keys").await;
    assert_eq!(r.json(), json!(["webapp", "zzz"]));
    // Deleting everything needs ?recurse.
    assert_eq!(delete(addr, "/v1/kv/").await.status, 400);
    assert_eq!(delete(addr, "/v1/kv/?recurse").await.json(), json!(true));
    assert_eq!(get(addr, "/v1/kv/?recurse").await.status, 404);
}

#[tokio::test]
async fn limits_and_bad_requests() {
    let server = start().await;
    let addr = server.http_addr();
    assert_eq!(put(addr, "/v1/kv/", "x").await.status, 400);
    let r = put(addr, "/v1/kv/big", vec![b'x'; 512 * 1024 + 1]).await;
    assert_eq!(r.status, 413);
    assert!(r.text().contains("too large"), "{}", r.text());
    assert_eq!(
        put(addr, "/v1/kv/fits", vec![b'x'; 512 * 1024])
            .await
            .status,
        200
    );
    assert_eq!(put(addr, "/v1/kv/lock?acquire=abc", "x").await.status, 400);
    assert_eq!(put(addr, "/v1/kv/f?flags=-1", "x").await.status, 400);
}
