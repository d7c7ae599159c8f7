//! Tests for SPIFFE ID parsing and formatting, including a deterministic mutation fuzz.

use super::*;

const TD: &str = "11111111-2222-3333-4444-555555555555.consul";

fn td() -> TrustDomain {
    TrustDomain::new(TD).expect("valid trust domain")
}

fn service(ns: &str, dc: &str, svc: &str) -> SpiffeId {
    SpiffeId::Service(ServiceId::new(td(), ns, dc, svc).expect("valid"))
}

#[test]
fn parses_every_identity_shape() {
    let cases: Vec<(String, SpiffeId)> = vec![
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/web"),
            service("default", "dc1", "web"),
        ),
        (
            format!("spiffe://{TD}/ap/part1/ns/ns1/dc/dc1/svc/web"),
            SpiffeId::Service(
                ServiceId::new(td(), "ns1", "dc1", "web")
                    .and_then(|id| id.with_partition("part1"))
                    .expect("valid"),
            ),
        ),
        (
            format!("spiffe://{TD}/agent/client/dc/dc1/id/node-1"),
            SpiffeId::Agent(AgentId::new(td(), "dc1", "node-1").expect("valid")),
        ),
        (
            format!("spiffe://{TD}/ap/p2/agent/client/dc/dc1/id/node-1"),
            SpiffeId::Agent(
                AgentId::new(td(), "dc1", "node-1")
                    .and_then(|id| id.with_partition("p2"))
                    .expect("valid"),
            ),
        ),
        (
            format!("spiffe://{TD}/agent/server/dc/dc1"),
            SpiffeId::Server(ServerId::new(td(), "dc1").expect("valid")),
        ),
        (
            format!("spiffe://{TD}/gateway/mesh/dc/dc2"),
            SpiffeId::MeshGateway(MeshGatewayId::new(td(), "dc2").expect("valid")),
        ),
        (
            format!("spiffe://{TD}/ap/p3/gateway/mesh/dc/dc2"),
            SpiffeId::MeshGateway(
                MeshGatewayId::new(td(), "dc2")
                    .and_then(|id| id.with_partition("p3"))
                    .expect("valid"),
            ),
        ),
        (
            format!("spiffe://{TD}"),
            SpiffeId::Signing(SigningId::new(td())),
        ),
    ];
    for (uri, want) in cases {
        let got = SpiffeId::parse(&uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(got, want, "{uri}");
        assert_eq!(got.to_string(), uri, "formatting round-trips");
        assert_eq!(got.trust_domain(), &td());
    }
}

#[test]
fn service_accessors_and_uri() {
    let id = ServiceId::new(td(), "default", "dc1", "web").expect("valid");
    assert_eq!(id.partition(), "default");
    assert_eq!(id.namespace(), "default");
    assert_eq!(id.datacenter(), "dc1");
    assert_eq!(id.service(), "web");
    assert_eq!(id.uri(), format!("spiffe://{TD}/ns/default/dc/dc1/svc/web"));
}

#[test]
fn normalizes_like_consul() {
    // Scheme and host compare case-insensitively; the host is lower-cased.
    let upper = format!("SPIFFE://{}/ns/default/dc/dc1/svc/web", TD.to_uppercase());
    assert_eq!(
        SpiffeId::parse(&upper).expect("valid"),
        service("default", "dc1", "web")
    );
    // `/ap/default` is accepted but never written; partitions are lower-cased.
    let explicit_default = format!("spiffe://{TD}/ap/default/ns/default/dc/dc1/svc/web");
    let parsed = SpiffeId::parse(&explicit_default).expect("valid");
    assert_eq!(
        parsed.to_string(),
        format!("spiffe://{TD}/ns/default/dc/dc1/svc/web")
    );
    let mixed = format!("spiffe://{TD}/ap/PartA/ns/default/dc/dc1/svc/web");
    assert_eq!(
        SpiffeId::parse(&mixed).expect("valid").to_string(),
        format!("spiffe://{TD}/ap/parta/ns/default/dc/dc1/svc/web")
    );
    // Segments are unescaped after matching, and re-escaped when formatted.
    let escaped = format!("spiffe://{TD}/ns/default/dc/dc1/svc/web%20app");
    let id = SpiffeId::parse(&escaped).expect("valid");
    assert_eq!(id.as_service().map(ServiceId::service), Some("web app"));
    assert_eq!(id.to_string(), escaped);
    let slash = format!("spiffe://{TD}/ns/default/dc/dc1/svc/a%2fb");
    let id = SpiffeId::parse(&slash).expect("valid");
    assert_eq!(id.as_service().map(ServiceId::service), Some("a/b"));
    assert_eq!(
        id.to_string(),
        format!("spiffe://{TD}/ns/default/dc/dc1/svc/a%2Fb")
    );
}

