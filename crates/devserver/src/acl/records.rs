//! The ACL records as Consul shows them (tokens, policies, roles, auth methods, binding rules), and
//! how they are kept: one extension table each, keyed by accessor ID, ID or name.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::state::{Mutation, Plan, Tables, Topic};

/// Table of tokens, by accessor ID.
pub(crate) const TOKENS: &str = "acl-tokens";
/// Table of policies, by ID.
pub(crate) const POLICIES: &str = "acl-policies";
/// Table of roles, by ID.
pub(crate) const ROLES: &str = "acl-roles";
/// Table of auth methods, by name.
pub(crate) const AUTH_METHODS: &str = "acl-auth-methods";
/// Table of binding rules, by ID.
pub(crate) const BINDING_RULES: &str = "acl-binding-rules";
/// Table of ACL system facts (`bootstrap`).
pub(crate) const META: &str = "acl-meta";

/// The builtin management policy's ID.
pub(crate) const MANAGEMENT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The builtin read-only policy's ID.
pub(crate) const READ_ONLY_POLICY_ID: &str = "00000000-0000-0000-0000-000000000002";
/// The anonymous token's accessor ID.
pub(crate) const ANONYMOUS_ACCESSOR: &str = "00000000-0000-0000-0000-000000000002";
/// The anonymous token's secret.
pub(crate) const ANONYMOUS_SECRET: &str = "anonymous";

/// A link from a token or role to a policy or role (by ID; the name is filled in when shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Link {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
}

/// A service identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ServiceIdentity {
    pub(crate) service_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) datacenters: Vec<String>,
}

/// A node identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct NodeIdentity {
    pub(crate) node_name: String,
    pub(crate) datacenter: String,
}

/// The variables of a templated policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct TemplateVariables {
    pub(crate) name: String,
}

/// A templated policy (`builtin/service`, `builtin/node`, `builtin/dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct TemplatedPolicy {
    pub(crate) template_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) template_variables: Option<TemplateVariables>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) datacenters: Vec<String>,
}

/// What tokens and roles grant besides policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Grants {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) policies: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) service_identities: Vec<ServiceIdentity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) node_identities: Vec<NodeIdentity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) templated_policies: Vec<TemplatedPolicy>,
}

/// A token. `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Token {
    #[serde(rename = "AccessorID")]
    pub(crate) accessor_id: String,
    #[serde(rename = "SecretID")]
    pub(crate) secret_id: String,
    pub(crate) description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) policies: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) service_identities: Vec<ServiceIdentity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) node_identities: Vec<NodeIdentity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) templated_policies: Vec<TemplatedPolicy>,
    pub(crate) local: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) auth_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expiration_time: Option<String>,
    pub(crate) create_time: String,
    pub(crate) hash: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("accessor_id", &self.accessor_id)
            .field("secret_id", &"<redacted>")
            .field("description", &self.description)
            .field("policies", &self.policies)
            .field("roles", &self.roles)
            .field("service_identities", &self.service_identities)
            .field("auth_method", &self.auth_method)
            .field("expiration_time", &self.expiration_time)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The grants of the token itself (not of its roles).
    pub(crate) fn grants(&self) -> Grants {
        Grants {
            policies: self.policies.clone(),
            service_identities: self.service_identities.clone(),
            node_identities: self.node_identities.clone(),
            templated_policies: self.templated_policies.clone(),
        }
    }

    /// Whether the token has expired at `now`.
    pub(crate) fn expired(&self, now: time::OffsetDateTime) -> bool {
        self.expiration_time
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|exp| exp <= now)
    }

    /// Recomputes `Hash` over the token's grants and settings (as Consul hashes what the token
    /// grants, not its indexes).
    pub(crate) fn rehash(&mut self) {
        self.hash = hash_of(&serde_json::json!([
            self.description,
            self.policies,
            self.roles,
            self.service_identities,
            self.node_identities,
            self.templated_policies,
            self.local,
            self.auth_method,
            self.expiration_time,
        ]));
    }
}

/// A policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Policy {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) rules: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) datacenters: Vec<String>,
    pub(crate) hash: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl Policy {
    /// Recomputes `Hash`.
    pub(crate) fn rehash(&mut self) {
        self.hash = hash_of(&serde_json::json!([
            self.name,
            self.description,
            self.rules,
            self.datacenters
        ]));
    }

    /// The list form (without `Rules`).
    pub(crate) fn stub(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("Rules");
        }
        v
    }
}

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Role {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(flatten)]
    pub(crate) grants: Grants,
    pub(crate) hash: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl Role {
    /// Recomputes `Hash`.
    pub(crate) fn rehash(&mut self) {
        self.hash = hash_of(&serde_json::json!([
            self.name,
            self.description,
            self.grants
        ]));
    }
}

