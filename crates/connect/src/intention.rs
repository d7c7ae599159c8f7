//! Intentions: the `service-intentions` config entry, its validation, precedence, matching and the
//! authorization decision.
//!
//! An intention says whether a source service may reach a destination service. They are stored per
//! destination in a [`ServiceIntentionsEntry`]; each [`SourceIntention`] carries either an L4
//! [`IntentionAction`] or L7 [`IntentionPermission`]s. Names and namespaces may be the wildcard `*`
//! (a wildcard namespace forces a wildcard name); partitions, peers and sameness groups are always
//! exact. [`Intention`] is the flattened, one-source view Consul's intention HTTP API returns.
//!
//! Evaluation for one connection: take the intentions whose destination matches, highest
//! [`precedence`] first; the first whose source matches decides (an L7 intention counts as deny for
//! L4 checks); with no match the [`DefaultPolicy`] decides.
//!
//! Precedence (higher is evaluated first):
//!
//! | Prec | Source NS | Source name | Dest NS | Dest name |
//! | --- | --- | --- | --- | --- |
//! | 9 | exact | exact | exact | exact |
//! | 8 | exact | `*` | exact | exact |
//! | 7 | `*` | `*` | exact | exact |
//! | 6 | exact | exact | exact | `*` |
//! | 5 | exact | `*` | exact | `*` |
//! | 4 | `*` | `*` | exact | `*` |
//! | 3 | exact | exact | `*` | `*` |
//! | 2 | exact | `*` | `*` | `*` |
//! | 1 | `*` | `*` | `*` | `*` |

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::DEFAULT;

mod authz;
mod validate;

pub use authz::{
    AclDefault, AuthorizeError, Decision, DefaultPolicy, IntentionTarget, MatchType,
    MatchedIntention, authorize, authorize_uri, check, match_intentions, precedence,
    sort_by_precedence,
};
pub use validate::IntentionError;

/// The wildcard that matches any name or namespace.
pub const WILDCARD: &str = "*";
/// The config entry kind that holds intentions.
pub const SERVICE_INTENTIONS_KIND: &str = "service-intentions";
/// Longest allowed `Description` and meta value, in bytes.
pub const META_VALUE_MAX_LENGTH: usize = 512;
/// Longest allowed meta key, in bytes.
pub const META_KEY_MAX_LENGTH: usize = 128;
/// Most meta pairs an entry may carry.
pub const META_MAX_KEY_PAIRS: usize = 64;

/// What an L4 intention or an L7 permission does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentionAction {
    /// Let the connection or request through.
    Allow,
    /// Refuse it.
    Deny,
}

impl IntentionAction {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentionAction::Allow => "allow",
            IntentionAction::Deny => "deny",
        }
    }
}

impl fmt::Display for IntentionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IntentionAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "allow" => Ok(IntentionAction::Allow),
            "deny" => Ok(IntentionAction::Deny),
            _ => Err(serde::de::Error::custom(
                "Action must be set to 'allow' or 'deny'",
            )),
        }
    }
}

/// The kind of source an intention names; Consul knows only Consul services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentionSourceType {
    /// A service in the Consul catalog (the default for an empty value).
    #[default]
    Consul,
}

impl<'de> Deserialize<'de> for IntentionSourceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "" | "consul" => Ok(IntentionSourceType::Consul),
            _ => Err(serde::de::Error::custom("Type must be set to 'consul'")),
        }
    }
}

/// A `service-intentions` config entry: every intention whose destination is `Name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceIntentionsEntry {
    /// Always `service-intentions`.
    #[serde(default = "kind_default")]
    pub kind: String,
    /// The destination service name, or `*`.
    pub name: String,
    /// Destination namespace (empty means `default`; `*` allowed with name `*`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Destination partition (empty means `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub partition: String,
    /// The sources, highest precedence first after [`ServiceIntentionsEntry::normalize`].
    #[serde(default)]
    pub sources: Vec<SourceIntention>,
    /// JWT requirements applied to every source (stored and validated only).
    #[serde(rename = "JWT", default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<IntentionJwtRequirement>,
    /// Free-form metadata, returned as each intention's `Meta`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Raft-style index of creation (set by the store).
    #[serde(default)]
    pub create_index: u64,
    /// Raft-style index of the last change (set by the store).
    #[serde(default)]
    pub modify_index: u64,
}

fn kind_default() -> String {
    SERVICE_INTENTIONS_KIND.to_owned()
}

