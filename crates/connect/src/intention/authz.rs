//! Precedence, matching and the authorization decision.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{Intention, IntentionAction, WILDCARD, or_default};
use crate::spiffe::{SpiffeId, SpiffeIdError};

/// The precedence of an intention from its source and destination namespace and name (see the table
/// in the module docs). Partitions, peers and sameness groups do not change it.
pub fn precedence(source_ns: &str, source_name: &str, dest_ns: &str, dest_name: &str) -> i32 {
    let max = match count_exact(dest_ns, dest_name) {
        2 => 9,
        1 => 6,
        _ => 3,
    };
    max - (2 - count_exact(source_ns, source_name))
}

/// How many of (namespace, name) are exact: `*/*` → 0, `ns/*` → 1, `ns/name` → 2. An empty
/// namespace means `default`.
fn count_exact(ns: &str, name: &str) -> i32 {
    if or_default(ns) == WILDCARD {
        0
    } else if name == WILDCARD {
        1
    } else {
        2
    }
}

/// Orders intentions for evaluation: precedence descending, then a fixed tie-break on the
/// (source partition, namespace, name, peer, destination partition, namespace, name) tuple so the
/// order is deterministic. Ties never change a decision, because one source matches at most one
/// intention per precedence level.
pub fn sort_by_precedence(intentions: &mut [Intention]) {
    intentions.sort_by(compare);
}

fn compare(a: &Intention, b: &Intention) -> Ordering {
    b.precedence
        .cmp(&a.precedence)
        .then_with(|| a.source_partition.cmp(&b.source_partition))
        .then_with(|| a.source_ns.cmp(&b.source_ns))
        .then_with(|| a.source_name.cmp(&b.source_name))
        .then_with(|| a.source_peer.cmp(&b.source_peer))
        .then_with(|| a.destination_partition.cmp(&b.destination_partition))
        .then_with(|| a.destination_ns.cmp(&b.destination_ns))
        .then_with(|| a.destination_name.cmp(&b.destination_name))
}

/// Which side of an intention a match query looks at (`?by=source|destination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    /// Intentions whose source matches the target.
    Source,
    /// Intentions whose destination matches the target.
    Destination,
}

/// A concrete (non-wildcard) service to match intentions against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntentionTarget {
    /// Service name.
    pub name: String,
    /// Namespace; empty means `default`.
    pub namespace: String,
    /// Partition; empty means `default`.
    pub partition: String,
    /// Peer the service lives in; empty for a local service. Only used on the source side.
    pub peer: String,
}

impl IntentionTarget {
    /// A local service in the default namespace and partition.
    pub fn service(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: String::new(),
            partition: String::new(),
            peer: String::new(),
        }
    }

    /// The same target in `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The same target in `partition`.
    pub fn in_partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = partition.into();
        self
    }

    /// The same target imported from `peer`.
    pub fn from_peer(mut self, peer: impl Into<String>) -> Self {
        self.peer = peer.into();
        self
    }
}

/// Whether `ixn` applies to `target` on the given side.
fn applies(ixn: &Intention, by: MatchType, target: &IntentionTarget) -> bool {
    let (partition, ns, name) = match by {
        MatchType::Destination => (
            &ixn.destination_partition,
            &ixn.destination_ns,
            &ixn.destination_name,
        ),
        MatchType::Source => {
            // Sameness groups would need the group's membership; they never match here.
            if ixn.source_peer != target.peer || !ixn.source_sameness_group.is_empty() {
                return false;
            }
            (&ixn.source_partition, &ixn.source_ns, &ixn.source_name)
        }
    };
    if or_default(partition) != or_default(&target.partition) {
        return false;
    }
    let ns = or_default(ns);
    if ns != WILDCARD && ns != or_default(&target.namespace) {
        return false;
    }
    name == WILDCARD || *name == target.name
}

/// The intentions that apply to `target` on side `by`, in evaluation order (highest precedence
/// first), as `GET /v1/connect/intentions/match` returns them for one `name`.
pub fn match_intentions<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    by: MatchType,
    target: &IntentionTarget,
) -> Vec<&'a Intention> {
    let mut out: Vec<&Intention> = intentions
        .into_iter()
        .filter(|ixn| applies(ixn, by, target))
        .collect();
    out.sort_by(|a, b| compare(a, b));
    out
}

/// The ACL system's part of the default decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclDefault {
    /// ACLs are disabled: everything is allowed by default.
    Disabled,
    /// ACLs are enabled with `acl.default_policy = "allow"`.
    Allow,
    /// ACLs are enabled with `acl.default_policy = "deny"`.
    Deny,
}

/// Inputs of the decision taken when no intention matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DefaultPolicy {
    /// The `default_intention_policy` setting; when set it wins over the ACL default.
    pub default_intention_policy: Option<IntentionAction>,
    /// The ACL default policy.
    pub acl: AclDefault,
}

