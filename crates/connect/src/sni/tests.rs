//! Tests for SNI building and parsing.

use super::*;

const TD: &str = "5fcd4b81-a2ca-405a-ac62-0fac602c1949.consul";

fn td() -> TrustDomain {
    TrustDomain::new(TD).expect("valid")
}

#[test]
fn builds_like_consul() {
    let td = td();
    let cases: Vec<(String, String)> = vec![
        (
            service_sni("api", "", "", "", "dc1", &td),
            format!("api.default.dc1.internal.{TD}"),
        ),
        (
            service_sni("api", "", "default", "default", "dc1", &td),
            format!("api.default.dc1.internal.{TD}"),
        ),
        (
            service_sni("api", "v1", "ns1", "", "dc1", &td),
            format!("v1.api.ns1.dc1.internal.{TD}"),
        ),
        (
            service_sni("api", "", "ns1", "ap1", "dc1", &td),
            format!("api.ns1.ap1.dc1.internal-v1.{TD}"),
        ),
        (
            service_sni("api", "v2", "", "ap1", "dc1", &td),
            format!("v2.api.default.ap1.dc1.internal-v1.{TD}"),
        ),
        (
            query_sni("geo", "dc2", &td),
            format!("geo.default.dc2.query.{TD}"),
        ),
        (datacenter_sni("dc2", &td), format!("dc2.internal.{TD}")),
        (
            partition_datacenter_sni("", "dc2", &td),
            format!("dc2.internal.{TD}"),
        ),
        (
            partition_datacenter_sni("ap1", "dc2", &td),
            format!("ap1.dc2.internal-v1.{TD}"),
        ),
        (
            peered_service_sni("api", "", "", "cluster-02", "peer-td.consul"),
            "api.default.default.cluster-02.external.peer-td.consul".into(),
        ),
        (
            peering_server_sni("dc1", &td),
            format!("server.dc1.peering.{TD}"),
        ),
        (server_sni("dc2", "consul"), "server.dc2.consul".into()),
        (
            node_server_sni("node-1", "dc2", "consul"),
            "node-1.server.dc2.consul".into(),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

fn target(subset: Option<&str>, svc: &str, ns: &str, ap: &str, dc: &str) -> Sni {
    Sni::Service(ServiceTarget {
        subset: subset.map(str::to_owned),
        service: svc.into(),
        namespace: ns.into(),
        partition: ap.into(),
        datacenter: dc.into(),
    })
}

#[test]
fn parses_every_kind_and_round_trips() {
    let cases: Vec<(String, Sni)> = vec![
        (
            format!("api.default.dc1.internal.{TD}"),
            target(None, "api", "default", "default", "dc1"),
        ),
        (
            format!("v1.api.default.dc1.internal.{TD}"),
            target(Some("v1"), "api", "default", "default", "dc1"),
        ),
        (
            format!("api.ns1.ap1.dc1.internal-v1.{TD}"),
            target(None, "api", "ns1", "ap1", "dc1"),
        ),
        (
            format!("v1.api.ns1.ap1.dc1.internal-v1.{TD}"),
            target(Some("v1"), "api", "ns1", "ap1", "dc1"),
        ),
        (
            format!("dc2.internal.{TD}"),
            Sni::Datacenter {
                partition: "default".into(),
                datacenter: "dc2".into(),
            },
        ),
        (
            format!("ap1.dc2.internal-v1.{TD}"),
            Sni::Datacenter {
                partition: "ap1".into(),
                datacenter: "dc2".into(),
            },
        ),
        (
            format!("geo.default.dc2.query.{TD}"),
            Sni::PreparedQuery {
                query: "geo".into(),
                datacenter: "dc2".into(),
            },
        ),
        (
            format!("api.default.default.cluster-02.external.{TD}"),
            Sni::PeeredService {
                service: "api".into(),
                namespace: "default".into(),
                partition: "default".into(),
                peer: "cluster-02".into(),
            },
        ),
        (
            format!("server.dc1.peering.{TD}"),
            Sni::PeeringServer {
                datacenter: "dc1".into(),
            },
        ),
    ];
    for (sni, want) in cases {
        let got = parse_sni(&sni, &td()).unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(got, want, "{sni}");
        assert_eq!(got.to_sni(&td()), sni, "round trip");
    }
}

#[test]
fn parse_is_case_insensitive() {
    let sni = format!("API.Default.DC1.internal.{}", TD.to_uppercase());
    assert_eq!(
        parse_sni(&sni, &td()),
        Ok(target(None, "api", "default", "default", "dc1"))
    );
}

#[test]
fn route_keys() {
    let parse = |s: String| parse_sni(&s, &td()).expect("valid");
    assert_eq!(
        parse(format!("v1.api.default.dc2.internal.{TD}")).route_key(),
        Some(("default", "dc2"))
    );
    assert_eq!(
        parse(format!("ap1.dc3.internal-v1.{TD}")).route_key(),
        Some(("ap1", "dc3"))
    );
    assert_eq!(
        parse(format!("api.default.default.p.external.{TD}")).route_key(),
        None
    );
}

#[test]
fn rejects_with_errors_naming_the_part() {
    let cases: Vec<(String, SniError)> = vec![
        (String::new(), SniError::Empty),
        (
            format!("{}.internal.{TD}", "a".repeat(64)),
            SniError::LabelTooLong { index: 0 },
        ),
        (
            format!("{}internal.{TD}", "a.".repeat(110)),
            SniError::TooLong {
                len: 220 + 9 + TD.len(),
            },
        ),
        (
            format!("api..dc1.internal.{TD}"),
            SniError::EmptyLabel { index: 1 },
        ),
        (
            format!("api.default.dc1.internal.{TD}."),
            SniError::EmptyLabel { index: 6 },
        ),
        (
            format!("api default.dc1.internal.{TD}"),
            SniError::InvalidChar {
                ch: ' ',
                position: 3,
            },
        ),
        (
            format!("*.dc1.internal.{TD}"),
            SniError::InvalidChar {
                ch: '*',
                position: 0,
            },
        ),
        (
            "api.default.dc1.internal.other.consul".into(),
            SniError::WrongDomain {
                expected: TD.into(),
            },
        ),
        (
            TD.into(),
            SniError::WrongDomain {
                expected: TD.into(),
            },
        ),
        (
            format!("api.default.dc1.outside.{TD}"),
            SniError::UnknownKind {
                found: "outside".into(),
            },
        ),
        (
            format!("a.b.internal.{TD}"),
            SniError::LabelCount {
                kind: INTERNAL,
                found: 2,
                expected: "1, 3 or 4",
            },
        ),
        (
            format!("internal.{TD}"),
            SniError::LabelCount {
                kind: INTERNAL,
                found: 0,
                expected: "1, 3 or 4",
            },
        ),
        (
            format!("a.b.c.d.e.f.internal-v1.{TD}"),
            SniError::LabelCount {
                kind: INTERNAL_V1,
                found: 6,
                expected: "2, 4 or 5",
            },
        ),
        (
            format!("geo.ns1.dc2.query.{TD}"),
            SniError::UnexpectedLabel {
                index: 1,
                found: "ns1".into(),
                expected: "default",
            },
        ),
        (
            format!("client.dc1.peering.{TD}"),
            SniError::UnexpectedLabel {
                index: 0,
                found: "client".into(),
                expected: "server",
            },
        ),
        (
            format!("api.default.peer.external.{TD}"),
            SniError::LabelCount {
                kind: EXTERNAL,
                found: 3,
                expected: "4",
            },
        ),
    ];
    for (sni, want) in cases {
        assert_eq!(parse_sni(&sni, &td()), Err(want), "{sni:?}");
    }
}

#[test]
fn parses_server_names() {
    assert_eq!(
        parse_server_sni("server.dc2.consul", "consul"),
        Ok(ServerSni::Any {
            datacenter: "dc2".into()
        })
    );
    assert_eq!(
        parse_server_sni("Node-1.server.dc2.consul", "consul"),
        Ok(ServerSni::Node {
            node: "node-1".into(),
            datacenter: "dc2".into()
        })
    );
    assert_eq!(
        parse_server_sni("client.dc2.consul", "consul"),
        Err(SniError::UnexpectedLabel {
            index: 0,
            found: "client".into(),
            expected: "server"
        })
    );
    assert_eq!(
        parse_server_sni("a.client.dc2.consul", "consul"),
        Err(SniError::UnexpectedLabel {
            index: 1,
            found: "client".into(),
            expected: "server"
        })
    );
    assert_eq!(
        parse_server_sni("server.dc2.example", "consul"),
        Err(SniError::WrongDomain {
            expected: "consul".into()
        })
    );
    assert!(matches!(
        parse_server_sni("a.b.server.dc2.consul", "consul"),
        Err(SniError::LabelCount { found: 4, .. })
    ));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Every short string over a small alphabet that includes multi-byte characters.
    let alphabet = ["a", ".", "-", "é", "internal", "internal-v1", "*", TD, "_"];
    let mut stack = vec![String::new()];
    let mut seen = 0;
    while let Some(s) = stack.pop() {
        let _ = parse_sni(&s, &td());
        let _ = parse_server_sni(&s, "consul");
        seen += 1;
        if s.matches('.').count() < 6 && s.len() < 120 {
            for piece in alphabet {
                stack.push(format!("{s}{piece}"));
            }
        }
        if seen > 50_000 {
            break;
        }
    }
    assert!(seen > 10_000);
}
