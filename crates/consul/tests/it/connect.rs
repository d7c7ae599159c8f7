//! Connect: CA roots and configuration, intention match/check/exact, and intention upsert and
//! delete through check-and-set writes of `service-intentions` entries.

use std::sync::Mutex;

use consul_client::config_entry::{IntentionAction, SourceIntention};
use consul_client::connect::{CaConfig, IntentionMatchBy};
use consul_client::{QueryOptions, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

#[tokio::test]
async fn ca_roots_and_configuration() {
    let consul = FakeConsul::start(|request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/v1/connect/ca/roots") => Reply::json(json!({
            "ActiveRootID": "aa", "TrustDomain": "td.consul",
            "Roots": [{"ID": "aa", "Name": "r", "SerialNumber": 1, "SigningKeyID": "k",
                       "NotBefore": "", "NotAfter": "", "RootCert": "pem", "IntermediateCerts": null,
                       "Active": true, "PrivateKeyType": "ec", "PrivateKeyBits": 256,
                       "CreateIndex": 1, "ModifyIndex": 1}]
        }))
        .index(4),
        ("GET", "/v1/connect/ca/configuration") => Reply::json(json!({
            "Provider": "consul", "ClusterID": "7f42f496-fbc7-8692-05ed-334aa5340c1e",
            "Config": {"LeafCertTTL": "72h", "RotationPeriod": "2160h", "PrivateKey": "very-secret",
                       "PrivateKeyType": "ec", "PrivateKeyBits": 256},
            "State": null, "ForceWithoutCrossSigning": false, "CreateIndex": 5, "ModifyIndex": 6
        }))
        .index(6),
        ("PUT", "/v1/connect/ca/configuration") => Reply::raw(200, ""),
        _ => Reply::raw(404, "no"),
    })
    .await;
    let client = consul.client();
    let roots = client
        .connect()
        .ca_roots(&QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(roots.value.trust_domain, "td.consul");
    let mut config = client
        .connect()
        .ca_config(&QueryOptions::default())
        .await
        .unwrap()
        .value;
    assert_eq!(config.cluster_id, "7f42f496-fbc7-8692-05ed-334aa5340c1e");
    assert_eq!(config.config["LeafCertTTL"], "72h");
    assert!(!format!("{config:?}").contains("very-secret"));

    config.config.insert("LeafCertTTL".into(), json!("24h"));
    config.config.remove("PrivateKey");
    client
        .connect()
        .set_ca_config(&config, &WriteOptions::default())
        .await
        .unwrap();
    let put = consul.requests().pop().unwrap();
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.json(),
        json!({"ClusterID": "7f42f496-fbc7-8692-05ed-334aa5340c1e", "Provider": "consul",
               "Config": {"LeafCertTTL": "24h", "RotationPeriod": "2160h", "PrivateKeyType": "ec",
                          "PrivateKeyBits": 256},
               "CreateIndex": 5, "ModifyIndex": 6})
    );
    let err = client
        .connect()
        .set_ca_config(&CaConfig::default(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, consul_client::Error::InvalidArgument(_)));
}

#[tokio::test]
async fn intention_match_check_and_exact() {
    let consul = FakeConsul::start(|request| match request.path.as_str() {
        "/v1/connect/intentions/match" => Reply::json(json!({
            "db": [
                {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default",
                 "DestinationName": "db", "SourceType": "consul", "Action": "allow", "Meta": {},
                 "Precedence": 9, "CreateIndex": 3, "ModifyIndex": 3},
                {"SourceNS": "default", "SourceName": "*", "DestinationNS": "default",
                 "DestinationName": "db", "SourceType": "consul", "Action": "deny", "Meta": null,
                 "Precedence": 8, "CreateIndex": 2, "ModifyIndex": 2}
            ],
            "cache": null
        }))
        .index(3),
        "/v1/connect/intentions/check" => Reply::json(json!({"Allowed": true})),
        "/v1/connect/intentions/exact" if request.param("source") == Some("web") => Reply::json(json!({
            "ID": "", "SourceNS": "default", "SourceName": "web", "DestinationNS": "default",
            "DestinationName": "api", "SourceType": "consul", "Action": "",
            "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["GET"]}}],
            "Precedence": 9
        })),
        _ => Reply::raw(404, "Intention not found"),
    })
    .await;
    let connect = consul.client();
    let connect = connect.connect();
    let none = QueryOptions::default();
    let matches = connect
        .intention_match(IntentionMatchBy::Destination, &["db", "cache"], &none)
        .await
        .unwrap();
    assert_eq!(matches.value["db"].len(), 2);
    assert_eq!(matches.value["db"][0].action, Some(IntentionAction::Allow));
    assert_eq!(matches.value["db"][1].source_name, "*");
    assert!(matches.value["cache"].is_empty());

    assert!(
        connect
            .intention_check("web", "db", &none)
            .await
            .unwrap()
            .value
    );
    let exact = connect
        .intention_get_exact("web", "api", &none)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(exact.action, None, "an L7 intention has no action");
    assert_eq!(
        exact.permissions[0].http.as_ref().unwrap().path_prefix,
        "/v1"
    );
    assert!(
        connect
            .intention_get_exact("nobody", "api", &none)
            .await
            .unwrap()
            .value
            .is_none()
    );

    let requests = consul.requests();
    assert_eq!(requests[0].param("by"), Some("destination"));
    assert_eq!(requests[0].params("name"), ["db", "cache"]);
    assert_eq!(requests[1].param("source"), Some("web"));
    assert_eq!(requests[1].param("destination"), Some("db"));
    assert_eq!(requests[2].path, "/v1/connect/intentions/exact");
}