/// An auth method.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct AuthMethod {
    pub(crate) name: String,
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) display_name: String,
    pub(crate) description: String,
    #[serde(rename = "MaxTokenTTL", skip_serializing_if = "String::is_empty")]
    pub(crate) max_token_ttl: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) token_locality: String,
    pub(crate) config: Map<String, Value>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl AuthMethod {
    /// The list form (without `Config`).
    pub(crate) fn stub(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("Config");
        }
        v
    }
}

/// A binding rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct BindingRule {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) auth_method: String,
    pub(crate) selector: String,
    pub(crate) bind_type: String,
    pub(crate) bind_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bind_vars: Option<TemplateVariables>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

/// Base64 of the SHA-256 of a JSON value (Consul's `Hash` fields are base64 of a digest too).
fn hash_of(v: &Value) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes))
}

/// Every record of a table, decoded (records that do not decode are skipped).
pub(crate) fn all<T: for<'de> Deserialize<'de>>(t: &Tables, table: &str) -> Vec<T> {
    t.ext
        .get(table)
        .map(|m| {
            m.values()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One record by key.
pub(crate) fn get<T: for<'de> Deserialize<'de>>(t: &Tables, table: &str, key: &str) -> Option<T> {
    t.ext
        .get(table)?
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Plans storing a record and touches the table's topic.
pub(crate) fn put<T: Serialize>(plan: &mut Plan, table: &str, key: &str, record: &T) {
    plan.push(Mutation::PutExt {
        table: table.to_owned(),
        key: key.to_owned(),
        value: serde_json::to_value(record).unwrap_or(Value::Null),
    });
    plan.touch(Topic::Ext(table.to_owned()));
}

/// Plans removing a record and touches the table's topic.
pub(crate) fn remove(plan: &mut Plan, table: &str, key: &str) {
    plan.push(Mutation::DeleteExt {
        table: table.to_owned(),
        key: key.to_owned(),
    });
    plan.touch(Topic::Ext(table.to_owned()));
}

/// The token with this secret.
pub(crate) fn token_by_secret(t: &Tables, secret: &str) -> Option<Token> {
    t.ext
        .get(TOKENS)?
        .values()
        .find(|v| v.get("SecretID").and_then(Value::as_str) == Some(secret))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The policy with this name.
pub(crate) fn policy_by_name(t: &Tables, name: &str) -> Option<Policy> {
    all::<Policy>(t, POLICIES)
        .into_iter()
        .find(|p| p.name == name)
}

/// The role with this name.
pub(crate) fn role_by_name(t: &Tables, name: &str) -> Option<Role> {
    all::<Role>(t, ROLES).into_iter().find(|r| r.name == name)
}

/// Links as shown: current names, links to deleted records dropped.
pub(crate) fn show_links(t: &Tables, table: &str, links: &[Link]) -> Vec<Link> {
    links
        .iter()
        .filter_map(|l| {
            let rec = t.ext.get(table)?.get(&l.id)?;
            Some(Link {
                id: l.id.clone(),
                name: rec
                    .get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

/// A token as shown: links with current names, the secret replaced by `<hidden>` unless `reveal`.
pub(crate) fn show_token(t: &Tables, token: &Token, reveal: bool) -> Value {
    let mut shown = token.clone();
    shown.policies = show_links(t, POLICIES, &token.policies);
    shown.roles = show_links(t, ROLES, &token.roles);
    if !reveal {
        shown.secret_id = "<hidden>".to_owned();
    }
    serde_json::to_value(&shown).unwrap_or(Value::Null)
}

/// A role as shown: policy links with current names.
pub(crate) fn show_role(t: &Tables, role: &Role) -> Value {
    let mut shown = role.clone();
    shown.grants.policies = show_links(t, POLICIES, &role.grants.policies);
    serde_json::to_value(&shown).unwrap_or(Value::Null)
}

/// Login metadata as Consul puts it in a login token's description.
pub(crate) fn login_description(meta: &BTreeMap<String, String>) -> String {
    if meta.is_empty() {
        "token created via login".to_owned()
    } else {
        format!(
            "token created via login: {}",
            serde_json::to_string(meta).unwrap_or_default()
        )
    }
}

/// The current time in Consul's format (RFC 3339 with nanoseconds).
pub(crate) fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let t = Token {
            accessor_id: "acc".into(),
            secret_id: "very-secret-value".into(),
            ..Token::default()
        };
        let shown = format!("{t:?}");
        assert!(
            shown.contains("acc") && !shown.contains("very-secret-value"),
            "{shown}"
        );
    }

    #[test]
    fn login_descriptions_match_consul() {
        let meta: BTreeMap<String, String> = [
            ("consul.hashicorp.com/task-id".to_owned(), "abc".to_owned()),
            (
                "consul.hashicorp.com/cluster".to_owned(),
                "arn:c".to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            login_description(&meta),
            r#"token created via login: {"consul.hashicorp.com/cluster":"arn:c","consul.hashicorp.com/task-id":"abc"}"#
        );
        assert_eq!(
            login_description(&BTreeMap::new()),
            "token created via login"
        );
    }
}
