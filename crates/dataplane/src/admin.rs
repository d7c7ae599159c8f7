//! The HTTP side listeners: lifecycle (`/graceful_startup`, `/graceful_shutdown`), admin and
//! Prometheus (`/ready`, `/stats/prometheus`, the scrape path), and the readiness listener that is
//! bound only once the proxy is ready and closed when the drain starts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::proxy::Core;

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Lifecycle,
    Admin,
    Ready,
}

pub(crate) async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// Serves `role` on `listener` until `stop` fires.
pub(crate) async fn serve(
    core: Arc<Core>,
    listener: TcpListener,
    role: Role,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let core = core.clone();
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let core = core.clone();
                let shutdown = shutdown.clone();
                async move { Ok::<_, Infallible>(route(&core, role, &shutdown, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(role != Role::Ready)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn route(
    core: &Core,
    role: Role,
    shutdown: &CancellationToken,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let settings = &core.settings;
    match role {
        Role::Lifecycle if path == settings.graceful_shutdown_path => {
            tracing::info!("graceful shutdown requested over HTTP");
            shutdown.cancel();
            text(StatusCode::OK, "")
        }
        Role::Lifecycle if path == settings.graceful_startup_path => {
            let ready = match settings.startup_grace_period {
                Some(bound) => tokio::time::timeout(bound, core.wait_ready())
                    .await
                    .unwrap_or(false),
                None => core.wait_ready().await,
            };
            if ready {
                text(StatusCode::OK, "")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        Role::Admin | Role::Ready if path == "/ready" => {
            if core.is_ready() {
                text(StatusCode::OK, "LIVE\n")
            } else if core.accept_stop.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
            }
        }
        Role::Admin if path == "/stats/prometheus" || path == settings.scrape_path => {
            let mut response = text(StatusCode::OK, core.metrics.render());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Binds the readiness listener once the core is ready and serves it until the drain starts.
/// Returns the bound address through `bound`.
pub(crate) async fn ready_listener(
    core: Arc<Core>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    bound: tokio::sync::oneshot::Sender<Result<SocketAddr, Error>>,
) {
    if !core.wait_ready().await {
        return;
    }
    let listener = match bind("readiness listener", addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot bind the readiness listener");
            let _ = bound.send(Err(e));
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "readiness listener bound");
    let _ = bound.send(Ok(local));
    // Closed when the drain starts: a net-dial health check then fails.
    serve(
        core.clone(),
        listener,
        Role::Ready,
        core.accept_stop.clone(),
        shutdown,
    )
    .await;
    tracing::info!("readiness listener closed");
}
