//! Tests for intentions: precedence table, validation messages, matching order and decisions.

use super::*;

fn entry(ns: &str, name: &str, sources: Vec<SourceIntention>) -> ServiceIntentionsEntry {
    let mut e = ServiceIntentionsEntry::new(name);
    e.namespace = ns.into();
    e.sources = sources;
    e
}

fn src(ns: &str, name: &str, action: IntentionAction) -> SourceIntention {
    let mut s = SourceIntention::l4(name, action);
    s.namespace = ns.into();
    s
}

use IntentionAction::{Allow, Deny};

#[test]
fn precedence_table_matches_consul() {
    // (source ns, source name, dest ns, dest name, precedence)
    let table = [
        ("default", "web", "default", "db", 9),
        ("default", "*", "default", "db", 8),
        ("*", "*", "default", "db", 7),
        ("default", "web", "default", "*", 6),
        ("default", "*", "default", "*", 5),
        ("*", "*", "default", "*", 4),
        ("default", "web", "*", "*", 3),
        ("default", "*", "*", "*", 2),
        ("*", "*", "*", "*", 1),
        // An empty namespace means `default`.
        ("", "web", "", "db", 9),
        ("", "*", "", "*", 5),
    ];
    for (sns, sname, dns, dname, want) in table {
        assert_eq!(
            precedence(sns, sname, dns, dname),
            want,
            "{sns}/{sname} => {dns}/{dname}"
        );
    }
}

#[test]
fn normalize_sets_precedence_sorts_and_uppercases() {
    let mut e = entry(
        "",
        "db",
        vec![
            src("*", "*", Deny),
            src("", "*", Allow),
            src("", "web", Allow),
            SourceIntention {
                name: "api".into(),
                permissions: vec![IntentionPermission {
                    action: Allow,
                    http: Some(IntentionHttpPermission {
                        methods: vec!["get".into(), "Post".into()],
                        ..Default::default()
                    }),
                    jwt: None,
                }],
                ..Default::default()
            },
        ],
    );
    e.kind = String::new();
    e.normalize();
    assert_eq!(e.kind, "service-intentions");
    let order: Vec<(&str, i32)> = e
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.precedence))
        .collect();
    assert_eq!(order, [("web", 9), ("api", 9), ("*", 8), ("*", 7)]);
    let methods = &e.sources[1].permissions[0]
        .http
        .as_ref()
        .expect("http")
        .methods;
    assert_eq!(methods, &["GET", "POST"]);
    assert_eq!(e.validate(), Ok(()));
}

fn l7(http: IntentionHttpPermission) -> SourceIntention {
    SourceIntention {
        name: "web".into(),
        permissions: vec![IntentionPermission {
            action: Allow,
            http: Some(http),
            jwt: None,
        }],
        ..Default::default()
    }
}

