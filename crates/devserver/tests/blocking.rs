//! Blocking queries: they wake on a relevant change, keep waiting through unrelated ones, time out on
//! `?wait`, return at once for index 0 or an index from the future, and indexes only go up.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

async fn register_web(addr: std::net::SocketAddr, id: &str, status: &str) {
    register(
        addr,
        &json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"ID": id, "Service": "web", "Port": 80},
            "Check": {"CheckID": format!("{id}-c"), "Name": "c", "Status": status, "ServiceID": id}}),
    )
    .await;
}

#[tokio::test]
async fn wakes_on_a_relevant_change() {
    let server = start().await;
    let addr = server.http_addr();
    register_web(addr, "web-1", "critical").await;
    let first = get(addr, "/v1/health/service/web").await;
    let index = first.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/health/service/web?index={index}&wait=60s"),
        )
        .await
    });
    // A check status change of a web instance is relevant.
    register_web(addr, "web-1", "passing").await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    assert_eq!(r.json()[0]["Checks"][0]["Status"], "passing");
}

#[tokio::test]
async fn ignores_unrelated_changes_and_times_out() {
    let server = start().await;
    let addr = server.http_addr();
    register_web(addr, "web-1", "passing").await;
    let index = get(addr, "/v1/health/service/web").await.index();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/health/service/web?index={index}&wait=1s"),
        )
        .await
    });
    // Unrelated writes: another service, a KV key, a config entry.
    register(
        addr,
        &json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "db", "Port": 5432}}),
    )
    .await;
    assert_eq!(put(addr, "/v1/kv/some/key", "v").await.status, 200);
    assert_eq!(
        put_json(
            addr,
            "/v1/config",
            &json!({"Kind": "service-defaults", "Name": "db", "Protocol": "tcp"})
        )
        .await
        .status,
        200
    );
    let r = waiter.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "returned before the wait ran out"
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.index(),
        index,
        "nothing relevant changed, so the index is the same"
    );
    assert_eq!(r.json()[0]["Service"]["ID"], "web-1");
}

