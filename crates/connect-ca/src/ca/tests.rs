//! Unit tests of the CA: certificate shapes, serials, CSR rejections, rotation, persistence.

use super::*;
use rcgen::{PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256};
use rustls_pki_types::CertificateDer;
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::{GeneralName, ParsedExtension};

const CLUSTER: &str = "7f42f496-fbc7-8692-05ed-334aa5340c1e";
const TD: &str = "7f42f496-fbc7-8692-05ed-334aa5340c1e.consul";

fn ca() -> Ca {
    Ca::generate(CLUSTER, CaConfig::new("dc1"), 5).expect("generate")
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.expect("pem").to_vec())
        .collect()
}

fn der(pem: &str) -> Vec<u8> {
    ders(pem).remove(0)
}

fn web(ca: &Ca) -> SpiffeId {
    SpiffeId::Service(ca.service_id("web").expect("id"))
}

fn ext<'a>(
    cert: &'a X509Certificate<'a>,
    oid: &str,
) -> &'a x509_parser::extensions::X509Extension<'a> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
        .unwrap_or_else(|| panic!("extension {oid} missing"))
}

fn key_id_of(cert: &X509Certificate<'_>) -> (Vec<u8>, Vec<u8>) {
    let ski = match ext(cert, "2.5.29.14").parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
        other => panic!("SKI: {other:?}"),
    };
    let aki = match ext(cert, "2.5.29.35").parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => {
            a.key_identifier.as_ref().expect("aki").0.to_vec()
        }
        other => panic!("AKI: {other:?}"),
    };
    (ski, aki)
}

#[test]
fn root_has_consuls_shape() {
    let ca = ca();
    let root = ca.active_root().clone();
    let der = der(&root.root_cert);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse");

    cert.verify_signature(None).expect("self-signed");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("CN");
    let (uid, rest) = cn
        .strip_prefix("pri-")
        .and_then(|s| s.split_once('.'))
        .expect("pri- prefix");
    assert_eq!(uid.len(), 8);
    assert!(
        uid.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_eq!(rest, "consul.ca.7f42f496.consul");
    assert_eq!(cert.issuer(), cert.subject());
    assert_eq!(uri_sans(&cert), [format!("spiffe://{TD}")]);

    let bc = cert.basic_constraints().expect("bc").expect("present");
    assert!(bc.critical && bc.value.ca);
    let ku = cert.key_usage().expect("ku").expect("present");
    assert!(ku.critical);
    assert!(ku.value.key_cert_sign() && ku.value.crl_sign() && ku.value.digital_signature());
    assert!(!ku.value.key_encipherment());

    let (ski, aki) = key_id_of(&cert);
    assert_eq!(ski, aki);
    assert_eq!(ski, key_id(cert.public_key().raw));
    assert_eq!(ski.len(), 32);
    assert_eq!(root.signing_key_id, colon_hex(&ski));
    assert_eq!(
        root.id,
        colon_hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref())
    );
    assert_eq!(root.id.len(), 20 * 3 - 1);

    assert_eq!(root.serial_number, 1);
    assert_eq!(cert.raw_serial(), [1]);
    assert_eq!(root.name, "Consul CA Primary Cert");
    assert_eq!(root.external_trust_domain, CLUSTER);
    assert_eq!(
        (root.private_key_type.as_str(), root.private_key_bits),
        ("ec", 256)
    );
    assert!(root.active);
    assert_eq!(root.intermediate_certs, None);
    assert_eq!((root.create_index, root.modify_index), (5, 5));
    let validity = cert.validity();
    assert_eq!(validity.not_before.to_datetime(), root.not_before);
    assert_eq!(validity.not_after.to_datetime(), root.not_after);
    assert_eq!(root.not_after - root.not_before, DEFAULT_ROOT_CERT_TTL);
    assert!((OffsetDateTime::now_utc() - root.not_before).abs() < time::Duration::seconds(5));
}

