//! Certificates and TLS: the proxy's leaf and the trusted roots, swapped live without touching
//! established connections, and the rustls configurations that read them at every handshake.
//!
//! One [`TlsState`] holds the current [`Material`] behind a lock. The server config and every
//! upstream's client config are built once; their certificate resolvers and verifiers read the
//! material of the moment when a handshake needs it, so a renewed leaf or a rotated root applies to
//! the next handshake and leaves open connections alone.

use std::sync::{Arc, RwLock};

use connect::{ServiceId, SpiffeId, TrustDomain};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Why certificate material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The leaf PEM holds no certificate or does not parse.
    #[error("leaf certificate: {0}")]
    Leaf(String),
    /// The private key PEM holds no key, an unsupported key, or one that does not match the leaf.
    #[error("leaf private key: {0}")]
    Key(String),
    /// A root certificate does not parse or cannot be a trust anchor.
    #[error("CA root {index}: {message}")]
    Root {
        /// Position in the roots list.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// No usable root.
    #[error("no CA roots")]
    NoRoots,
    /// The leaf's identity is not a service SPIFFE ID.
    #[error("leaf identity: {0}")]
    Identity(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The peer presented a valid certificate for another identity than the one dialled.
#[derive(Debug, thiserror::Error)]
#[error("peer identity {found} is not the expected {expected}")]
pub struct WrongIdentity {
    /// The URI SAN found (or a note that there was none).
    pub found: String,
    /// The URI expected.
    pub expected: String,
}

/// A leaf with its key, the roots, and what the leaf says about us.
pub(crate) struct Material {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(crate) id: ServiceId,
    pub(crate) trust_domain: TrustDomain,
    /// Unix seconds of the leaf's NotAfter.
    pub(crate) not_after: i64,
    pub(crate) root_count: usize,
}

impl Material {
    /// Builds material from PEM text. `trust_domain` is the roots' `TrustDomain`; when empty, the
    /// leaf's own trust domain is taken.
    pub(crate) fn from_pem(
        provider: &Arc<CryptoProvider>,
        cert_pem: &str,
        key_pem: &str,
        root_pems: &[String],
        trust_domain: &str,
    ) -> Result<Material, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Leaf(format!("not PEM: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::Leaf("no CERTIFICATE block".into()));
        };
        let (id, not_after) = leaf_facts(leaf).map_err(TlsError::Leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Key(format!("not a PEM private key: {e}")))?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| TlsError::Key(format!("does not match the certificate: {e}")))?;

        let mut roots = RootCertStore::empty();
        for (index, pem) in root_pems.iter().enumerate() {
            let der =
                CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Root {
                    index,
                    message: format!("not PEM: {e}"),
                })?;
            roots.add(der).map_err(|e| TlsError::Root {
                index,
                message: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let trust_domain = if trust_domain.is_empty() {
            id.trust_domain().clone()
        } else {
            TrustDomain::new(trust_domain)
                .map_err(|e| TlsError::Identity(format!("roots trust domain: {e}")))?
        };
        if id.trust_domain() != &trust_domain {
            return Err(TlsError::Identity(format!(
                "leaf trust domain {} is not the roots' {trust_domain}",
                id.trust_domain()
            )));
        }
        let root_count = roots.len();
        let roots = Arc::new(roots);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Material {
            key: Arc::new(certified),
            roots,
            client_verifier,
            id,
            trust_domain,
            not_after,
            root_count,
        })
    }
}

/// The URI SAN and NotAfter of a leaf.
fn leaf_facts(der: &CertificateDer<'_>) -> Result<(ServiceId, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("does not parse: {e}"))?;
    let uri = first_uri_san(&cert).ok_or("has no URI SAN")?;
    let id = match SpiffeId::parse(&uri) {
        Ok(SpiffeId::Service(id)) => id,
        Ok(other) => return Err(format!("{other} is not a service identity")),
        Err(e) => return Err(format!("URI SAN {uri:?}: {e}")),
    };
    let validity = cert.validity();
    Ok((id, validity.not_after.timestamp()))
}

fn first_uri_san(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let san = cert.subject_alternative_name().ok().flatten()?;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
        _ => None,
    })
}

/// The first URI SAN of a DER certificate, if it has one and parses.
pub(crate) fn peer_uri(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    first_uri_san(&cert)
}

/// The current material, shared by every handshake.
pub(crate) struct TlsState {
    provider: Arc<CryptoProvider>,
    current: RwLock<Option<Arc<Material>>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsState")
    }
}

