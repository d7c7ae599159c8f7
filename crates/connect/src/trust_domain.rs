//! The trust domain of a Connect CA: `<cluster-id>.consul`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The top-level label of every Consul trust domain; fixed, independent of the DNS `domain` setting.
pub const TRUST_DOMAIN_SUFFIX: &str = "consul";

const MAX_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A validated, lower-cased trust domain such as `7f42f496-fbc7-8692-05ed-334aa5340c1e.consul`.
///
/// Consul derives it from the cluster ID created when the CA is first bootstrapped
/// ([`TrustDomain::from_cluster_id`]); peers have their own trust domains, which [`TrustDomain::new`]
/// accepts as any DNS name. Trust domains compare case-insensitively, so the value is stored lower-cased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

/// Why a string is not a usable trust domain or cluster ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustDomainError {
    /// The input was empty.
    #[error("trust domain is empty")]
    Empty,
    /// The input is longer than a DNS name may be.
    #[error("trust domain is {len} bytes long, the limit is {MAX_LEN}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// A dot-separated label is empty, too long, or starts/ends with a hyphen.
    #[error("trust domain label {label:?} is invalid: {reason}")]
    BadLabel {
        /// The offending label.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A character outside `[A-Za-z0-9.-]`.
    #[error("trust domain has invalid character {ch:?} at byte {position}")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// [`TrustDomain::from_cluster_id`] was given something that is not a UUID.
    #[error("cluster ID {value:?} is not a UUID (8-4-4-4-12 hex digits)")]
    ClusterId {
        /// The rejected cluster ID.
        value: String,
    },
}

impl TrustDomain {
    /// Builds `<cluster-id>.consul` from a cluster ID, which must be a UUID (any case).
    pub fn from_cluster_id(cluster_id: &str) -> Result<Self, TrustDomainError> {
        if !is_uuid(cluster_id) {
            return Err(TrustDomainError::ClusterId {
                value: cluster_id.to_owned(),
            });
        }
        Ok(Self(format!(
            "{}.{TRUST_DOMAIN_SUFFIX}",
            cluster_id.to_ascii_lowercase()
        )))
    }

    /// Validates any DNS-style trust domain (for example one received from a peer) and lower-cases it.
    pub fn new(value: &str) -> Result<Self, TrustDomainError> {
        validate_dns_name(value)?;
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// The trust domain as a string, lower-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cluster ID when the trust domain has Consul's own `<uuid>.consul` shape.
    pub fn cluster_id(&self) -> Option<&str> {
        let id = self
            .0
            .strip_suffix(TRUST_DOMAIN_SUFFIX)?
            .strip_suffix('.')?;
        is_uuid(id).then_some(id)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = TrustDomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks the 8-4-4-4-12 hex-digit UUID text form.
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Validates a dotted DNS name of `[A-Za-z0-9-]` labels, as trust domains and SNI suffixes must be.
pub(crate) fn validate_dns_name(value: &str) -> Result<(), TrustDomainError> {
    if value.is_empty() {
        return Err(TrustDomainError::Empty);
    }
    if value.len() > MAX_LEN {
        return Err(TrustDomainError::TooLong { len: value.len() });
    }
    if let Some((position, ch)) = value
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(TrustDomainError::InvalidChar { ch, position });
    }
    for label in value.split('.') {
        let reason = if label.is_empty() {
            Some("empty label")
        } else if label.len() > MAX_LABEL_LEN {
            Some("longer than 63 bytes")
        } else if label.starts_with('-') || label.ends_with('-') {
            Some("starts or ends with a hyphen")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(TrustDomainError::BadLabel {
                label: label.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