#[test]
fn roots_json_matches_consuls_keys() {
    let ca = ca();
    let json = serde_json::to_value(ca.roots()).expect("json");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["ActiveRootID", "TrustDomain", "Roots"]);
    assert_eq!(json["TrustDomain"], TD);
    let root = &json["Roots"][0];
    let keys: Vec<&str> = root
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
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
            "ModifyIndex"
        ]
    );
    assert_eq!(root["ID"], json["ActiveRootID"]);
    assert_eq!(root["IntermediateCerts"], serde_json::Value::Null);
    assert_eq!(root["SerialNumber"], 1);
    let nb = root["NotBefore"].as_str().expect("string");
    assert!(
        nb.ends_with('Z') && nb.len() == "2018-05-25T21:39:23Z".len(),
        "{nb}"
    );
    assert!(
        !json.to_string().contains("PRIVATE KEY"),
        "the roots body never carries keys"
    );
    let back: CaRoots = serde_json::from_value(json).expect("decode");
    assert_eq!(back, ca.roots());
    assert_eq!(ca.roots().pem_bundle(), ca.active_root().root_cert);
}

#[test]
fn leaf_has_consuls_shape_and_verifies() {
    let mut ca = ca();
    let before = OffsetDateTime::now_utc();
    let leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    let root_der = der(&ca.active_root().root_cert);
    let (_, root) = X509Certificate::from_der(&root_der).expect("root");
    let chain = ders(&leaf.cert_pem);
    assert_eq!(chain.len(), 1, "no intermediates before a rotation");
    let (_, cert) = X509Certificate::from_der(&chain[0]).expect("leaf");

    cert.verify_signature(Some(root.public_key()))
        .expect("signed by root");
    assert_eq!(cert.issuer(), root.subject());
    assert_eq!(cert.subject().iter().count(), 0, "empty subject");
    let uri = format!("spiffe://{TD}/ns/default/dc/dc1/svc/web");
    assert_eq!(uri_sans(&cert), std::slice::from_ref(&uri));
    assert!(
        ext(&cert, "2.5.29.17").critical,
        "SAN critical with empty subject"
    );

    let eku = cert.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.server_auth && eku.value.client_auth);
    assert!(!eku.value.any && !eku.value.code_signing);
    let ku = cert.key_usage().expect("ku").expect("present");
    assert!(ku.value.digital_signature());
    assert!(ku.value.key_encipherment());
    assert!(ku.value.data_encipherment());
    assert!(ku.value.key_agreement());
    assert!(!ku.value.key_cert_sign());
    let bc = cert.basic_constraints().expect("bc").expect("present");
    assert!(!bc.value.ca);

    let (ski, aki) = key_id_of(&cert);
    assert_eq!(colon_hex(&aki), ca.active_root().signing_key_id);
    assert_eq!(ski, key_id(cert.public_key().raw));

    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    assert_eq!(na - nb, DEFAULT_LEAF_CERT_TTL);
    let backdate = before - nb;
    assert!(
        backdate >= time::Duration::seconds(59) && backdate <= time::Duration::seconds(62),
        "NotBefore is about a minute ago: {backdate}"
    );
    assert_eq!((leaf.valid_after, leaf.valid_before), (nb, na));

    assert_eq!(leaf.service, "web");
    assert_eq!(leaf.service_uri, uri);
    assert_eq!(leaf.serial_number, colon_hex(cert.raw_serial()));
    assert_eq!(leaf.serial_number, "02");

    // The key is SEC1 ("EC PRIVATE KEY") and belongs to the certificate.
    let key_pem = leaf.private_key_pem.expose();
    assert!(
        key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
        "{}",
        &key_pem[..30]
    );
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let rustls_pki_types::PrivateKeyDer::Sec1(sec1) = key else {
        panic!("not SEC1");
    };
    let pubkey = cert.public_key().subject_public_key.data.to_vec();
    assert!(
        sec1.secret_sec1_der()
            .windows(pubkey.len())
            .any(|w| w == pubkey),
        "SEC1 key carries the certificate's public point"
    );
}

