//! The blocking-query watcher: follows the index, yields only changes, resets when the index goes
//! backwards, hands out errors retrying cannot fix, and stops on cancellation.

use std::time::Duration;

use consul_client::health::ServiceHealthOptions;
use consul_client::{Client, QueryOptions, RetryPolicy, Watch, watch};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{FakeConsul, Reply};

fn instances(ids: &[&str]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                json!({"Node": {"Node": "n1", "Address": "10.0.0.1"},
                       "Service": {"ID": id, "Service": "db", "Port": 5432},
                       "Checks": []})
            })
            .collect(),
    )
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::new(Duration::from_millis(1), Duration::from_millis(5))
}

type Fetch = Box<
    dyn FnMut(
        QueryOptions,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        consul_client::QueryResponse<Vec<consul_client::health::ServiceEntry>>,
                        consul_client::Error,
                    >,
                > + Send,
        >,
    >,
>;

fn watch_db(
    client: &Client,
    cancel: CancellationToken,
) -> Watch<Vec<consul_client::health::ServiceEntry>, Fetch> {
    let client = client.clone();
    let options = QueryOptions {
        wait: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let fetch: Fetch = Box::new(move |q| {
        let client = client.clone();
        Box::pin(async move {
            let filters = ServiceHealthOptions {
                passing_only: true,
                ..Default::default()
            };
            client.health().connect("db", &filters, &q).await
        })
    });
    watch(options, fast_retry(), cancel, fetch)
}

fn ids(entries: &[consul_client::health::ServiceEntry]) -> Vec<String> {
    entries.iter().map(|e| e.service.id.clone()).collect()
}

#[tokio::test]
async fn wakes_on_index_change_and_skips_unchanged_values() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(instances(&["a"])).index(5),
        Reply::json(instances(&["a"])).index(5), // the wait ran out: nothing new
        Reply::json(instances(&["a"])).index(7), // something else changed; same value
        Reply::json(instances(&["a", "b"])).index(9),
    ])
    .await;
    let mut watcher = watch_db(&consul.client(), CancellationToken::new());
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["a"]);
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["a", "b"]);
    assert_eq!(watcher.index(), 9);

    let requests = consul.requests();
    let indexes: Vec<Option<&str>> = requests.iter().map(|r| r.param("index")).collect();
    assert_eq!(indexes, [None, Some("5"), Some("5"), Some("7")]);
    assert!(requests.iter().all(|r| r.param("wait") == Some("60000ms")));
    assert!(requests.iter().all(|r| r.param("passing") == Some("1")));
}

#[tokio::test]
async fn an_index_that_goes_backwards_starts_over() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(instances(&["a"])).index(10),
        Reply::json(instances(&["b"])).index(4), // state was restored from a snapshot
        Reply::json(instances(&["b"])).index(4),
        Reply::json(instances(&["c"])).index(6),
        Reply::json(instances(&["c"])).index(0), // a server bug: never block on index 0
        Reply::json(instances(&["d"])).index(8),
    ])
    .await;
    let mut watcher = watch_db(&consul.client(), CancellationToken::new());
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["a"]);
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["b"]);
    assert_eq!(watcher.index(), 0);
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["c"]);
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["d"]);
    let indexes: Vec<Option<String>> = consul
        .requests()
        .iter()
        .map(|r| r.param("index").map(str::to_string))
        .collect();
    assert_eq!(
        indexes,
        [
            None,
            Some("10".into()),
            None, // reset after going backwards
            Some("4".into()),
            Some("6".into()),
            None, // 0 < 6 is "backwards" too
        ]
    );
}

#[tokio::test]
async fn transient_errors_are_retried_and_others_handed_out() {
    let consul = FakeConsul::scripted(vec![
        Reply::raw(500, "rpc error: No cluster leader"),
        Reply::raw(429, "rate limited"),
        Reply::json(instances(&["a"])).index(3),
        Reply::raw(403, "Permission denied: token lacks service:read"),
        Reply::json(instances(&["a", "b"])).index(4),
    ])
    .await;
    let mut watcher = watch_db(&consul.client(), CancellationToken::new());
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["a"]);
    let err = watcher.next().await.unwrap().unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert_eq!(ids(&watcher.next().await.unwrap().unwrap()), ["a", "b"]);
    assert_eq!(consul.requests().len(), 5);
    assert_eq!(watcher.last().map(|v| v.len()), Some(2));
}

#[tokio::test]
async fn cancellation_ends_the_watch() {
    let consul = FakeConsul::scripted(vec![Reply::json(instances(&["a"])).index(3)]).await;
    let cancel = CancellationToken::new();
    let mut watcher = watch_db(&consul.client(), cancel.clone());
    assert!(watcher.next().await.unwrap().is_ok());
    cancel.cancel();
    assert!(watcher.next().await.is_none());
    assert_eq!(consul.requests().len(), 1, "no request after cancellation");
}

#[tokio::test]
async fn config_entries_can_be_watched_through_absence() {
    let consul = FakeConsul::scripted(vec![
        Reply::raw(404, "Config entry not found").index(2),
        Reply::json(
            json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
                           "ModifyIndex": 5}),
        )
        .index(5),
        Reply::raw(404, "Config entry not found").index(6),
    ])
    .await;
    let client = consul.client();
    let mut watcher = watch(
        QueryOptions::default(),
        fast_retry(),
        CancellationToken::new(),
        move |q| {
            let client = client.clone();
            async move {
                client
                    .config_entries()
                    .get("service-defaults", "web", &q)
                    .await
            }
        },
    );
    assert!(watcher.next().await.unwrap().unwrap().is_none());
    let entry = watcher.next().await.unwrap().unwrap().unwrap();
    assert_eq!(entry.modify_index(), 5);
    assert!(
        watcher.next().await.unwrap().unwrap().is_none(),
        "deletion is a change"
    );
    let indexes: Vec<Option<String>> = consul
        .requests()
        .iter()
        .map(|r| r.param("index").map(str::to_string))
        .collect();
    assert_eq!(indexes, [None, Some("2".into()), Some("5".into())]);
}
