//! Real TLS over TCP with certificates from the CA: a rustls server that requires client
//! certificates (verified with `WebPkiClientVerifier` against the roots bundle) and a rustls client
//! that verifies the server chain against the roots and checks the server's SPIFFE ID, the way a
//! Connect sidecar does (no hostname check; SNI set to the target's service SNI).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use connect::{SpiffeId, TrustDomain, sni};
use connect_ca::{Ca, CaConfig, IssuedCert};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const CLUSTER: &str = "5fcd4b81-a2ca-405a-ac62-0fac602c1949";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn chain(leaf: &IssuedCert) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

fn key(leaf: &IssuedCert) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(leaf.private_key_pem.expose().as_bytes()).unwrap()
}

fn roots(pem_bundle: &str) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem_bundle.as_bytes()) {
        store.add(cert.unwrap()).unwrap();
    }
    Arc::new(store)
}

fn uri_san(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => Some((*u).to_owned()),
        _ => None,
    })
}

/// Chain verification against the roots plus an exact SPIFFE ID check, no hostname check.
#[derive(Debug)]
struct SpiffeVerifier {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    expected_uri: String,
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        if uri_san(end_entity).as_deref() != Some(self.expected_uri.as_str()) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn server_config(leaf: &IssuedCert, trusted: &str) -> Arc<ServerConfig> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(trusted), provider.clone())
        .build()
        .unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain(leaf), key(leaf))
            .unwrap(),
    )
}

fn client_config(leaf: &IssuedCert, trusted: &str, expected_uri: &str) -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(SpiffeVerifier {
        roots: roots(trusted),
        algs: provider.signature_verification_algorithms,
        expected_uri: expected_uri.to_owned(),
    });
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain(leaf), key(leaf))
            .unwrap(),
    )
}

struct Outcome {
    /// What the server saw: the client's URI SAN, or the handshake error.
    server: Result<String, String>,
    /// What the client saw: the server's URI SAN and the echoed reply, or an error.
    client: Result<(String, String), String>,
}

/// Runs one connection on a real loopback socket and reports what both ends saw.
async fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>, sni: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| uri_san(c))
            .ok_or("client presented no URI SAN")?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(peer)
    });

    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| uri_san(c))
            .ok_or("server presented no URI SAN")?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut reply = String::new();
        tls.read_to_string(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((peer, reply))
    }
    .await;

    Outcome {
        server: server_task.await.unwrap(),
        client: client_result,
    }
}

fn setup() -> (Ca, TrustDomain) {
    let ca = Ca::generate(CLUSTER, CaConfig::new("dc1"), 1).unwrap();
    let td = ca.trust_domain().clone();
    (ca, td)
}

fn issue(ca: &mut Ca, service: &str) -> IssuedCert {
    let id = SpiffeId::Service(ca.service_id(service).unwrap());
    ca.issue_leaf(&id).unwrap()
}

#[tokio::test]
async fn mutual_tls_between_two_service_leafs() {
    let (mut ca, td) = setup();
    let db = issue(&mut ca, "db");
    let web = issue(&mut ca, "web");
    let bundle = ca.roots().pem_bundle();
    let sni = sni::service_sni("db", "", "", "", "dc1", &td);
    let out = connect(
        server_config(&db, &bundle),
        client_config(&web, &bundle, &db.service_uri),
        &sni,
    )
    .await;
    assert_eq!(
        out.server,
        Ok(format!(
            "spiffe://{CLUSTER}.consul/ns/default/dc/dc1/svc/web"
        ))
    );
    assert_eq!(
        out.client,
        Ok((
            format!("spiffe://{CLUSTER}.consul/ns/default/dc/dc1/svc/db"),
            "pong".to_owned()
        ))
    );
}

