//! Consul's ACL rule language: parsing policies (HCL, or the equivalent JSON) into a [`RuleSet`],
//! merging rule sets, and deciding a request.
//!
//! ```text
//! service "web" { policy = "write"  intentions = "read" }
//! service_prefix "" { policy = "read" }
//! key_prefix "app/" { policy = "list" }
//! operator = "read"
//! ```
//!
//! Lookups follow Consul: an exact rule for the name wins, else the longest matching prefix rule; no
//! rule means "no opinion" and the ACL default decides. When several policies name the same rule, the
//! merged disposition is `deny` if any says so, else the strongest of `write`, `list`, `read`. `mesh` and
//! `peering` fall back to `operator` when unset; a `service` rule without `intentions` implies
//! `intentions = "read"` for `read`/`write` and `deny` for `deny`.

use std::collections::BTreeMap;
use std::fmt;

use hcl::edit::Span as _;
use hcl::edit::expr::Expression;
use hcl::edit::structure::{BlockLabel, Body, Structure};
use serde_json::Value;

/// A rule's disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// `deny`.
    Deny,
    /// `read`.
    Read,
    /// `list` (key rules only): read plus listing.
    List,
    /// `write`: everything.
    Write,
}

impl Level {
    fn parse(s: &str, allow_list: bool) -> Option<Level> {
        match s {
            "deny" => Some(Level::Deny),
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "list" if allow_list => Some(Level::List),
            _ => None,
        }
    }

    /// Consul's merge precedence: deny, then write, list, read.
    fn merge(self, other: Level) -> Level {
        let rank = |l: Level| match l {
            Level::Deny => 3,
            Level::Write => 2,
            Level::List => 1,
            Level::Read => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    fn grants(self, access: Access) -> bool {
        match self {
            Level::Write => true,
            Level::List => matches!(access, Access::Read | Access::List),
            Level::Read => access == Access::Read,
            Level::Deny => false,
        }
    }
}

/// What a request wants to do.
#[allow(dead_code)] // `List` is Consul's key-list access; no endpoint here needs it yet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read.
    Read,
    /// List (key prefixes).
    List,
    /// Write.
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::List => "list",
            Access::Write => "write",
        })
    }
}

/// The kind of resource a rule governs (Consul's ACL resources). Policies may name every one; some
/// govern APIs this server does not have (events, sessions, prepared queries, the keyring).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `acl`.
    Acl,
    /// `agent` / `agent_prefix`.
    Agent,
    /// `event` / `event_prefix`.
    Event,
    /// `service` rules' `intentions`.
    Intentions,
    /// `key` / `key_prefix`.
    Key,
    /// `keyring`.
    Keyring,
    /// `mesh` (falls back to `operator`).
    Mesh,
    /// `node` / `node_prefix`.
    Node,
    /// `operator`.
    Operator,
    /// `peering` (falls back to `operator`).
    Peering,
    /// `query` / `query_prefix`.
    Query,
    /// `service` / `service_prefix`.
    Service,
    /// `session` / `session_prefix`.
    Session,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Acl => "acl",
            Resource::Agent => "agent",
            Resource::Event => "event",
            Resource::Intentions => "intention",
            Resource::Key => "key",
            Resource::Keyring => "keyring",
            Resource::Mesh => "mesh",
            Resource::Node => "node",
            Resource::Operator => "operator",
            Resource::Peering => "peering",
            Resource::Query => "query",
            Resource::Service => "service",
            Resource::Session => "session",
        })
    }
}

/// Exact and prefix rules of one named resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Named {
    exact: BTreeMap<String, Level>,
    prefix: BTreeMap<String, Level>,
}

impl Named {
    fn add(&mut self, name: &str, prefix: bool, level: Level) {
        let map = if prefix {
            &mut self.prefix
        } else {
            &mut self.exact
        };
        map.entry(name.to_owned())
            .and_modify(|l| *l = l.merge(level))
            .or_insert(level);
    }

    fn merge_from(&mut self, other: &Named) {
        for (k, l) in &other.exact {
            self.add(k, false, *l);
        }
        for (k, l) in &other.prefix {
            self.add(k, true, *l);
        }
    }

