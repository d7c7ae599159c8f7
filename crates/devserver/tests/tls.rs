//! HTTPS: the same API over TLS, with and without client-certificate verification.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

fn ca() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        ca_cert: cert,
        ca_key: key,
    }
}

fn leaf(pki: &Pki, name: &str) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(pki.ca_cert.der(), &pki.ca_key).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            builder
                .with_client_auth_cert(
                    chain,
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap()
        }
    };
    Arc::new(config)
}

#[tokio::test]
async fn https_serves_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ca();
    let (cert, key) = leaf(&pki, "localhost");
    let cert_file = write(dir.path(), "server.pem", &cert);
    let key_file = write(dir.path(), "server.key", &key);
    let server = start_with(|c| {
        c.https = Some(devserver::HttpsConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_file,
            key_file,
            client_ca_file: None,
        })
    })
    .await;
    let https = server.https_addr().unwrap();
    let cfg = client(&pki.ca_pem, None);
    let r = tls_request(
        https,
        cfg.clone(),
        "PUT",
        "/v1/kv/over-tls",
        Some(b"yes".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    // Both listeners share one state.
    assert_eq!(
        get(server.http_addr(), "/v1/kv/over-tls?raw").await.body,
        b"yes"
    );
    let r = tls_request(https, cfg, "GET", "/v1/catalog/datacenters", None)
        .await
        .unwrap();
    assert_eq!(r.json(), json!(["dc1"]));
    // A client that does not trust the server's CA fails the handshake.
    let other = ca();
    assert!(
        tls_request(
            https,
            client(&other.ca_pem, None),
            "GET",
            "/v1/status/leader",
            None
        )
        .await
        .is_err()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ca();
    let (cert, key) = leaf(&pki, "localhost");
    let cert_file = write(dir.path(), "server.pem", &cert);
    let key_file = write(dir.path(), "server.key", &key);
    let ca_file = write(dir.path(), "ca.pem", &pki.ca_pem);
    let server = start_with(|c| {
        c.https = Some(devserver::HttpsConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_file,
            key_file,
            client_ca_file: Some(ca_file),
        })
    })
    .await;
    let https = server.https_addr().unwrap();
    // No client certificate: refused.
    assert!(
        tls_request(
            https,
            client(&pki.ca_pem, None),
            "GET",
            "/v1/status/leader",
            None
        )
        .await
        .is_err()
    );
    // A certificate from another CA: refused.
    let rogue = ca();
    let (rc, rk) = leaf(&rogue, "client");
    assert!(
        tls_request(
            https,
            client(&pki.ca_pem, Some((&rc, &rk))),
            "GET",
            "/v1/status/leader",
            None
        )
        .await
        .is_err()
    );
    // A certificate from the configured CA: served.
    let (cc, ck) = leaf(&pki, "client");
    let r = tls_request(
        https,
        client(&pki.ca_pem, Some((&cc, &ck))),
        "GET",
        "/v1/status/leader",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!("127.0.0.1:8300"));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_tls_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cert_file = write(dir.path(), "server.pem", "not a certificate");
    let key_file = write(dir.path(), "server.key", "not a key");
    let mut c = config();
    c.https = Some(devserver::HttpsConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_file,
        key_file,
        client_ca_file: None,
    });
    let err = devserver::DevServer::start(c)
        .await
        .err()
        .expect("start must fail");
    assert!(err.to_string().starts_with("TLS configuration"), "{err}");
}
