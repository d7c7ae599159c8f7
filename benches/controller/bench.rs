//! Controller benchmark: a dev server (a separate process, so its memory is not counted) holding
//! the tokens and services of N tasks, an in-memory ECS with those tasks (moto is far too slow for
//! 10,000 tasks), and a few reconcile passes: cold start, steady state, M tasks stopped, steady
//! state again. Prints, per pass, the ECS calls, Consul reads and writes, whether the full token
//! list was read, wall time and the process's peak RSS.
//!
//! usage: controller-bench seed|run --consul 127.0.0.1:8500 --token SECRET [--tasks N] [--stop M]
//! (`seed` creates the tokens and services; `run` runs the passes against them.)

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use consul_client::acl::AclToken;
use consul_client::catalog::{AgentService, CatalogRegistration};
use consul_client::{Client, ClientConfig, Secret, WriteOptions};
use consul_ecs_controller::fake::FakeEcs;
use consul_ecs_controller::{ReconcileSettings, Reconciler, SetupInput, reconcile, setup};

const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/bench";
const CONCURRENCY: usize = 32;

fn task_id(i: usize) -> String {
    format!("task{i:05}")
}

fn arn(i: usize) -> String {
    format!(
        "arn:aws:ecs:us-east-1:123456789012:task/bench/{}",
        task_id(i)
    )
}

struct Args {
    phase: String,
    consul: String,
    token: String,
    tasks: usize,
    stop: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let phase = it.next().context("missing phase: seed or run")?;
    let mut out = Args {
        phase,
        consul: "127.0.0.1:8500".into(),
        token: String::new(),
        tasks: 10_000,
        stop: 1_000,
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--consul" => out.consul = value,
            "--token" => out.token = value,
            "--tasks" => out.tasks = value.parse().context("--tasks")?,
            "--stop" => out.stop = value.parse().context("--stop")?,
            other => bail!("unknown flag {other}"),
        }
    }
    if out.stop > out.tasks {
        bail!("--stop must not exceed --tasks");
    }
    Ok(out)
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn seed(consul: Client, tasks: usize) -> anyhow::Result<()> {
    setup(
        &consul,
        &SetupInput {
            cluster_arn: CLUSTER.into(),
            account: "123456789012".into(),
            iam_role_path: "/consul-ecs/".into(),
            partition: None,
            node_ip: "10.0.0.1".into(),
        },
    )
    .await?;
    let consul = Arc::new(consul);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let consul = consul.clone();
        set.spawn(async move {
            let mut i = worker;
            while i < tasks {
                let task = task_id(i);
                let token = AclToken {
                    description: format!(
                        "token created via login: {{\"consul.hashicorp.com/cluster\":\"{CLUSTER}\",\"consul.hashicorp.com/task-id\":\"{task}\"}}"
                    ),
                    ..AclToken::default()
                };
                consul.acl().token_create(&token, &WriteOptions::default()).await?;
                let registration = CatalogRegistration {
                    node: CLUSTER.into(),
                    address: "10.0.0.1".into(),
                    skip_node_update: true,
                    service: Some(AgentService {
                        id: format!("web-{task}"),
                        service: "web".into(),
                        meta: [(reconcile::SERVICE_TASK_ID_META.to_owned(), task)].into(),
                        port: 8080,
                        ..AgentService::default()
                    }),
                    ..CatalogRegistration::default()
                };
                consul.catalog().register(&registration, &WriteOptions::default()).await?;
                i += CONCURRENCY;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    println!(
        "seeded {tasks} tasks (1 token + 1 service each) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(consul: Client, tasks: usize, stop: usize) -> anyhow::Result<()> {
    let ecs = FakeEcs::new();
    for i in 0..tasks {
        ecs.run(&arn(i), &[(reconcile::MESH_TAG, "true")]);
    }
    let mut r = Reconciler::new(
        consul,
        ecs,
        ReconcileSettings {
            cluster_arn: CLUSTER.into(),
            partition: None,
            full_scan_every: 0,
        },
    );
    let (rss, _) = rss_kib();
    println!(
        "RSS before the first pass (runtime, client, in-memory ECS with {tasks} tasks): {:.1} MiB",
        rss as f64 / 1024.0
    );
    println!(
        "{:<28} {:>9} {:>12} {:>12} {:>12} {:>9} {:>9} {:>10} {:>10}",
        "pass",
        "ecs_calls",
        "consul_reads",
        "consul_write",
        "tokens_listd",
        "deleted",
        "dereg",
        "wall_ms",
        "peak_rss_MiB"
    );
    let steps: [(&str, usize); 5] = [
        ("cold start", 0),
        ("steady state", 0),
        ("after stopping tasks", stop),
        ("steady (after own writes)", 0),
        ("steady state", 0),
    ];
    for (name, to_stop) in steps {
        for i in 0..to_stop {
            r.ecs().stop(&arn(i));
        }
        let started = Instant::now();
        let stats = r.pass().await?;
        let wall = started.elapsed();
        let (_, hwm) = rss_kib();
        println!(
            "{:<28} {:>9} {:>12} {:>12} {:>12} {:>9} {:>9} {:>10.1} {:>10.1}",
            name,
            stats.ecs_calls,
            stats.consul_reads,
            stats.consul_writes,
            stats.listed_tokens,
            stats.tokens_deleted,
            stats.services_deregistered,
            wall.as_secs_f64() * 1000.0,
            hwm as f64 / 1024.0
        );
        if stats.failures > 0 {
            bail!("{} objects could not be removed", stats.failures);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let mut config = ClientConfig::new(args.consul.clone());
    config.token = Some(Secret::new(args.token.clone()));
    let consul = Client::new(config)?;
    match args.phase.as_str() {
        "seed" => seed(consul, args.tasks).await,
        "run" => run(consul, args.tasks, args.stop).await,
        other => bail!("unknown phase {other}: seed or run"),
    }
}