#[test]
fn leaf_json_matches_consuls_keys() {
    let mut ca = ca();
    let leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    let json = serde_json::to_value(&leaf).expect("json");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "SerialNumber",
            "CertPEM",
            "PrivateKeyPEM",
            "Service",
            "ServiceURI",
            "ValidAfter",
            "ValidBefore",
            "CreateIndex",
            "ModifyIndex"
        ]
    );
    assert_eq!(
        json["ValidAfter"],
        leaf.valid_after.format(&Rfc3339).expect("fmt")
    );
    let back: IssuedCert = serde_json::from_value(json).expect("decode");
    assert_eq!(back, leaf);
}

#[test]
fn debug_never_prints_private_keys() {
    let mut ca = ca();
    let leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    for text in [
        format!("{ca:?}"),
        format!("{:?}", ca.state()),
        format!("{leaf:?}"),
        format!("{:#?}", ca.state().roots[0]),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(leaf.private_key_pem.expose()));
    }
    assert!(format!("{leaf:?}").contains("SecretPem(<redacted>)"));
}

#[test]
fn serials_are_unique_and_monotonic_across_roots_and_leafs() {
    let mut ca = ca();
    let id = web(&ca);
    let mut last = ca.active_root().serial_number;
    let mut seen = std::collections::HashSet::new();
    seen.insert(last);
    for round in 0..300 {
        if round == 150 {
            ca.rotate(9).expect("rotate");
            // The new root and its cross-signed copy used two serials.
            assert_eq!(ca.active_root().serial_number, last + 1);
            last += 2;
        }
        let leaf = ca.issue_leaf(&id).expect("issue");
        let serial = u64::from_str_radix(&leaf.serial_number.replace(':', ""), 16).expect("hex");
        assert_eq!(serial, last + 1, "round {round}");
        assert_eq!(leaf.modify_index, serial);
        assert!(seen.insert(serial));
        last = serial;
        let cert_der = der(&leaf.cert_pem);
        let (_, cert) = X509Certificate::from_der(&cert_der).expect("parse");
        assert_eq!(cert.tbs_certificate.serial.to_u64_digits(), vec![serial]);
    }
    // 128..=255 need a leading zero in DER but not in Consul's colon-hex.
    assert_eq!(serial_bytes(200), [200]);
    assert_eq!(colon_hex(&serial_bytes(0x012c)), "01:2c");
    assert_eq!(serial_bytes(0), [0]);
}

#[test]
fn leaf_ttl_is_configurable_and_bounded() {
    let mut config = CaConfig::new("dc1");
    config.leaf_cert_ttl = Duration::from_secs(2 * 3600);
    let mut ca = Ca::generate(CLUSTER, config, 1).expect("generate");
    let leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    assert_eq!(
        leaf.valid_before - leaf.valid_after,
        Duration::from_secs(2 * 3600)
    );

    let cases = [
        (
            Duration::from_secs(3599),
            "leaf cert TTL must be greater or equal than 1h0m0s",
        ),
        (
            MAX_LEAF_CERT_TTL,
            "leaf cert TTL must be less than 8760h0m0s",
        ),
    ];
    for (ttl, message) in cases {
        let mut config = CaConfig::new("dc1");
        config.leaf_cert_ttl = ttl;
        let err = Ca::generate(CLUSTER, config, 1).expect_err("bounded");
        assert_eq!(err.to_string(), message);
    }
    let mut config = CaConfig::new("dc1");
    config.root_cert_ttl = config.leaf_cert_ttl;
    assert!(matches!(
        Ca::generate(CLUSTER, config, 1),
        Err(CaError::Config(_))
    ));
    assert!(matches!(
        Ca::generate(CLUSTER, CaConfig::new(""), 1),
        Err(CaError::Config(_))
    ));
    assert!(matches!(
        Ca::generate("not-a-uuid", CaConfig::new("dc1"), 1),
        Err(CaError::ClusterId(_))
    ));
}

