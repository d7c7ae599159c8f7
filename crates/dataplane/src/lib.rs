//! Sidecar data plane: mTLS public listener with intentions, upstream listeners, readiness, drain, metrics.
//!
//! A Rust stand-in for consul-dataplane + Envoy in the sidecar role. It reads the same
//! `consul-dataplane.json` consul-ecs writes ([`Config::load`]), talks to Consul's HTTP API through
//! `consul-client`, and carries TCP traffic itself:
//!
//! - **inbound**: the public listener (the proxy's registered port, 20000 by default) terminates
//!   mTLS (client certificate required, chained to any current root), maps the client's SPIFFE ID
//!   to a source service, decides with the intentions (`connect` crate precedence rules, default
//!   from the ACL default policy), and splices to the local app;
//! - **outbound**: one local listener per registered upstream picks a healthy instance (round
//!   robin or least connections), dials its public listener (directly or through mesh gateways)
//!   with SNI = the target's name and our leaf, checks the server's SPIFFE ID, and splices;
//! - **lifecycle**: readiness listener bound only once certificates, intentions and upstream
//!   endpoints are loaded; `/graceful_startup` and `/graceful_shutdown`; SIGTERM/SIGINT drain
//!   (stop accepting, let connections finish up to `envoy.drainTimeSeconds`, exit 0);
//! - **metrics**: Prometheus text on the admin and Prometheus listeners.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dataplane::Error> {
//! let config = dataplane::Config::load(
//!     &["-config-file".into(), "/consul/consul-dataplane.json".into()],
//!     |name| std::env::var(name).ok(),
//! )?;
//! let dp = dataplane::Dataplane::start(config).await?;
//! dp.wait_ready().await;
//! dp.shutdown(); // what SIGTERM does
//! dp.wait().await?;
//! # Ok(()) }
//! ```

mod admin;
pub mod config;
mod inbound;
mod io;
mod metrics;
mod outbound;
mod proxy;
mod runtime;
mod source;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::{Config, ConfigError, Source};
pub use runtime::{cgroup_quota, worker_threads};
pub use tls::{TlsError, WrongIdentity};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::Role;
use crate::proxy::Core;

/// Bound on the wait for connection tasks after the hard stop, and on the source's exit (logout).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why the data plane could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot bind the {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Consul refused the login (a bad bearer token, an unknown auth method, an identity no
    /// binding rule accepts); retrying the same credentials cannot help.
    #[error("consul refused the login with auth method {auth_method:?}: {source}")]
    Login {
        /// The auth method asked for.
        auth_method: String,
        /// Consul's answer.
        source: Box<consul_client::Error>,
    },
    /// The Consul server addresses could not be resolved.
    #[error("consul addresses: {0}")]
    Addresses(String),
    /// A value from a source is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The supervisor task failed.
    #[error("data plane task failed: {0}")]
    Task(String),
}

/// Addresses the data plane listens on (ports resolved when 0 was configured).
#[derive(Debug, Clone)]
pub struct Addresses {
    /// Lifecycle listener (`/graceful_startup`, `/graceful_shutdown`).
    pub graceful: SocketAddr,
    /// Admin listener (`/ready`, `/stats/prometheus`).
    pub admin: SocketAddr,
    /// Prometheus listener (scrape path, `/ready`).
    pub prometheus: SocketAddr,
}

/// A running data plane.
pub struct Dataplane {
    core: Arc<Core>,
    shutdown: CancellationToken,
    addresses: Addresses,
    ready_addr: Arc<Mutex<Option<SocketAddr>>>,
    task: JoinHandle<Result<(), Error>>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("addresses", &self.addresses)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// Binds the lifecycle, admin and Prometheus listeners, starts the source (static: loads it
    /// now, so bad files fail here; Consul: connects in the background, retrying), and returns.
    /// Must be called inside a Tokio runtime.
    pub async fn start(config: Config) -> Result<Dataplane, Error> {
        let core = Core::new(config.proxy.clone());
        let shutdown = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let graceful = admin::bind("lifecycle listener", config.proxy.graceful_addr).await?;
        let admin_l = admin::bind("admin listener", config.proxy.admin_addr).await?;
        let prom = admin::bind("prometheus listener", config.proxy.prometheus_addr).await?;
        let addresses = Addresses {
            graceful: graceful.local_addr().unwrap_or(config.proxy.graceful_addr),
            admin: admin_l.local_addr().unwrap_or(config.proxy.admin_addr),
            prometheus: prom.local_addr().unwrap_or(config.proxy.prometheus_addr),
        };
        for (listener, role) in [
            (graceful, Role::Lifecycle),
            (admin_l, Role::Admin),
            (prom, Role::Admin),
        ] {
            tokio::spawn(admin::serve(
                core.clone(),
                listener,
                role,
                admin_stop.clone(),
                shutdown.clone(),
            ));
        }

        let source_cancel = CancellationToken::new();
        let source: JoinHandle<Result<(), Error>> = match &config.source {
            Source::Static(s) => {
                if let Err(e) = source::static_::start(&core, s).await {
                    admin_stop.cancel();
                    core.accept_stop.cancel();
                    return Err(e);
                }
                let cancel = source_cancel.clone();
                tokio::spawn(async move {
                    cancel.cancelled().await;
                    Ok(())
                })
            }
            Source::Consul(settings) => tokio::spawn(source::consul::run(
                core.clone(),
                settings.clone(),
                source_cancel.clone(),
            )),
        };

        let ready_addr = Arc::new(Mutex::new(None));
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(admin::ready_listener(
            core.clone(),
            config.proxy.ready_addr,
            shutdown.clone(),
            bound_tx,
        ));
        let ready_slot = ready_addr.clone();
        let ready_shutdown = shutdown.clone();
        tokio::spawn(async move {
            match bound_rx.await {
                Ok(Ok(addr)) => {
                    if let Ok(mut slot) = ready_slot.lock() {
                        *slot = Some(addr);
                    }
                }
                // A readiness port we cannot bind leaves ECS waiting forever: stop instead.
                Ok(Err(_)) => ready_shutdown.cancel(),
                Err(_) => {}
            }
        });

        let task = tokio::spawn(supervise(
            core.clone(),
            shutdown.clone(),
            source,
            source_cancel,
            admin_stop,
        ));
        Ok(Dataplane {
            core,
            shutdown,
            addresses,
            ready_addr,
            task,
        })
    }

