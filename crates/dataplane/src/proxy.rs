//! The proxy core: state every connection reads (certificates, intentions, upstream endpoints),
//! the listeners, readiness, and the two stop signals of a drain.
//!
//! A source (Consul or static) feeds the core through its setters; the core never calls out.
//! Readiness is reached once: certificates, intentions and a first answer for every upstream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use connect::intention::{DefaultPolicy, Intention, IntentionTarget};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ProxySettings;
use crate::metrics::Metrics;
use crate::outbound::{Endpoint, Upstream};
use crate::tls::{ExpectedIdentity, Material, TlsState};
use crate::{Error, inbound, outbound};

/// What the public listener needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicSpec {
    pub(crate) bind: SocketAddr,
    /// `host:port` of the local application.
    pub(crate) local_app: String,
    pub(crate) alpn: Vec<Vec<u8>>,
}

/// What one upstream listener needs.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamSpec {
    /// Listener name, also the metric label (`upstream:<name>`).
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    pub(crate) expected: ExpectedIdentity,
}

/// Intentions with this service as destination, plus the default decision.
#[derive(Debug, Clone)]
pub(crate) struct IntentionSet {
    pub(crate) intentions: Vec<Intention>,
    pub(crate) defaults: DefaultPolicy,
}

struct Running {
    upstream: Arc<Upstream>,
    stop: CancellationToken,
}