#[test]
fn issue_leaf_rejects_foreign_and_ca_identities() {
    let mut ca = ca();
    let foreign = SpiffeId::parse("spiffe://other.consul/ns/default/dc/dc1/svc/web").expect("id");
    assert!(matches!(ca.issue_leaf(&foreign), Err(CaError::Identity(_))));
    let other_dc =
        SpiffeId::parse(&format!("spiffe://{TD}/ns/default/dc/dc2/svc/web")).expect("id");
    let err = ca.issue_leaf(&other_dc).expect_err("dc");
    assert_eq!(
        err.to_string(),
        "invalid identity for a leaf certificate: SPIFFE ID in CSR from a different datacenter: dc2, expected: dc1"
    );
    let signing = SpiffeId::parse(&format!("spiffe://{TD}")).expect("id");
    assert!(matches!(ca.issue_leaf(&signing), Err(CaError::Identity(_))));
}

#[test]
fn other_identity_kinds_fill_their_json_fields() {
    let mut ca = ca();
    let agent =
        SpiffeId::parse(&format!("spiffe://{TD}/agent/client/dc/dc1/id/node-1")).expect("id");
    let leaf = ca.issue_leaf(&agent).expect("issue");
    assert_eq!((leaf.agent.as_str(), leaf.service.as_str()), ("node-1", ""));
    assert_eq!(leaf.agent_uri, agent.to_string());
    let gw = SpiffeId::parse(&format!("spiffe://{TD}/gateway/mesh/dc/dc1")).expect("id");
    let leaf = ca.issue_leaf(&gw).expect("issue");
    assert_eq!(leaf.kind, "mesh-gateway");
    assert_eq!(leaf.kind_uri, gw.to_string());
    let server = SpiffeId::parse(&format!("spiffe://{TD}/agent/server/dc/dc1")).expect("id");
    assert_eq!(
        ca.issue_leaf(&server).expect("issue").server_uri,
        server.to_string()
    );
}

// === CSRs ===

fn csr_with(key: &KeyPair, sans: Vec<SanType>, cn: Option<&str>) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = sans;
    params
        .serialize_request(key)
        .expect("csr")
        .pem()
        .expect("pem")
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.to_owned().try_into().expect("ia5"))
}

fn web_uri() -> String {
    format!("spiffe://{TD}/ns/default/dc/dc1/svc/web")
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key")
}

#[test]
fn signs_a_good_csr_copying_sans() {
    let mut ca = ca();
    let key = p256();
    let csr = csr_with(
        &key,
        vec![
            uri(&web_uri()),
            SanType::DnsName("web.example:8443".to_owned().try_into().expect("dns")),
            SanType::IpAddress("10.0.0.7".parse().expect("ip")),
        ],
        Some("ignored"),
    );
    let leaf = ca.sign_csr(&csr, SignPolicy::Service("web")).expect("sign");
    assert!(leaf.private_key_pem.is_empty());
    let json = serde_json::to_value(&leaf).expect("json");
    assert!(json.get("PrivateKeyPEM").is_none());
    let cert_der = der(&leaf.cert_pem);
    let (_, cert) = X509Certificate::from_der(&cert_der).expect("parse");
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    assert_eq!(
        cert.subject().iter().count(),
        0,
        "the CSR subject is not copied"
    );
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("present");
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("uri:{u}"),
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            format!("uri:{}", web_uri()),
            "dns:web.example".into(),
            "ip:[10, 0, 0, 7]".into()
        ]
    );
}

#[test]
fn accepts_p384_and_rsa_csrs() {
    let mut ca = ca();
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
    ca.sign_csr(
        &csr_with(&p384, vec![uri(&web_uri())], None),
        SignPolicy::Any,
    )
    .expect("P-384");
    let rsa = KeyPair::from_pem_and_sign_algo(
        include_str!("../../tests/data/test-only-rsa2048.pk8.pem"),
        &PKCS_RSA_SHA256,
    )
    .expect("rsa key");
    let leaf = ca
        .sign_csr(
            &csr_with(&rsa, vec![uri(&web_uri())], None),
            SignPolicy::Any,
        )
        .expect("RSA");
    let cert_der = der(&leaf.cert_pem);
    let (_, cert) = X509Certificate::from_der(&cert_der).expect("parse");
    let root_der = der(&ca.active_root().root_cert);
    let (_, root) = X509Certificate::from_der(&root_der).expect("root");
    cert.verify_signature(Some(root.public_key()))
        .expect("signed by root");
}

