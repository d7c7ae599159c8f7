//! Authorization stage: the intention decision for the client's service, evaluated locally with
//! the `connect` crate's precedence rules over the cached intentions.

use connect::intention::IntentionTarget;

use super::tls::Peer;
use crate::metrics::ListenerMetrics;
use crate::proxy::Core;

/// Whether the peer may reach our service. A denial is logged (source, destination, reason) and
/// counted.
pub(crate) fn allowed(core: &Core, peer: &Peer, _metrics: &ListenerMetrics) -> bool {
    let source = IntentionTarget::service(peer.id.service())
        .in_namespace(peer.id.namespace())
        .in_partition(peer.id.partition());
    let Some(decision) = core.authorize(&source, &peer.material) else {
        // Not reachable once ready; before that nothing is accepted anyway.
        tracing::warn!(source = %peer.id, "no intentions loaded yet; denying");
        core.metrics.intention_denied(peer.id.service());
        return false;
    };
    if decision.allowed {
        tracing::debug!(source = %peer.id, reason = %decision.reason, "connection authorized");
        return true;
    }
    tracing::info!(
        source = %peer.id,
        destination = %peer.material.id,
        reason = %decision.reason,
        "connection denied by intentions"
    );
    core.metrics.intention_denied(peer.id.service());
    false
}
