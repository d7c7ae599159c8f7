//! Intentions as the intention API sees them. They are stored only as `service-intentions` config entries
//! (one per destination); this module flattens them into [`Intention`]s and does the read-modify-write of
//! one source inside its destination's entry for the `exact` endpoints.

use connect::DEFAULT;
use connect::intention::{Intention, ServiceIntentionsEntry, sort_by_precedence};
use serde_json::{Map, Value};

use super::config_entries::{self, ConfigEntry};
use super::{Plan, Rejected, Tables, Topic};
use crate::config_entry;

/// The config entry kind intentions live in.
pub(crate) const KIND: &str = "service-intentions";

/// The topic every intention read depends on.
pub(crate) fn topic() -> Topic {
    Topic::ConfigKind(KIND.to_owned())
}

/// One side of an intention as the `source`/`destination` query parameters name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntentionName {
    /// Peer of a source, or empty.
    pub(crate) peer: String,
    /// Partition, or empty for the default.
    pub(crate) partition: String,
    /// Namespace, or empty for the default.
    pub(crate) namespace: String,
    /// Service name or `*`.
    pub(crate) name: String,
}

fn or_default(s: &str) -> &str {
    if s.is_empty() { DEFAULT } else { s }
}

fn typed(e: &ConfigEntry) -> Result<ServiceIntentionsEntry, Rejected> {
    let mut entry: ServiceIntentionsEntry = serde_json::from_value(Value::Object(e.body.clone()))
        .map_err(|err| {
        Rejected::Failed(format!(
            "stored service-intentions entry {:?} is unreadable: {err}",
            e.name
        ))
    })?;
    entry.create_index = e.create_index;
    entry.modify_index = e.modify_index;
    Ok(entry)
}

/// Every intention, highest precedence first (the order of `GET /v1/connect/intentions`).
pub(crate) fn all(t: &Tables) -> Result<Vec<Intention>, Rejected> {
    let mut out = Vec::new();
    for e in config_entries::list(t, KIND) {
        out.extend(typed(e)?.to_intentions());
    }
    sort_by_precedence(&mut out);
    Ok(out)
}

fn source_matches(src: &Map<String, Value>, want: &IntentionName) -> bool {
    let text = |k: &str| src.get(k).and_then(Value::as_str).unwrap_or_default();
    text("Name") == want.name
        && or_default(text("Namespace")) == or_default(&want.namespace)
        && or_default(text("Partition")) == or_default(&want.partition)
        && text("Peer") == want.peer
        && text("SamenessGroup").is_empty()
}

fn entry_for<'a>(t: &'a Tables, dest: &IntentionName) -> Option<&'a ConfigEntry> {
    t.config.get(&(KIND.to_owned(), dest.name.clone()))
}

/// The intention from `source` to `dest`, if there is one.
pub(crate) fn exact(
    t: &Tables,
    source: &IntentionName,
    dest: &IntentionName,
) -> Result<Option<Intention>, Rejected> {
    let Some(e) = entry_for(t, dest) else {
        return Ok(None);
    };
    let entry = typed(e)?;
    Ok(entry
        .sources
        .iter()
        .find(|s| {
            s.name == source.name
                && s.namespace_or_default() == or_default(&source.namespace)
                && s.partition_or_default() == or_default(&source.partition)
                && s.peer == source.peer
                && s.sameness_group.is_empty()
        })
        .map(|s| entry.to_intention(s)))
}

/// The body of `PUT /v1/connect/intentions/exact`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Upsert {
    /// `SourceType` (empty means `consul`).
    pub(crate) source_type: String,
    /// `Action` (empty for an L7 intention).
    pub(crate) action: String,
    /// `Description`.
    pub(crate) description: String,
    /// `Meta`.
    pub(crate) meta: Map<String, Value>,
    /// `Permissions`.
    pub(crate) permissions: Vec<Value>,
}

/// Validates, normalises and stores an entry body (its `Name` is the destination).
fn store_entry(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    body: Map<String, Value>,
) -> Result<(), Rejected> {
    let (kind, name, canonical) =
        config_entry::decode(Value::Object(body), Some(KIND)).map_err(Rejected::BadRequest)?;
    config_entries::plan_set(t, index, plan, &kind, &name, canonical, None);
    Ok(())
}

/// Creates or replaces the source `source` in the entry of `dest` (creating the entry if needed), with
/// Consul's rules for `Meta`: refused on a new entry, and on an existing one accepted only when equal to
/// the entry's own.
pub(crate) fn plan_upsert(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    source: &IntentionName,
    dest: &IntentionName,
    req: Upsert,
) -> Result<(), Rejected> {
    let existing = entry_for(t, dest);
    if !req.meta.is_empty() {
        let same = existing
            .and_then(|e| e.body.get("Meta"))
            .and_then(Value::as_object)
            .is_some_and(|m| *m == req.meta);
        if existing.is_none() {
            return Err(Rejected::BadRequest("Meta must not be specified".into()));
        }
        if !same {
            return Err(Rejected::BadRequest(
                "Meta must not be specified, or should be unchanged during an update.".into(),
            ));
        }
    }
    let mut src = Map::new();
    src.insert("Name".into(), source.name.clone().into());
    for (key, value) in [
        ("Namespace", &source.namespace),
        ("Partition", &source.partition),
        ("Peer", &source.peer),
    ] {
        if !value.is_empty() && value != DEFAULT {
            src.insert(key.into(), value.clone().into());
        }
    }
    if !req.action.is_empty() {
        src.insert("Action".into(), req.action.into());
    }
    if !req.permissions.is_empty() {
        src.insert("Permissions".into(), Value::Array(req.permissions));
    }
    if !req.description.is_empty() {
        src.insert("Description".into(), req.description.into());
    }
    let source_type = if req.source_type.is_empty() {
        "consul".to_owned()
    } else {
        req.source_type
    };
    src.insert("Type".into(), source_type.into());

    let mut body = match existing {
        Some(e) => e.body.clone(),
        None => {
            let mut m = Map::new();
            m.insert("Kind".into(), KIND.into());
            m.insert("Name".into(), dest.name.clone().into());
            if !dest.namespace.is_empty() && dest.namespace != DEFAULT {
                m.insert("Namespace".into(), dest.namespace.clone().into());
            }
            m
        }
    };
    let sources = body
        .entry("Sources")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !sources.is_array() {
        *sources = Value::Array(Vec::new());
    }
    if let Value::Array(list) = sources {
        match list
            .iter_mut()
            .find(|s| s.as_object().is_some_and(|m| source_matches(m, source)))
        {
            Some(slot) => *slot = Value::Object(src),
            None => list.push(Value::Object(src)),
        }
    }
    store_entry(t, index, plan, body)
}

/// Removes the source `source` from the entry of `dest`, and the entry once it has no sources left.
/// Deleting what does not exist succeeds.
pub(crate) fn plan_delete(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    source: &IntentionName,
    dest: &IntentionName,
) -> Result<(), Rejected> {
    let Some(e) = entry_for(t, dest) else {
        return Ok(());
    };
    let mut body = e.body.clone();
    let Some(Value::Array(list)) = body.get_mut("Sources") else {
        return Ok(());
    };
    let before = list.len();
    list.retain(|s| !s.as_object().is_some_and(|m| source_matches(m, source)));
    if list.len() == before {
        return Ok(());
    }
    if list.is_empty() {
        config_entries::plan_delete(t, plan, KIND, &dest.name, None);
        return Ok(());
    }
    store_entry(t, index, plan, body)
}
