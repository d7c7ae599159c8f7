//! Scenario machinery shared by both servers: readiness, the concurrent write load, opening many idle
//! watchers, and measuring a server's memory and CPU while they sit open.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::Method;
use tokio::task::JoinHandle;

use crate::child::Server;
use crate::http::{Conn, Reply, within};
use crate::procfs::{self, Sample};
use crate::stats::Summary;

/// A boxed, sendable future returning a result.
pub(crate) type BoxFut<T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send>>;

/// How long any single request may take before the benchmark gives up.
pub(crate) const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The pause before each wake-up round's write, on both servers: it lets our watcher park its blocking
/// query, and gives etcd's watcher the same idle gap, as a real watcher has between changes.
pub(crate) const PARK: Duration = Duration::from_millis(20);
/// How long a server may take to start answering.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Waits until `GET path` on `addr` answers 200 with a body `ready` accepts.
pub(crate) async fn wait_ready(
    server: &Server,
    addr: SocketAddr,
    path: &str,
    ready: fn(&Reply) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        server.check_alive()?;
        let attempt = async {
            let mut c = Conn::connect(addr).await?;
            c.request(Method::GET, path, None).await
        };
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(2), attempt).await
            && reply.status == http::StatusCode::OK
            && ready(&reply)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not ready on {addr} after {START_LIMIT:?}; end of its log:\n{}",
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outcome of the write load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteFigures {
    /// Writes acknowledged.
    pub(crate) count: usize,
    /// Wall time from the first write sent to the last acknowledged.
    pub(crate) elapsed: Duration,
    /// Per-write latency.
    pub(crate) latency: Summary,
}

impl WriteFigures {
    /// Acknowledged writes per second.
    pub(crate) fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// What one write is: method, path and body, for write number `i`.
pub(crate) type MakeWrite = Arc<dyn Fn(usize) -> (Method, String, Bytes) + Send + Sync>;

/// Sends `n` writes over `concurrency` connections, each sending its next write as soon as the previous
/// one is acknowledged; every reply must pass `check`.
pub(crate) async fn write_load(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    make: MakeWrite,
    check: fn(&Reply) -> anyhow::Result<()>,
) -> anyhow::Result<WriteFigures> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        conns.push(Conn::connect(addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<JoinHandle<anyhow::Result<Vec<Duration>>>> = conns
        .into_iter()
        .map(|mut conn| {
            let next = Arc::clone(&next);
            let make = Arc::clone(&make);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(latencies);
                    }
                    let (method, path, body) = make(i);
                    let t0 = Instant::now();
                    let reply = within(
                        REQUEST_LIMIT,
                        "write",
                        conn.request(method, &path, Some(body)),
                    )
                    .await?
                    .ok("write")?;
                    latencies.push(t0.elapsed());
                    check(&reply).with_context(|| format!("write {i}"))?;
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.context("write worker")??);
    }
    let elapsed = start.elapsed();
    Ok(WriteFigures {
        count: all.len(),
        elapsed,
        latency: Summary::of(all).context("no writes were made")?,
    })
}

/// A watcher parked on a server: the task ends only if the watch ends, with a description of why.
pub(crate) type Parked = JoinHandle<String>;

/// Opens `count` watchers with `open(k)`, `parallel` at a time; each returns once its watch is in place.
pub(crate) async fn open_watchers(
    count: usize,
    parallel: usize,
    open: Arc<dyn Fn(usize) -> BoxFut<Parked> + Send + Sync>,
) -> anyhow::Result<Vec<Parked>> {
    let next = Arc::new(AtomicUsize::new(0));
    let openers: Vec<JoinHandle<anyhow::Result<Vec<Parked>>>> = (0..parallel.max(1))
        .map(|_| {
            let next = Arc::clone(&next);
            let open = Arc::clone(&open);
            tokio::spawn(async move {
                let mut parked = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count {
                        return Ok(parked);
                    }
                    parked.push(
                        within(REQUEST_LIMIT, "opening a watcher", open(k))
                            .await
                            .with_context(|| format!("watcher {k}"))?,
                    );
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for o in openers {
        all.extend(o.await.context("watcher opener")??);
    }
    Ok(all)
}

/// A server's footprint with idle watchers open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleFigures {
    /// Watchers held open.
    pub(crate) watchers: usize,
    /// Before opening them.
    pub(crate) before: Sample,
    /// With them open (after a short settle).
    pub(crate) after: Sample,
    /// CPU time the server used over the idle period, in milliseconds.
    pub(crate) cpu_ms: f64,
    /// The idle period.
    pub(crate) idle: Duration,
}

impl IdleFigures {
    /// Memory added per watcher, KiB (negative if the server shrank meanwhile).
    pub(crate) fn per_watcher_kib(&self) -> f64 {
        (self.after.rss_kib as f64 - self.before.rss_kib as f64) / self.watchers.max(1) as f64
    }
}

/// How long to let a server settle before and after opening the watchers.
const SETTLE: Duration = Duration::from_secs(1);

/// Samples the server, opens the watchers, samples again, then measures CPU over `idle` with them open.
/// Any watcher that ends during all this is an error (nothing was written, so nothing should wake).
pub(crate) async fn measure_idle(
    server: &Server,
    watchers: usize,
    idle: Duration,
    open: Arc<dyn Fn(usize) -> BoxFut<Parked> + Send + Sync>,
) -> anyhow::Result<IdleFigures> {
    tokio::time::sleep(SETTLE).await;
    let before = procfs::sample(server.pid())?;
    let parked = open_watchers(watchers, 16, open).await?;
    tokio::time::sleep(SETTLE).await;
    let after = procfs::sample(server.pid())?;
    tokio::time::sleep(idle).await;
    let end = procfs::sample(server.pid())?;
    server.check_alive()?;
    let ended: Vec<usize> = (0..parked.len())
        .filter(|k| parked[*k].is_finished())
        .collect();
    if let Some(&k) = ended.first() {
        let why = parked
            .into_iter()
            .nth(k)
            .map(|h| async { h.await.unwrap_or_else(|e| format!("task failed: {e}")) });
        let why = match why {
            Some(f) => f.await,
            None => String::new(),
        };
        bail!(
            "{} of {watchers} idle watchers ended while nothing was written; watcher {k}: {why}",
            ended.len()
        );
    }
    for p in &parked {
        p.abort();
    }
    let ticks = end.cpu_ticks.saturating_sub(after.cpu_ticks);
    Ok(IdleFigures {
        watchers,
        before,
        after,
        cpu_ms: ticks as f64 * 1000.0 / procfs::clock_ticks_per_sec() as f64,
        idle,
    })
}