fn csr_err(ca: &mut Ca, csr: &str, policy: SignPolicy<'_>) -> CsrError {
    match ca.sign_csr(csr, policy) {
        Err(CaError::Csr(e)) => e,
        other => panic!("expected a CSR error, got {other:?}"),
    }
}

#[test]
fn csr_rejections_each_name_their_cause() {
    let mut ca = ca();
    let key = p256();
    let good = csr_with(&key, vec![uri(&web_uri())], None);

    assert_eq!(csr_err(&mut ca, "", SignPolicy::Any), CsrError::NoPem);
    let root_pem = ca.active_root().root_cert.clone();
    assert_eq!(
        csr_err(&mut ca, &root_pem, SignPolicy::Any),
        CsrError::WrongPemType {
            found: "Certificate".into()
        }
    );
    let garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert!(matches!(
        csr_err(&mut ca, garbage, SignPolicy::Any),
        CsrError::Malformed(_)
    ));

    // Flip the last byte of the signature.
    let mut der_bytes =
        rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
            .expect("csr")
            .as_ref()
            .to_vec();
    if let Some(last) = der_bytes.last_mut() {
        *last ^= 0x01;
    }
    let tampered = pem::encode("CERTIFICATE REQUEST", &der_bytes);
    assert_eq!(
        csr_err(&mut ca, &tampered, SignPolicy::Any),
        CsrError::BadSignature
    );

    let two = csr_with(
        &key,
        vec![
            uri(&web_uri()),
            uri(&format!("spiffe://{TD}/ns/default/dc/dc1/svc/db")),
        ],
        None,
    );
    assert_eq!(
        csr_err(&mut ca, &two, SignPolicy::Any),
        CsrError::UriCount(2)
    );
    let none = csr_with(
        &key,
        vec![SanType::DnsName("web".to_owned().try_into().expect("dns"))],
        Some("web"),
    );
    assert_eq!(
        csr_err(&mut ca, &none, SignPolicy::Any),
        CsrError::UriCount(0)
    );

    let not_spiffe = csr_with(&key, vec![uri("https://example.com/web")], None);
    assert!(matches!(
        csr_err(&mut ca, &not_spiffe, SignPolicy::Any),
        CsrError::InvalidUri { .. }
    ));

    let foreign = csr_with(
        &key,
        vec![uri(
            "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web",
        )],
        None,
    );
    assert_eq!(
        csr_err(&mut ca, &foreign, SignPolicy::Any),
        CsrError::WrongTrustDomain {
            uri: "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web"
                .into(),
            expected: format!("spiffe://{TD}"),
        }
    );

    let other_dc = csr_with(
        &key,
        vec![uri(&format!("spiffe://{TD}/ns/default/dc/dc9/svc/web"))],
        None,
    );
    assert_eq!(
        csr_err(&mut ca, &other_dc, SignPolicy::Any),
        CsrError::WrongDatacenter {
            found: "dc9".into(),
            expected: "dc1".into()
        }
    );

    let signing = csr_with(&key, vec![uri(&format!("spiffe://{TD}"))], None);
    assert_eq!(
        csr_err(&mut ca, &signing, SignPolicy::Any),
        CsrError::NotALeafIdentity
    );

    assert_eq!(
        csr_err(&mut ca, &good, SignPolicy::Service("db")),
        CsrError::WrongService {
            allowed: "db".into(),
            requested: web_uri(),
        }
    );
    let agent = csr_with(
        &key,
        vec![uri(&format!("spiffe://{TD}/agent/client/dc/dc1/id/n1"))],
        None,
    );
    assert!(matches!(
        csr_err(&mut ca, &agent, SignPolicy::Service("web")),
        CsrError::WrongService { .. }
    ));
    let deny_all = |_: &SpiffeId| false;
    assert_eq!(
        csr_err(&mut ca, &good, SignPolicy::Custom(&deny_all)),
        CsrError::PermissionDenied { uri: web_uri() }
    );
    let only_web = |id: &SpiffeId| id.as_service().is_some_and(|s| s.service() == "web");
    ca.sign_csr(&good, SignPolicy::Custom(&only_web))
        .expect("allowed by policy");

    let ed = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    assert!(matches!(
        csr_err(
            &mut ca,
            &csr_with(&ed, vec![uri(&web_uri())], None),
            SignPolicy::Any
        ),
        CsrError::UnsupportedKey(_)
    ));
}

