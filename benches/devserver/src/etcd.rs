//! The same scenarios against etcd, through its JSON gateway (`/v3/kv/put`, `/v3/watch`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::child::{self, Server};
use crate::http::{Conn, Lines, Reply, within};
use crate::load::{self, BoxFut, MakeWrite, PARK, Parked, REQUEST_LIMIT};
use crate::payload::{self, Task};
use crate::{Figures, Sizes, Wake};

/// Starts etcd from `binary` (default, durable settings; one member on loopback) and runs every scenario.
pub(crate) async fn run(binary: &Path, sizes: &Sizes) -> anyhow::Result<Figures> {
    let dir = child::temp_dir("etcd")?;
    let data = dir.path().join("data");
    let client = child::free_loopback_addr()?;
    let peer = child::free_loopback_addr()?;
    let client_url = format!("http://{client}");
    let peer_url = format!("http://{peer}");
    let mut cmd = Command::new(binary);
    cmd.arg("--name")
        .arg("bench")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("bench={peer_url}"));
    // Settings from the environment would change what is measured.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(key);
        }
    }
    let server = Server::spawn("etcd", cmd, dir)?;
    load::wait_ready(&server, client, "/health", |r| {
        serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["health"] == "true")
    })
    .await?;

    let make: MakeWrite = Arc::new(|i| {
        let task = Task::new(&payload::service_name(i), i);
        let value = task.registration("critical").to_string();
        (
            Method::POST,
            "/v3/kv/put".to_owned(),
            put_body(&task.etcd_key(), value.as_bytes()),
        )
    });
    let writes = load::write_load(client, sizes.writes, sizes.concurrency, make, put_ok).await?;
    server.check_alive()?;

    let wake = wake_rounds(client, sizes.rounds).await?;
    server.check_alive()?;

    let open: Arc<dyn Fn(usize) -> BoxFut<Parked> + Send + Sync> = Arc::new(move |k| {
        let key = Task::new(&payload::service_name(k), k).etcd_key();
        Box::pin(park_watcher(client, key))
    });
    let idle = load::measure_idle(&server, sizes.watchers, sizes.idle, open).await?;
    Ok(Figures { writes, wake, idle })
}

fn put_body(key: &str, value: &[u8]) -> Bytes {
    Bytes::from(json!({"key": B64.encode(key), "value": B64.encode(value)}).to_string())
}

fn put_ok(reply: &Reply) -> anyhow::Result<()> {
    let v = reply.json("put")?;
    ensure!(
        v["header"]["revision"].is_string(),
        "put answered {v} (no header revision)"
    );
    Ok(())
}

/// Opens a watch stream on `key` over `conn` and waits for etcd to confirm it.
async fn open_watch(conn: &mut Conn, key: &str) -> anyhow::Result<Lines> {
    let body = Bytes::from(json!({"create_request": {"key": B64.encode(key)}}).to_string());
    let resp = conn.send(Method::POST, "/v3/watch", Some(body)).await?;
    ensure!(
        resp.status() == http::StatusCode::OK,
        "watch answered HTTP {}",
        resp.status()
    );
    let mut lines = Lines::new(resp.into_body());
    let first = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow!("watch stream ended before it was created"))?;
    let v: Value = serde_json::from_slice(&first).context("watch creation line is not JSON")?;
    ensure!(v["result"]["created"] == true, "watch was not created: {v}");
    Ok(lines)
}

/// The value of the single event of a watch line.
fn event_value(line: &[u8]) -> anyhow::Result<Vec<u8>> {
    let v: Value = serde_json::from_slice(line).context("watch line is not JSON")?;
    let events = v["result"]["events"]
        .as_array()
        .ok_or_else(|| anyhow!("watch line has no events: {v}"))?;
    ensure!(
        events.len() == 1,
        "expected one event, got {}: {v}",
        events.len()
    );
    let value = events[0]["kv"]["value"]
        .as_str()
        .ok_or_else(|| anyhow!("event has no value: {v}"))?;
    B64.decode(value).context("event value is not base64")
}

/// Each round puts a new health state of the task under a watched key and times from sending the put to
/// the event line arriving on the watch stream, which must carry the value put.
async fn wake_rounds(addr: SocketAddr, rounds: usize) -> anyhow::Result<Wake> {
    let task = Task::new("wake", 0);
    let key = task.etcd_key();
    let mut writer = Conn::connect(addr).await?;
    let mut watcher = Conn::connect(addr).await?;
    let mut lines = within(
        REQUEST_LIMIT,
        "opening the watch",
        open_watch(&mut watcher, &key),
    )
    .await?;
    let mut latencies = Vec::with_capacity(rounds);
    let mut acks = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let status = if r % 2 == 0 { "critical" } else { "passing" };
        let value = task.check_update(status).to_string();
        tokio::time::sleep(PARK).await;
        let sent = Instant::now();
        let put = async {
            let reply = writer
                .request(
                    Method::POST,
                    "/v3/kv/put",
                    Some(put_body(&key, value.as_bytes())),
                )
                .await?
                .ok("put")?;
            put_ok(&reply)?;
            Ok::<_, anyhow::Error>(sent.elapsed())
        };
        let event = async {
            let line = lines.next_line().await;
            (Instant::now(), line)
        };
        let (put, (woke, line)) = within(Duration::from_secs(70), "put and watch event", async {
            Ok(tokio::join!(put, event))
        })
        .await?;
        acks.push(put.with_context(|| format!("round {r}"))?);
        let line = line
            .with_context(|| format!("round {r}"))?
            .ok_or_else(|| anyhow!("round {r}: the watch stream ended"))?;
        let got = event_value(&line).with_context(|| format!("round {r}"))?;
        if got != value.as_bytes() {
            bail!(
                "round {r}: the event carried {:?}, expected {value:?}",
                String::from_utf8_lossy(&got)
            );
        }
        latencies.push(woke.saturating_duration_since(sent));
    }
    drop(watcher);
    Wake::of(latencies, acks)
}

/// One idle watcher on its own connection: a watch stream on `key`.
async fn park_watcher(addr: SocketAddr, key: String) -> anyhow::Result<Parked> {
    let mut conn = Conn::connect(addr).await?;
    let mut lines = open_watch(&mut conn, &key).await?;
    Ok(tokio::spawn(async move {
        let _conn = conn;
        match lines.next_line().await {
            Ok(Some(line)) => format!(
                "watch on {key} got {}",
                String::from_utf8_lossy(&line)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
            Ok(None) => format!("watch stream on {key} ended"),
            Err(e) => format!("watch stream on {key} failed: {e:#}"),
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_values_are_decoded_and_checked() {
        let line = br#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"aw==","value":"aGVsbG8=","mod_revision":"9"}}]}}"#;
        assert_eq!(event_value(line).unwrap(), b"hello");
        assert!(event_value(br#"{"result":{"header":{},"created":true}}"#).is_err());
        assert!(event_value(br#"{"result":{"events":[{"kv":{"value":"%%"}}]}}"#).is_err());
        assert!(event_value(b"not json").is_err());
    }
}