    /// Starts the drain (what SIGTERM and `/graceful_shutdown` do). Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Whether a drain has started.
    pub fn is_draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Whether certificates, intentions and upstream endpoints are loaded (and no drain started).
    pub fn is_ready(&self) -> bool {
        self.core.is_ready()
    }

    /// Waits until ready; false if the drain started first.
    pub async fn wait_ready(&self) -> bool {
        self.core.wait_ready().await
    }

    /// The public listener's address, once started.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.core.public_addr()
    }

    /// Upstream listeners by name (`<service>` or `<service>.<dc>`).
    pub fn upstream_addrs(&self) -> BTreeMap<String, SocketAddr> {
        self.core.upstream_addrs()
    }

    /// The readiness listener's address, once bound.
    pub fn ready_addr(&self) -> Option<SocketAddr> {
        self.ready_addr.lock().ok().and_then(|g| *g)
    }

    /// Lifecycle, admin and Prometheus addresses.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The Prometheus text exposition of every metric.
    pub fn metrics_text(&self) -> String {
        self.core.metrics.render()
    }

    /// Waits until the data plane has stopped (after a drain, or a fatal error).
    pub async fn wait(self) -> Result<(), Error> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }
}

async fn supervise(
    core: Arc<Core>,
    shutdown: CancellationToken,
    mut source: JoinHandle<Result<(), Error>>,
    source_cancel: CancellationToken,
    admin_stop: CancellationToken,
) -> Result<(), Error> {
    let mut outcome: Result<(), Error> = Ok(());
    let mut source_done = false;
    tokio::select! {
        () = shutdown.cancelled() => {}
        r = &mut source => {
            source_done = true;
            outcome = flatten(r);
            if let Err(e) = &outcome {
                tracing::error!(error = %e, "data plane source failed; shutting down");
            }
            shutdown.cancel();
        }
    }
    let drain = core.settings.drain_time;
    tracing::info!(
        ?drain,
        "draining: listeners closed, waiting for open connections"
    );
    core.metrics.draining.store(1, Ordering::Relaxed);
    core.metrics.ready.store(0, Ordering::Relaxed);
    core.accept_stop.cancel();
    core.tracker.close();
    if tokio::time::timeout(drain, core.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = core.tracker.len(),
            "drain time over; closing the remaining connections"
        );
    }
    core.hard_stop.cancel();
    let _ = tokio::time::timeout(STOP_GRACE, core.tracker.wait()).await;
    source_cancel.cancel();
    if !source_done {
        match tokio::time::timeout(STOP_GRACE, &mut source).await {
            Ok(r) => {
                if outcome.is_ok() {
                    outcome = flatten(r);
                }
            }
            Err(_) => source.abort(),
        }
    }
    admin_stop.cancel();
    tracing::info!("stopped");
    outcome
}

fn flatten(r: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    match r {
        Ok(r) => r,
        Err(e) => Err(Error::Task(e.to_string())),
    }
}

/// Runs a data plane until SIGTERM or SIGINT, then drains and returns. A second signal during the
/// drain is logged and does not cut it short: the drain bound (`envoy.drainTimeSeconds`) is the one
/// limit; the orchestrator's SIGKILL is the way to stop at once.
pub async fn run(config: Config) -> Result<(), Error> {
    let drain = config.proxy.drain_time;
    let dp = Dataplane::start(config).await?;
    let shutdown = dp.shutdown.clone();
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        let mut seen = 0u32;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            seen += 1;
            if seen == 1 {
                tracing::info!("signal received; starting the drain");
                shutdown.cancel();
            } else {
                tracing::warn!(
                    ?drain,
                    "signal received again; the drain continues until its bound"
                );
            }
        }
    });
    let result = dp.wait().await;
    signals.abort();
    result
}
