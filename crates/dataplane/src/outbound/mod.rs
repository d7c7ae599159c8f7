//! Upstream listeners: a local plain-TCP port per upstream, a healthy instance chosen per
//! connection, mTLS to that instance's public listener (SNI = the target's name, its SPIFFE ID
//! checked), then bytes spliced.
//!
//! Stages: [`accept`] (listener loop) → [`balance`] (pick an instance) → [`connect`] (dial, TLS,
//! splice). [`discovery`] decides where instances come from (direct or through mesh gateways).

mod accept;
mod balance;
mod connect;
pub(crate) mod discovery;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

pub(crate) use accept::serve;

use crate::metrics::ListenerMetrics;
use crate::proxy::UpstreamSpec;

/// One instance: where to dial, and how many connections this proxy has open to it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `host:port`.
    pub(crate) target: String,
    pub(crate) active: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn new(target: String) -> Arc<Self> {
        Arc::new(Self {
            target,
            active: AtomicUsize::new(0),
        })
    }
}

/// A running upstream.
pub(crate) struct Upstream {
    pub(crate) spec: UpstreamSpec,
    pub(crate) client: Arc<rustls::ClientConfig>,
    pub(crate) metrics: Arc<ListenerMetrics>,
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    loaded: AtomicBool,
    pub(crate) next: AtomicUsize,
}

impl Upstream {
    pub(crate) fn new(
        spec: UpstreamSpec,
        client: Arc<rustls::ClientConfig>,
        metrics: Arc<ListenerMetrics>,
    ) -> Self {
        Self {
            spec,
            client,
            metrics,
            endpoints: RwLock::new(Arc::new(Vec::new())),
            loaded: AtomicBool::new(false),
            next: AtomicUsize::new(0),
        }
    }

    /// Replaces the instance list, keeping the connection counts of instances that stay.
    pub(crate) fn set_endpoints(&self, fresh: Vec<Arc<Endpoint>>) {
        let old = self.endpoints();
        let merged: Vec<Arc<Endpoint>> = fresh
            .into_iter()
            .map(|e| {
                old.iter()
                    .find(|o| o.target == e.target)
                    .cloned()
                    .unwrap_or(e)
            })
            .collect();
        let merged = Arc::new(merged);
        match self.endpoints.write() {
            Ok(mut g) => *g = merged,
            Err(p) => *p.into_inner() = merged,
        }
        self.loaded.store(true, Ordering::Release);
    }

    pub(crate) fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        match self.endpoints.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}
