//! Durable state: writes survive a restart (graceful or not), a torn final log record is discarded, and
//! indexes never go backwards.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;

use common::*;
use serde_json::json;

async fn start_in(dir: &Path) -> devserver::DevServer {
    let dir = dir.to_path_buf();
    start_with(move |c| c.data_dir = Some(dir)).await
}

async fn write_some(addr: std::net::SocketAddr) {
    register(addr, &ecs_service_registration()).await;
    register(addr, &ecs_proxy_registration()).await;
    assert_eq!(put(addr, "/v1/kv/app/config", "v1").await.status, 200);
    assert_eq!(
        put_json(
            addr,
            "/v1/config",
            &serde_json::json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path()).await;
    let addr = server.http_addr();
    write_some(addr).await;
    let web = get(addr, "/v1/health/service/web").await;
    let kv_before = get(addr, "/v1/kv/app/config").await.json();
    let max_before = get(addr, "/v1/health/state/any")
        .await
        .index()
        .max(get(addr, "/v1/kv/app/config").await.index());
    server.shutdown().await;

    let server = start_in(dir.path()).await;
    let addr = server.http_addr();
    let web_after = get(addr, "/v1/health/service/web").await;
    assert_eq!(
        web_after.json(),
        web.json(),
        "catalog, checks and indexes come back unchanged"
    );
    assert_eq!(web_after.index(), web.index());
    assert_eq!(get(addr, "/v1/kv/app/config").await.json(), kv_before);
    assert_eq!(
        get(addr, "/v1/config/service-defaults/web").await.json()["Protocol"],
        "http"
    );
    // The server's own registration did not change, so it wrote nothing.
    assert_eq!(
        get(addr, "/v1/health/state/any")
            .await
            .index()
            .max(get(addr, "/v1/kv/app/config").await.index()),
        max_before
    );
    // New writes continue above the old indexes.
    assert_eq!(put(addr, "/v1/kv/next", "x").await.status, 200);
    assert!(get(addr, "/v1/kv/next").await.index() > max_before);
    server.shutdown().await;
}

/// Without a graceful shutdown (no snapshot), the log alone restores everything: what `kill -9` leaves.
#[tokio::test]
async fn the_log_alone_restores_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path()).await;
    let addr = server.http_addr();
    write_some(addr).await;
    let last = get(addr, "/v1/kv/app/config").await.index();
    // Copy the data directory while the server runs, as a crash would leave it.
    let crashed = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), crashed.path().join(f.file_name())).unwrap();
    }
    server.shutdown().await;
    assert!(
        !crashed.path().join("state.snapshot").exists(),
        "no snapshot was written while running"
    );

    let server = start_in(crashed.path()).await;
    let addr = server.http_addr();
    assert_eq!(get(addr, "/v1/kv/app/config?raw").await.body, b"v1");
    assert_eq!(get(addr, "/v1/kv/app/config").await.index(), last);
    assert_eq!(
        get(addr, "/v1/catalog/service/web-sidecar-proxy")
            .await
            .json()[0]["ServiceProxy"]["Upstreams"][0]["DestinationName"],
        "db"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_torn_final_record_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path()).await;
    let addr = server.http_addr();
    write_some(addr).await;
    let crashed = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), crashed.path().join(f.file_name())).unwrap();
    }
    server.shutdown().await;
    let log = crashed.path().join("state.log");
    let good_len = std::fs::metadata(&log).unwrap().len();
    // A record header that promises more bytes than follow, then garbage: a crash mid-append.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&200u32.to_le_bytes()).unwrap();
    f.write_all(b"\x01\x02\x03\x04\x05\x06\x07\x08{\"index\": 99999, \"mutat")
        .unwrap();
    drop(f);

    let server = start_in(crashed.path()).await;
    let addr = server.http_addr();
    assert_eq!(
        get(addr, "/v1/kv/app/config?raw").await.body,
        b"v1",
        "everything before the torn record is there"
    );
    assert_eq!(
        get(addr, "/v1/health/service/web").await.json()[0]["Service"]["ID"],
        "web-abcdef"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        good_len,
        "the torn tail was cut off"
    );
    // The log is usable again: a new write survives another restart.
    assert_eq!(put(addr, "/v1/kv/after", "ok").await.status, 200);
    let idx = get(addr, "/v1/kv/after").await.index();
    assert!(idx < 99999);
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(crashed.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
    }
    server.shutdown().await;
    let server = start_in(copy.path()).await;
    assert_eq!(
        get(server.http_addr(), "/v1/kv/after?raw").await.body,
        b"ok"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_final_record_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in(dir.path()).await;
    let addr = server.http_addr();
    assert_eq!(put(addr, "/v1/kv/a", "1").await.status, 200);
    assert_eq!(put(addr, "/v1/kv/b", "2").await.status, 200);
    let crashed = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), crashed.path().join(f.file_name())).unwrap();
    }
    server.shutdown().await;
    // Flip a byte in the last record's payload: its checksum no longer matches.
    let log = crashed.path().join("state.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let server = start_in(crashed.path()).await;
    let addr = server.http_addr();
    assert_eq!(get(addr, "/v1/kv/a?raw").await.body, b"1");
    assert_eq!(
        get(addr, "/v1/kv/b").await.status,
        404,
        "the damaged last write is dropped, not half-applied"
    );
    server.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_in(&data).await;
    assert_eq!(
        put(server.http_addr(), "/v1/kv/secret", "s").await.status,
        200
    );
    server.shutdown().await;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for name in ["state.log", "state.snapshot"] {
        let mode = std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[tokio::test]
async fn an_unreadable_snapshot_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.snapshot"), b"{not json").unwrap();
    let mut c = config();
    c.data_dir = Some(dir.path().to_path_buf());
    let err = devserver::DevServer::start(c)
        .await
        .err()
        .expect("start must fail");
    assert!(err.to_string().contains("snapshot"), "{err}");
    let _ = json!(null);
}
