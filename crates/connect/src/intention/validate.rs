//! Validation of `service-intentions` entries, worded as Consul words its errors.

use std::collections::HashSet;

use super::{
    IntentionJwtRequirement, META_KEY_MAX_LENGTH, META_MAX_KEY_PAIRS, META_VALUE_MAX_LENGTH,
    ServiceIntentionsEntry, WILDCARD, or_default,
};

/// Why a `service-intentions` entry was rejected. The message is the one Consul gives, so clients
/// that match on it keep working; `field` names the place at fault (`Sources[1].Permissions[0].HTTP`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IntentionError {
    /// Path of the field at fault, in Consul's notation (empty for the entry as a whole).
    pub field: String,
    /// The full message, in Consul's wording.
    pub message: String,
}

impl IntentionError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

pub(super) fn validate_entry(e: &ServiceIntentionsEntry) -> Result<(), IntentionError> {
    if e.name.is_empty() {
        return Err(IntentionError::new("Name", "Name is required"));
    }
    check_wildcards(&e.name, e.namespace_or_default(), &e.partition, "", "")
        .map_err(|(field, msg)| IntentionError::new(field, msg))?;
    let dest_is_wild = e.has_wildcard_destination();
    if let Some(jwt) = &e.jwt {
        validate_jwt(jwt, "JWT")?;
    }
    validate_meta(&e.meta)?;
    if e.sources.is_empty() {
        return Err(IntentionError::new(
            "Sources",
            "At least one source is required",
        ));
    }

    let mut seen: HashSet<(&str, &str, &str, &str, &str)> = HashSet::new();
    for (i, src) in e.sources.iter().enumerate() {
        let at = |field: &str| format!("Sources[{i}].{field}");
        if src.name.is_empty() {
            return Err(IntentionError::new(
                at("Name"),
                format!("Sources[{i}].Name is required"),
            ));
        }
        check_wildcards(
            &src.name,
            src.namespace_or_default(),
            &src.partition,
            &src.peer,
            &src.sameness_group,
        )
        .map_err(|(field, msg)| IntentionError::new(at(field), format!("Sources[{i}].{msg}")))?;
        if !src.peer.is_empty() && !src.partition.is_empty() {
            return Err(IntentionError::new(
                at("Peer"),
                format!("Sources[{i}].Peer: cannot set Peer and Partition at the same time."),
            ));
        }
        if !src.sameness_group.is_empty() && !src.partition.is_empty() {
            return Err(IntentionError::new(
                at("SamenessGroup"),
                format!(
                    "Sources[{i}].SamenessGroup: cannot set SamenessGroup and Partition at the same time"
                ),
            ));
        }
        if !src.sameness_group.is_empty() && !src.peer.is_empty() {
            return Err(IntentionError::new(
                at("SamenessGroup"),
                format!(
                    "Sources[{i}].SamenessGroup: cannot set SamenessGroup and Peer at the same time"
                ),
            ));
        }
        if src.description.len() > META_VALUE_MAX_LENGTH {
            return Err(IntentionError::new(
                at("Description"),
                format!("Sources[{i}].Description exceeds maximum length {META_VALUE_MAX_LENGTH}"),
            ));
        }
        if src.permissions.is_empty() && src.action.is_none() {
            return Err(IntentionError::new(
                at("Action"),
                format!("Sources[{i}].Action must be set to 'allow' or 'deny'"),
            ));
        }
        if !src.permissions.is_empty() && src.action.is_some() {
            return Err(IntentionError::new(
                at("Action"),
                format!("Sources[{i}].Action must be omitted if Permissions are specified"),
            ));
        }
        if dest_is_wild && !src.permissions.is_empty() {
            return Err(IntentionError::new(
                at("Permissions"),
                format!(
                    "Sources[{i}].Permissions cannot be specified on intentions with wildcarded destinations"
                ),
            ));
        }
        for (j, perm) in src.permissions.iter().enumerate() {
            let prefix = format!("Sources[{i}].Permissions[{j}].HTTP");
            let Some(http) = &perm.http else {
                return Err(IntentionError::new(
                    prefix.clone(),
                    format!("{prefix} is required"),
                ));
            };
            let mut path_parts = 0;
            for (name, value) in [
                ("PathExact", &http.path_exact),
                ("PathPrefix", &http.path_prefix),
            ] {
                if !value.is_empty() {
                    path_parts += 1;
                    if !value.starts_with('/') {
                        return Err(IntentionError::new(
                            format!("{prefix}.{name}"),
                            format!("{prefix}.{name} doesn't start with '/': {value:?}"),
                        ));
                    }
                }
            }
            if !http.path_regex.is_empty() {
                path_parts += 1;
            }
            if path_parts > 1 {
                return Err(IntentionError::new(
                    prefix.clone(),
                    format!(
                        "{prefix} should only contain at most one of PathExact, PathPrefix, or PathRegex"
                    ),
                ));
            }
            let mut perm_parts = path_parts;
            for (k, hdr) in http.header.iter().enumerate() {
                if hdr.name.is_empty() {
                    return Err(IntentionError::new(
                        format!("{prefix}.Header[{k}]"),
                        format!("{prefix}.Header[{k}] missing required Name field"),
                    ));
                }
                let hdr_parts = [
                    hdr.present,
                    !hdr.exact.is_empty(),
                    !hdr.regex.is_empty(),
                    !hdr.prefix.is_empty(),
                    !hdr.suffix.is_empty(),
                ]
                .into_iter()
                .filter(|set| *set)
                .count();
                if hdr_parts != 1 {
                    return Err(IntentionError::new(
                        format!("{prefix}.Header[{k}]"),
                        format!(
                            "{prefix}.Header[{k}] should only contain one of Present, Exact, Prefix, Suffix, or Regex"
                        ),
                    ));
                }
                perm_parts += 1;
            }
            if !http.methods.is_empty() {
                let mut found = HashSet::new();
                for method in &http.methods {
                    let upper = method.to_uppercase();
                    if !HTTP_METHODS.contains(&upper.as_str()) {
                        return Err(IntentionError::new(
                            format!("{prefix}.Methods"),
                            format!("{prefix}.Methods contains an invalid method {upper:?}"),
                        ));
                    }
                    if !found.insert(upper.clone()) {
                        return Err(IntentionError::new(
                            format!("{prefix}.Methods"),
                            format!("{prefix}.Methods contains {upper:?} more than once"),
                        ));
                    }
                }
                perm_parts += 1;
            }
            if perm_parts == 0 {
                return Err(IntentionError::new(
                    prefix.clone(),
                    format!("{prefix} should not be empty"),
                ));
            }
            if let Some(jwt) = &perm.jwt {
                validate_jwt(jwt, &format!("Sources[{i}].Permissions[{j}].JWT"))?;
            }
        }
        let key = (
            or_default(&src.partition),
            src.namespace_or_default(),
            src.name.as_str(),
            src.peer.as_str(),
            src.sameness_group.as_str(),
        );
        if !seen.insert(key) {
            let message = if !src.peer.is_empty() {
                format!(
                    "Sources[{i}] defines peer({:?}) {:?} more than once",
                    src.peer, src.name
                )
            } else if !src.sameness_group.is_empty() {
                format!(
                    "Sources[{i}] defines sameness-group({:?}) {:?} more than once",
                    src.sameness_group, src.name
                )
            } else {
                format!("Sources[{i}] defines {:?} more than once", src.name)
            };
            return Err(IntentionError::new(format!("Sources[{i}]"), message));
        }
    }
    Ok(())
}

