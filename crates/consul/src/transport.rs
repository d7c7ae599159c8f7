//! The connector under hyper-util's pooled client: TCP with a connect timeout, then TLS through
//! tokio-rustls (ring) when the scheme is HTTPS. Also builds the rustls configuration.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;
use crate::config::{CaSource, PemSource, TlsConfig};

/// Why a connection could not be made; kept distinct so TLS failures are reported as such.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("the URL has no host")]
    NoHost,
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    #[error("HTTPS requested but TLS is not configured")]
    NoTls,
}

/// TLS settings the connector applies to every HTTPS connection.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    connector: TlsConnector,
    /// The name to verify; the URL's host when unset.
    server_name: Option<ServerName<'static>>,
}

/// Opens connections for the pooled client.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<TlsSettings>,
    connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(tls: Option<TlsSettings>, connect_timeout: Duration) -> Self {
        Self {
            tls,
            connect_timeout,
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or(ConnectError::NoHost)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = tokio::time::timeout(
                this.connect_timeout,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| ConnectError::Timeout(this.connect_timeout))?
            .map_err(ConnectError::Io)?;
            // Small request/response exchanges: do not wait to coalesce writes.
            tcp.set_nodelay(true).map_err(ConnectError::Io)?;
            if !https {
                return Ok(Conn::Plain(TokioIo::new(tcp)));
            }
            let tls = this.tls.as_ref().ok_or(ConnectError::NoTls)?;
            let name = match &tls.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(host.clone())
                    .map_err(|_| ConnectError::ServerName(host.clone()))?,
            };
            let handshake = tls.connector.connect(name, tcp);
            let stream = tokio::time::timeout(this.connect_timeout, handshake)
                .await
                .map_err(|_| ConnectError::Timeout(this.connect_timeout))?
                .map_err(|e| {
                    match e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    {
                        Some(tls_error) => ConnectError::Tls(tls_error.clone()),
                        None => ConnectError::Io(e),
                    }
                })?;
            Ok(Conn::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection to Consul, plain or TLS.
pub(crate) enum Conn {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(io) => io.is_write_vectored(),
            Conn::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

/// Builds the TLS settings from the configuration: trust roots, optional client certificate,
/// optional server name, and (only if asked) no verification at all.
pub(crate) fn tls_settings(tls: &TlsConfig) -> Result<TlsSettings, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("tls", e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(root_store(tls.ca.as_ref())?)
    };
    let config = match &tls.client_cert {
        Some(client) => {
            let certs = read_certs(&client.cert, "tls.client_cert.cert")?;
            let key = read_key(&client.key)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| config_error("tls.client_cert", e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    let server_name = match &tls.server_name {
        Some(name) => {
            // The Go client accepts "host:port" here and keeps only the host.
            let host = strip_port(name);
            Some(ServerName::try_from(host.to_string()).map_err(|_| {
                config_error(
                    "tls.server_name",
                    format!("{name:?} is not a valid DNS name or IP"),
                )
            })?)
        }
        None => None,
    };
    Ok(TlsSettings {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

fn strip_port(name: &str) -> &str {
    // "[::1]:8501" -> "::1", "host:8501" -> "host", "::1" stays (more than one colon, no brackets).
    if let Some(rest) = name.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match name.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => name,
    }
}

fn config_error(field: &str, message: String) -> Error {
    Error::Config {
        field: field.to_string(),
        message,
    }
}

fn root_store(ca: Option<&CaSource>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(CaSource::File(path)) => {
            let text = read_file(path, "tls.ca")?;
            add_pem_roots(&mut roots, &text, &path.display().to_string())?;
        }
        Some(CaSource::Pem(text)) => add_pem_roots(&mut roots, text.as_bytes(), "the CA PEM")?,
        Some(CaSource::Directory(dir)) => {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                config_error(
                    "tls.ca",
                    format!("cannot read CA directory {}: {e}", dir.display()),
                )
            })?;
            let mut paths = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| {
                    config_error(
                        "tls.ca",
                        format!("cannot read CA directory {}: {e}", dir.display()),
                    )
                })?;
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    paths.push(entry.path());
                }
            }
            paths.sort();
            for path in paths {
                let text = read_file(&path, "tls.ca")?;
                add_pem_roots(&mut roots, &text, &path.display().to_string())?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // One unusable system certificate should not make the others unusable.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(config_error(
            "tls.ca",
            "no CA certificates to trust: set a CA file, directory or PEM".to_string(),
        ));
    }
    Ok(roots)
}

fn read_file(path: &Path, field: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| config_error(field, format!("cannot read {}: {e}", path.display())))
}

fn add_pem_roots(roots: &mut RootCertStore, pem: &[u8], origin: &str) -> Result<(), Error> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| config_error("tls.ca", format!("bad PEM in {origin}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| config_error("tls.ca", format!("bad CA certificate in {origin}: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(config_error(
            "tls.ca",
            format!("no PEM certificates found in {origin}"),
        ));
    }
    Ok(())
}

fn read_certs(source: &PemSource, field: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let (pem, origin) = match source {
        PemSource::File(path) => (read_file(path, field)?, path.display().to_string()),
        PemSource::Pem(text) => (
            text.expose().as_bytes().to_vec(),
            "the PEM text".to_string(),
        ),
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(field, format!("bad PEM in {origin}: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(
            field,
            format!("no PEM certificates found in {origin}"),
        ));
    }
    Ok(certs)
}

fn read_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, Error> {
    let field = "tls.client_cert.key";
    match source {
        // The key's content never goes into an error message.
        PemSource::File(path) => {
            let pem = read_file(path, field)?;
            PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                config_error(
                    field,
                    format!("no usable private key in {}: {e}", path.display()),
                )
            })
        }
        PemSource::Pem(text) => {
            PrivateKeyDer::from_pem_slice(text.expose().as_bytes()).map_err(|e| {
                config_error(field, format!("no usable private key in the PEM text: {e}"))
            })
        }
    }
}

/// Accepts any server certificate, for `CONSUL_HTTP_SSL_VERIFY=false`. Handshake signatures are
/// still checked, so the peer must at least hold the key of the certificate it presents.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_lose_their_port() {
        assert_eq!(strip_port("consul.example:8501"), "consul.example");
        assert_eq!(strip_port("consul.example"), "consul.example");
        assert_eq!(strip_port("[::1]:8501"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }
}