#[test]
fn rejects_with_errors_naming_the_part() {
    let cases: Vec<(String, SpiffeIdError)> = vec![
        (
            "https://x.consul/ns/a/dc/b/svc/c".into(),
            SpiffeIdError::Scheme {
                found: "https".into(),
            },
        ),
        (
            "spiffe:/x.consul".into(),
            SpiffeIdError::Scheme {
                found: "spiffe".into(),
            },
        ),
        ("".into(), SpiffeIdError::Scheme { found: "".into() }),
        (
            "spiffe://".into(),
            SpiffeIdError::TrustDomain(TrustDomainError::Empty),
        ),
        (
            format!("spiffe://{TD}:8443/ns/a/dc/b/svc/c"),
            SpiffeIdError::TrustDomain(TrustDomainError::InvalidChar {
                ch: ':',
                position: TD.len(),
            }),
        ),
        (
            format!("spiffe://user@{TD}/ns/a/dc/b/svc/c"),
            SpiffeIdError::UserInfo,
        ),
        (
            format!("spiffe://{TD}/ns/a/dc/b/svc/c?x=1"),
            SpiffeIdError::QueryOrFragment,
        ),
        (
            format!("spiffe://{TD}/ns/a/dc/b/svc/c#frag"),
            SpiffeIdError::QueryOrFragment,
        ),
        (
            "spiffe://nodots".into(),
            SpiffeIdError::UndottedSigningDomain("nodots".into()),
        ),
        (
            format!("spiffe://{TD}/"),
            SpiffeIdError::UnexpectedSegment {
                position: 0,
                found: "".into(),
                expected: "\"ap\", \"ns\", \"agent\" or \"gateway\"",
            },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc"),
            SpiffeIdError::MissingSegment { expected: "svc" },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1"),
            SpiffeIdError::MissingSegment { expected: "svc" },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc//svc/web"),
            SpiffeIdError::EmptySegment { segment: "dc" },
        ),
        (
            format!("spiffe://{TD}/ns//dc/dc1/svc/web"),
            SpiffeIdError::EmptySegment { segment: "ns" },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/"),
            SpiffeIdError::EmptySegment { segment: "svc" },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/web/"),
            SpiffeIdError::TrailingSegments {
                count: 1,
                shape: "a service identity",
            },
        ),
        (
            format!("spiffe://{TD}/ns/default/datacenter/dc1/svc/web"),
            SpiffeIdError::UnexpectedSegment {
                position: 2,
                found: "datacenter".into(),
                expected: "\"dc\"",
            },
        ),
        (
            format!("spiffe://{TD}/NS/default/dc/dc1/svc/web"),
            SpiffeIdError::UnexpectedSegment {
                position: 0,
                found: "NS".into(),
                expected: "\"ap\", \"ns\", \"agent\" or \"gateway\"",
            },
        ),
        (
            format!("spiffe://{TD}/ap/p1/agent/server/dc/dc1"),
            SpiffeIdError::PartitionedServer,
        ),
        (
            format!("spiffe://{TD}/agent/robot/dc/dc1"),
            SpiffeIdError::UnexpectedSegment {
                position: 1,
                found: "robot".into(),
                expected: "\"client\" or \"server\"",
            },
        ),
        (
            format!("spiffe://{TD}/gateway/ingress/dc/dc1"),
            SpiffeIdError::UnexpectedSegment {
                position: 1,
                found: "ingress".into(),
                expected: "\"mesh\"",
            },
        ),
        (
            format!("spiffe://{TD}/ap/p1/ns/n/identity/x"),
            SpiffeIdError::UnexpectedSegment {
                position: 4,
                found: "identity".into(),
                expected: "\"dc\"",
            },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/web%2"),
            SpiffeIdError::BadEscape {
                segment: "svc",
                value: "web%2".into(),
            },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/%ff%fe"),
            SpiffeIdError::BadEscape {
                segment: "svc",
                value: "%ff%fe".into(),
            },
        ),
        (
            format!("spiffe://{TD}/ns/default/dc/dc1/svc/a%0ab"),
            SpiffeIdError::ControlChar {
                segment: "svc",
                value: "a\nb".into(),
            },
        ),
        (
            format!("spiffe://{TD}/ap/%00/ns/default/dc/dc1/svc/web"),
            SpiffeIdError::ControlChar {
                segment: "ap",
                value: "\0".into(),
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(SpiffeId::parse(&input), Err(want), "{input:?}");
    }
}

#[test]
fn error_messages_read_well() {
    let err =
        SpiffeId::parse(&format!("spiffe://{TD}/ns/default/dc//svc/web")).expect_err("empty dc");
    assert_eq!(err.to_string(), "the dc segment of the SPIFFE ID is empty");
    let err = SpiffeId::parse("http://x").expect_err("scheme");
    assert_eq!(
        err.to_string(),
        "SPIFFE ID must start with \"spiffe://\", got scheme \"http\""
    );
}

#[test]
fn constructors_validate_values() {
    assert_eq!(
        ServiceId::new(td(), "default", "", "web"),
        Err(SpiffeIdError::EmptySegment { segment: "dc" })
    );
    assert_eq!(
        ServiceId::new(td(), "default", "dc1", "a\u{7f}"),
        Err(SpiffeIdError::ControlChar {
            segment: "svc",
            value: "a\u{7f}".into()
        })
    );
    assert!(AgentId::new(td(), "dc1", "").is_err());
    assert!(ServerId::new(td(), "").is_err());
    assert!(MeshGatewayId::new(td(), "").is_err());
}

#[test]
fn signing_id_can_sign_only_its_trust_domain() {
    let signing = SigningId::new(td());
    assert!(signing.can_sign(&service("default", "dc1", "web")));
    let upper = SpiffeId::parse(&format!(
        "spiffe://{}/ns/default/dc/dc1/svc/web",
        TD.to_uppercase()
    ))
    .expect("valid");
    assert!(signing.can_sign(&upper));
    let other = SpiffeId::parse("spiffe://other.consul/ns/default/dc/dc1/svc/web").expect("valid");
    assert!(!signing.can_sign(&other));
}

#[test]
fn eq_ignoring_trust_domain() {
    let a = ServiceId::new(td(), "default", "dc1", "web").expect("valid");
    let b = ServiceId::new(
        TrustDomain::new("other.consul").expect("ok"),
        "default",
        "DC1",
        "Web",
    )
    .expect("valid");
    assert!(a.eq_ignoring_trust_domain(&b));
    let c = ServiceId::new(td(), "default", "dc1", "api").expect("valid");
    assert!(!a.eq_ignoring_trust_domain(&c));
}

/// A small deterministic generator so the fuzz below needs no extra crate and always runs the same way.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_inputs_never_panic_and_accepted_ones_round_trip() {
    let seeds = [
        format!("spiffe://{TD}/ns/default/dc/dc1/svc/web"),
        format!("spiffe://{TD}/ap/p/ns/n/dc/d/svc/s"),
        format!("spiffe://{TD}/agent/client/dc/dc1/id/n"),
        format!("spiffe://{TD}/agent/server/dc/dc1"),
        format!("spiffe://{TD}/gateway/mesh/dc/dc1"),
        format!("spiffe://{TD}"),
    ];
    let alphabet: Vec<char> = "/%:@?#.-_aA0zé\u{0}\u{7f}ns dcsvcap%2F%zz\u{1F600}"
        .chars()
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..=rng.below(4) {
            match rng.below(3) {
                0 if !chars.is_empty() => {
                    let i = rng.below(chars.len());
                    chars.remove(i);
                }
                1 => {
                    let i = rng.below(chars.len() + 1);
                    chars.insert(i, alphabet[rng.below(alphabet.len())]);
                }
                _ if !chars.is_empty() => {
                    let i = rng.below(chars.len());
                    chars[i] = alphabet[rng.below(alphabet.len())];
                }
                _ => {}
            }
        }
        let input: String = chars.into_iter().collect();
        if let Ok(id) = SpiffeId::parse(&input) {
            accepted += 1;
            let again = SpiffeId::parse(&id.to_string())
                .unwrap_or_else(|e| panic!("{input:?} formatted as {id} which fails: {e}"));
            assert_eq!(again, id, "{input:?}");
        }
    }
    assert!(
        accepted > 100,
        "the fuzz should also exercise accepted inputs ({accepted})"
    );
}