#[test]
fn csr_parser_never_panics_on_truncated_or_flipped_input() {
    let mut ca = ca();
    let good = csr_with(&p256(), vec![uri(&web_uri())], None);
    let der_bytes = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
        .expect("csr")
        .as_ref()
        .to_vec();
    for cut in 0..der_bytes.len() {
        let pem = pem::encode("CERTIFICATE REQUEST", &der_bytes[..cut]);
        assert!(ca.sign_csr(&pem, SignPolicy::Any).is_err(), "cut {cut}");
    }
    for i in 0..der_bytes.len() {
        let mut flipped = der_bytes.clone();
        flipped[i] ^= 0x80;
        let pem = pem::encode("CERTIFICATE REQUEST", &flipped);
        // Most flips are rejected; none may panic or yield a leaf for another identity.
        if let Ok(leaf) = ca.sign_csr(&pem, SignPolicy::Service("web")) {
            assert_eq!(leaf.service, "web");
        }
    }
}

// === rotation and pruning ===

#[test]
fn rotation_keeps_old_root_and_cross_signs_the_new_one() {
    let mut ca = ca();
    let old_root = ca.active_root().clone();
    let old_leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    ca.rotate(42).expect("rotate");
    let roots = ca.roots();
    assert_eq!(roots.roots.len(), 2);
    assert_ne!(roots.active_root_id, old_root.id);
    assert_eq!(roots.roots[0].id, roots.active_root_id);
    assert!(roots.roots[0].active && !roots.roots[1].active);
    assert_eq!(roots.roots[1].id, old_root.id);
    assert_eq!(roots.roots[1].modify_index, 42);
    assert_ne!(roots.roots[0].signing_key_id, old_root.signing_key_id);

    let new_der = der(&roots.roots[0].root_cert);
    let (_, new_root) = X509Certificate::from_der(&new_der).expect("new root");
    let old_der = der(&old_root.root_cert);
    let (_, old) = X509Certificate::from_der(&old_der).expect("old root");
    assert_ne!(
        new_root.subject(),
        old.subject(),
        "each root has its own CN"
    );

    // The cross-signed copy: new subject and key, issued and signed by the old root.
    let cross_pems = roots.roots[0]
        .intermediate_certs
        .clone()
        .expect("cross-signed");
    assert_eq!(cross_pems.len(), 1);
    let cross_der = der(&cross_pems[0]);
    let (_, cross) = X509Certificate::from_der(&cross_der).expect("cross");
    assert_eq!(cross.subject(), new_root.subject());
    assert_eq!(cross.issuer(), old.subject());
    assert_eq!(cross.public_key().raw, new_root.public_key().raw);
    cross
        .verify_signature(Some(old.public_key()))
        .expect("signed by old root");
    let (ski, aki) = key_id_of(&cross);
    assert_eq!(colon_hex(&ski), roots.roots[0].signing_key_id);
    assert_eq!(colon_hex(&aki), old_root.signing_key_id);
    let life = cross.validity().not_after.to_datetime() - cross.validity().not_before.to_datetime();
    assert_eq!(life, CROSS_SIGN_TTL + Duration::from_secs(60));

    // New leafs carry the cross-signed cert and verify against the new root; old ones still verify
    // against the old root, which is still in the bundle.
    let new_leaf = ca.issue_leaf(&web(&ca)).expect("issue");
    let chain = ders(&new_leaf.cert_pem);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], cross_der);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).expect("leaf");
    leaf.verify_signature(Some(new_root.public_key()))
        .expect("new leaf");
    let leaf_der = der(&old_leaf.cert_pem);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).expect("old leaf");
    leaf.verify_signature(Some(old.public_key()))
        .expect("old leaf");
    assert!(roots.pem_bundle().contains(&old_root.root_cert));
}

