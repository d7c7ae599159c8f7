//! Listeners: plain HTTP and HTTPS (rustls with ring, optional client-certificate verification), both
//! serving the same router, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::api::AppState;
use crate::{Config, Error, HttpsConfig};

/// A running server. Dropping it does not stop it; call [`DevServer::shutdown`].
pub struct DevServer {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    state: AppState,
    tasks: TaskTracker,
}

impl DevServer {
    /// Opens the state, binds the listeners and starts serving.
    pub async fn start(config: Config) -> Result<DevServer, Error> {
        let tls = config.https.as_ref().map(tls_acceptor).transpose()?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = http.local_addr().map_err(|source| Error::Bind {
            addr: config.http_addr,
            source,
        })?;
        let https = match (&config.https, tls) {
            (Some(h), Some(acceptor)) => {
                let l = TcpListener::bind(h.addr)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: h.addr,
                        source,
                    })?;
                let addr = l.local_addr().map_err(|source| Error::Bind {
                    addr: h.addr,
                    source,
                })?;
                Some((l, addr, acceptor))
            }
            _ => None,
        };
        let https_addr = https.as_ref().map(|(_, a, _)| *a);
        let state = AppState::open(&config, http_addr, https_addr)?;
        let router = crate::api::app(state.clone());
        let tasks = TaskTracker::new();
        let shutdown = state.shutdown_token();
        tasks.spawn(accept_loop(
            http,
            None,
            router.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        if let Some((l, _, acceptor)) = https {
            tasks.spawn(accept_loop(
                l,
                Some(acceptor),
                router,
                shutdown,
                tasks.clone(),
            ));
        }
        tasks.spawn(prune_loop(state.clone(), state.shutdown_token()));
        tracing::debug!(%http_addr, ?https_addr, "listening");
        Ok(DevServer {
            http_addr,
            https_addr,
            state,
            tasks,
        })
    }

    /// The bound plain HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound HTTPS address, if HTTPS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Stops accepting, ends blocking queries, lets in-flight requests finish, and writes a snapshot.
    pub async fn shutdown(self) {
        self.state.shutdown_token().cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let state = self.state.clone();
        let r = tokio::task::spawn_blocking(move || state.compact()).await;
        match r {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not write a snapshot at shutdown; the log is kept")
            }
            Err(e) => tracing::warn!(error = %e, "snapshot task failed at shutdown"),
            Ok(Ok(())) => {}
        }
    }
}

/// How often rotated-out CA roots and expired ACL tokens are checked for removal (also whenever the
/// server's clock is moved). Expired tokens stop working at once; this only removes them.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

async fn prune_loop(state: AppState, shutdown: CancellationToken) {
    let mut moved = state.clock().subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
            Ok(()) = moved.changed() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = state.prune_ca_roots().await {
            tracing::warn!(error = ?e, "could not prune expired CA roots");
        }
        if let Err(e) = state.reap_tokens().await {
            tracing::warn!(error = ?e, "could not remove expired ACL tokens");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let shutdown = shutdown.clone();
        match &tls {
            None => {
                tasks.spawn(serve_connection(stream, router, shutdown));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tasks.spawn(async move {
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)) => r,
                        () = shutdown.cancelled() => return,
                    };
                    match handshake {
                        Ok(Ok(tls_stream)) => serve_connection(tls_stream, router, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn serve_connection<I>(io: I, router: Router, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        async move { router.oneshot(req.map(axum::body::Body::new)).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn tls_acceptor(h: &HttpsConfig) -> Result<TlsAcceptor, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&h.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Tls(format!(
                "cannot read certificates from {}: {e}",
                h.cert_file.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "no certificate in {}",
            h.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&h.key_file).map_err(|e| {
        Error::Tls(format!(
            "cannot read a private key from {}: {e}",
            h.key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match &h.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Tls(format!(
                        "cannot read CA certificates from {}: {e}",
                        ca.display()
                    ))
                })?;
            for c in cas {
                roots.add(c).map_err(|e| {
                    Error::Tls(format!("bad CA certificate in {}: {e}", ca.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(Error::Tls(format!("no CA certificate in {}", ca.display())));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Tls(format!("client verification: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        Error::Tls(format!(
            "certificate and key do not form a usable pair: {e}"
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