/// Wildcard rules shared by destinations and sources; returns `(field, message)`.
fn check_wildcards(
    name: &str,
    namespace: &str,
    partition: &str,
    peer: &str,
    sameness_group: &str,
) -> Result<(), (&'static str, String)> {
    if namespace != WILDCARD && namespace.contains(WILDCARD) {
        return Err((
            "Namespace",
            "Namespace: wildcard character '*' cannot be used with partial values".into(),
        ));
    }
    if name != WILDCARD {
        if name.contains(WILDCARD) {
            return Err((
                "Name",
                "Name: wildcard character '*' cannot be used with partial values".into(),
            ));
        }
        if namespace == WILDCARD {
            return Err((
                "Name",
                "Name: exact value cannot follow wildcard namespace".into(),
            ));
        }
    }
    if partition.contains(WILDCARD) {
        return Err((
            "Partition",
            "Partition: cannot use wildcard '*' in partition".into(),
        ));
    }
    if peer.contains(WILDCARD) {
        return Err(("Peer", "Peer: cannot use wildcard '*' in peer".into()));
    }
    if sameness_group.contains(WILDCARD) {
        return Err((
            "SamenessGroup",
            "SamenessGroup: cannot use wildcard '*' in sameness group".into(),
        ));
    }
    Ok(())
}

fn validate_jwt(jwt: &IntentionJwtRequirement, field: &str) -> Result<(), IntentionError> {
    for (i, provider) in jwt.providers.iter().enumerate() {
        if provider.name.is_empty() {
            return Err(IntentionError::new(
                format!("{field}.Providers[{i}].Name"),
                "JWT provider name is required",
            ));
        }
    }
    Ok(())
}

fn validate_meta(meta: &std::collections::BTreeMap<String, String>) -> Result<(), IntentionError> {
    if meta.len() > META_MAX_KEY_PAIRS {
        return Err(IntentionError::new(
            "Meta",
            format!("Meta exceeds maximum element count {META_MAX_KEY_PAIRS}"),
        ));
    }
    for (k, v) in meta {
        if k.len() > META_KEY_MAX_LENGTH {
            return Err(IntentionError::new(
                "Meta",
                format!("Meta key {k:?} exceeds maximum length {META_KEY_MAX_LENGTH}"),
            ));
        }
        if v.len() > META_VALUE_MAX_LENGTH {
            return Err(IntentionError::new(
                "Meta",
                format!("Meta value for key {k:?} exceeds maximum length {META_VALUE_MAX_LENGTH}"),
            ));
        }
    }
    Ok(())
}
