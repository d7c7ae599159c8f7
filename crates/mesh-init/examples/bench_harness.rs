//! Helper for `benches/control-plane/run.sh`: an ECS task metadata endpoint for one task (`web`, with
//! an `app` and a `consul-dataplane` container) and a recording proxy in front of a Consul server, so the
//! script can change container health and count the Consul requests the control plane makes.
//!
//! Usage: `bench_harness <consul host:port>`. It prints one line,
//! `metadata=http://127.0.0.1:<port> consul=127.0.0.1:<port>`, then reads commands from standard input:
//!
//! * `health <container> <HEALTHY|UNHEALTHY|UNKNOWN>`: sets a container's ECS health;
//! * `stop <container>`: marks a container stopped;
//! * `count`: prints `writes=<n> reads=<n>` (requests seen by the proxy so far);
//! * `quit` (or end of input): exits.

use std::io::Write as _;

use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use consul_ecs_mesh_init::testing::ConsulProxy;
use tokio::io::AsyncBufReadExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let target = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_harness <consul host:port>"))?
        .parse()?;
    let task = TaskBuilder::fargate("bench")
        .family("web", 1)
        .task_id("0123456789abcdef")
        .container_with_health_check("app")
        .container_with_health_check("consul-dataplane")
        .build();
    let metadata = MetadataServer::start("127.0.0.1:0".parse()?, task).await?;
    let proxy = ConsulProxy::start(target).await?;
    say(&format!(
        "metadata={} consul={}",
        metadata.base_url(),
        proxy.addr()
    ))?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["health", container, status] => {
                metadata.set_container_health(container, status);
                say("ok")?;
            }
            ["stop", container] => {
                metadata.set_container_status(container, "STOPPED", "STOPPED");
                say("ok")?;
            }
            ["count"] => {
                let seen = proxy.seen();
                let writes = seen.iter().filter(|s| s.is_write()).count();
                say(&format!("writes={writes} reads={}", seen.len() - writes))?;
            }
            ["quit"] => break,
            _ => say(&format!("unknown command: {line}"))?,
        }
    }
    Ok(())
}

fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
