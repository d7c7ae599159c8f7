//! TLS stage: the handshake under a time bound, then the peer's identity from its certificate.

use connect::{ServiceId, SpiffeId};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::metrics::ListenerMetrics;
use crate::proxy::Core;
use crate::tls::{Material, handshake_failure_reason, peer_uri};

/// The verified peer: its service identity and the material the handshake used.
pub(crate) struct Peer {
    pub(crate) id: ServiceId,
    pub(crate) material: std::sync::Arc<Material>,
}

/// Completes the server handshake (client certificate required and chained to the current roots
/// by the verifier) and reads the client's SPIFFE ID. `None` when the connection must close; the
/// reason is counted and logged.
pub(crate) async fn handshake(
    core: &Core,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    metrics: &ListenerMetrics,
) -> Option<(TlsStream<TcpStream>, Peer)> {
    let timeout = core.settings.handshake_timeout;
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            let reason = handshake_failure_reason(&error);
            metrics.handshake_failed(reason);
            tracing::info!(reason, %error, "inbound TLS handshake failed");
            return None;
        }
        Err(_) => {
            metrics.handshake_failed("timeout");
            tracing::info!(
                reason = "timeout",
                ?timeout,
                "inbound TLS handshake timed out"
            );
            return None;
        }
    };
    let material = core.tls.current()?;
    let (_, conn) = tls.get_ref();
    let uri = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(peer_uri);
    let id = match uri.as_deref().map(SpiffeId::parse) {
        Some(Ok(SpiffeId::Service(id))) if id.trust_domain() == &material.trust_domain => id,
        other => {
            metrics.handshake_failed("not_a_service");
            tracing::info!(
                uri = ?uri,
                parsed = ?other.map(|r| r.map(|id| id.to_string())),
                "inbound client certificate is not a service of our trust domain"
            );
            return None;
        }
    };
    Some((tls, Peer { id, material }))
}