    /// The exact rule, else the longest prefix rule that matches.
    fn lookup(&self, name: &str) -> Option<Level> {
        if let Some(l) = self.exact.get(name) {
            return Some(*l);
        }
        self.prefix
            .iter()
            .filter(|(p, _)| name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, l)| *l)
    }
}

/// The rules of one or more policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleSet {
    acl: Option<Level>,
    keyring: Option<Level>,
    mesh: Option<Level>,
    operator: Option<Level>,
    peering: Option<Level>,
    agent: Named,
    event: Named,
    intentions: Named,
    key: Named,
    node: Named,
    query: Named,
    service: Named,
    session: Named,
}

fn merge_opt(a: &mut Option<Level>, b: Option<Level>) {
    if let Some(b) = b {
        *a = Some(a.map_or(b, |a| a.merge(b)));
    }
}

impl RuleSet {
    /// Adds another rule set's rules, with Consul's merge precedence.
    pub(crate) fn merge_from(&mut self, other: &RuleSet) {
        merge_opt(&mut self.acl, other.acl);
        merge_opt(&mut self.keyring, other.keyring);
        merge_opt(&mut self.mesh, other.mesh);
        merge_opt(&mut self.operator, other.operator);
        merge_opt(&mut self.peering, other.peering);
        self.agent.merge_from(&other.agent);
        self.event.merge_from(&other.event);
        self.intentions.merge_from(&other.intentions);
        self.key.merge_from(&other.key);
        self.node.merge_from(&other.node);
        self.query.merge_from(&other.query);
        self.service.merge_from(&other.service);
        self.session.merge_from(&other.session);
    }

    /// The rules of a service identity (and of the `builtin/service` templated policy).
    pub(crate) fn service_identity(name: &str) -> RuleSet {
        let mut r = RuleSet::default();
        r.add_service(name, false, Level::Write, None);
        r.add_service(&format!("{name}-sidecar-proxy"), false, Level::Write, None);
        r.add_service("", true, Level::Read, None);
        r.node.add("", true, Level::Read);
        r
    }

    /// The rules of a node identity (and of the `builtin/node` templated policy).
    pub(crate) fn node_identity(name: &str) -> RuleSet {
        let mut r = RuleSet::default();
        r.node.add(name, false, Level::Write);
        r.add_service("", true, Level::Read, None);
        r
    }

    /// The rules of the `builtin/dns` templated policy.
    pub(crate) fn dns() -> RuleSet {
        let mut r = RuleSet::default();
        r.node.add("", true, Level::Read);
        r.add_service("", true, Level::Read, None);
        r.query.add("", true, Level::Read);
        r
    }

    fn add_service(&mut self, name: &str, prefix: bool, level: Level, intentions: Option<Level>) {
        self.service.add(name, prefix, level);
        let implied = intentions.unwrap_or(match level {
            Level::Deny => Level::Deny,
            _ => Level::Read,
        });
        self.intentions.add(name, prefix, implied);
    }

    /// The rule that decides `access` to `name`, if any (`None`: the ACL default decides).
    pub(crate) fn decide(&self, resource: Resource, name: &str, access: Access) -> Option<bool> {
        let level = match resource {
            Resource::Acl => self.acl,
            Resource::Keyring => self.keyring,
            Resource::Operator => self.operator,
            Resource::Mesh => self.mesh.or(self.operator),
            Resource::Peering => self.peering.or(self.operator),
            Resource::Agent => self.agent.lookup(name),
            Resource::Event => self.event.lookup(name),
            Resource::Intentions => self.intentions.lookup(name),
            Resource::Key => self.key.lookup(name),
            Resource::Node => self.node.lookup(name),
            Resource::Query => self.query.lookup(name),
            Resource::Service => self.service.lookup(name),
            Resource::Session => self.session.lookup(name),
        }?;
        Some(level.grants(access))
    }

    /// Whether any key rule at or below `prefix` denies writing (Consul's `KeyWritePrefix` for
    /// recursive deletes).
    pub(crate) fn key_write_prefix(&self, prefix: &str) -> Option<bool> {
        let own = self.key.lookup(prefix)?;
        if !own.grants(Access::Write) {
            return Some(false);
        }
        let below_denied = self
            .key
            .exact
            .iter()
            .chain(self.key.prefix.iter())
            .any(|(k, l)| k.starts_with(prefix) && !l.grants(Access::Write));
        Some(!below_denied)
    }

