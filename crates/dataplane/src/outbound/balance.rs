//! Balance stage: which healthy instance a new connection goes to.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Endpoint, Upstream};
use crate::config::Balancer;

/// Holds a connection slot on an instance; released on drop.
pub(crate) struct Lease(pub(crate) Arc<Endpoint>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Picks an instance, skipping `tried` (instances that already refused this connection).
pub(crate) fn pick(upstream: &Upstream, balancer: Balancer, tried: &[String]) -> Option<Lease> {
    let endpoints = upstream.endpoints();
    let candidates: Vec<&Arc<Endpoint>> = endpoints
        .iter()
        .filter(|e| !tried.contains(&e.target))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let start = upstream.next.fetch_add(1, Ordering::Relaxed);
    let chosen = match balancer {
        Balancer::RoundRobin => candidates[start % candidates.len()],
        Balancer::LeastConnections => {
            // Scan from the round-robin position so ties rotate.
            let n = candidates.len();
            (0..n)
                .map(|i| candidates[(start + i) % n])
                .min_by_key(|e| e.active.load(Ordering::Relaxed))
                .unwrap_or(candidates[start % n])
        }
    };
    chosen.active.fetch_add(1, Ordering::Relaxed);
    Some(Lease(chosen.clone()))
}