#[tokio::test]
async fn only_the_watched_service_wakes() {
    let server = start().await;
    let addr = server.http_addr();
    let mut waiters = Vec::new();
    for i in 0..40 {
        let name = format!("svc-{i}");
        register(
            addr,
            &json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": name, "Port": 80}}),
        )
        .await;
    }
    for i in 0..40 {
        let index = get(addr, &format!("/v1/catalog/service/svc-{i}"))
            .await
            .index();
        waiters.push(tokio::spawn(async move {
            get(
                addr,
                &format!("/v1/catalog/service/svc-{i}?index={index}&wait=5m"),
            )
            .await
        }));
    }
    register(
        addr,
        &json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "svc-7", "Port": 81}}),
    )
    .await;
    let woken = waiters.remove(7).await.unwrap();
    assert_eq!(woken.json()[0]["ServicePort"], 81);
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "unrelated watchers returned"
    );
    // Shutting down ends the others promptly (well before their 5 minutes).
    let started = Instant::now();
    server.shutdown().await;
    for w in waiters {
        let r = w.await.unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn index_zero_and_future_indexes_return_at_once() {
    let server = start().await;
    let addr = server.http_addr();
    register_web(addr, "web-1", "passing").await;
    let index = get(addr, "/v1/health/service/web").await.index();
    let r = get(addr, "/v1/health/service/web?index=0&wait=10m").await;
    assert_eq!(r.index(), index);
    // An index from the future (e.g. from before a reset) returns at once with the current index.
    let r = get(
        addr,
        &format!("/v1/health/service/web?index={}&wait=10m", index + 1000),
    )
    .await;
    assert_eq!(r.index(), index);
    let r = get(addr, "/v1/health/service/web?index=1&wait=bogus").await;
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid wait time"));
    let r = get(addr, "/v1/health/service/web?index=x").await;
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid index"));
}

#[tokio::test]
async fn indexes_are_monotonic_and_unchanged_writes_keep_them() {
    let server = start().await;
    let addr = server.http_addr();
    let mut last = 0;
    for i in 0..5 {
        register_web(
            addr,
            "web-1",
            if i % 2 == 0 { "passing" } else { "critical" },
        )
        .await;
        let idx = get(addr, "/v1/health/service/web").await.index();
        assert!(idx > last, "{idx} after {last}");
        last = idx;
    }
    // The same registration again is a no-op: same index.
    register_web(addr, "web-1", "critical").await;
    let idx = get(addr, "/v1/health/service/web").await.index();
    assert!(idx > last);
    register_web(addr, "web-1", "critical").await;
    assert_eq!(get(addr, "/v1/health/service/web").await.index(), idx);
    // Writes elsewhere do not move this service's index.
    assert_eq!(put(addr, "/v1/kv/x", "1").await.status, 200);
    assert_eq!(get(addr, "/v1/health/service/web").await.index(), idx);
    // A service that was never registered still reports a usable, non-zero index.
    assert!(get(addr, "/v1/health/service/never").await.index() >= 1);
}

#[tokio::test]
async fn kv_watchers_wake_only_for_their_key_or_prefix() {
    let server = start().await;
    let addr = server.http_addr();
    assert_eq!(put(addr, "/v1/kv/app/a", "1").await.status, 200);
    assert_eq!(put(addr, "/v1/kv/other/b", "1").await.status, 200);
    let key_index = get(addr, "/v1/kv/app/a").await.index();
    let prefix_index = get(addr, "/v1/kv/app/?recurse").await.index();
    let key_waiter =
        tokio::spawn(
            async move { get(addr, &format!("/v1/kv/app/a?index={key_index}&wait=2s")).await },
        );
    let prefix_waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/kv/app/?recurse&index={prefix_index}&wait=60s"),
        )
        .await
    });
    // A write to a sibling under the prefix wakes the prefix watcher but not the key watcher.
    assert_eq!(put(addr, "/v1/kv/other/b", "2").await.status, 200);
    assert_eq!(put(addr, "/v1/kv/app/c", "3").await.status, 200);
    let p = prefix_waiter.await.unwrap();
    assert!(p.index() > prefix_index);
    assert_eq!(p.json().as_array().unwrap().len(), 2);
    let k = key_waiter.await.unwrap();
    assert_eq!(k.index(), key_index, "app/a did not change");
    // A missing key blocks too, and wakes when it appears.
    let r = get(addr, "/v1/kv/later").await;
    assert_eq!(r.status, 404);
    let idx = r.index();
    let waiter =
        tokio::spawn(async move { get(addr, &format!("/v1/kv/later?index={idx}&wait=60s")).await });
    assert_eq!(put(addr, "/v1/kv/later", "now").await.status, 200);
    let r = waiter.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["Value"], "bm93");
}

#[tokio::test]
async fn config_entry_reads_block() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/config/service-defaults/web").await;
    assert_eq!(r.status, 404);
    let idx = get(addr, "/v1/config/service-defaults").await.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/config/service-defaults?index={idx}&wait=60s"),
        )
        .await
    });
    assert_eq!(
        put_json(
            addr,
            "/v1/config",
            &json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
        )
        .await
        .status,
        200
    );
    let r = waiter.await.unwrap();
    assert_eq!(r.json()[0]["Name"], "web");
    let entry_idx = get(addr, "/v1/config/service-defaults/web").await.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/config/service-defaults/web?index={entry_idx}&wait=60s"),
        )
        .await
    });
    assert_eq!(
        put_json(
            addr,
            "/v1/config",
            &json!({"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"})
        )
        .await
        .status,
        200
    );
    let r = waiter.await.unwrap();
    assert_eq!(r.json()["Protocol"], "grpc");
    assert!(r.index() > entry_idx);
}
