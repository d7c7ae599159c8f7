//! Agent: self (the controller's datacenter checks), CA roots, leaf certificates, authorize.

use consul_client::agent::AuthorizeRequest;
use consul_client::{QueryOptions, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn self_info_exposes_datacenters_with_the_debug_config_fallback() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(json!({
            "Config": {"Datacenter": "dc1", "PrimaryDatacenter": "", "NodeName": "server-1",
                       "NodeID": "abc", "Server": true, "Version": "1.21.0", "Revision": "x",
                       "BuildDate": "2025-01-01T00:00:00Z"},
            "DebugConfig": {"PrimaryDatacenter": "dc1", "Datacenter": "dc1"},
            "Coord": {"Vec": [0.0]},
            "Member": {"Name": "server-1"},
            "Stats": {},
            "Meta": {"consul-network-segment": ""}
        })),
        Reply::json(json!({"Config": {"NodeName": "x"}})),
    ])
    .await;
    let client = consul.client();
    let info = client.agent().self_info().await.unwrap();
    assert_eq!(info.config.datacenter.as_deref(), Some("dc1"));
    assert_eq!(
        info.primary_datacenter(),
        Some("dc1"),
        "falls back to DebugConfig"
    );
    assert!(info.config.server);
    assert!(info.extra.contains_key("Coord"));
    assert!(info.config.extra.contains_key("BuildDate"));

    let bare = client.agent().self_info().await.unwrap();
    assert_eq!(
        bare.config.datacenter, None,
        "an absent key stays distinguishable"
    );
    assert_eq!(bare.primary_datacenter(), None);
    assert_eq!(consul.requests()[0].path, "/v1/agent/self");
}

#[tokio::test]
async fn ca_roots_and_leaf_certificates() {
    let roots = json!({
        "ActiveRootID": "aa:bb",
        "TrustDomain": "7f42f496-fbc7-8692-05ed-334aa5340c1e.consul",
        "Roots": [
            {"ID": "aa:bb", "Name": "Consul CA Root Cert", "SerialNumber": 7, "SigningKeyID": "01:02",
             "ExternalTrustDomain": "7f42f496-fbc7-8692-05ed-334aa5340c1e",
             "NotBefore": "2025-01-01T00:00:00Z", "NotAfter": "2035-01-01T00:00:00Z",
             "RootCert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
             "IntermediateCerts": null, "Active": true, "PrivateKeyType": "ec", "PrivateKeyBits": 256,
             "CreateIndex": 8, "ModifyIndex": 8},
            {"ID": "cc:dd", "Name": "old", "SerialNumber": 6, "SigningKeyID": "03:04", "NotBefore": "",
             "NotAfter": "", "RootCert": "pem", "IntermediateCerts": ["i1"], "Active": false,
             "PrivateKeyType": "ec", "PrivateKeyBits": 256, "CreateIndex": 5, "ModifyIndex": 9}
        ]
    });
    let leaf = json!({
        "SerialNumber": "04:00:00:00:00:01:15:4b", "CertPEM": "-----BEGIN CERTIFICATE-----\nleaf\n",
        "PrivateKeyPEM": "-----BEGIN EC PRIVATE KEY-----\nsecret-key-material\n",
        "Service": "web", "ServiceURI": "spiffe://7f42f496-fbc7-8692-05ed-334aa5340c1e.consul/ns/default/dc/dc1/svc/web",
        "ValidAfter": "2025-01-01T00:00:00Z", "ValidBefore": "2025-01-04T00:00:00Z",
        "Namespace": "default", "CreateIndex": 20, "ModifyIndex": 20
    });
    let consul = FakeConsul::start(move |request| match request.path.as_str() {
        "/v1/agent/connect/ca/roots" => Reply::json(roots.clone()).index(9),
        "/v1/agent/connect/ca/leaf/web" => Reply::json(leaf.clone()).index(20),
        _ => Reply::raw(404, "no"),
    })
    .await;
    let client = consul.client();
    let roots = client
        .agent()
        .ca_roots(&QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(roots.meta.last_index, 9);
    assert_eq!(
        roots.value.roots.len(),
        2,
        "every root is kept, not just the active one"
    );
    assert_eq!(roots.value.active().unwrap().serial_number, 7);
    assert_eq!(roots.value.roots[1].intermediate_certs, ["i1"]);

    let options = QueryOptions {
        index: Some(19),
        ..Default::default()
    };
    let leaf = client
        .agent()
        .leaf_cert("web", &options)
        .await
        .unwrap()
        .value;
    assert!(leaf.service_uri.ends_with("/svc/web"));
    assert!(leaf.private_key_pem.contains("secret-key-material"));
    let shown = format!("{leaf:?}");
    assert!(!shown.contains("secret-key-material"), "{shown}");
    assert_eq!(consul.requests()[1].param("index"), Some("19"));
}

#[tokio::test]
async fn authorize_posts_the_client_certificate() {
    let consul = FakeConsul::always(Reply::json(
        json!({"Authorized": false, "Reason": "Default behavior configured by ACLs"}),
    ))
    .await;
    let request = AuthorizeRequest {
        target: "db".into(),
        client_cert_uri: "spiffe://td.consul/ns/default/dc/dc1/svc/web".into(),
        client_cert_serial: "04:00:00:00:00:01:15:4b:5a:c3:94".into(),
        ..Default::default()
    };
    let answer = consul
        .client()
        .agent()
        .authorize(&request, &WriteOptions::default())
        .await
        .unwrap();
    assert!(!answer.authorized);
    assert_eq!(answer.reason, "Default behavior configured by ACLs");
    let seen = consul.only_request();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/agent/connect/authorize");
    assert_eq!(
        seen.json(),
        json!({"Target": "db", "ClientCertURI": "spiffe://td.consul/ns/default/dc/dc1/svc/web",
               "ClientCertSerial": "04:00:00:00:00:01:15:4b:5a:c3:94"})
    );
}