impl DefaultPolicy {
    /// The default decision and Consul's reason text for it.
    pub fn decide(&self) -> (bool, &'static str) {
        match self.default_intention_policy {
            Some(action) => (action == IntentionAction::Allow, REASON_DEFAULT_POLICY),
            None => (self.acl != AclDefault::Deny, REASON_DEFAULT_ACL),
        }
    }
}

const REASON_DEFAULT_POLICY: &str = "Default intention policy";
const REASON_DEFAULT_ACL: &str = "Default behavior configured by ACLs";

/// The intention that decided an authorization, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedIntention {
    /// Source as Consul spells it (`default/web`).
    pub source: String,
    /// Destination as Consul spells it (`default/db`).
    pub destination: String,
    /// Its precedence.
    pub precedence: i32,
    /// Its L4 action, `None` for an L7 intention.
    pub action: Option<IntentionAction>,
    /// Number of L7 permissions (0 for L4).
    pub permissions: usize,
    /// Legacy ID, empty for config-entry intentions.
    pub id: String,
}

/// The outcome of an authorization: allowed or not, Consul's reason text, and the deciding intention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the connection may proceed.
    pub allowed: bool,
    /// `Matched L4 intention: …`, `Matched L7 intention: …`, `Default intention policy` or
    /// `Default behavior configured by ACLs`, as `/v1/agent/connect/authorize` reports it.
    pub reason: String,
    /// The deciding intention, `None` when the default decided.
    pub matched: Option<MatchedIntention>,
}

/// Decides whether `source` may open a connection to `destination` (L4): the first intention (in
/// evaluation order) whose destination and source both match decides; an L7 intention counts as deny;
/// with no match `defaults` decides.
pub fn authorize<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source: &IntentionTarget,
    destination: &IntentionTarget,
    defaults: &DefaultPolicy,
) -> Decision {
    let candidates = match_intentions(intentions, MatchType::Destination, destination);
    match candidates
        .into_iter()
        .find(|ixn| applies(ixn, MatchType::Source, source))
    {
        Some(ixn) => {
            let (allowed, layer) = if ixn.is_l7() {
                (false, "L7")
            } else {
                (ixn.action == Some(IntentionAction::Allow), "L4")
            };
            Decision {
                allowed,
                reason: format!("Matched {layer} intention: {ixn}"),
                matched: Some(MatchedIntention {
                    source: ixn.source_string(),
                    destination: ixn.destination_string(),
                    precedence: ixn.precedence,
                    action: ixn.action,
                    permissions: ixn.permissions.len(),
                    id: ixn.id.clone(),
                }),
            }
        }
        None => {
            let (allowed, reason) = defaults.decide();
            Decision {
                allowed,
                reason: reason.to_owned(),
                matched: None,
            }
        }
    }
}

/// `GET /v1/connect/intentions/check`: whether `source` may connect to `destination`, L7
/// intentions counting as deny.
pub fn check<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source: &IntentionTarget,
    destination: &IntentionTarget,
    defaults: &DefaultPolicy,
) -> bool {
    authorize(intentions, source, destination, defaults).allowed
}

/// Why `POST /v1/agent/connect/authorize` refused to decide (HTTP 400 in Consul).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// `ClientCertURI` is not a Connect SPIFFE ID.
    #[error("ClientCertURI not a valid Connect identifier")]
    InvalidUri(#[source] SpiffeIdError),
    /// `ClientCertURI` is a Connect identity but not a service.
    #[error("ClientCertURI not a valid Service identifier")]
    NotAService,
    /// The URI's partition is not the target's.
    #[error("Mismatched partitions: {uri:?} != {target:?}")]
    PartitionMismatch {
        /// Partition in the URI.
        uri: String,
        /// Partition of the target.
        target: String,
    },
}

/// `POST /v1/agent/connect/authorize`: parses `client_cert_uri` (which must be a service identity
/// whose partition is the target's) and authorizes it against `target`. The trust domain and
/// datacenter of the URI are not checked: the caller must already have verified the certificate
/// chain against the current roots.
pub fn authorize_uri<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    client_cert_uri: &str,
    target: &IntentionTarget,
    defaults: &DefaultPolicy,
) -> Result<Decision, AuthorizeError> {
    let id = SpiffeId::parse(client_cert_uri).map_err(AuthorizeError::InvalidUri)?;
    let SpiffeId::Service(service) = id else {
        return Err(AuthorizeError::NotAService);
    };
    let target_partition = or_default(&target.partition);
    if service.partition() != target_partition {
        return Err(AuthorizeError::PartitionMismatch {
            uri: service.partition().to_owned(),
            target: target_partition.to_owned(),
        });
    }
    let source = IntentionTarget {
        name: service.service().to_owned(),
        namespace: service.namespace().to_owned(),
        partition: service.partition().to_owned(),
        peer: String::new(),
    };
    Ok(authorize(intentions, &source, target, defaults))
}
