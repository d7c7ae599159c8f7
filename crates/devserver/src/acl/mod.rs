//! Consul's ACL system: the rule language ([`rules`]), the records ([`records`]), resolving a secret
//! to what it may do, the builtin policies and the anonymous token, and login through auth methods
//! ([`login`]).
//!
//! **Invariants.** Secrets (token SecretIDs, bearer tokens) are never logged and `Debug` redacts
//! them. An expired token is treated as absent everywhere and removed by the reaper. ACLs off means
//! every request is allowed and the ACL endpoints answer `401 ACL support disabled`, as Consul does.

pub(crate) mod login;
pub(crate) mod records;
pub(crate) mod rules;

use std::fmt;

use self::records::{
    ANONYMOUS_ACCESSOR, ANONYMOUS_SECRET, Grants, MANAGEMENT_POLICY_ID, META, POLICIES, Policy,
    READ_ONLY_POLICY_ID, ROLES, Role, TOKENS, Token,
};
use self::rules::RuleSet;
use crate::state::{Plan, Tables};

/// The ACL default: what a request may do that no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultPolicy {
    /// Allow (Consul's default).
    #[default]
    Allow,
    /// Deny.
    Deny,
}

impl std::str::FromStr for DefaultPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(DefaultPolicy::Allow),
            "deny" => Ok(DefaultPolicy::Deny),
            other => Err(format!(
                "invalid ACL default policy {other:?}: must be \"allow\" or \"deny\""
            )),
        }
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::Deny => "deny",
        })
    }
}

/// ACL settings (Consul's `acl { enabled, default_policy, tokens { initial_management } }`).
#[derive(Clone, Default)]
pub struct AclConfig {
    /// Enforce ACLs. Off by default: every request is allowed.
    pub enabled: bool,
    /// What no rule covers.
    pub default_policy: DefaultPolicy,
    /// A management token created at start with this SecretID (Consul's `initial_management`); once
    /// it exists, `PUT /v1/acl/bootstrap` is refused.
    pub bootstrap_token: Option<String>,
}

impl fmt::Debug for AclConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclConfig")
            .field("enabled", &self.enabled)
            .field("default_policy", &self.default_policy)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a resolved token may do.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The token's accessor ID.
    pub(crate) accessor_id: String,
    /// The merged rules of everything the token grants.
    pub(crate) rules: RuleSet,
}

/// Resolution failed: the secret names no live token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotFound;