    /// `global-management`: write on everything.
    pub(crate) fn management() -> RuleSet {
        let mut r = RuleSet {
            acl: Some(Level::Write),
            keyring: Some(Level::Write),
            mesh: Some(Level::Write),
            operator: Some(Level::Write),
            peering: Some(Level::Write),
            ..RuleSet::default()
        };
        for named in [
            &mut r.agent,
            &mut r.event,
            &mut r.intentions,
            &mut r.key,
            &mut r.node,
            &mut r.query,
            &mut r.service,
            &mut r.session,
        ] {
            named.add("", true, Level::Write);
        }
        r
    }
}

/// The rules of the builtin `global-management` policy, as Consul shows them.
pub(crate) const MANAGEMENT_RULES: &str = r#"
acl = "write"
agent_prefix "" {
  policy = "write"
}
event_prefix "" {
  policy = "write"
}
key_prefix "" {
  policy = "write"
}
keyring = "write"
node_prefix "" {
  policy = "write"
}
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" {
  policy = "write"
}
service_prefix "" {
  policy = "write"
  intentions = "write"
}
session_prefix "" {
  policy = "write"
}
"#;

/// The rules of the builtin `builtin/global-read-only` policy.
pub(crate) const READ_ONLY_RULES: &str = r#"
acl = "read"
agent_prefix "" {
  policy = "read"
}
event_prefix "" {
  policy = "read"
}
key_prefix "" {
  policy = "read"
}
keyring = "read"
node_prefix "" {
  policy = "read"
}
operator = "read"
mesh = "read"
peering = "read"
query_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "read"
  intentions = "read"
}
session_prefix "" {
  policy = "read"
}
"#;

/// Why a policy's rules are unusable. The message names the line (and column) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {msg}")]
pub(crate) struct RulesError {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column.
    pub(crate) col: usize,
    /// What is wrong.
    pub(crate) msg: String,
}

fn at(src: &str, offset: Option<usize>, msg: impl Into<String>) -> RulesError {
    let offset = offset.unwrap_or(0).min(src.len());
    let before = src.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    RulesError {
        line,
        col,
        msg: msg.into(),
    }
}

/// Parses policy rules: HCL, or JSON when the text starts with `{`. Empty rules are an empty set.
pub(crate) fn parse(src: &str) -> Result<RuleSet, RulesError> {
    if src.trim_start().starts_with('{') {
        return parse_json(src);
    }
    let body = hcl::edit::parser::parse_body(src).map_err(|e| RulesError {
        line: e.location().line(),
        col: e.location().column(),
        msg: e.message().to_owned(),
    })?;
    let mut rules = RuleSet::default();
    parse_body(src, &body, &mut rules)?;
    Ok(rules)
}

const TOP_LEVEL: [&str; 5] = ["acl", "keyring", "mesh", "operator", "peering"];
const NAMED: [&str; 8] = [
    "agent", "event", "key", "node", "query", "service", "session", "",
];

fn named_kind(ident: &str) -> Option<(&'static str, bool)> {
    let (base, prefix) = match ident.strip_suffix("_prefix") {
        Some(b) => (b, true),
        None => (ident, false),
    };
    NAMED
        .iter()
        .find(|n| !n.is_empty() && **n == base)
        .map(|n| (*n, prefix))
}

fn set_top(rules: &mut RuleSet, key: &str, level: Level) {
    let slot = match key {
        "acl" => &mut rules.acl,
        "keyring" => &mut rules.keyring,
        "mesh" => &mut rules.mesh,
        "operator" => &mut rules.operator,
        _ => &mut rules.peering,
    };
    merge_opt(slot, Some(level));
}

fn add_named(
    rules: &mut RuleSet,
    kind: &str,
    prefix: bool,
    name: &str,
    level: Level,
    intentions: Option<Level>,
) {
    match kind {
        "service" => rules.add_service(name, prefix, level, intentions),
        "agent" => rules.agent.add(name, prefix, level),
        "event" => rules.event.add(name, prefix, level),
        "key" => rules.key.add(name, prefix, level),
        "node" => rules.node.add(name, prefix, level),
        "query" => rules.query.add(name, prefix, level),
        _ => rules.session.add(name, prefix, level),
    }
}