/// One source of a [`ServiceIntentionsEntry`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SourceIntention {
    /// Source service name, or `*`.
    pub name: String,
    /// L4 action; must be omitted when `permissions` is set. An empty string reads as unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_action_as_none"
    )]
    pub action: Option<IntentionAction>,
    /// L7 permissions, evaluated in order (HTTP-like destinations only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<IntentionPermission>,
    /// Read-only evaluation order, recomputed by [`ServiceIntentionsEntry::normalize`].
    #[serde(default)]
    pub precedence: i32,
    /// Source type; always `consul`.
    #[serde(rename = "Type", default)]
    pub source_type: IntentionSourceType,
    /// Free text shown in API responses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Source namespace (empty means `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Source partition (empty means the destination's partition, `default` in practice).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub partition: String,
    /// Name of the peer the source lives in (exclusive with partition and sameness group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    /// Sameness group of the source (Enterprise; stored, never matched here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sameness_group: String,
}

fn empty_action_as_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<IntentionAction>, D::Error> {
    let raw: Option<String> = Option::deserialize(deserializer)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some("allow") => Ok(Some(IntentionAction::Allow)),
        Some("deny") => Ok(Some(IntentionAction::Deny)),
        Some(_) => Err(serde::de::Error::custom(
            "Action must be set to 'allow' or 'deny'",
        )),
    }
}

/// One L7 permission of a source: the first matching permission decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionPermission {
    /// What happens when the request matches.
    pub action: IntentionAction,
    /// HTTP request match criteria (required).
    #[serde(rename = "HTTP", default, skip_serializing_if = "Option::is_none")]
    pub http: Option<IntentionHttpPermission>,
    /// JWT requirement of this permission (stored and validated only).
    #[serde(rename = "JWT", default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<IntentionJwtRequirement>,
}

/// HTTP match criteria of an L7 permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionHttpPermission {
    /// Exact path (must start with `/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_exact: String,
    /// Path prefix (must start with `/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_prefix: String,
    /// Path regular expression (RE2 syntax in Consul).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_regex: String,
    /// Header matchers, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<IntentionHttpHeaderPermission>,
    /// Allowed methods, upper-cased by normalization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

/// One header matcher of an L7 permission; exactly one of the match fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionHttpHeaderPermission {
    /// Header name.
    pub name: String,
    /// Matches when the header is present.
    #[serde(default, skip_serializing_if = "is_false")]
    pub present: bool,
    /// Exact value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exact: String,
    /// Value prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Value suffix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Value regular expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub regex: String,
    /// Inverts the match.
    #[serde(default, skip_serializing_if = "is_false")]
    pub invert: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// JWT requirement of an entry or permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionJwtRequirement {
    /// Providers to consider when verifying a token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<IntentionJwtProvider>,
}

/// One JWT provider reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionJwtProvider {
    /// Name of a `jwt-provider` config entry (required).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Extra claims to verify.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_claims: Vec<IntentionJwtClaimVerification>,
}

/// One claim check of a JWT provider reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionJwtClaimVerification {
    /// Path to the claim in the token payload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Expected value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// One intention in the flat shape of `/v1/connect/intentions/{match,exact}` and the list API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Intention {
    /// Legacy UUID; empty (and omitted) for intentions written as config entries.
    #[serde(rename = "ID", default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Peer of the source, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_peer: String,
    /// Sameness group of the source, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_sameness_group: String,
    /// Source partition; empty (omitted) for the default partition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_partition: String,
    /// Source namespace (`default` or `*` or a name).
    #[serde(rename = "SourceNS", default)]
    pub source_ns: String,
    /// Source name or `*`.
    #[serde(default)]
    pub source_name: String,
    /// Destination partition; empty (omitted) for the default partition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_partition: String,
    /// Destination namespace.
    #[serde(rename = "DestinationNS", default)]
    pub destination_ns: String,
    /// Destination name or `*`.
    #[serde(default)]
    pub destination_name: String,
    /// Always `consul`.
    #[serde(default)]
    pub source_type: IntentionSourceType,
    /// L4 action (absent for L7 intentions).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_action_as_none"
    )]
    pub action: Option<IntentionAction>,
    /// L7 permissions (absent for L4 intentions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<IntentionPermission>,
    /// The entry's JWT requirement.
    #[serde(rename = "JWT", default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<IntentionJwtRequirement>,
    /// The entry's metadata (always present, `{}` when empty).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Evaluation order, higher first.
    #[serde(default)]
    pub precedence: i32,
    /// Index of creation.
    #[serde(default)]
    pub create_index: u64,
    /// Index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

// === impl ServiceIntentionsEntry ===

