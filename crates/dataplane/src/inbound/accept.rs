//! Accept stage: the listener loop. Stops on drain; each connection runs as a tracked task that
//! ends at the hard stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::proxy::Core;

/// Listener name of the public listener in metrics and logs.
pub(crate) const LISTENER: &str = "public";

/// Runs the public listener until the drain starts.
pub(crate) async fn serve(
    core: Arc<Core>,
    listener: TcpListener,
    server: Arc<rustls::ServerConfig>,
    local_app: String,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let metrics = core.metrics.listener(LISTENER);
    let local_app: Arc<str> = Arc::from(local_app);
    loop {
        let accepted = tokio::select! {
            () = core.accept_stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "public listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let guard = metrics.open();
        let core2 = core.clone();
        let acceptor = acceptor.clone();
        let local_app = local_app.clone();
        let metrics = metrics.clone();
        let span = tracing::debug_span!("inbound", %peer);
        core.tracker.spawn(
            async move {
                let hard = core2.hard_stop.clone();
                tokio::select! {
                    () = connection(core2, acceptor, stream, &local_app, &metrics) => {}
                    () = hard.cancelled() => tracing::debug!("connection cut at the end of the drain"),
                }
                drop(guard);
            }
            .instrument(span),
        );
    }
    tracing::info!("public listener stopped accepting");
}

async fn connection(
    core: Arc<Core>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    local_app: &str,
    metrics: &crate::metrics::ListenerMetrics,
) {
    let Some((tls, peer)) = super::tls::handshake(&core, acceptor, stream, metrics).await else {
        return;
    };
    if !super::authz::allowed(&core, &peer, metrics) {
        // Dropping the stream closes the connection right after the handshake.
        drop(tls);
        return;
    }
    super::forward::forward(&core, tls, local_app, metrics).await;
}
