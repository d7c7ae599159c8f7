//! The scenarios against our dev server (`consul-ecs dev-server`), through Consul's HTTP API.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::child::{self, Server};
use crate::http::{Conn, Reply, within};
use crate::load::{self, BoxFut, MakeWrite, PARK, Parked, REQUEST_LIMIT};
use crate::payload::{self, Task};
use crate::{Figures, Sizes, Wake};

/// Starts the dev server from `binary` and runs every scenario against it.
pub(crate) async fn run(binary: &Path, sizes: &Sizes) -> anyhow::Result<Figures> {
    let dir = child::temp_dir("consul-ecs")?;
    let data = dir.path().join("data");
    let addr = child::free_loopback_addr()?;
    let mut cmd = Command::new(binary);
    cmd.arg("dev-server")
        .arg("--http-addr")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data)
        .arg("--log-level")
        .arg("warn");
    let server = Server::spawn("consul-ecs", cmd, dir)?;
    load::wait_ready(&server, addr, "/v1/status/leader", |r| r.body.len() > 2).await?;

    let mut setup = Conn::connect(addr).await?;
    register(&mut setup, &payload::node_registration()).await?;

    let make: MakeWrite = Arc::new(|i| {
        let task = Task::new(&payload::service_name(i), i);
        let body = task.registration("critical").to_string();
        (
            Method::PUT,
            "/v1/catalog/register".to_owned(),
            Bytes::from(body),
        )
    });
    let writes = load::write_load(addr, sizes.writes, sizes.concurrency, make, registered).await?;
    server.check_alive()?;

    let wake = wake_rounds(addr, sizes.rounds).await?;
    server.check_alive()?;

    let open: Arc<dyn Fn(usize) -> BoxFut<Parked> + Send + Sync> =
        Arc::new(move |k| Box::pin(park_watcher(addr, payload::service_name(k))));
    let idle = load::measure_idle(&server, sizes.watchers, sizes.idle, open).await?;
    Ok(Figures { writes, wake, idle })
}

fn registered(reply: &Reply) -> anyhow::Result<()> {
    ensure!(
        reply.body.trim_ascii() == b"true",
        "register answered {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    Ok(())
}

async fn register(conn: &mut Conn, body: &Value) -> anyhow::Result<()> {
    let reply = within(
        REQUEST_LIMIT,
        "register",
        conn.request(
            Method::PUT,
            "/v1/catalog/register",
            Some(Bytes::from(body.to_string())),
        ),
    )
    .await?
    .ok("register")?;
    registered(&reply)
}

/// `GET /v1/health/service/<name>`, optionally blocking; returns the index and the entries.
async fn health(
    conn: &mut Conn,
    name: &str,
    block: Option<(u64, &str)>,
) -> anyhow::Result<(u64, Value)> {
    let path = match block {
        None => format!("/v1/health/service/{name}"),
        Some((index, wait)) => format!("/v1/health/service/{name}?index={index}&wait={wait}"),
    };
    let reply = conn
        .request(Method::GET, &path, None)
        .await?
        .ok("health query")?;
    let index = reply.header_u64("X-Consul-Index")?;
    Ok((index, reply.json("health query")?))
}

/// The status of `check_id` on service instance `service_id` in a health reply.
fn check_status(entries: &Value, service_id: &str, check_id: &str) -> Option<String> {
    entries
        .as_array()?
        .iter()
        .find(|e| e["Service"]["ID"] == service_id)?["Checks"]
        .as_array()?
        .iter()
        .find(|c| c["CheckID"] == check_id)?["Status"]
        .as_str()
        .map(str::to_owned)
}

/// Each round parks a blocking health query, flips the service's check through a catalog register, and
/// times from sending that write to the query's complete answer, which must show the new status.
async fn wake_rounds(addr: std::net::SocketAddr, rounds: usize) -> anyhow::Result<Wake> {
    let task = Task::new("wake", 0);
    let mut writer = Conn::connect(addr).await?;
    let mut watcher = Conn::connect(addr).await?;
    register(&mut writer, &task.registration("passing")).await?;
    let (mut index, _) = health(&mut watcher, &task.name, None).await?;
    let mut latencies = Vec::with_capacity(rounds);
    let mut acks = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let status = if r % 2 == 0 { "critical" } else { "passing" };
        let name = task.name.clone();
        let wait = tokio::spawn(async move {
            let res = health(&mut watcher, &name, Some((index, "60s"))).await;
            (watcher, Instant::now(), res)
        });
        tokio::time::sleep(PARK).await;
        if wait.is_finished() {
            let (_, _, res) = wait.await?;
            bail!(
                "round {r}: the blocking query at index {index} returned before any write: {res:?}"
            );
        }
        let sent = Instant::now();
        register(&mut writer, &task.check_update(status)).await?;
        acks.push(sent.elapsed());
        let (conn, woke, res) = within(Duration::from_secs(70), "blocking query", async {
            wait.await.context("watcher task")
        })
        .await?;
        watcher = conn;
        let (new_index, entries) = res.with_context(|| format!("round {r}"))?;
        let seen = check_status(&entries, &task.id, &task.app_check_id());
        if new_index <= index || seen.as_deref() != Some(status) {
            bail!(
                "round {r}: woke with index {new_index} (was {index}) and check status {seen:?}, \
                 expected a higher index and {status:?}"
            );
        }
        index = new_index;
        latencies.push(woke.saturating_duration_since(sent));
    }
    Wake::of(latencies, acks)
}

/// One idle watcher on its own connection: a blocking health query on `name` with a 5-minute wait.
async fn park_watcher(addr: std::net::SocketAddr, name: String) -> anyhow::Result<Parked> {
    let mut conn = Conn::connect(addr).await?;
    let (index, _) = health(&mut conn, &name, None).await?;
    Ok(tokio::spawn(async move {
        match health(&mut conn, &name, Some((index, "5m"))).await {
            Ok((i, _)) => format!("blocking query on {name} returned with index {i} (was {index})"),
            Err(e) => format!("blocking query on {name} failed: {e:#}"),
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_status_is_found_on_the_right_instance() {
        let entries = json!([
            {"Service": {"ID": "a"}, "Checks": [{"CheckID": "a-app", "Status": "passing"}]},
            {"Service": {"ID": "b"}, "Checks": [
                {"CheckID": "serfHealth", "Status": "passing"},
                {"CheckID": "b-app", "Status": "critical"}
            ]},
        ]);
        assert_eq!(
            check_status(&entries, "b", "b-app").as_deref(),
            Some("critical")
        );
        assert_eq!(
            check_status(&entries, "a", "a-app").as_deref(),
            Some("passing")
        );
        assert_eq!(check_status(&entries, "a", "b-app"), None);
        assert_eq!(check_status(&json!({}), "a", "a-app"), None);
    }
}
