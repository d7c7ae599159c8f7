//! TLS: trust from a CA file or PEM text, the server name checked, client certificates, and
//! verification off only when asked.

use consul_client::{
    CaSource, Client, ClientCertificate, ClientConfig, Error, PemSource, Scheme, Secret,
};
use serde_json::json;

use crate::support::{FakeConsul, Reply, SERVER_NAME, TestPki};

fn https(consul: &FakeConsul, change: impl FnOnce(&mut ClientConfig)) -> Result<Client, Error> {
    let mut config = consul.config();
    config.scheme = Some(Scheme::Https);
    change(&mut config);
    Client::new(config)
}

async fn leader(client: &Client) -> Result<String, Error> {
    client.status().leader().await
}

#[tokio::test]
async fn trusts_a_ca_file_and_checks_the_server_name() {
    let pki = TestPki::new();
    let consul = FakeConsul::start_tls(pki.server_config(false), |_| {
        Reply::json(json!("10.0.0.1:8300"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();

    let client = https(&consul, |c| {
        c.tls.ca = Some(CaSource::File(ca_file.clone()));
        c.tls.server_name = Some(SERVER_NAME.into());
    })
    .unwrap();
    assert_eq!(leader(&client).await.unwrap(), "10.0.0.1:8300");
    // The pool keeps the connection: a second call succeeds too.
    assert_eq!(leader(&client).await.unwrap(), "10.0.0.1:8300");

    // Without a server name the address's IP is checked, and the certificate only names consul.test.
    let by_ip = https(&consul, |c| {
        c.tls.ca = Some(CaSource::File(ca_file.clone()))
    })
    .unwrap();
    let err = leader(&by_ip).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");

    let wrong = https(&consul, |c| {
        c.tls.ca = Some(CaSource::File(ca_file.clone()));
        c.tls.server_name = Some("other.test".into());
    })
    .unwrap();
    let err = leader(&wrong).await.unwrap_err();
    match &err {
        Error::Tls { message, .. } => assert!(
            message.contains("not valid for name \"other.test\""),
            "{message}"
        ),
        other => panic!("expected a TLS error, got {other}"),
    }
    assert!(
        !err.is_retryable(),
        "a certificate mismatch does not fix itself"
    );
    assert_eq!(consul.requests().len(), 2);
}

#[tokio::test]
async fn trusts_ca_pem_text_and_refuses_an_unknown_ca() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let consul = FakeConsul::start_tls(pki.server_config(false), |_| Reply::json(json!([]))).await;

    let client = https(&consul, |c| {
        c.tls.ca = Some(CaSource::Pem(pki.ca_pem.clone()));
        c.tls.server_name = Some(format!("{SERVER_NAME}:8501"));
    })
    .unwrap();
    assert!(client.status().peers().await.unwrap().is_empty());

    let untrusting = https(&consul, |c| {
        c.tls.ca = Some(CaSource::Pem(other.ca_pem.clone()));
        c.tls.server_name = Some(SERVER_NAME.into());
    })
    .unwrap();
    let err = untrusting.status().peers().await.unwrap_err();
    match err {
        Error::Tls { message, .. } => assert!(message.contains("UnknownIssuer"), "{message}"),
        other => panic!("expected a TLS error, got {other}"),
    }

    // Verification off (CONSUL_HTTP_SSL_VERIFY=false) needs no CA at all.
    let insecure = https(&consul, |c| c.tls.insecure_skip_verify = true).unwrap();
    assert!(insecure.status().peers().await.unwrap().is_empty());
}

#[tokio::test]
async fn presents_a_client_certificate_when_the_server_asks() {
    let pki = TestPki::new();
    let consul = FakeConsul::start_tls(pki.server_config(true), |_| {
        Reply::json(json!({"Config": {"Datacenter": "dc1"}}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    std::fs::write(&cert, &pki.client_cert_pem).unwrap();
    let ca = CaSource::Pem(pki.ca_pem.clone());

    let with_cert = https(&consul, |c| {
        c.tls.ca = Some(ca.clone());
        c.tls.server_name = Some(SERVER_NAME.into());
        c.tls.client_cert = Some(ClientCertificate {
            cert: PemSource::File(cert.clone()),
            key: PemSource::Pem(Secret::new(pki.client_key_pem.clone())),
        });
    })
    .unwrap();
    let info = with_cert.agent().self_info().await.unwrap();
    assert_eq!(info.config.datacenter.as_deref(), Some("dc1"));

    let without = https(&consul, |c| {
        c.tls.ca = Some(ca.clone());
        c.tls.server_name = Some(SERVER_NAME.into());
    })
    .unwrap();
    let err = without.agent().self_info().await.unwrap_err();
    assert!(
        matches!(err, Error::Tls { .. } | Error::Transport { .. }),
        "the server refuses a client without a certificate: {err}"
    );
    assert_eq!(consul.requests().len(), 1);
}

type Change = Box<dyn FnOnce(&mut ClientConfig)>;

#[tokio::test]
async fn bad_tls_material_fails_when_the_client_is_built() {
    let consul = FakeConsul::always(Reply::json(json!(""))).await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let key_secret = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n";
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.tls.ca = Some(CaSource::File("/no/such/ca.pem".into()))),
            "/no/such/ca.pem",
        ),
        (
            Box::new({
                let p = not_pem.clone();
                move |c| c.tls.ca = Some(CaSource::File(p))
            }),
            "no PEM certificates",
        ),
        (
            Box::new(|c| c.tls.ca = Some(CaSource::Directory("/no/such/dir".into()))),
            "/no/such/dir",
        ),
        (
            Box::new(move |c| {
                c.tls.insecure_skip_verify = true;
                c.tls.client_cert = Some(ClientCertificate {
                    cert: PemSource::Pem(Secret::new("junk")),
                    key: PemSource::Pem(Secret::new(key_secret)),
                });
            }),
            "tls.client_cert",
        ),
    ];
    for (change, expected) in cases {
        let err = https(&consul, change).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{text}");
        assert!(text.contains(expected), "{text} should mention {expected}");
        assert!(!text.contains("not-a-key"), "key material leaked: {text}");
    }
    // Plain HTTP never reads TLS material.
    let mut config = consul.config();
    config.tls.ca = Some(CaSource::File("/no/such/ca.pem".into()));
    let plain = Client::new(config).unwrap();
    assert_eq!(plain.status().leader().await.unwrap(), "");
}

#[tokio::test]
async fn a_ca_directory_is_read_file_by_file() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let consul = FakeConsul::start_tls(pki.server_config(false), |_| Reply::json(json!("x"))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-other.pem"), &other.ca_pem).unwrap();
    std::fs::write(dir.path().join("b-ours.pem"), &pki.ca_pem).unwrap();
    let client = https(&consul, |c| {
        c.tls.ca = Some(CaSource::Directory(dir.path().to_path_buf()));
        c.tls.server_name = Some(SERVER_NAME.into());
    })
    .unwrap();
    assert_eq!(client.status().leader().await.unwrap(), "x");
}