impl TlsState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            current: RwLock::new(None),
        })
    }

    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    pub(crate) fn current(&self) -> Option<Arc<Material>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set(&self, material: Material) {
        let material = Arc::new(material);
        match self.current.write() {
            Ok(mut guard) => *guard = Some(material),
            Err(poisoned) => *poisoned.into_inner() = Some(material),
        }
    }

    /// The public listener's server config: client certificates required, verified against the
    /// current roots; the current leaf presented; `alpn` offered.
    pub(crate) fn server_config(
        self: &Arc<Self>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(CurrentRootsClientVerifier(self.clone())))
            .with_cert_resolver(Arc::new(CurrentLeaf(self.clone())));
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// A client config for one upstream: presents the current leaf, accepts only a server chain
    /// to the current roots whose URI SAN is `expected` (datacenter filled from our own leaf when
    /// `None`).
    pub(crate) fn client_config(
        self: &Arc<Self>,
        expected: ExpectedIdentity,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UpstreamVerifier {
                state: self.clone(),
                expected,
            }))
            .with_client_cert_resolver(Arc::new(CurrentLeaf(self.clone())));
        Ok(Arc::new(config))
    }
}

/// Who an upstream connection must reach.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedIdentity {
    pub(crate) service: String,
    pub(crate) namespace: String,
    pub(crate) partition: String,
    /// `None`: the proxy's own datacenter.
    pub(crate) datacenter: Option<String>,
}

impl ExpectedIdentity {
    /// The expected service identity given our own.
    pub(crate) fn service_id(&self, ours: &Material) -> Result<ServiceId, String> {
        let dc = self
            .datacenter
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(ours.id.datacenter());
        let ns = if self.namespace.is_empty() {
            connect::DEFAULT
        } else {
            &self.namespace
        };
        ServiceId::new(ours.trust_domain.clone(), ns, dc, &self.service)
            .and_then(|id| id.with_partition(&self.partition))
            .map_err(|e| e.to_string())
    }
}

// === impl CurrentLeaf ===

#[derive(Debug)]
struct CurrentLeaf(Arc<TlsState>);

impl ResolvesServerCert for CurrentLeaf {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current().map(|m| m.key.clone())
    }
}

impl ResolvesClientCert for CurrentLeaf {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.current().map(|m| m.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

// === impl CurrentRootsClientVerifier ===

/// WebPKI client verification against whatever roots are current at the handshake.
#[derive(Debug)]
struct CurrentRootsClientVerifier(Arc<TlsState>);

impl CurrentRootsClientVerifier {
    fn inner(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.0.current().map(|m| m.client_verifier.clone()).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        )
    }
}

impl ClientCertVerifier for CurrentRootsClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints would borrow from material that may be swapped; Connect clients send their one
        // leaf whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner()?
            .verify_client_cert(end_entity, intermediates, now)
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
            &self.0.provider.signature_verification_algorithms,
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
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// === impl UpstreamVerifier ===

/// Server verification for one upstream: chain to the current roots (no host name check: Connect
/// leafs carry no DNS names), then the first URI SAN must be the expected service identity.
#[derive(Debug)]
struct UpstreamVerifier {
    state: Arc<TlsState>,
    expected: ExpectedIdentity,
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let material = self
            .state
            .current()
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &material.roots,
            intermediates,
            now,
            self.state.provider.signature_verification_algorithms.all,
        )?;
        let expected = self.expected.service_id(&material).map_err(|e| {
            rustls::Error::General(format!("cannot form the expected identity: {e}"))
        })?;
        let found = peer_uri(end_entity);
        let matches = found
            .as_deref()
            .and_then(|uri| SpiffeId::parse(uri).ok())
            .and_then(|id| id.as_service().cloned())
            .is_some_and(|id| {
                id.trust_domain() == expected.trust_domain()
                    && id.eq_ignoring_trust_domain(&expected)
            });
        if matches {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(WrongIdentity {
                    found: found.unwrap_or_else(|| "<no URI SAN>".into()),
                    expected: expected.uri(),
                })),
            )))
        }
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
            &self.state.provider.signature_verification_algorithms,
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
            &self.state.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.state
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a handshake failed, as a fixed metric label (one mapping for both directions).
pub(crate) fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::TimedOut {
        return "timeout";
    }
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "peer_closed",
            _ => "io",
        };
    };
    tls_error_reason(tls)
}

fn tls_error_reason(tls: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match tls {
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "not_tls",
        E::NoCertificatesPresented => "no_client_certificate",
        E::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Other(other) if other.0.downcast_ref::<WrongIdentity>().is_some() => {
                "wrong_identity"
            }
            _ => "bad_certificate",
        },
        E::AlertReceived(alert) => match alert {
            rustls::AlertDescription::UnknownCA => "peer_rejected_unknown_ca",
            rustls::AlertDescription::CertificateExpired => "peer_rejected_expired",
            rustls::AlertDescription::CertificateRequired => "peer_required_certificate",
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnsupportedCertificate
            | rustls::AlertDescription::CertificateUnknown => "peer_rejected_certificate",
            _ => "peer_alert",
        },
        E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
        _ => "other",
    }
}