impl ServiceIntentionsEntry {
    /// An entry for destination `name` in the default namespace and partition, with no sources yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            kind: kind_default(),
            name: name.into(),
            namespace: String::new(),
            partition: String::new(),
            sources: Vec::new(),
            jwt: None,
            meta: BTreeMap::new(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// Destination namespace, `default` when empty.
    pub fn namespace_or_default(&self) -> &str {
        or_default(&self.namespace)
    }

    /// Destination partition, `default` when empty.
    pub fn partition_or_default(&self) -> &str {
        or_default(&self.partition)
    }

    /// Whether the destination namespace or name is `*`.
    pub fn has_wildcard_destination(&self) -> bool {
        self.namespace_or_default() == WILDCARD || self.name == WILDCARD
    }

    /// Puts the entry in canonical form as Consul does before validating and storing it: sets
    /// `Kind`, recomputes every source's precedence, upper-cases HTTP methods, and orders sources by
    /// precedence (highest first, stable).
    pub fn normalize(&mut self) {
        self.kind = kind_default();
        let (dst_ns, dst_name) = (self.namespace_or_default().to_owned(), self.name.clone());
        for src in &mut self.sources {
            src.precedence = precedence(src.namespace_or_default(), &src.name, &dst_ns, &dst_name);
            for perm in &mut src.permissions {
                if let Some(http) = &mut perm.http {
                    for method in &mut http.methods {
                        *method = method.to_uppercase();
                    }
                }
            }
        }
        self.sources
            .sort_by_key(|s| std::cmp::Reverse(s.precedence));
    }

    /// Checks the entry as Consul does, returning the first problem in Consul's wording.
    pub fn validate(&self) -> Result<(), IntentionError> {
        validate::validate_entry(self)
    }

    /// The flattened intentions of this entry, one per source, in source order.
    pub fn to_intentions(&self) -> Vec<Intention> {
        self.sources
            .iter()
            .map(|src| self.to_intention(src))
            .collect()
    }

    /// The flattened intention of one source of this entry.
    pub fn to_intention(&self, src: &SourceIntention) -> Intention {
        Intention {
            id: String::new(),
            description: src.description.clone(),
            source_peer: src.peer.clone(),
            source_sameness_group: src.sameness_group.clone(),
            source_partition: empty_if_default(&src.partition),
            source_ns: src.namespace_or_default().to_owned(),
            source_name: src.name.clone(),
            destination_partition: empty_if_default(&self.partition),
            destination_ns: self.namespace_or_default().to_owned(),
            destination_name: self.name.clone(),
            source_type: src.source_type,
            action: src.action,
            permissions: src.permissions.clone(),
            jwt: self.jwt.clone(),
            meta: self.meta.clone(),
            precedence: src.precedence,
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

// === impl SourceIntention ===

impl SourceIntention {
    /// An L4 source: `name` with `action`, in the default namespace.
    pub fn l4(name: impl Into<String>, action: IntentionAction) -> Self {
        Self {
            name: name.into(),
            action: Some(action),
            ..Self::default()
        }
    }

    /// Source namespace, `default` when empty.
    pub fn namespace_or_default(&self) -> &str {
        or_default(&self.namespace)
    }

    /// Source partition, `default` when empty.
    pub fn partition_or_default(&self) -> &str {
        or_default(&self.partition)
    }
}

// === impl Intention ===

impl Intention {
    /// Whether this is an L7 intention (it has permissions instead of an action).
    pub fn is_l7(&self) -> bool {
        !self.permissions.is_empty()
    }

    /// Source in Consul's log spelling: `<ns>/<name>`, prefixed by `<partition>/` for a non-default
    /// partition or `peer:<peer>/` for a peer.
    pub fn source_string(&self) -> String {
        qualified(
            &self.source_peer,
            &self.source_partition,
            &self.source_ns,
            &self.source_name,
        )
    }

    /// Destination in the same spelling as [`Intention::source_string`].
    pub fn destination_string(&self) -> String {
        qualified(
            "",
            &self.destination_partition,
            &self.destination_ns,
            &self.destination_name,
        )
    }
}

impl fmt::Display for Intention {
    /// `default/web => default/db (Precedence: 9, Action: ALLOW)`, as Consul logs an intention.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} => {} (",
            self.source_string(),
            self.destination_string()
        )?;
        if !self.id.is_empty() {
            write!(f, "ID: {}, ", self.id)?;
        }
        write!(f, "Precedence: {}, ", self.precedence)?;
        if self.is_l7() {
            write!(f, "Permissions: {})", self.permissions.len())
        } else {
            let action = self.action.map_or("", IntentionAction::as_str);
            write!(f, "Action: {})", action.to_uppercase())
        }
    }
}

fn qualified(peer: &str, partition: &str, ns: &str, name: &str) -> String {
    let ns = or_default(ns);
    if !peer.is_empty() {
        format!("peer:{peer}/{ns}/{name}")
    } else if !partition.is_empty() && partition != DEFAULT {
        format!("{partition}/{ns}/{name}")
    } else {
        format!("{ns}/{name}")
    }
}

pub(crate) fn or_default(s: &str) -> &str {
    if s.is_empty() { DEFAULT } else { s }
}

fn empty_if_default(s: &str) -> String {
    if s == DEFAULT {
        String::new()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests;
