//! The config entry table. Entries are stored as validated, canonical JSON objects (the kind modules in
//! [`crate::config_entry`] check and canonicalise them before they get here).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Mutation, Plan, Tables, Topic};

/// One stored config entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigEntry {
    /// The kind, e.g. `service-defaults`.
    pub(crate) kind: String,
    /// The name, e.g. `web` or `global`.
    pub(crate) name: String,
    /// The canonical body, including `Kind` and `Name`, without indexes.
    pub(crate) body: Map<String, Value>,
    /// The index that created the entry.
    pub(crate) create_index: u64,
    /// The index that last changed it.
    pub(crate) modify_index: u64,
}

impl ConfigEntry {
    /// The entry as Consul returns it: the body plus `CreateIndex` and `ModifyIndex`.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = self.body.clone();
        m.insert("CreateIndex".into(), self.create_index.into());
        m.insert("ModifyIndex".into(), self.modify_index.into());
        Value::Object(m)
    }
}

fn touch(plan: &mut Plan, kind: &str, name: &str) {
    plan.touch(Topic::ConfigKind(kind.to_owned()));
    plan.touch(Topic::ConfigEntry(kind.to_owned(), name.to_owned()));
}

/// Plans an upsert. With `cas`, the write happens only if the entry's ModifyIndex equals it (0: only if
/// absent). Returns whether it happens; an unchanged body is a successful no-op.
pub(crate) fn plan_set(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    kind: &str,
    name: &str,
    body: Map<String, Value>,
    cas: Option<u64>,
) -> bool {
    let existing = t.config.get(&(kind.to_owned(), name.to_owned()));
    if let Some(cas) = cas
        && existing.map_or(0, |e| e.modify_index) != cas
    {
        return false;
    }
    if existing.is_some_and(|e| e.body == body) {
        return true;
    }
    plan.push(Mutation::PutConfig(ConfigEntry {
        kind: kind.to_owned(),
        name: name.to_owned(),
        body,
        create_index: existing.map_or(index, |e| e.create_index),
        modify_index: index,
    }));
    touch(plan, kind, name);
    true
}

/// Plans a delete (with `cas`: only if the ModifyIndex matches). Returns whether it happens.
pub(crate) fn plan_delete(
    t: &Tables,
    plan: &mut Plan,
    kind: &str,
    name: &str,
    cas: Option<u64>,
) -> bool {
    let existing = t.config.get(&(kind.to_owned(), name.to_owned()));
    if let Some(cas) = cas
        && existing.map_or(0, |e| e.modify_index) != cas
    {
        return false;
    }
    if existing.is_some() {
        plan.push(Mutation::DeleteConfig {
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
        touch(plan, kind, name);
    }
    true
}

/// The entries of one kind, by name.
pub(crate) fn list<'a>(t: &'a Tables, kind: &'a str) -> impl Iterator<Item = &'a ConfigEntry> + 'a {
    t.config
        .range((kind.to_owned(), String::new())..)
        .take_while(move |((k, _), _)| k == kind)
        .map(|(_, e)| e)
}