#[tokio::test]
async fn upsert_creates_then_updates_with_check_and_set() {
    // State of the fake: the stored entry and how many writes to refuse first.
    let stored: Mutex<Option<serde_json::Value>> = Mutex::new(None);
    let refuse = Mutex::new(1);
    let consul = FakeConsul::start(move |request| {
        let mut stored = stored.lock().unwrap();
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v1/config/service-intentions/db") => match stored.as_ref() {
                Some(entry) => Reply::json(entry.clone()).index(10),
                None => Reply::raw(
                    404,
                    "Config entry not found for \"service-intentions\" / \"db\"",
                )
                .index(9),
            },
            ("PUT", "/v1/config") => {
                let mut refuse = refuse.lock().unwrap();
                if stored.is_some() && *refuse > 0 {
                    *refuse -= 1;
                    return Reply::json(json!(false));
                }
                let mut entry = request.json();
                entry["ModifyIndex"] = json!(10);
                entry["CreateIndex"] = json!(10);
                *stored = Some(entry);
                Reply::json(json!(true))
            }
            _ => Reply::raw(404, "no"),
        }
    })
    .await;
    let client = consul.client();
    let options = WriteOptions {
        namespace: Some("ns1".into()),
        ..Default::default()
    };
    let web = SourceIntention {
        name: "web".into(),
        action: Some(IntentionAction::Allow),
        ..Default::default()
    };
    client
        .connect()
        .upsert_intention("db", web.clone(), &options)
        .await
        .unwrap();
    let deny_web = SourceIntention {
        action: Some(IntentionAction::Deny),
        description: "no more".into(),
        ..web.clone()
    };
    let api = SourceIntention {
        name: "api".into(),
        action: Some(IntentionAction::Allow),
        ..Default::default()
    };
    client
        .connect()
        .upsert_intention("db", deny_web, &options)
        .await
        .unwrap();
    client
        .connect()
        .upsert_intention("db", api, &options)
        .await
        .unwrap();

    let requests = consul.requests();
    let methods: Vec<(&str, Option<&str>)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.param("cas")))
        .collect();
    assert_eq!(
        methods,
        [
            ("GET", None),
            ("PUT", Some("0")),
            ("GET", None),
            ("PUT", Some("10")), // refused: someone else wrote first
            ("GET", None),
            ("PUT", Some("10")),
            ("GET", None),
            ("PUT", Some("10")),
        ]
    );
    assert!(requests.iter().all(|r| r.param("ns") == Some("ns1")));
    assert_eq!(
        requests[1].json(),
        json!({"Kind": "service-intentions", "Name": "db", "Namespace": "ns1",
               "Sources": [{"Name": "web", "Action": "allow"}]})
    );
    let last = requests[7].json();
    assert_eq!(
        last["Sources"],
        json!([{"Name": "web", "Action": "deny", "Description": "no more"},
               {"Name": "api", "Action": "allow"}])
    );
}

#[tokio::test]
async fn delete_removes_the_source_and_then_the_entry() {
    let entry = json!({"Kind": "service-intentions", "Name": "db",
                       "Sources": [{"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"}],
                       "CreateIndex": 3, "ModifyIndex": 4});
    let consul = FakeConsul::start(move |request| match request.method.as_str() {
        "GET" => Reply::json(entry.clone()).index(4),
        "DELETE" => Reply::json(json!(true)),
        _ => Reply::raw(500, "unexpected"),
    })
    .await;
    let client = consul.client();
    let absent = SourceIntention {
        name: "other".into(),
        ..Default::default()
    };
    assert!(
        !client
            .connect()
            .delete_intention("db", &absent, &WriteOptions::default())
            .await
            .unwrap()
    );
    let web = SourceIntention {
        name: "web".into(),
        ..Default::default()
    };
    assert!(
        client
            .connect()
            .delete_intention("db", &web, &WriteOptions::default())
            .await
            .unwrap()
    );
    let requests = consul.requests();
    assert_eq!(requests.len(), 3, "no write when nothing matched");
    assert_eq!(requests[2].method, "DELETE");
    assert_eq!(requests[2].path, "/v1/config/service-intentions/db");
    assert_eq!(requests[2].param("cas"), Some("4"));
}
