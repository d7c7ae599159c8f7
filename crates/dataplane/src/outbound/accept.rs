//! Accept stage of an upstream listener: stops when the drain starts or the upstream is removed.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Upstream;
use crate::proxy::Core;

pub(crate) async fn serve(
    core: Arc<Core>,
    upstream: Arc<Upstream>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(error) => {
                tracing::warn!(%error, upstream = %upstream.spec.name, "upstream listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let guard = upstream.metrics.open();
        let core2 = core.clone();
        let upstream2 = upstream.clone();
        let span = tracing::debug_span!("outbound", upstream = %upstream.spec.name, %peer);
        core.tracker.spawn(
            async move {
                let hard = core2.hard_stop.clone();
                tokio::select! {
                    () = super::connect::connection(&core2, &upstream2, stream) => {}
                    () = hard.cancelled() => tracing::debug!("connection cut at the end of the drain"),
                }
                drop(guard);
            }
            .instrument(span),
        );
    }
    tracing::info!(upstream = %upstream.spec.name, "upstream listener stopped accepting");
}