/// Shared state of a running data plane.
pub(crate) struct Core {
    pub(crate) settings: ProxySettings,
    pub(crate) tls: Arc<TlsState>,
    pub(crate) metrics: Arc<Metrics>,
    intentions: RwLock<Option<Arc<IntentionSet>>>,
    upstreams: Mutex<BTreeMap<String, Running>>,
    public: Mutex<Option<SocketAddr>>,
    /// Fires when a drain starts: listeners stop accepting.
    pub(crate) accept_stop: CancellationToken,
    /// Fires when the drain bound passes: open connections are cut.
    pub(crate) hard_stop: CancellationToken,
    /// Every connection task, so a drain can wait for them.
    pub(crate) tracker: TaskTracker,
    ready: watch::Sender<bool>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Core {
    pub(crate) fn new(settings: ProxySettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            tls: TlsState::new(),
            metrics: Arc::new(Metrics::default()),
            intentions: RwLock::new(None),
            upstreams: Mutex::new(BTreeMap::new()),
            public: Mutex::new(None),
            accept_stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ready: watch::channel(false).0,
        })
    }

    // === certificates ===

    /// Installs new certificate material; later handshakes use it.
    pub(crate) fn set_material(&self, material: Material) {
        self.metrics
            .leaf_not_after
            .store(material.not_after, Ordering::Relaxed);
        self.metrics
            .roots
            .store(material.root_count as i64, Ordering::Relaxed);
        self.metrics
            .certificate_updates
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            identity = %material.id,
            roots = material.root_count,
            not_after = material.not_after,
            "certificates loaded"
        );
        self.tls.set(material);
        self.check_ready();
    }

    // === intentions ===

    pub(crate) fn set_intentions(&self, set: IntentionSet) {
        tracing::debug!(count = set.intentions.len(), "intentions updated");
        let set = Arc::new(set);
        match self.intentions.write() {
            Ok(mut g) => *g = Some(set),
            Err(p) => *p.into_inner() = Some(set),
        }
        self.check_ready();
    }

    pub(crate) fn intentions(&self) -> Option<Arc<IntentionSet>> {
        read(&self.intentions)
    }

    /// The intention decision for a source connecting to us (`None` before intentions load).
    pub(crate) fn authorize(
        &self,
        source: &IntentionTarget,
        material: &Material,
    ) -> Option<connect::intention::Decision> {
        let set = self.intentions()?;
        let destination = IntentionTarget::service(material.id.service())
            .in_namespace(material.id.namespace())
            .in_partition(material.id.partition());
        Some(connect::intention::authorize(
            &set.intentions,
            source,
            &destination,
            &set.defaults,
        ))
    }

    // === listeners ===

    /// Binds and starts the public listener (once; later calls with another spec are ignored and
    /// logged, a new port needs a restart).
    pub(crate) async fn start_public(
        self: &Arc<Self>,
        spec: PublicSpec,
    ) -> Result<SocketAddr, Error> {
        if let Some(addr) = *locked(&self.public) {
            return Ok(addr);
        }
        let listener = TcpListener::bind(spec.bind)
            .await
            .map_err(|source| Error::Bind {
                what: "public listener",
                addr: spec.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            what: "public listener",
            addr: spec.bind,
            source,
        })?;
        let server = self
            .tls
            .server_config(spec.alpn.clone())
            .map_err(Error::Tls)?;
        *locked(&self.public) = Some(addr);
        tracing::info!(%addr, local_app = %spec.local_app, "public listener started");
        tokio::spawn(inbound::serve(
            self.clone(),
            listener,
            server,
            spec.local_app,
        ));
        self.check_ready();
        Ok(addr)
    }

    pub(crate) fn public_addr(&self) -> Option<SocketAddr> {
        *locked(&self.public)
    }

    /// Makes the set of upstream listeners equal to `specs`: new ones are bound, removed ones stop
    /// accepting (their open connections carry on). Returns the bound address of each.
    pub(crate) async fn set_upstreams(
        self: &Arc<Self>,
        specs: Vec<UpstreamSpec>,
    ) -> Result<BTreeMap<String, SocketAddr>, Error> {
        let wanted: BTreeMap<String, UpstreamSpec> =
            specs.into_iter().map(|s| (s.name.clone(), s)).collect();
        let removed: Vec<String> = locked(&self.upstreams)
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(*name)
                    .is_none_or(|w| w.bind != r.upstream.spec.bind)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            if let Some(r) = locked(&self.upstreams).remove(&name) {
                tracing::info!(upstream = %name, "upstream listener removed");
                r.stop.cancel();
                self.metrics.remove_upstream(&name);
            }
        }
        for (name, spec) in wanted {
            if locked(&self.upstreams).contains_key(&name) {
                continue;
            }
            let listener = TcpListener::bind(spec.bind)
                .await
                .map_err(|source| Error::Bind {
                    what: "upstream listener",
                    addr: spec.bind,
                    source,
                })?;
            let client = self
                .tls
                .client_config(spec.expected.clone())
                .map_err(Error::Tls)?;
            let metrics = self.metrics.listener(&format!("upstream:{name}"));
            let bound = listener.local_addr().unwrap_or(spec.bind);
            let mut spec = spec;
            spec.bind = bound;
            let upstream = Arc::new(Upstream::new(spec, client, metrics));
            let stop = self.accept_stop.child_token();
            tracing::info!(upstream = %name, addr = %bound, "upstream listener started");
            tokio::spawn(outbound::serve(
                self.clone(),
                upstream.clone(),
                listener,
                stop.clone(),
            ));
            locked(&self.upstreams).insert(name, Running { upstream, stop });
        }
        self.check_ready();
        Ok(locked(&self.upstreams)
            .iter()
            .map(|(n, r)| (n.clone(), r.upstream.spec.bind))
            .collect())
    }

    /// Replaces the healthy instances of upstream `name`.
    pub(crate) fn set_endpoints(&self, name: &str, targets: Vec<String>) {
        let upstream = locked(&self.upstreams)
            .get(name)
            .map(|r| r.upstream.clone());
        if let Some(upstream) = upstream {
            self.metrics.set_upstream_healthy(name, targets.len());
            tracing::debug!(upstream = %name, endpoints = ?targets, "endpoints updated");
            upstream.set_endpoints(targets.into_iter().map(Endpoint::new).collect());
            self.check_ready();
        }
    }

    pub(crate) fn upstream_addrs(&self) -> BTreeMap<String, SocketAddr> {
        locked(&self.upstreams)
            .iter()
            .map(|(n, r)| (n.clone(), r.upstream.spec.bind))
            .collect()
    }

    // === readiness ===

    fn check_ready(&self) {
        if *self.ready.borrow() {
            return;
        }
        let ready = self.tls.current().is_some()
            && self.intentions().is_some()
            && self.public_addr().is_some()
            && locked(&self.upstreams)
                .values()
                .all(|r| r.upstream.is_loaded());
        if ready {
            tracing::info!("ready: certificates, intentions and upstream endpoints loaded");
            self.metrics.ready.store(1, Ordering::Relaxed);
            self.ready.send_replace(true);
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow() && !self.accept_stop.is_cancelled()
    }

    /// Waits until ready; returns false if a drain started first.
    pub(crate) async fn wait_ready(&self) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::select! {
            r = rx.wait_for(|r| *r) => r.is_ok() && !self.accept_stop.is_cancelled(),
            () = self.accept_stop.cancelled() => false,
        }
    }
}
