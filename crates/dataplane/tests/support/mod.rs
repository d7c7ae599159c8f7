//! Shared pieces of the integration tests: certificates minted with `connect-ca`, in-process
//! sidecars on port 0, an echo app, a raw mTLS client, and `eventually`; [`mesh`] has tasks
//! registered in a dev server as consul-ecs registers them.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

pub mod mesh;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connect::SpiffeId;
use connect_ca::{Ca, CaConfig, IssuedCert};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const CLUSTER: &str = "5fcd4b81-a2ca-405a-ac62-0fac602c1949";
pub const OTHER_CLUSTER: &str = "0a1b2c3d-0000-4000-8000-000000000001";

/// How long `eventually` keeps trying; `DP_TEST_PATIENCE_SECS` raises it on slow machines.
pub fn patience() -> Duration {
    let secs = std::env::var("DP_TEST_PATIENCE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// Retries `check` until it returns true or patience runs out.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CA and a place to write PEM files.
pub struct Pki {
    pub ca: Ca,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(cluster: &str) -> Self {
        Self {
            ca: Ca::generate(cluster, CaConfig::new("dc1"), 1).unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn leaf(&mut self, service: &str) -> IssuedCert {
        let id = SpiffeId::Service(self.ca.service_id(service).unwrap());
        self.ca.issue_leaf(&id).unwrap()
    }

    pub fn roots_pem(&self) -> String {
        self.ca.roots().pem_bundle()
    }

    /// Writes a leaf and the roots; returns (cert, key, ca) paths.
    pub fn write(&mut self, name: &str, leaf: &IssuedCert) -> (PathBuf, PathBuf, PathBuf) {
        let d = self.dir.path();
        let cert = d.join(format!("{name}.crt"));
        let key = d.join(format!("{name}.key"));
        let ca = d.join(format!("{name}-ca.pem"));
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, leaf.private_key_pem.expose()).unwrap();
        std::fs::write(&ca, self.roots_pem()).unwrap();
        (cert, key, ca)
    }

    /// A leaf for `service` signed by the active root but valid only in the past.
    pub fn expired_leaf(&self, service: &str) -> (String, String) {
        let root = &self.ca.state().roots[0];
        let root_key = rcgen::KeyPair::from_pem(root.private_key_pem.expose()).unwrap();
        let root_der = CertificateDer::from_pem_slice(root.root.root_cert.as_bytes()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_der(&root_der, &root_key).unwrap();
        let uri = self.ca.service_id(service).unwrap().uri();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(10);
        params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A static sidecar config (everything on port 0 unless given).
pub struct Sidecar {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub app_port: u16,
    pub upstreams: Vec<Value>,
    pub intentions: Vec<Value>,
    pub default_allow: bool,
    pub envoy: Value,
}

impl Sidecar {
    pub fn new(paths: (PathBuf, PathBuf, PathBuf), app_port: u16) -> Self {
        Self {
            cert: paths.0,
            key: paths.1,
            ca: paths.2,
            app_port,
            upstreams: Vec::new(),
            intentions: Vec::new(),
            default_allow: true,
            envoy: json!({}),
        }
    }

    pub fn upstream(mut self, service: &str, endpoints: &[std::net::SocketAddr]) -> Self {
        self.upstreams.push(json!({
            "destinationName": service,
            "localBindPort": 0,
            "endpoints": endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }));
        self
    }

    pub fn json(&self) -> Value {
        let mut envoy = json!({
            "readyBindAddress": "127.0.0.1", "readyBindPort": 0,
            "adminBindPort": 0, "gracefulPort": 0,
            "publicBindAddress": "127.0.0.1",
        });
        if let (Some(e), Some(extra)) = (envoy.as_object_mut(), self.envoy.as_object()) {
            for (k, v) in extra {
                e.insert(k.clone(), v.clone());
            }
        }
        json!({
            "logging": {"logLevel": "debug"},
            "envoy": envoy,
            "telemetry": {"prometheus": {"bindPort": 0}},
            "static": {
                "certFile": self.cert, "keyFile": self.key, "caFile": self.ca,
                "publicPort": 0, "localServicePort": self.app_port,
                "upstreams": self.upstreams,
                "intentions": self.intentions,
                "defaultAllow": self.default_allow,
            }
        })
    }

    pub async fn start(&self) -> dataplane::Dataplane {
        init_logs();
        let config = dataplane::Config::from_json(&self.json().to_string()).unwrap();
        let dp = dataplane::Dataplane::start(config).await.unwrap();
        assert!(dp.wait_ready().await, "sidecar never became ready");
        dp
    }
}

/// An echo app: every connection gets back what it sends; half-close is passed on.
pub async fn echo_app() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// Sends `data`, half-closes, and reads everything back (bounded by patience).
pub async fn round_trip(addr: std::net::SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(data).await?;
    s.shutdown().await?;
    let mut out = Vec::new();
    tokio::time::timeout(patience(), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Ok(out)
}

/// A verifier that accepts any server certificate (these tests look at the server's behaviour).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to a public listener with `cert_pem`/`key_pem`, sends `data`, half-closes, and returns
/// what comes back; `Err` when the handshake or the exchange fails.
pub async fn mtls_round_trip(
    addr: std::net::SocketAddr,
    cert_pem: &str,
    key_pem: &str,
    data: &[u8],
) -> std::io::Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("api.default.dc1.internal.example.consul").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(data).await?;
    tls.shutdown().await?;
    let mut out = Vec::new();
    tokio::time::timeout(patience(), tls.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Ok(out)
}

/// Opens an mTLS connection, exchanges one byte, then holds it open (no half-close) and reads
/// until the server ends it. Returns whether the exchange worked.
pub async fn mtls_hold(addr: std::net::SocketAddr, cert_pem: &str, key_pem: &str) -> bool {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let name = ServerName::try_from("api.default.dc1.internal.example.consul").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return false;
    };
    let mut one = [0u8; 1];
    if tls.write_all(b"h").await.is_err() || tls.read_exact(&mut one).await.is_err() {
        return false;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(patience(), tls.read_to_end(&mut rest)).await;
    true
}

/// The value of one sample in a Prometheus text exposition (0 when absent).
pub fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// GET `path` on `addr` over plain HTTP/1.0; returns (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(patience(), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((status, body))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Logs to the test's captured output (`RUST_LOG` filters; default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
