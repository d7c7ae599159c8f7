//! KV: values are base64 on the wire and raw bytes in requests; missing keys read as `None`;
//! check-and-set answers come back as booleans.

use consul_client::{QueryOptions, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn get_list_and_keys() {
    let consul = FakeConsul::start(|request| {
        let has = |k: &str| request.query.iter().any(|(key, _)| key == k);
        match request.path.as_str() {
            "/v1/kv/config/web/port" => Reply::json(json!([{
                "Key": "config/web/port", "CreateIndex": 10, "ModifyIndex": 12, "LockIndex": 0,
                "Flags": 7, "Value": "ODA4MA==", "Session": ""
            }]))
            .index(12),
            "/v1/kv/config/" if has("recurse") => Reply::json(json!([
                {"Key": "config/a", "CreateIndex": 1, "ModifyIndex": 1, "LockIndex": 0, "Flags": 0, "Value": "YQ=="},
                {"Key": "config/empty/", "CreateIndex": 2, "ModifyIndex": 2, "LockIndex": 0, "Flags": 0, "Value": null}
            ]))
            .index(12),
            "/v1/kv/config/" if has("keys") => Reply::json(json!(["config/a", "config/empty/"])).index(12),
            _ => Reply::raw(404, "").index(12),
        }
    })
    .await;
    let kv = consul.client();
    let kv = kv.kv();
    let none = QueryOptions::default();

    let pair = kv.get("config/web/port", &none).await.unwrap();
    let pair = pair.value.unwrap();
    assert_eq!(pair.value.as_deref(), Some(b"8080".as_slice()));
    assert_eq!(pair.flags, 7);
    assert_eq!(pair.modify_index, 12);

    let missing = kv.get("config/missing", &none).await.unwrap();
    assert!(missing.value.is_none());
    assert_eq!(missing.meta.last_index, 12, "index comes back on a 404 too");

    let listed = kv.list("config/", &none).await.unwrap().value;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].value, None);
    let keys = kv.keys("config/", Some("/"), &none).await.unwrap().value;
    assert_eq!(keys, ["config/a", "config/empty/"]);
    assert!(kv.list("nothing/", &none).await.unwrap().value.is_empty());

    let requests = consul.requests();
    assert_eq!(requests[2].param("recurse"), Some(""));
    assert_eq!(requests[3].param("keys"), Some(""));
    assert_eq!(requests[3].param("separator"), Some("/"));
}

#[tokio::test]
async fn put_cas_and_delete() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(json!(true)),
        Reply::json(json!(false)),
        Reply::json(json!(true)),
        Reply::json(json!(true)),
        Reply::json(json!(false)),
    ])
    .await;
    let client = consul.client();
    let kv = client.kv();
    let options = WriteOptions {
        token: Some("kv-writer".into()),
        ..Default::default()
    };
    assert!(
        kv.put("app/conf", &b"\x00binary\xff"[..], 3, &options)
            .await
            .unwrap()
    );
    assert!(!kv.cas("app/conf", "new", 0, 41, &options).await.unwrap());
    assert!(kv.delete("app/conf", &options).await.unwrap());
    assert!(kv.delete_tree("app/", &options).await.unwrap());
    assert!(!kv.delete_cas("app/x", 9, &options).await.unwrap());

    let requests = consul.requests();
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/v1/kv/app/conf");
    assert_eq!(requests[0].body.as_ref(), b"\x00binary\xff");
    assert_eq!(requests[0].param("flags"), Some("3"));
    assert_eq!(requests[0].param("cas"), None);
    assert_eq!(requests[0].token(), Some("kv-writer"));
    assert_eq!(requests[1].param("cas"), Some("41"));
    assert_eq!(requests[1].param("flags"), None);
    assert_eq!(requests[1].body.as_ref(), b"new");
    assert_eq!(requests[2].method, "DELETE");
    assert_eq!(requests[3].param("recurse"), Some(""));
    assert_eq!(requests[4].param("cas"), Some("9"));
}

#[tokio::test]
async fn a_value_that_is_not_base64_is_a_decode_error() {
    let consul = FakeConsul::always(Reply::json(json!([{"Key": "k", "Value": "%%%"}]))).await;
    let err = consul
        .client()
        .kv()
        .get("k", &QueryOptions::default())
        .await
        .unwrap_err();
    match err {
        consul_client::Error::Decode { field, message, .. } => {
            assert_eq!(field, "[0].Value");
            assert!(message.contains("base64"), "{message}");
        }
        other => panic!("expected a decode error, got {other}"),
    }
}
