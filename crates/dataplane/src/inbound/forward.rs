//! Forward stage: dial the local application (time-bounded) and splice bytes both ways.

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::io::{SpliceEnd, splice};
use crate::metrics::ListenerMetrics;
use crate::proxy::Core;

pub(crate) async fn forward(
    core: &Core,
    tls: TlsStream<TcpStream>,
    local_app: &str,
    metrics: &ListenerMetrics,
) {
    let app =
        match tokio::time::timeout(core.settings.connect_timeout, TcpStream::connect(local_app))
            .await
        {
            Ok(Ok(app)) => app,
            Ok(Err(error)) => {
                core.metrics.connect_failed("local_app", "refused");
                tracing::warn!(%error, local_app, "cannot reach the local application");
                return;
            }
            Err(_) => {
                core.metrics.connect_failed("local_app", "timeout");
                tracing::warn!(local_app, "connecting to the local application timed out");
                return;
            }
        };
    let _ = app.set_nodelay(true);
    match splice(
        tls,
        app,
        core.settings.idle_timeout,
        &metrics.bytes_in,
        &metrics.bytes_out,
    )
    .await
    {
        SpliceEnd::Done => {}
        SpliceEnd::Idle => tracing::debug!("inbound connection idle; closed"),
        SpliceEnd::Error(error) => {
            tracing::debug!(%error, "inbound connection ended with an error")
        }
    }
}