/// The token a secret names, if it exists and has not expired (no secret: the anonymous token).
pub(crate) fn lookup(
    t: &Tables,
    secret: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<Token, NotFound> {
    let secret = secret.unwrap_or(ANONYMOUS_SECRET);
    let token = records::token_by_secret(t, secret).ok_or(NotFound)?;
    if token.expired(now) {
        return Err(NotFound);
    }
    Ok(token)
}

/// Resolves a secret to what it may do in datacenter `dc`.
pub(crate) fn resolve(
    t: &Tables,
    secret: Option<&str>,
    now: time::OffsetDateTime,
    dc: &str,
) -> Result<Identity, NotFound> {
    let token = lookup(t, secret, now)?;
    let mut rules = compile_grants(t, &token.grants(), dc);
    for link in &token.roles {
        if let Some(role) = records::get::<Role>(t, ROLES, &link.id) {
            rules.merge_from(&compile_grants(t, &role.grants, dc));
        }
    }
    Ok(Identity {
        accessor_id: token.accessor_id,
        rules,
    })
}

fn in_dc(dcs: &[String], dc: &str) -> bool {
    dcs.is_empty() || dcs.iter().any(|d| d == dc)
}

/// The rules of a templated policy, or `None` for an unknown template.
pub(crate) fn template_rules(name: &str, var: Option<&str>) -> Option<RuleSet> {
    match (name, var) {
        ("builtin/service", Some(v)) => Some(RuleSet::service_identity(v)),
        ("builtin/node", Some(v)) => Some(RuleSet::node_identity(v)),
        ("builtin/dns", _) => Some(RuleSet::dns()),
        _ => None,
    }
}

fn compile_grants(t: &Tables, g: &Grants, dc: &str) -> RuleSet {
    let mut rules = RuleSet::default();
    for link in &g.policies {
        if link.id == MANAGEMENT_POLICY_ID {
            rules.merge_from(&RuleSet::management());
            continue;
        }
        let Some(p) = records::get::<Policy>(t, POLICIES, &link.id) else {
            continue;
        };
        if !in_dc(&p.datacenters, dc) {
            continue;
        }
        match rules::parse(&p.rules) {
            Ok(r) => rules.merge_from(&r),
            Err(e) => {
                tracing::warn!(policy = %p.name, error = %e, "stored policy does not parse; ignoring it")
            }
        }
    }
    for si in &g.service_identities {
        if in_dc(&si.datacenters, dc) {
            rules.merge_from(&RuleSet::service_identity(&si.service_name));
        }
    }
    for ni in &g.node_identities {
        if ni.datacenter == dc {
            rules.merge_from(&RuleSet::node_identity(&ni.node_name));
        }
    }
    for tp in &g.templated_policies {
        if !in_dc(&tp.datacenters, dc) {
            continue;
        }
        let var = tp.template_variables.as_ref().map(|v| v.name.as_str());
        if let Some(r) = template_rules(&tp.template_name, var) {
            rules.merge_from(&r);
        }
    }
    rules
}

/// Whether `PUT /v1/acl/bootstrap` has been used (or an initial management token made).
pub(crate) fn bootstrap_index(t: &Tables) -> Option<u64> {
    t.ext
        .get(META)?
        .get("bootstrap")
        .and_then(|v| v.get("Index"))
        .and_then(serde_json::Value::as_u64)
}

/// Plans marking the ACL system as bootstrapped at `index`.
pub(crate) fn plan_bootstrapped(plan: &mut Plan, index: u64) {
    records::put(
        plan,
        META,
        "bootstrap",
        &serde_json::json!({"Index": index}),
    );
}

/// A new management token (linked to `global-management`).
pub(crate) fn management_token(
    index: u64,
    secret: String,
    description: &str,
    now: time::OffsetDateTime,
) -> Token {
    let mut token = Token {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: secret,
        description: description.to_owned(),
        policies: vec![records::Link {
            id: MANAGEMENT_POLICY_ID.to_owned(),
            name: "global-management".to_owned(),
        }],
        create_time: records::format_time(now),
        create_index: index,
        modify_index: index,
        ..Token::default()
    };
    token.rehash();
    token
}

/// Plans what an ACL-enabled server has from its first start: the builtin policies, the anonymous
/// token and, if configured, the initial management token (which ends bootstrapping).
pub(crate) fn plan_init(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    bootstrap_token: Option<&str>,
    now: time::OffsetDateTime,
) {
    for (id, name, description, text) in [
        (
            MANAGEMENT_POLICY_ID,
            "global-management",
            "Builtin Policy that grants unlimited access",
            rules::MANAGEMENT_RULES,
        ),
        (
            READ_ONLY_POLICY_ID,
            "builtin/global-read-only",
            "Builtin Policy that grants unlimited read-only access to all components",
            rules::READ_ONLY_RULES,
        ),
    ] {
        if records::get::<Policy>(t, POLICIES, id).is_none() {
            let mut p = Policy {
                id: id.to_owned(),
                name: name.to_owned(),
                description: description.to_owned(),
                rules: text.to_owned(),
                create_index: index,
                modify_index: index,
                ..Policy::default()
            };
            p.rehash();
            records::put(plan, POLICIES, id, &p);
        }
    }
    if records::get::<Token>(t, TOKENS, ANONYMOUS_ACCESSOR).is_none() {
        let mut anon = Token {
            accessor_id: ANONYMOUS_ACCESSOR.to_owned(),
            secret_id: ANONYMOUS_SECRET.to_owned(),
            description: "Anonymous Token".to_owned(),
            create_time: records::format_time(now),
            create_index: index,
            modify_index: index,
            ..Token::default()
        };
        anon.rehash();
        records::put(plan, TOKENS, ANONYMOUS_ACCESSOR, &anon);
    }
    if let Some(secret) = bootstrap_token
        && records::token_by_secret(t, secret).is_none()
    {
        let token = management_token(index, secret.to_owned(), "Initial Management Token", now);
        records::put(plan, TOKENS, &token.accessor_id.clone(), &token);
        if bootstrap_index(t).is_none() {
            plan_bootstrapped(plan, index);
        }
    }
}

/// Plans removing every expired token. Returns how many.
pub(crate) fn plan_reap(t: &Tables, plan: &mut Plan, now: time::OffsetDateTime) -> usize {
    let expired: Vec<String> = records::all::<Token>(t, TOKENS)
        .into_iter()
        .filter(|tok| tok.expired(now))
        .map(|tok| tok.accessor_id)
        .collect();
    for id in &expired {
        records::remove(plan, TOKENS, id);
    }
    expired.len()
}
