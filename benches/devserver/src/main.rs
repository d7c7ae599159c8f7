//! `devserver-bench`: runs the same scenarios against our Consul-compatible dev server and against etcd,
//! started here as child processes on loopback with fresh data directories, and prints both sets of
//! figures side by side. See the README beside this crate for what each figure means.

mod child;
mod etcd;
mod http;
mod load;
mod ours;
mod payload;
mod procfs;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::load::{IdleFigures, WriteFigures};
use crate::report::Row;
use crate::stats::{Summary, ms};

/// Benchmark of `consul-ecs dev-server` against etcd on this machine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The consul-ecs binary
    #[arg(long, default_value = "target/release/consul-ecs")]
    consul_ecs: PathBuf,
    /// The etcd binary
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Registrations (writes) in the write scenario
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    writes: u32,
    /// Connections sending writes at once
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Rounds of the wake-up latency scenario
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Idle watchers, each on its own connection
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    watchers: u32,
    /// Seconds over which server CPU is measured with the idle watchers open
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    idle_secs: u64,
}

/// Scenario sizes.
#[derive(Debug, Clone)]
pub(crate) struct Sizes {
    /// Writes in the write scenario.
    pub(crate) writes: usize,
    /// Concurrent writers.
    pub(crate) concurrency: usize,
    /// Wake-up rounds.
    pub(crate) rounds: usize,
    /// Idle watchers.
    pub(crate) watchers: usize,
    /// CPU measurement period.
    pub(crate) idle: Duration,
}

/// The wake-up scenario's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wake {
    /// From sending the write to the watcher receiving the change.
    pub(crate) latency: Summary,
    /// From sending the same write to its acknowledgement (one writer, nothing else in flight).
    pub(crate) ack: Summary,
}

impl Wake {
    /// Summarises the rounds.
    pub(crate) fn of(latencies: Vec<Duration>, acks: Vec<Duration>) -> anyhow::Result<Wake> {
        Ok(Wake {
            latency: Summary::of(latencies).context("no wake-up rounds were run")?,
            ack: Summary::of(acks).context("no wake-up rounds were run")?,
        })
    }
}

/// Everything measured on one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// The write scenario.
    pub(crate) writes: WriteFigures,
    /// Wake-up latency.
    pub(crate) wake: Wake,
    /// Idle watchers.
    pub(crate) idle: IdleFigures,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    child::kill_children_on_panic();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(&cli) => r,
            r = interrupted() => r,
        }
    });
    // Whatever happened, no server outlives the benchmark.
    child::kill_all();
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => bail!("stopped by SIGTERM"),
        _ = int.recv() => bail!("stopped by SIGINT"),
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let sizes = Sizes {
        writes: cli.writes as usize,
        concurrency: cli.concurrency as usize,
        rounds: cli.rounds as usize,
        watchers: cli.watchers as usize,
        idle: Duration::from_secs(cli.idle_secs),
    };
    raise_fd_limit(&sizes)?;
    let load_before = loadavg();
    let ours_version = version_line(&cli.consul_ecs, "version")?;
    let etcd_version = version_line(&cli.etcd, "--version")?;

    eprintln!("consul-ecs dev-server ({ours_version}) ...");
    let ours = ours::run(&cli.consul_ecs, &sizes)
        .await
        .context("consul-ecs dev-server")?;
    eprintln!("etcd ({etcd_version}) ...");
    let theirs = etcd::run(&cli.etcd, &sizes).await.context("etcd")?;

    println!(
        "devserver-bench: {} registrations at concurrency {}, {} wake-up rounds, {} idle watchers, {} s idle",
        sizes.writes,
        sizes.concurrency,
        sizes.rounds,
        sizes.watchers,
        sizes.idle.as_secs()
    );
    println!("consul-ecs: {ours_version}; etcd: {etcd_version}");
    println!(
        "load average (1 min) before: {load_before}, after: {}",
        loadavg()
    );
    println!();
    print!("{}", report::render(&rows(&ours, &theirs)));
    println!();
    println!(
        "Both servers ran one at a time on loopback with durable (fsynced) writes to fresh temporary \
         directories on the same disk. This machine ({} CPUs) is shared and noisy: repeat runs vary, \
         by tens of percent when the load average is above the CPU count; compare within one run and \
         repeat it.",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    Ok(())
}

fn rows(ours: &Figures, etcd: &Figures) -> Vec<Row> {
    let w = |f: &Figures| f.writes;
    let k = |f: &Figures| f.wake;
    let i = |f: &Figures| f.idle;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let both = |label: &str, f: &dyn Fn(&Figures) -> f64, decimals| {
        Row::new(label, f(ours), f(etcd), decimals)
    };
    vec![
        both("registrations/s (higher is better)", &|f| w(f).per_sec(), 0),
        both("write latency p50, ms", &|f| ms(w(f).latency.p50), 2),
        both("write latency p99, ms", &|f| ms(w(f).latency.p99), 2),
        both("wake-up latency p50, ms", &|f| ms(k(f).latency.p50), 2),
        both("wake-up latency p99, ms", &|f| ms(k(f).latency.p99), 2),
        both("wake-up latency max, ms", &|f| ms(k(f).latency.max), 2),
        both(
            "  same write's ack, lone writer, p50, ms",
            &|f| ms(k(f).ack.p50),
            2,
        ),
        both("RSS before watchers, MiB", &|f| mib(i(f).before.rss_kib), 1),
        both(
            "RSS with watchers open, MiB",
            &|f| mib(i(f).after.rss_kib),
            1,
        ),
        both(
            "memory per idle watcher, KiB",
            &|f| i(f).per_watcher_kib(),
            1,
        ),
        both(
            "threads with watchers open",
            &|f| i(f).after.threads as f64,
            0,
        ),
        both(
            &format!("CPU while idle over {} s, ms", ours.idle.idle.as_secs()),
            &|f| i(f).cpu_ms,
            0,
        ),
    ]
}

/// Makes room for the idle watchers' sockets (ours and, inherited, the servers').
fn raise_fd_limit(sizes: &Sizes) -> anyhow::Result<()> {
    let need = (sizes.watchers + sizes.concurrency) as u64 + 512;
    let got = rlimit::increase_nofile_limit(need).context("raising RLIMIT_NOFILE")?;
    if got < need {
        bail!(
            "{} idle watchers need about {need} open files, but RLIMIT_NOFILE can only be raised to {got} \
             here (the hard limit); raise it (ulimit -Hn) or pass a smaller --watchers",
            sizes.watchers
        );
    }
    Ok(())
}

/// The 1-minute load average, to show how busy the machine was (`?` if unreadable).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The first line of `binary arg`, to print which versions were measured.
fn version_line(binary: &Path, arg: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new(binary)
        .arg(arg)
        .output()
        .with_context(|| format!("running {} {arg}", binary.display()))?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("unknown version")
        .trim()
        .to_owned())
}