fn string_value(e: &Expression) -> Option<&str> {
    match e {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn parse_body(src: &str, body: &Body, rules: &mut RuleSet) -> Result<(), RulesError> {
    for s in body.iter() {
        let start = s.span().map(|r| r.start);
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str();
                if !TOP_LEVEL.contains(&key) {
                    return Err(at(src, start, format!("unexpected rule {key:?}")));
                }
                let value = string_value(&a.value).ok_or_else(|| {
                    at(
                        src,
                        start,
                        format!("{key} must be a string (\"read\", \"write\" or \"deny\")"),
                    )
                })?;
                let level = Level::parse(value, false)
                    .ok_or_else(|| at(src, start, format!("Invalid {key} policy: {value:?}")))?;
                set_top(rules, key, level);
            }
            Structure::Block(b) => {
                let ident = b.ident.as_str();
                let Some((kind, prefix)) = named_kind(ident) else {
                    return Err(at(src, start, format!("unexpected block {ident:?}")));
                };
                let name = match b.labels.as_slice() {
                    [BlockLabel::String(s)] => s.as_str().to_owned(),
                    [BlockLabel::Ident(i)] => i.as_str().to_owned(),
                    _ => {
                        return Err(at(
                            src,
                            start,
                            format!(
                                "{ident} needs exactly one name, as in {ident} \"name\" {{ ... }}"
                            ),
                        ));
                    }
                };
                let mut policy = None;
                let mut intentions = None;
                for inner in b.body.iter() {
                    let istart = inner.span().map(|r| r.start);
                    let Structure::Attribute(a) = inner else {
                        return Err(at(
                            src,
                            istart,
                            format!("unexpected block inside {ident} {name:?}"),
                        ));
                    };
                    let key = a.key.as_str();
                    let value = string_value(&a.value)
                        .ok_or_else(|| at(src, istart, format!("{key} must be a string")))?;
                    match key {
                        "policy" => {
                            policy = Some(Level::parse(value, kind == "key").ok_or_else(|| {
                                at(src, istart, format!("Invalid {ident} policy: {value:?}"))
                            })?);
                        }
                        "intentions" if kind == "service" => {
                            intentions = Some(Level::parse(value, false).ok_or_else(|| {
                                at(
                                    src,
                                    istart,
                                    format!("Invalid {ident} intentions policy: {value:?}"),
                                )
                            })?);
                        }
                        other => {
                            return Err(at(
                                src,
                                istart,
                                format!("unexpected attribute {other:?} in {ident} {name:?}"),
                            ));
                        }
                    }
                }
                let level = match (policy, intentions) {
                    (Some(l), _) => l,
                    // Consul allows `intentions` alone; the service itself then has no rule.
                    (None, Some(i)) => {
                        rules.intentions.add(&name, prefix, i);
                        continue;
                    }
                    (None, None) => {
                        return Err(at(src, start, format!("{ident} {name:?} has no policy")));
                    }
                };
                add_named(rules, kind, prefix, &name, level, intentions);
            }
        }
    }
    Ok(())
}