#[test]
fn pruning_waits_for_old_leafs_to_expire() {
    let mut ca = ca();
    ca.rotate(2).expect("rotate");
    let now = OffsetDateTime::now_utc();
    assert_eq!(ca.prune_roots(now), 0);
    assert_eq!(
        ca.prune_roots(now + DEFAULT_LEAF_CERT_TTL),
        0,
        "leafs may still be valid"
    );
    assert!(ca.active_root().intermediate_certs.is_some());
    assert_eq!(
        ca.prune_roots(now + DEFAULT_LEAF_CERT_TTL + Duration::from_secs(120)),
        1
    );
    assert_eq!(ca.roots().roots.len(), 1);
    assert!(ca.active_root().active);
    assert_eq!(
        ca.prune_roots(now + CROSS_SIGN_TTL + Duration::from_secs(3600)),
        0
    );
    assert_eq!(
        ca.active_root().intermediate_certs,
        None,
        "expired cross-signed copy dropped"
    );
}

// === persistence ===

#[test]
fn state_round_trips_through_json() {
    let mut ca = ca();
    let first = ca.issue_leaf(&web(&ca)).expect("issue");
    ca.rotate(3).expect("rotate");
    let json = serde_json::to_string(ca.state()).expect("persist");
    let restored: CaState = serde_json::from_str(&json).expect("read back");
    assert_eq!(&restored, ca.state());
    let mut again = Ca::from_state(restored).expect("restore");
    assert_eq!(again.roots(), ca.roots());
    let next = again.issue_leaf(&web(&again)).expect("issue");
    let n = |s: &str| u64::from_str_radix(&s.replace(':', ""), 16).expect("hex");
    assert!(
        n(&next.serial_number) > n(&first.serial_number) + 2,
        "counter survives"
    );
    let root_der = der(&again.active_root().root_cert);
    let (_, root) = X509Certificate::from_der(&root_der).expect("root");
    let leaf_der = der(&next.cert_pem);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).expect("leaf");
    leaf.verify_signature(Some(root.public_key()))
        .expect("restored key signs");
}

#[test]
fn restore_rejects_inconsistent_state() {
    let base = ca().into_state();
    let other = Ca::generate(CLUSTER, CaConfig::new("dc1"), 1)
        .expect("other")
        .into_state();
    type Mutation = Box<dyn Fn(&mut CaState)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("no roots", Box::new(|s| s.roots.clear())),
        (
            "0 roots are marked active",
            Box::new(|s| s.roots[0].root.active = false),
        ),
        (
            "ID is not the SHA-1",
            Box::new(|s| s.roots[0].root.id = "00".into()),
        ),
        (
            "private key does not match",
            Box::new(move |s| s.roots[0].private_key_pem = other.roots[0].private_key_pem.clone()),
        ),
        (
            "private key is not a PKCS#8 PEM key",
            Box::new(|s| s.roots[0].private_key_pem = SecretPem::new("junk".into())),
        ),
        (
            "RootCert is not a PEM certificate",
            Box::new(|s| s.roots[0].root.root_cert.clear()),
        ),
        (
            "SerialNumber is above last_serial",
            Box::new(|s| s.last_serial = 0),
        ),
        (
            "invalid cluster ID",
            Box::new(|s| s.cluster_id = "x".into()),
        ),
        (
            "leaf cert TTL",
            Box::new(|s| s.config.leaf_cert_ttl = Duration::ZERO),
        ),
    ];
    for (want, mutate) in cases {
        let mut state = base.clone();
        mutate(&mut state);
        let err = Ca::from_state(state).expect_err(want);
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want:?}"
        );
        assert!(!err.to_string().contains("PRIVATE KEY"));
    }
}
