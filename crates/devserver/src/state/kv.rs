//! The KV table: entries, tombstones, and the plans for puts and deletes.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Mutation, Plan, Tables, Topic};

/// One KV entry, in Consul's JSON shape (`Value` base64, `null` when empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct KvEntry {
    pub(crate) lock_index: u64,
    pub(crate) key: String,
    pub(crate) flags: u64,
    #[serde(serialize_with = "ser_value", deserialize_with = "de_value")]
    pub(crate) value: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) session: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

fn ser_value<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        None => s.serialize_none(),
    }
}

fn de_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    })
    .transpose()
}

/// Adds the notification topics of a key: the key itself and every prefix of it.
pub(super) fn touch_key(key: &str, touched: &mut BTreeSet<Topic>) {
    touched.insert(Topic::KvKey(key.to_owned()));
    for (i, _) in key.char_indices() {
        touched.insert(Topic::KvPrefix(key[..i].to_owned()));
    }
    touched.insert(Topic::KvPrefix(key.to_owned()));
}

/// The index of one key: its ModifyIndex, or the index of its deletion, or 1.
pub(crate) fn key_index(t: &Tables, key: &str) -> u64 {
    t.kv.get(key)
        .map(|e| e.modify_index)
        .or_else(|| t.kv_tombstones.get(key).copied())
        .unwrap_or(1)
        .max(1)
}

/// The index of a prefix: the highest ModifyIndex or deletion under it, or 1.
pub(crate) fn prefix_index(t: &Tables, prefix: &str) -> u64 {
    let live =
        t.kv.range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.modify_index)
            .max();
    let dead = t
        .kv_tombstones
        .range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, i)| *i)
        .max();
    live.unwrap_or(0).max(dead.unwrap_or(0)).max(1)
}

/// The entries under a prefix, in key order.
pub(crate) fn list<'a>(t: &'a Tables, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
    t.kv.range(prefix.to_owned()..)
        .take_while(move |(k, _)| k.starts_with(prefix))
        .map(|(_, e)| e)
}

/// Plans a put. With `cas`, the write happens only if the key's ModifyIndex equals it (0: only if absent).
/// Returns whether the put happens.
pub(crate) fn plan_set(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    key: &str,
    value: Option<Vec<u8>>,
    flags: u64,
    cas: Option<u64>,
) -> bool {
    let existing = t.kv.get(key);
    if let Some(cas) = cas {
        let current = existing.map_or(0, |e| e.modify_index);
        if current != cas {
            return false;
        }
    }
    let entry = KvEntry {
        lock_index: existing.map_or(0, |e| e.lock_index),
        key: key.to_owned(),
        flags,
        value,
        session: existing.map(|e| e.session.clone()).unwrap_or_default(),
        create_index: existing.map_or(index, |e| e.create_index),
        modify_index: index,
    };
    plan.push(Mutation::PutKv(entry));
    true
}

/// Plans a delete of one key (with `cas`: only if its ModifyIndex matches) or of a whole prefix.
pub(crate) fn plan_delete(
    t: &Tables,
    plan: &mut Plan,
    key: &str,
    recurse: bool,
    cas: Option<u64>,
) -> bool {
    if recurse {
        for e in list(t, key) {
            plan.push(Mutation::DeleteKv(e.key.clone()));
        }
        return true;
    }
    let existing = t.kv.get(key);
    if let Some(cas) = cas {
        match existing {
            Some(e) if e.modify_index == cas => {}
            // Consul reports a CAS delete of a missing key as done: the key is gone either way.
            None => return true,
            _ => return false,
        }
    }
    if existing.is_some() {
        plan.push(Mutation::DeleteKv(key.to_owned()));
    }
    true
}