fn parse_json(src: &str) -> Result<RuleSet, RulesError> {
    let value: Value = serde_json::from_str(src).map_err(|e| RulesError {
        line: e.line(),
        col: e.column(),
        msg: e.to_string(),
    })?;
    let mut rules = RuleSet::default();
    let Value::Object(top) = value else {
        return Err(at(src, None, "rules must be an object"));
    };
    let here = |msg: String| at(src, None, msg);
    for (key, v) in &top {
        if TOP_LEVEL.contains(&key.as_str()) {
            let s = v
                .as_str()
                .ok_or_else(|| here(format!("{key} must be a string")))?;
            let level = Level::parse(s, false)
                .ok_or_else(|| here(format!("Invalid {key} policy: {s:?}")))?;
            set_top(&mut rules, key, level);
            continue;
        }
        let Some((kind, prefix)) = named_kind(key) else {
            return Err(here(format!("unexpected rule {key:?}")));
        };
        let Value::Object(names) = v else {
            return Err(here(format!("{key} must be an object of names")));
        };
        for (name, rule) in names {
            let policy = rule.get("policy").and_then(Value::as_str);
            let intentions = rule.get("intentions").and_then(Value::as_str);
            let level = policy
                .map(|p| {
                    Level::parse(p, kind == "key")
                        .ok_or_else(|| here(format!("Invalid {key} policy: {p:?}")))
                })
                .transpose()?;
            let ilevel = intentions
                .map(|p| {
                    Level::parse(p, false)
                        .ok_or_else(|| here(format!("Invalid {key} intentions policy: {p:?}")))
                })
                .transpose()?;
            match level {
                Some(l) => add_named(&mut rules, kind, prefix, name, l, ilevel),
                None if kind == "service" && ilevel.is_some() => {
                    if let Some(i) = ilevel {
                        rules.intentions.add(name, prefix, i);
                    }
                }
                None => return Err(here(format!("{key} {name:?} has no policy"))),
            }
        }
    }
    Ok(rules)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let r = parse(
            r#"
service_prefix "" { policy = "read" }
service_prefix "we" { policy = "write" }
service "web" { policy = "deny" }
key_prefix "app/" { policy = "list" }
operator = "read"
"#,
        )
        .unwrap();
        assert_eq!(
            r.decide(Resource::Service, "web", Access::Read),
            Some(false)
        );
        assert_eq!(
            r.decide(Resource::Service, "webby", Access::Write),
            Some(true)
        );
        assert_eq!(
            r.decide(Resource::Service, "db", Access::Write),
            Some(false)
        );
        assert_eq!(r.decide(Resource::Service, "db", Access::Read), Some(true));
        assert_eq!(r.decide(Resource::Node, "n", Access::Read), None);
        assert_eq!(r.decide(Resource::Key, "app/x", Access::List), Some(true));
        assert_eq!(r.decide(Resource::Key, "app/x", Access::Write), Some(false));
        assert_eq!(r.decide(Resource::Operator, "", Access::Write), Some(false));
        // mesh falls back to operator; intentions follow the service rule.
        assert_eq!(r.decide(Resource::Mesh, "", Access::Read), Some(true));
        assert_eq!(
            r.decide(Resource::Intentions, "db", Access::Read),
            Some(true)
        );
        assert_eq!(
            r.decide(Resource::Intentions, "web", Access::Read),
            Some(false)
        );
    }

    #[test]
    fn merging_prefers_deny_then_write() {
        let mut a = parse(r#"service "web" { policy = "read" }"#).unwrap();
        let b =
            parse("service \"web\" {\n  policy = \"write\"\n  intentions = \"write\"\n}").unwrap();
        a.merge_from(&b);
        assert_eq!(
            a.decide(Resource::Service, "web", Access::Write),
            Some(true)
        );
        assert_eq!(
            a.decide(Resource::Intentions, "web", Access::Write),
            Some(true)
        );
        let c = parse(r#"service "web" { policy = "deny" }"#).unwrap();
        a.merge_from(&c);
        assert_eq!(
            a.decide(Resource::Service, "web", Access::Read),
            Some(false)
        );
    }

    #[test]
    fn json_rules_and_builtin_texts_parse() {
        let r = parse(r#"{"service": {"web": {"policy": "write"}}, "operator": "read"}"#).unwrap();
        assert_eq!(
            r.decide(Resource::Service, "web", Access::Write),
            Some(true)
        );
        assert_eq!(parse(MANAGEMENT_RULES).unwrap(), {
            let mut m = RuleSet::management();
            m.merge_from(&RuleSet::default());
            m
        });
        parse(READ_ONLY_RULES).unwrap();
        assert_eq!(parse("").unwrap(), RuleSet::default());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("service \"web\" {\n  policy = \"writ\"\n}").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("Invalid service policy"), "{e}");
        let e = parse("operator = \"read\"\nservice \"web\" {\n  policy = \n}").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse("acl = \"write\"\nfoo = \"read\"").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e =
            parse("key \"k\" { policy = \"list\" }\nnode \"n\" { policy = \"list\" }").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
