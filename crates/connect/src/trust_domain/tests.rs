//! Tests for trust domains.

use super::*;

const ID: &str = "7f42f496-fbc7-8692-05ed-334aa5340c1e";

#[test]
fn from_cluster_id_appends_consul_and_lowercases() {
    let td = TrustDomain::from_cluster_id(ID).expect("valid");
    assert_eq!(td.as_str(), format!("{ID}.consul"));
    assert_eq!(td.cluster_id(), Some(ID));
    let upper = TrustDomain::from_cluster_id(&ID.to_ascii_uppercase()).expect("valid");
    assert_eq!(upper, td);
}

#[test]
fn from_cluster_id_rejects_non_uuids() {
    for bad in [
        "",
        "dc1",
        "7f42f496fbc7869205ed334aa5340c1e",
        "7f42f496-fbc7-8692-05ed-334aa5340c1",
        "7f42f496-fbc7-8692-05ed-334aa5340c1g",
        "7f42f496_fbc7-8692-05ed-334aa5340c1e",
        "7f42f496-fbc7-8692-05ed-334aa5340c1e.consul",
        "7f42f496-fbc7-8692-05ed-334aa5340c1é",
    ] {
        assert_eq!(
            TrustDomain::from_cluster_id(bad),
            Err(TrustDomainError::ClusterId { value: bad.into() }),
            "{bad:?}"
        );
    }
}

#[test]
fn new_validates_dns_names() {
    let cases: &[(&str, Result<&str, TrustDomainError>)] = &[
        ("Example.CONSUL", Ok("example.consul")),
        ("a", Ok("a")),
        ("", Err(TrustDomainError::Empty)),
        (
            "a..b",
            Err(TrustDomainError::BadLabel {
                label: String::new(),
                reason: "empty label",
            }),
        ),
        (
            "-a.consul",
            Err(TrustDomainError::BadLabel {
                label: "-a".into(),
                reason: "starts or ends with a hyphen",
            }),
        ),
        (
            "a.consul:8443",
            Err(TrustDomainError::InvalidChar {
                ch: ':',
                position: 8,
            }),
        ),
        (
            "a/b",
            Err(TrustDomainError::InvalidChar {
                ch: '/',
                position: 1,
            }),
        ),
        (
            "é.consul",
            Err(TrustDomainError::InvalidChar {
                ch: 'é',
                position: 0,
            }),
        ),
    ];
    for (input, want) in cases {
        let got = TrustDomain::new(input);
        match want {
            Ok(s) => assert_eq!(got.as_ref().map(TrustDomain::as_str), Ok(*s), "{input:?}"),
            Err(e) => assert_eq!(got.as_ref().err(), Some(e), "{input:?}"),
        }
    }
    let long_label = format!("{}.consul", "a".repeat(64));
    assert!(matches!(
        TrustDomain::new(&long_label),
        Err(TrustDomainError::BadLabel { .. })
    ));
    let too_long = "a.".repeat(127) + "aa";
    assert_eq!(
        TrustDomain::new(&too_long),
        Err(TrustDomainError::TooLong { len: 256 })
    );
}

#[test]
fn cluster_id_is_none_for_foreign_shapes() {
    assert_eq!(
        TrustDomain::new("peer.example").expect("ok").cluster_id(),
        None
    );
    assert_eq!(TrustDomain::new("consul").expect("ok").cluster_id(), None);
}

#[test]
fn serde_round_trip_validates() {
    let td = TrustDomain::from_cluster_id(ID).expect("valid");
    let json = serde_json::to_string(&td).expect("serialize");
    assert_eq!(json, format!("\"{ID}.consul\""));
    let back: TrustDomain = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, td);
    assert!(serde_json::from_str::<TrustDomain>("\"bad domain\"").is_err());
}
