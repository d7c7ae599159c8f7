//! The Connect CA over real sockets: the roots bundle and its PEM form, leaf certificates (shape,
//! signature, caching, renewal, blocking), root rotation, restart, CSR signing and the CA configuration.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use devserver::Clock;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

/// Whether `leaf_der` carries a signature `issuer_der`'s key made.
fn signed_by(leaf_der: &[u8], issuer_der: &[u8]) -> bool {
    let leaf = parse(leaf_der);
    let issuer = parse(issuer_der);
    leaf.verify_signature(Some(issuer.public_key())).is_ok()
}

fn uri_sans(der: &[u8]) -> Vec<String> {
    let cert = parse(der);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// Verifies a leaf chain the way a TLS peer does (client-certificate path building, no names).
fn chain_verifies(leaf_pem: &str, trusted_root_pems: &[&str]) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in trusted_root_pems {
        for der in pem_certs(pem) {
            roots.add(CertificateDer::from(der)).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let mut chain: Vec<CertificateDer<'static>> = pem_certs(leaf_pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let end_entity = chain.remove(0);
    verifier
        .verify_client_cert(&end_entity, &chain, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn leaf(addr: std::net::SocketAddr, service: &str) -> (u64, Value) {
    let r = get(addr, &format!("/v1/agent/connect/ca/leaf/{service}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (r.index(), r.json())
}

async fn rotate(addr: std::net::SocketAddr) {
    let r = put_json(
        addr,
        "/v1/connect/ca/configuration",
        &json!({"Provider": "consul", "Config": {"LeafCertTTL": "72h"}, "ForceWithoutCrossSigning": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn active_root(roots: &Value) -> Value {
    let active: Vec<&Value> = roots["Roots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "exactly one active root: {roots}");
    assert_eq!(active[0]["ID"], roots["ActiveRootID"]);
    active[0].clone()
}

#[tokio::test]
async fn roots_have_consuls_shape_and_a_pem_form() {
    let server = start().await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/connect/ca/roots").await;
    assert_eq!(r.status, 200);
    assert!(r.index() >= 1);
    let roots = r.json();
    let td = roots["TrustDomain"].as_str().unwrap();
    let cluster_id = td.strip_suffix(".consul").unwrap();
    assert!(uuid::Uuid::parse_str(cluster_id).is_ok(), "{td}");
    let root = active_root(&roots);
    for key in [
        "ID",
        "Name",
        "SerialNumber",
        "SigningKeyID",
        "ExternalTrustDomain",
        "NotBefore",
        "NotAfter",
        "RootCert",
        "IntermediateCerts",
        "Active",
        "PrivateKeyType",
        "PrivateKeyBits",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(root.get(key).is_some(), "root lacks {key}: {root}");
    }
    assert_eq!(root["ExternalTrustDomain"], cluster_id);
    assert_eq!(root["IntermediateCerts"], Value::Null);
    assert_eq!(root["PrivateKeyType"], "ec");
    assert_eq!(root["PrivateKeyBits"], 256);
    assert!(root["SerialNumber"].is_u64());
    let der = &pem_certs(root["RootCert"].as_str().unwrap())[0];
    let cert = parse(der);
    assert!(cert.is_ca());
    assert_eq!(uri_sans(der), vec![format!("spiffe://{td}")]);
    assert!(
        !root.to_string().contains("PRIVATE KEY"),
        "no key in the bundle"
    );

    // The agent endpoint serves the same bundle.
    let agent = get(addr, "/v1/agent/connect/ca/roots").await;
    assert_eq!(agent.json(), roots);
    assert_eq!(agent.index(), r.index());

    // The PEM form: every root certificate.
    for pem_flag in ["pem=true", "pem"] {
        let p = get(addr, &format!("/v1/connect/ca/roots?{pem_flag}")).await;
        assert_eq!(p.status, 200);
        assert_eq!(
            p.header("content-type"),
            Some("application/pem-certificate-chain")
        );
        assert_eq!(p.text(), root["RootCert"].as_str().unwrap());
    }
    // `pem=0` (what py-consul sends by default) is the JSON form.
    assert_eq!(get(addr, "/v1/connect/ca/roots?pem=0").await.json(), roots);
    server.shutdown().await;
}

#[tokio::test]
async fn a_leaf_carries_the_exact_spiffe_id_and_verifies_against_the_active_root() {
    let server = start().await;
    let addr = server.http_addr();
    let roots = get(addr, "/v1/connect/ca/roots").await.json();
    let td = roots["TrustDomain"].as_str().unwrap().to_owned();
    let root_pem = active_root(&roots)["RootCert"].as_str().unwrap().to_owned();
    let (index, l) = leaf(addr, "web").await;
    assert_eq!(index, l["ModifyIndex"].as_u64().unwrap());
    let uri = format!("spiffe://{td}/ns/default/dc/dc1/svc/web");
    assert_eq!(l["Service"], "web");
    assert_eq!(l["ServiceURI"], uri.as_str());
    let chain = pem_certs(l["CertPEM"].as_str().unwrap());
    assert_eq!(chain.len(), 1, "no intermediates before a rotation");
    let root_der = &pem_certs(&root_pem)[0];
    assert!(signed_by(&chain[0], root_der));
    let cert = parse(&chain[0]);
    assert_eq!(cert.subject().iter().count(), 0, "empty subject");
    assert!(
        cert.subject_alternative_name().unwrap().unwrap().critical,
        "with an empty subject the SAN extension is critical"
    );
    assert!(!cert.is_ca());
    assert_eq!(uri_sans(&chain[0]), vec![uri]);
    assert_eq!(
        l["SerialNumber"].as_str().unwrap().replace(':', ""),
        hex_serial(&cert)
    );
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 72 * 3600);
    // The private key belongs to the certificate.
    let key_pem = l["PrivateKeyPEM"].as_str().unwrap();
    assert!(key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let signing = rustls::crypto::ring::sign::any_ecdsa_type(&key).unwrap();
    assert_eq!(
        signing.public_key().unwrap().as_ref(),
        cert.public_key().raw
    );
    // And a TLS peer trusting the root accepts it.
    chain_verifies(l["CertPEM"].as_str().unwrap(), &[&root_pem]).unwrap();
    server.shutdown().await;
}

fn hex_serial(cert: &X509Certificate<'_>) -> String {
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

use rustls_pki_types::pem::PemObject as _;

#[tokio::test]
async fn a_leaf_is_cached_until_its_renewal_point_then_renewed() {
    let clock = Clock::system();
    let c = clock.clone();
    let server = start_with(move |cfg| cfg.clock = c).await;
    let addr = server.http_addr();
    let (i1, first) = leaf(addr, "web").await;
    let (i2, again) = leaf(addr, "web").await;
    assert_eq!(again, first, "the same leaf until it is due");
    assert_eq!(i2, i1);
    // Another service gets its own leaf.
    let (_, other) = leaf(addr, "api").await;
    assert_ne!(other["SerialNumber"], first["SerialNumber"]);
    // Past 90 % of the lifetime the leaf is always renewed.
    clock.advance(Duration::from_secs(65 * 3600));
    let (i3, renewed) = leaf(addr, "web").await;
    assert_ne!(renewed["SerialNumber"], first["SerialNumber"]);
    assert!(i3 > i1);
    assert_eq!(renewed["CreateIndex"], i3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_blocked_leaf_query_wakes_on_renewal_and_on_rotation() {
    let clock = Clock::system();
    let c = clock.clone();
    let server = start_with(move |cfg| cfg.clock = c).await;
    let addr = server.http_addr();
    let (index, first) = leaf(addr, "web").await;

    // Nothing changes: the query waits out its `wait` and returns the same leaf.
    let started = Instant::now();
    let r = get(
        addr,
        &format!("/v1/agent/connect/ca/leaf/web?index={index}&wait=1s"),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(r.index(), index);
    assert_eq!(r.json(), first);

    // The renewal point passes while the query waits.
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/agent/connect/ca/leaf/web?index={index}&wait=5m"),
        )
        .await
    });
    clock.advance(Duration::from_secs(70 * 3600));
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    let second = r.json();
    assert_ne!(second["SerialNumber"], first["SerialNumber"]);

    // A root rotation while the query waits.
    let index = r.index();
    let old_root = active_root(&get(addr, "/v1/connect/ca/roots").await.json());
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/agent/connect/ca/leaf/web?index={index}&wait=5m"),
        )
        .await
    });
    rotate(addr).await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    let third = r.json();
    assert_ne!(third["SerialNumber"], second["SerialNumber"]);
    let new_root = active_root(&get(addr, "/v1/connect/ca/roots").await.json());
    assert_ne!(new_root["ID"], old_root["ID"]);
    let chain = pem_certs(third["CertPEM"].as_str().unwrap());
    assert!(signed_by(
        &chain[0],
        &pem_certs(new_root["RootCert"].as_str().unwrap())[0]
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_the_old_root_so_old_and_new_leafs_verify() {
    let clock = Clock::system();
    let c = clock.clone();
    let server = start_with(move |cfg| cfg.clock = c).await;
    let addr = server.http_addr();
    let before = get(addr, "/v1/connect/ca/roots").await;
    let old_root = active_root(&before.json());
    let old_pem = old_root["RootCert"].as_str().unwrap().to_owned();
    let (_, old_leaf) = leaf(addr, "web").await;

    // A blocked roots query wakes on the rotation.
    let index = before.index();
    let waiter = tokio::spawn(async move {
        get(addr, &format!("/v1/connect/ca/roots?index={index}&wait=5m")).await
    });
    rotate(addr).await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    let roots = r.json();
    assert_eq!(roots["Roots"].as_array().unwrap().len(), 2);
    assert_eq!(roots["TrustDomain"], before.json()["TrustDomain"]);
    let new_root = active_root(&roots);
    let new_pem = new_root["RootCert"].as_str().unwrap().to_owned();
    let kept = roots["Roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ID"] == old_root["ID"])
        .unwrap();
    assert_eq!(kept["Active"], false);
    assert_eq!(kept["RootCert"], old_root["RootCert"]);
    let cross = new_root["IntermediateCerts"].as_array().unwrap();
    assert_eq!(
        cross.len(),
        1,
        "the new root is cross-signed by the old one"
    );

    let (_, new_leaf) = leaf(addr, "web").await;
    assert_ne!(new_leaf["SerialNumber"], old_leaf["SerialNumber"]);
    let new_chain = pem_certs(new_leaf["CertPEM"].as_str().unwrap());
    assert_eq!(new_chain.len(), 2, "leaf plus the cross-signed root");
    assert!(signed_by(&new_chain[0], &pem_certs(&new_pem)[0]));
    // Peers that trust the whole bundle accept both leafs; a peer that only knows the old root still
    // accepts the new leaf through the cross-signed certificate.
    chain_verifies(old_leaf["CertPEM"].as_str().unwrap(), &[&old_pem, &new_pem]).unwrap();
    chain_verifies(new_leaf["CertPEM"].as_str().unwrap(), &[&old_pem, &new_pem]).unwrap();
    chain_verifies(new_leaf["CertPEM"].as_str().unwrap(), &[&old_pem]).unwrap();
    assert!(chain_verifies(old_leaf["CertPEM"].as_str().unwrap(), &[&new_pem]).is_err());
    // The PEM bundle has both roots and the cross-signed certificate.
    let bundle = get(addr, "/v1/connect/ca/roots?pem=true").await.text();
    assert_eq!(pem_certs(&bundle).len(), 3);

    // Once every leaf of the old root has expired, the old root leaves the bundle.
    clock.advance(Duration::from_secs(73 * 3600));
    let index = get(addr, "/v1/connect/ca/roots").await.index();
    let mut roots = get(addr, "/v1/connect/ca/roots").await.json();
    if roots["Roots"].as_array().unwrap().len() == 2 {
        // The pruning pass runs right after the clock moves; wait for it through a blocking query.
        roots = get(
            addr,
            &format!("/v1/connect/ca/roots?index={index}&wait=30s"),
        )
        .await
        .json();
    }
    assert_eq!(roots["Roots"].as_array().unwrap().len(), 1);
    assert_eq!(roots["ActiveRootID"], new_root["ID"]);
    server.shutdown().await;
}

#[tokio::test]
async fn the_ca_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let c = clock.clone();
    let d = dir.path().to_path_buf();
    let server = start_with(move |cfg| {
        cfg.data_dir = Some(d);
        cfg.clock = c;
    })
    .await;
    let addr = server.http_addr();
    let roots = get(addr, "/v1/connect/ca/roots").await.json();
    let (_, l) = leaf(addr, "web").await;
    server.shutdown().await;

    let c = clock.clone();
    let d = dir.path().to_path_buf();
    let server = start_with(move |cfg| {
        cfg.data_dir = Some(d);
        cfg.clock = c;
    })
    .await;
    let addr = server.http_addr();
    assert_eq!(get(addr, "/v1/connect/ca/roots").await.json(), roots);
    let (_, again) = leaf(addr, "web").await;
    assert_eq!(again, l, "the cached leaf is kept too");
    // The serial counter carries on.
    clock.advance(Duration::from_secs(70 * 3600));
    let (_, renewed) = leaf(addr, "web").await;
    let serial = |v: &Value| {
        u64::from_str_radix(&v["SerialNumber"].as_str().unwrap().replace(':', ""), 16).unwrap()
    };
    assert!(serial(&renewed) > serial(&l));
    server.shutdown().await;
}

/// A PEM CSR with the given URI SANs.
fn csr(uris: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = uris
        .iter()
        .map(|u| rcgen::SanType::URI((*u).try_into().unwrap()))
        .collect();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test]
async fn csrs_are_signed_or_refused_with_consuls_messages() {
    let server = start().await;
    let addr = server.http_addr();
    let td = trust_domain(addr).await;
    let roots = get(addr, "/v1/connect/ca/roots").await.json();
    let root_der = pem_certs(active_root(&roots)["RootCert"].as_str().unwrap()).remove(0);
    let uri = format!("spiffe://{td}/ns/default/dc/dc1/svc/api");
    let r = post_json(addr, "/v1/connect/ca/sign", &json!({"CSR": csr(&[&uri])})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let signed = r.json();
    assert_eq!(signed["ServiceURI"], uri.as_str());
    assert!(signed.get("PrivateKeyPEM").is_none());
    let der = pem_certs(signed["CertPEM"].as_str().unwrap()).remove(0);
    assert!(signed_by(&der, &root_der));
    assert_eq!(uri_sans(&der), vec![uri.clone()]);

    let other_td = "11111111-2222-3333-4444-555555555555.consul";
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"CSR": csr(&[&uri, &format!("spiffe://{td}/ns/default/dc/dc1/svc/web")])}),
            "CSR SAN contains an invalid number of URIs: 2",
        ),
        (
            json!({"CSR": csr(&[])}),
            "CSR SAN contains an invalid number of URIs: 0",
        ),
        (
            json!({"CSR": csr(&[&format!("spiffe://{other_td}/ns/default/dc/dc1/svc/api")])}),
            "SPIFFE ID in CSR from a different trust domain",
        ),
        (
            json!({"CSR": csr(&[&format!("spiffe://{td}/ns/default/dc/dc9/svc/api")])}),
            "SPIFFE ID in CSR from a different datacenter: dc9, expected: dc1",
        ),
        (
            json!({"CSR": csr(&[&format!("spiffe://{td}")])}),
            "SPIFFE ID in CSR must be a service, mesh-gateway, server or agent ID",
        ),
        (
            json!({"CSR": csr(&["https://example.com/x"])}),
            "is not a valid SPIFFE ID",
        ),
        (json!({"CSR": "not a pem"}), "no PEM-encoded data found"),
        (json!({}), "CSR is required"),
    ];
    for (body, msg) in cases {
        let r = post_json(addr, "/v1/connect/ca/sign", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(msg), "{msg:?} not in {:?}", r.text());
    }
    let r = request(addr, "POST", "/v1/connect/ca/sign", Some(b"{".to_vec())).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("Request decode failed"),
        "{}",
        r.text()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_ca_configuration_reads_validates_and_applies() {
    let clock = Clock::system();
    let c = clock.clone();
    let server = start_with(move |cfg| cfg.clock = c).await;
    let addr = server.http_addr();
    let r = get(addr, "/v1/connect/ca/configuration").await;
    assert_eq!(r.status, 200);
    let cfg = r.json();
    assert_eq!(cfg["Provider"], "consul");
    assert_eq!(cfg["Config"]["LeafCertTTL"], "72h");
    assert_eq!(cfg["Config"]["RootCertTTL"], "87600h");
    assert_eq!(cfg["Config"]["IntermediateCertTTL"], "8760h");
    assert_eq!(cfg["Config"]["PrivateKeyType"], "ec");
    assert_eq!(cfg["Config"]["PrivateKeyBits"], 256);
    assert_eq!(cfg["State"], Value::Null);
    assert_eq!(cfg["ModifyIndex"], r.index());

    let bad = [
        (
            json!({"Provider": "consul", "Config": {"LeafCertTTL": "10m"}}),
            "leaf cert TTL must be greater or equal than 1h0m0s",
        ),
        (
            json!({"Provider": "consul", "Config": {"PrivateKeyType": "ec", "PrivateKeyBits": 100}}),
            "EC key length must be one of (224, 256, 384, 521) bits",
        ),
        (
            json!({"Provider": "consul", "Config": {"LeafCertTTL": "forever"}}),
            "error decoding config: LeafCertTTL",
        ),
        (
            json!({"Provider": "vault", "Config": {}}),
            "only the \"consul\" CA provider",
        ),
        (json!({"Config": {}}), "CA Provider must be set"),
        (
            json!({"Provider": "consul", "Config": {}, "State": {"x": "y"}}),
            "Provider State is read-only",
        ),
    ];
    for (body, msg) in bad {
        let r = put_json(addr, "/v1/connect/ca/configuration", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(msg), "{msg:?} not in {:?}", r.text());
    }
    // Nothing changed.
    assert_eq!(get(addr, "/v1/connect/ca/configuration").await.json(), cfg);

    // A new leaf TTL applies to the next leaf; the roots stay.
    let roots = get(addr, "/v1/connect/ca/roots").await.json();
    let r = put_json(
        addr,
        "/v1/connect/ca/configuration",
        &json!({"Provider": "consul", "Config": {"LeafCertTTL": "24h"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let updated = get(addr, "/v1/connect/ca/configuration").await.json();
    assert_eq!(updated["Config"], json!({"LeafCertTTL": "24h"}));
    assert_eq!(updated["CreateIndex"], cfg["CreateIndex"]);
    assert!(updated["ModifyIndex"].as_u64() > cfg["ModifyIndex"].as_u64());
    assert_eq!(get(addr, "/v1/connect/ca/roots").await.json(), roots);
    let (_, l) = leaf(addr, "web").await;
    let cert_der = pem_certs(l["CertPEM"].as_str().unwrap()).remove(0);
    let cert = parse(&cert_der);
    assert_eq!(
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
        24 * 3600
    );
    server.shutdown().await;
}

#[tokio::test]
async fn authorize_follows_intentions_and_the_default() {
    let server = start().await;
    let addr = server.http_addr();
    let td = trust_domain(addr).await;
    let uri = |svc: &str| format!("spiffe://{td}/ns/default/dc/dc1/svc/{svc}");
    for (src, action) in [("web", "allow"), ("*", "deny")] {
        let r = put_json(
            addr,
            &format!(
                "/v1/connect/intentions/exact?source={}&destination=db",
                src.replace('*', "%2A")
            ),
            &json!({"Action": action}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let ask = |target: &str, from: String| json!({"Target": target, "ClientCertURI": from, "ClientCertSerial": "01"});
    let r = post_json(addr, "/v1/agent/connect/authorize", &ask("db", uri("web"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"Authorized": true, "Reason": "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)"})
    );
    let r = post_json(addr, "/v1/agent/connect/authorize", &ask("db", uri("api"))).await;
    assert_eq!(r.json()["Authorized"], false);
    assert!(
        r.json()["Reason"]
            .as_str()
            .unwrap()
            .contains("default/* => default/db")
    );
    // No intention for this destination: the default (ACLs disabled) allows.
    let r = post_json(
        addr,
        "/v1/agent/connect/authorize",
        &ask("cache", uri("api")),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"Authorized": true, "Reason": "Default behavior configured by ACLs"})
    );
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("allow"));
    // The datacenter of the URI is not checked; the trust domain is the caller's job.
    let r = post_json(
        addr,
        "/v1/agent/connect/authorize",
        &ask("db", format!("spiffe://{td}/ns/default/dc/dc7/svc/web")),
    )
    .await;
    assert_eq!(r.json()["Authorized"], true);
    // PUT works too (py-consul sends it).
    let r = request(
        addr,
        "PUT",
        "/v1/agent/connect/authorize",
        Some(serde_json::to_vec(&ask("db", uri("web"))).unwrap()),
    )
    .await;
    assert_eq!(r.json()["Authorized"], true);

    let bad = [
        (
            json!({"ClientCertURI": uri("web")}),
            "Target service must be specified",
        ),
        (
            ask("db", "not-a-uri".into()),
            "ClientCertURI not a valid Connect identifier",
        ),
        (
            ask("db", format!("spiffe://{td}/agent/server/dc/dc1")),
            "ClientCertURI not a valid Service identifier",
        ),
    ];
    for (body, msg) in bad {
        let r = post_json(addr, "/v1/agent/connect/authorize", &body).await;
        assert_eq!((r.status, r.text().as_str()), (400, msg));
    }
    server.shutdown().await;
}
