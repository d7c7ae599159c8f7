//! A small one-shot HTTP/1.1 client for the metadata endpoint and AWS query APIs.
//!
//! Each call opens its own connection (plain TCP for `http`, rustls on ring with the operating system's
//! roots for `https`), sends one request and reads a bounded body, all under one deadline. The callers
//! poll at most once a second, so connection reuse would buy nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// The largest response body read; anything bigger is an error, not an allocation.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A response with its body read in full.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Why a request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an absolute `http` or `https` URL with a host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request cannot be expressed in HTTP (for example a header name with invalid bytes).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The whole exchange took longer than the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The TCP connection could not be opened.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// `host:port` dialled.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS handshake failed or TLS could not be set up.
    #[error("TLS with {host}: {reason}")]
    Tls {
        /// The server name used for verification.
        host: String,
        /// What failed.
        reason: String,
    },
    /// The HTTP exchange failed after the connection was open.
    #[error("HTTP exchange: {0}")]
    Protocol(#[from] hyper::Error),
    /// The response body was larger than 4 MiB or could not be read.
    #[error("reading response body: {0}")]
    Body(String),
}

/// Sends `request` and reads the response, all within `timeout`.
///
/// The request's URI must be absolute. A `Host` header is added from the URI unless the request
/// already carries one (replayed signed requests keep the host they were signed for).
pub(crate) async fn send(
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    match tokio::time::timeout(timeout, send_inner(request)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout)),
    }
}

async fn send_inner(mut request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
    let target = Target::from_uri(request.uri())?;
    if !request.headers().contains_key(header::HOST) {
        let value =
            HeaderValue::from_str(&target.authority).map_err(|e| HttpError::InvalidUrl {
                url: request.uri().to_string(),
                reason: format!("host is not a valid header value: {e}"),
            })?;
        request.headers_mut().insert(header::HOST, value);
    }
    // Send only the path and query on the wire (origin form).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = path.parse().map_err(|e| HttpError::InvalidUrl {
        url: path.clone(),
        reason: format!("{e}"),
    })?;

    let addr = format!("{}:{}", target.dial_host, target.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|source| HttpError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);

    if target.tls {
        let config = tls_config().map_err(|reason| HttpError::Tls {
            host: target.dial_host.clone(),
            reason,
        })?;
        let name = ServerName::try_from(target.dial_host.clone()).map_err(|e| HttpError::Tls {
            host: target.dial_host.clone(),
            reason: format!("invalid server name: {e}"),
        })?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls {
                host: target.dial_host.clone(),
                reason: e.to_string(),
            })?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(async move {
        // The connection ends when the response is read or the peer hangs up; either is fine here.
        let _ = connection.await;
    });
    let result = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?
            .to_bytes();
        Ok(HttpResponse { status, body })
    }
    .await;
    driver.abort();
    result
}

/// Where to connect, taken from an absolute URI.
struct Target {
    tls: bool,
    /// The host without IPv6 brackets, for dialling and for TLS server names.
    dial_host: String,
    port: u16,
    /// The authority as written (for the Host header).
    authority: String,
}

impl Target {
    fn from_uri(uri: &Uri) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: uri.to_string(),
            reason: reason.to_owned(),
        };
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(_) => return Err(invalid("scheme must be http or https")),
            None => return Err(invalid("URL must be absolute (http:// or https://)")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let dial_host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            tls,
            dial_host,
            port,
            authority: authority.as_str().to_owned(),
        })
    }
}

/// The TLS client configuration, built once: ring, safe defaults, the operating system's roots.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A system bundle may hold certificates rustls cannot use; skip those.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no usable root certificates found on this system".to_owned());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// A short, printable excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}