#[test]
fn validation_errors_use_consul_wording() {
    let ok = || src("", "web", Allow);
    let with = |f: &dyn Fn(&mut ServiceIntentionsEntry)| {
        let mut e = entry("", "db", vec![ok()]);
        f(&mut e);
        e
    };
    let cases: Vec<(ServiceIntentionsEntry, &str, &str)> = vec![
        (with(&|e| e.name.clear()), "Name", "Name is required"),
        (
            with(&|e| e.name = "d*".into()),
            "Name",
            "Name: wildcard character '*' cannot be used with partial values",
        ),
        (
            with(&|e| e.namespace = "*".into()),
            "Name",
            "Name: exact value cannot follow wildcard namespace",
        ),
        (
            with(&|e| e.namespace = "n*".into()),
            "Namespace",
            "Namespace: wildcard character '*' cannot be used with partial values",
        ),
        (
            with(&|e| e.partition = "*".into()),
            "Partition",
            "Partition: cannot use wildcard '*' in partition",
        ),
        (
            with(&|e| e.sources.clear()),
            "Sources",
            "At least one source is required",
        ),
        (
            with(&|e| e.sources[0].name.clear()),
            "Sources[0].Name",
            "Sources[0].Name is required",
        ),
        (
            with(&|e| e.sources[0].name = "w*".into()),
            "Sources[0].Name",
            "Sources[0].Name: wildcard character '*' cannot be used with partial values",
        ),
        (
            with(&|e| e.sources[0].namespace = "*".into()),
            "Sources[0].Name",
            "Sources[0].Name: exact value cannot follow wildcard namespace",
        ),
        (
            with(&|e| e.sources[0].peer = "p*".into()),
            "Sources[0].Peer",
            "Sources[0].Peer: cannot use wildcard '*' in peer",
        ),
        (
            with(&|e| e.sources[0].sameness_group = "*".into()),
            "Sources[0].SamenessGroup",
            "Sources[0].SamenessGroup: cannot use wildcard '*' in sameness group",
        ),
        (
            with(&|e| {
                e.sources[0].peer = "p".into();
                e.sources[0].partition = "ap".into();
            }),
            "Sources[0].Peer",
            "Sources[0].Peer: cannot set Peer and Partition at the same time.",
        ),
        (
            with(&|e| {
                e.sources[0].sameness_group = "g".into();
                e.sources[0].partition = "ap".into();
            }),
            "Sources[0].SamenessGroup",
            "Sources[0].SamenessGroup: cannot set SamenessGroup and Partition at the same time",
        ),
        (
            with(&|e| {
                e.sources[0].sameness_group = "g".into();
                e.sources[0].peer = "p".into();
            }),
            "Sources[0].SamenessGroup",
            "Sources[0].SamenessGroup: cannot set SamenessGroup and Peer at the same time",
        ),
        (
            with(&|e| e.sources[0].description = "x".repeat(513)),
            "Sources[0].Description",
            "Sources[0].Description exceeds maximum length 512",
        ),
        (
            with(&|e| e.sources[0].action = None),
            "Sources[0].Action",
            "Sources[0].Action must be set to 'allow' or 'deny'",
        ),
        (
            with(&|e| {
                let mut s = l7(IntentionHttpPermission {
                    path_prefix: "/".into(),
                    ..Default::default()
                });
                s.action = Some(Allow);
                e.sources[0] = s;
            }),
            "Sources[0].Action",
            "Sources[0].Action must be omitted if Permissions are specified",
        ),
        (
            with(&|e| {
                e.name = "*".into();
                e.sources[0] = l7(IntentionHttpPermission {
                    path_prefix: "/".into(),
                    ..Default::default()
                });
            }),
            "Sources[0].Permissions",
            "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission::default());
                e.sources[0].permissions[0].http = None;
            }),
            "Sources[0].Permissions[0].HTTP",
            "Sources[0].Permissions[0].HTTP is required",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    path_exact: "api".into(),
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.PathExact",
            "Sources[0].Permissions[0].HTTP.PathExact doesn't start with '/': \"api\"",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    path_prefix: "api".into(),
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.PathPrefix",
            "Sources[0].Permissions[0].HTTP.PathPrefix doesn't start with '/': \"api\"",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    path_prefix: "/a".into(),
                    path_regex: "/b.*".into(),
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP",
            "Sources[0].Permissions[0].HTTP should only contain at most one of PathExact, PathPrefix, or PathRegex",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    header: vec![IntentionHttpHeaderPermission {
                        exact: "x".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.Header[0]",
            "Sources[0].Permissions[0].HTTP.Header[0] missing required Name field",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    header: vec![IntentionHttpHeaderPermission {
                        name: "x-a".into(),
                        present: true,
                        exact: "x".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.Header[0]",
            "Sources[0].Permissions[0].HTTP.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    methods: vec!["FETCH".into()],
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.Methods",
            "Sources[0].Permissions[0].HTTP.Methods contains an invalid method \"FETCH\"",
        ),
        (
            with(&|e| {
                e.sources[0] = l7(IntentionHttpPermission {
                    methods: vec!["GET".into(), "get".into()],
                    ..Default::default()
                })
            }),
            "Sources[0].Permissions[0].HTTP.Methods",
            "Sources[0].Permissions[0].HTTP.Methods contains \"GET\" more than once",
        ),
        (
            with(&|e| e.sources[0] = l7(IntentionHttpPermission::default())),
            "Sources[0].Permissions[0].HTTP",
            "Sources[0].Permissions[0].HTTP should not be empty",
        ),
        (
            with(&|e| e.sources.push(src("default", "web", Deny))),
            "Sources[1]",
            "Sources[1] defines \"web\" more than once",
        ),
        (
            with(&|e| {
                let mut a = src("", "web", Allow);
                a.peer = "p1".into();
                let b = a.clone();
                e.sources = vec![a, b];
            }),
            "Sources[1]",
            "Sources[1] defines peer(\"p1\") \"web\" more than once",
        ),
        (
            with(&|e| {
                e.jwt = Some(IntentionJwtRequirement {
                    providers: vec![IntentionJwtProvider::default()],
                })
            }),
            "JWT.Providers[0].Name",
            "JWT provider name is required",
        ),
        (
            with(&|e| {
                e.meta.insert("k".repeat(129), "v".into());
            }),
            "Meta",
            Box::leak(
                format!("Meta key {:?} exceeds maximum length 128", "k".repeat(129))
                    .into_boxed_str(),
            ),
        ),
        (
            with(&|e| {
                for i in 0..65 {
                    e.meta.insert(format!("k{i}"), String::new());
                }
            }),
            "Meta",
            "Meta exceeds maximum element count 64",
        ),
    ];
    for (e, field, message) in cases {
        let err = e.validate().expect_err(message);
        assert_eq!(err.message, message);
        assert_eq!(err.to_string(), message);
        assert_eq!(err.field, field, "{message}");
    }
}

#[test]
fn same_name_from_a_peer_or_other_namespace_is_not_a_duplicate() {
    let mut peered = src("", "web", Deny);
    peered.peer = "p1".into();
    let e = entry(
        "",
        "db",
        vec![src("", "web", Allow), peered, src("other", "web", Allow)],
    );
    assert_eq!(e.validate(), Ok(()));
}

#[test]
fn json_shapes_match_consul() {
    let body = r#"{
        "Kind": "service-intentions",
        "Name": "db",
        "Sources": [
            {"Name": "web", "Action": "allow"},
            {"Name": "*", "Action": "deny", "Type": "consul", "Description": "d"},
            {"Name": "api", "Permissions": [{"Action": "deny", "HTTP": {"PathPrefix": "/admin", "Methods": ["get"]}}]},
            {"Name": "ext", "Action": "", "Peer": "p1", "Permissions": [{"Action": "allow", "HTTP": {"Header": [{"Name": "x", "Present": true}]}}]}
        ],
        "Meta": {"team": "a"}
    }"#;
    let mut e: ServiceIntentionsEntry = serde_json::from_str(body).expect("decode");
    e.normalize();
    assert_eq!(e.validate(), Ok(()));
    let ixns = e.to_intentions();
    let json = serde_json::to_value(&ixns[0]).expect("encode");
    assert_eq!(
        json,
        serde_json::json!({
            "Description": "",
            "SourceNS": "default",
            "SourceName": "web",
            "DestinationNS": "default",
            "DestinationName": "db",
            "SourceType": "consul",
            "Action": "allow",
            "Meta": {"team": "a"},
            "Precedence": 9,
            "CreateIndex": 0,
            "ModifyIndex": 0
        })
    );
    let l7 = serde_json::to_value(&ixns[1]).expect("encode");
    assert_eq!(l7["SourceName"], "api");
    assert!(l7.get("Action").is_none());
    assert_eq!(l7["Permissions"][0]["HTTP"]["Methods"][0], "GET");
    let peer = serde_json::to_value(&ixns[2]).expect("encode");
    assert_eq!(peer["SourcePeer"], "p1");
    let src_json = serde_json::to_value(&e.sources[0]).expect("encode");
    assert_eq!(
        src_json,
        serde_json::json!({"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"})
    );
    // Round trip of the flat shape.
    let back: Intention = serde_json::from_value(json).expect("decode flat");
    assert_eq!(back, ixns[0]);
}

#[test]
fn bad_action_or_type_is_rejected_at_decode_with_consul_wording() {
    let err = serde_json::from_str::<SourceIntention>(r#"{"Name":"web","Action":"permit"}"#)
        .expect_err("bad action");
    assert!(
        err.to_string()
            .starts_with("Action must be set to 'allow' or 'deny'"),
        "{err}"
    );
    let err =
        serde_json::from_str::<SourceIntention>(r#"{"Name":"web","Action":"allow","Type":"aws"}"#)
            .expect_err("bad type");
    assert!(
        err.to_string().starts_with("Type must be set to 'consul'"),
        "{err}"
    );
}

fn intentions(entries: &mut [ServiceIntentionsEntry]) -> Vec<Intention> {
    entries
        .iter_mut()
        .flat_map(|e| {
            e.normalize();
            e.validate().expect("valid fixture");
            e.to_intentions()
        })
        .collect()
}

fn fixture() -> Vec<Intention> {
    intentions(&mut [
        entry("", "db", vec![src("", "web", Allow), src("", "*", Deny)]),
        entry("", "*", vec![src("", "web", Deny), src("", "api", Allow)]),
        entry("*", "*", vec![src("*", "*", Deny)]),
        entry("other", "db", vec![src("", "web", Allow)]),
    ])
}

fn names(v: &[&Intention]) -> Vec<String> {
    v.iter()
        .map(|i| {
            format!(
                "{}=>{}:{}",
                i.source_string(),
                i.destination_string(),
                i.precedence
            )
        })
        .collect()
}

#[test]
fn match_by_destination_is_in_evaluation_order() {
    let all = fixture();
    let got = match_intentions(
        &all,
        MatchType::Destination,
        &IntentionTarget::service("db"),
    );
    assert_eq!(
        names(&got),
        [
            "default/web=>default/db:9",
            "default/*=>default/db:8",
            "default/api=>default/*:6",
            "default/web=>default/*:6",
            "*/*=>*/*:1",
        ]
    );
    let other_ns = IntentionTarget::service("db").in_namespace("other");
    assert_eq!(
        names(&match_intentions(&all, MatchType::Destination, &other_ns)),
        ["default/web=>other/db:9", "*/*=>*/*:1"]
    );
    let other_partition = IntentionTarget::service("db").in_partition("ap1");
    assert!(match_intentions(&all, MatchType::Destination, &other_partition).is_empty());
}

#[test]
fn match_by_source() {
    let all = fixture();
    let got = match_intentions(&all, MatchType::Source, &IntentionTarget::service("web"));
    assert_eq!(
        names(&got),
        [
            "default/web=>default/db:9",
            "default/web=>other/db:9",
            "default/*=>default/db:8",
            "default/web=>default/*:6",
            "*/*=>*/*:1",
        ]
    );
    let peered = IntentionTarget::service("web").from_peer("p1");
    assert!(match_intentions(&all, MatchType::Source, &peered).is_empty());
}

const ACL_OFF: DefaultPolicy = DefaultPolicy {
    default_intention_policy: None,
    acl: AclDefault::Disabled,
};

#[test]
fn authorize_first_match_wins() {
    let all = fixture();
    let db = IntentionTarget::service("db");
    let cases = [
        (
            "web",
            true,
            "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)",
        ),
        (
            "api",
            false,
            "Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)",
        ),
        (
            "other",
            false,
            "Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)",
        ),
    ];
    for (source, allowed, reason) in cases {
        let d = authorize(&all, &IntentionTarget::service(source), &db, &ACL_OFF);
        assert_eq!(d.allowed, allowed, "{source}");
        assert_eq!(d.reason, reason);
        assert!(d.matched.is_some());
    }
    // To a destination with only the */* and */* entries.
    let cache = IntentionTarget::service("cache");
    let d = authorize(&all, &IntentionTarget::service("api"), &cache, &ACL_OFF);
    assert!(d.allowed);
    assert_eq!(
        d.matched
            .as_ref()
            .map(|m| (m.source.as_str(), m.precedence)),
        Some(("default/api", 6))
    );
    let d = authorize(&all, &IntentionTarget::service("batch"), &cache, &ACL_OFF);
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        "Matched L4 intention: */* => */* (Precedence: 1, Action: DENY)"
    );
}

#[test]
fn default_decision_follows_policy_then_acls() {
    let none: Vec<Intention> = Vec::new();
    let web = IntentionTarget::service("web");
    let db = IntentionTarget::service("db");
    let cases = [
        (
            None,
            AclDefault::Disabled,
            true,
            "Default behavior configured by ACLs",
        ),
        (
            None,
            AclDefault::Allow,
            true,
            "Default behavior configured by ACLs",
        ),
        (
            None,
            AclDefault::Deny,
            false,
            "Default behavior configured by ACLs",
        ),
        (
            Some(Allow),
            AclDefault::Deny,
            true,
            "Default intention policy",
        ),
        (
            Some(Deny),
            AclDefault::Disabled,
            false,
            "Default intention policy",
        ),
    ];
    for (policy, acl, allowed, reason) in cases {
        let defaults = DefaultPolicy {
            default_intention_policy: policy,
            acl,
        };
        let d = authorize(&none, &web, &db, &defaults);
        assert_eq!((d.allowed, d.reason.as_str()), (allowed, reason));
        assert_eq!(d.matched, None);
        assert_eq!(check(&none, &web, &db, &defaults), allowed);
    }
}

#[test]
fn l7_intentions_deny_at_l4() {
    let mut e = entry(
        "",
        "db",
        vec![l7(IntentionHttpPermission {
            path_prefix: "/".into(),
            ..Default::default()
        })],
    );
    let all = intentions(std::slice::from_mut(&mut e));
    let d = authorize(
        &all,
        &IntentionTarget::service("web"),
        &IntentionTarget::service("db"),
        &ACL_OFF,
    );
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        "Matched L7 intention: default/web => default/db (Precedence: 9, Permissions: 1)"
    );
    assert!(!check(
        &all,
        &IntentionTarget::service("web"),
        &IntentionTarget::service("db"),
        &ACL_OFF
    ));
}

#[test]
fn peer_and_sameness_group_sources_only_match_their_own_kind() {
    let mut peered = src("", "web", Allow);
    peered.peer = "p1".into();
    let mut group = src("", "web", Allow);
    group.sameness_group = "g".into();
    let mut e = entry("", "db", vec![peered, group]);
    let all = intentions(std::slice::from_mut(&mut e));
    let db = IntentionTarget::service("db");
    let deny_acl = DefaultPolicy {
        default_intention_policy: None,
        acl: AclDefault::Deny,
    };
    let local = authorize(&all, &IntentionTarget::service("web"), &db, &deny_acl);
    assert!(!local.allowed, "{}", local.reason);
    let from_peer = authorize(
        &all,
        &IntentionTarget::service("web").from_peer("p1"),
        &db,
        &deny_acl,
    );
    assert!(from_peer.allowed);
    assert_eq!(
        from_peer.reason,
        "Matched L4 intention: peer:p1/default/web => default/db (Precedence: 9, Action: ALLOW)"
    );
}

#[test]
fn authorize_uri_checks_shape_and_partition() {
    let all = fixture();
    let db = IntentionTarget::service("db");
    let td = "11111111-2222-3333-4444-555555555555.consul";
    let d = authorize_uri(
        &all,
        &format!("spiffe://{td}/ns/default/dc/dc1/svc/web"),
        &db,
        &ACL_OFF,
    )
    .expect("valid");
    assert!(d.allowed);
    // The trust domain and datacenter are not checked here.
    let d = authorize_uri(
        &all,
        "spiffe://other.consul/ns/default/dc/dc9/svc/web",
        &db,
        &ACL_OFF,
    )
    .expect("valid");
    assert!(d.allowed);
    let err = authorize_uri(&all, "not a uri", &db, &ACL_OFF).expect_err("invalid");
    assert!(matches!(err, AuthorizeError::InvalidUri(_)));
    assert_eq!(
        err.to_string(),
        "ClientCertURI not a valid Connect identifier"
    );
    let err = authorize_uri(
        &all,
        &format!("spiffe://{td}/agent/client/dc/dc1/id/n1"),
        &db,
        &ACL_OFF,
    )
    .expect_err("agent");
    assert_eq!(err, AuthorizeError::NotAService);
    let err = authorize_uri(
        &all,
        &format!("spiffe://{td}/ap/ap1/ns/default/dc/dc1/svc/web"),
        &db,
        &ACL_OFF,
    )
    .expect_err("partition");
    assert_eq!(
        err.to_string(),
        "Mismatched partitions: \"ap1\" != \"default\""
    );
}

#[test]
fn display_with_legacy_id() {
    let mut ixn = fixture().remove(0);
    ixn.id = "8f246b77-f3e1-ff88-5b48-8ec93abf3e05".into();
    assert_eq!(
        ixn.to_string(),
        "default/web => default/db (ID: 8f246b77-f3e1-ff88-5b48-8ec93abf3e05, Precedence: 9, Action: ALLOW)"
    );
    ixn.source_partition = "ap1".into();
    assert_eq!(ixn.source_string(), "ap1/default/web");
}