#[tokio::test]
async fn server_rejects_a_client_leaf_from_another_ca() {
    let (mut ca, td) = setup();
    let mut stranger = Ca::generate(
        "11111111-2222-3333-4444-555555555555",
        CaConfig::new("dc1"),
        1,
    )
    .unwrap();
    let db = issue(&mut ca, "db");
    let intruder = issue(&mut stranger, "web");
    let bundle = ca.roots().pem_bundle();
    let out = connect(
        server_config(&db, &bundle),
        // The intruder trusts our roots, so only client authentication can stop it.
        client_config(&intruder, &bundle, &db.service_uri),
        &sni::service_sni("db", "", "", "", "dc1", &td),
    )
    .await;
    let err = out.server.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(out.client.is_err());
}

#[tokio::test]
async fn client_rejects_a_server_with_the_wrong_identity() {
    let (mut ca, td) = setup();
    let impostor = issue(&mut ca, "cache");
    let web = issue(&mut ca, "web");
    let bundle = ca.roots().pem_bundle();
    let expected = ca.service_id("db").unwrap().to_string();
    let out = connect(
        server_config(&impostor, &bundle),
        client_config(&web, &bundle, &expected),
        &sni::service_sni("db", "", "", "", "dc1", &td),
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(err.contains("NotValidForName"), "{err}");
    assert!(out.server.is_err());
}

#[tokio::test]
async fn leafs_from_before_and_after_a_rotation_interoperate() {
    let (mut ca, td) = setup();
    let old_bundle = ca.roots().pem_bundle();
    let old_web = issue(&mut ca, "web");
    let old_db = issue(&mut ca, "db");
    ca.rotate(2).unwrap();
    let new_bundle = ca.roots().pem_bundle();
    let new_db = issue(&mut ca, "db");
    let new_web = issue(&mut ca, "web");
    let sni = sni::service_sni("db", "", "", "", "dc1", &td);

    // A client still on the old leaf and the old roots reaches a server on the new leaf: the new leaf
    // chains to the old root through the cross-signed intermediate; the server trusts both roots.
    let out = connect(
        server_config(&new_db, &new_bundle),
        client_config(&old_web, &old_bundle, &new_db.service_uri),
        &sni,
    )
    .await;
    assert!(out.server.is_ok(), "{:?}", out.server);
    assert_eq!(out.client.unwrap().1, "pong");

    // A client with the new leaf and the new bundle reaches a server still on its old leaf.
    let out = connect(
        server_config(&old_db, &new_bundle),
        client_config(&new_web, &new_bundle, &old_db.service_uri),
        &sni,
    )
    .await;
    assert!(out.server.is_ok(), "{:?}", out.server);
    assert_eq!(out.client.unwrap().1, "pong");

    // After pruning the old root, an old leaf is no longer accepted.
    let later = time::OffsetDateTime::now_utc()
        + connect_ca::DEFAULT_LEAF_CERT_TTL
        + std::time::Duration::from_secs(300);
    assert_eq!(ca.prune_roots(later), 1);
    let pruned_bundle = ca.roots().pem_bundle();
    let out = connect(
        server_config(&new_db, &pruned_bundle),
        client_config(&old_web, &old_bundle, &new_db.service_uri),
        &sni,
    )
    .await;
    assert!(
        out.server.is_err(),
        "old leaf must be refused once its root is pruned"
    );
}

#[tokio::test]
async fn csr_signed_leaf_works_with_its_own_key() {
    let (mut ca, td) = setup();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let uri = ca.service_id("web").unwrap().to_string();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.clone().try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let mut web = ca
        .sign_csr(&csr, connect_ca::SignPolicy::Service("web"))
        .unwrap();
    web.private_key_pem = connect_ca::SecretPem::new(key.serialize_pem());
    let db = issue(&mut ca, "db");
    let bundle = ca.roots().pem_bundle();
    let out = connect(
        server_config(&db, &bundle),
        client_config(&web, &bundle, &db.service_uri),
        &sni::service_sni("db", "", "", "", "dc1", &td),
    )
    .await;
    assert_eq!(out.server, Ok(uri));
    assert!(out.client.is_ok());
}
