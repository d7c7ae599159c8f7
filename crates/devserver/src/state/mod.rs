//! The state store: tables, the write path, change notification and durability.
//!
//! **Invariants.**
//! - Every write goes through [`Store::write`]: a planning closure reads the current tables and produces a
//!   list of [`Mutation`]s (or an error, and then nothing changes). The mutations are appended to the log
//!   and synced to disk *before* they are applied in memory and before the client gets its reply, so an
//!   acknowledged write survives a crash and a failed write leaves no trace.
//! - Writes are serialised; each non-empty write gets the next index. The index never goes backwards, also
//!   across restarts (it is stored with every log record and in the snapshot).
//! - Applying mutations cannot fail, so replaying the log rebuilds exactly the tables that were served.
//!
//! Readers take a short read lock ([`Store::read`]). Blocking queries subscribe to [`Topic`]s before they
//! read, and wait on a `tokio::sync::watch` channel per topic; a write notifies only the topics it touched.
//! An idle blocking query costs one channel receiver and no CPU.

pub(crate) mod ca;
pub(crate) mod catalog;
pub(crate) mod config_entries;
#[cfg(test)]
mod index_tests;
pub(crate) mod intentions;
pub(crate) mod kv;
mod persist;
pub(crate) mod types;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use self::catalog::Rejected;
use self::kv::KvEntry;
use self::types::{HealthCheck, Node, NodeService};
pub(crate) use self::watch::Subscription;
use crate::Error;

/// Something a blocking query can wait on. Names are lower-cased (Consul matches them without regard to
/// case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Topic {
    /// The set of nodes and their fields.
    Nodes,
    /// One node: its fields, services and checks.
    Node(String),
    /// The set of service names and tags.
    Services,
    /// The instances of one service and their checks.
    Service(String),
    /// The Connect-capable instances (sidecars, native) serving one service.
    Connect(String),
    /// Every check (for `/v1/health/state`).
    Checks,
    /// One KV key (notification only; KV indexes come from the entries).
    KvKey(String),
    /// Every KV key under a prefix (notification only).
    KvPrefix(String),
    /// All config entries of a kind.
    ConfigKind(String),
    /// One config entry.
    ConfigEntry(String, String),
    /// A table of an extension area (CA, intentions, ACLs...), named by the area.
    Ext(String),
}

/// One change to the tables. Applying a mutation cannot fail.
#[allow(clippy::large_enum_variant)] // short-lived; boxing would only complicate the log format code
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Mutation {
    /// Insert or replace a node.
    PutNode(Node),
    /// Remove a node (by name; its services and checks are removed by their own mutations).
    DeleteNode(String),
    /// Insert or replace a service instance on a node.
    PutService {
        /// The node name.
        node: String,
        /// The instance.
        service: NodeService,
    },
    /// Remove a service instance.
    DeleteService {
        /// The node name.
        node: String,
        /// The instance ID.
        id: String,
    },
    /// Insert or replace a check.
    PutCheck(HealthCheck),
    /// Remove a check.
    DeleteCheck {
        /// The node name.
        node: String,
        /// The check ID.
        id: String,
    },
    /// Insert or replace a KV entry.
    PutKv(KvEntry),
    /// Remove a KV entry, leaving a tombstone.
    DeleteKv(String),
    /// Insert or replace a config entry.
    PutConfig(config_entries::ConfigEntry),
    /// Remove a config entry.
    DeleteConfig {
        /// The entry kind.
        kind: String,
        /// The entry name.
        name: String,
    },
    /// Insert or replace a record of an extension table.
    PutExt {
        /// The table.
        table: String,
        /// The record key.
        key: String,
        /// The record.
        value: Value,
    },
    /// Remove a record of an extension table.
    DeleteExt {
        /// The table.
        table: String,
        /// The record key.
        key: String,
    },
    /// Set a topic's index to this write's index and wake its watchers.
    Touch(Topic),
}

/// The in-memory tables.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// The index of the last applied write.
    pub(crate) index: u64,
    /// Nodes by lower-cased name.
    pub(crate) nodes: BTreeMap<String, Node>,
    /// Service instances by (lower-cased node, lower-cased ID).
    pub(crate) services: BTreeMap<(String, String), NodeService>,
    /// The node name (as registered) of each service instance, same keys as `services`.
    pub(crate) service_nodes: BTreeMap<(String, String), String>,
    /// Checks by (lower-cased node, lower-cased check ID).
    pub(crate) checks: BTreeMap<(String, String), HealthCheck>,
    /// KV entries by key.
    pub(crate) kv: BTreeMap<String, KvEntry>,
    /// Index at which each deleted KV key was deleted.
    pub(crate) kv_tombstones: BTreeMap<String, u64>,
    /// Config entries by (kind, name).
    pub(crate) config: BTreeMap<(String, String), config_entries::ConfigEntry>,
    /// Extension tables: table → key → record.
    pub(crate) ext: BTreeMap<String, BTreeMap<String, Value>>,
    /// The last index that touched each topic.
    pub(crate) topics: HashMap<Topic, u64>,
    /// Derived lookups, kept in step with the tables above by [`Tables::apply`].
    pub(crate) idx: Indexes,
}

/// An instance key: (lower-cased node, lower-cased service ID), as in [`Tables::services`].
pub(crate) type InstanceKey = (String, String);

/// Lookups derived from the tables so that a query for one service or one instance does not walk the
/// whole catalog. Every key is lower-cased with `str::to_lowercase`, as the scans they replace compared.
/// Maintained only by [`Tables::apply`], which snapshot loading and log replay go through too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Indexes {
    /// Lower-cased service name → the instances with that name.
    pub(crate) by_service: HashMap<String, BTreeSet<InstanceKey>>,
    /// Lower-cased Connect target → the Connect-capable instances (sidecars, native) serving it.
    pub(crate) by_connect: HashMap<String, BTreeSet<InstanceKey>>,
    /// (Lower-cased node, lower-cased service ID of the check) → lower-cased IDs of the instance's checks.
    pub(crate) instance_checks: HashMap<InstanceKey, BTreeSet<String>>,
    /// Lower-cased node → lower-cased IDs of its node-level checks (no service ID).
    pub(crate) node_checks: HashMap<String, BTreeSet<String>>,
}

fn index_add<K: std::hash::Hash + Eq, V: Ord>(map: &mut HashMap<K, BTreeSet<V>>, key: K, v: V) {
    map.entry(key).or_default().insert(v);
}

fn index_remove<K, V>(map: &mut HashMap<K, BTreeSet<V>>, key: &K, v: &V)
where
    K: std::hash::Hash + Eq,
    V: Ord,
{
    if let Some(set) = map.get_mut(key) {
        set.remove(v);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Indexes {
    fn add_service(&mut self, key: &InstanceKey, s: &NodeService) {
        index_add(&mut self.by_service, s.service.to_lowercase(), key.clone());
        if let Some(target) = s.connect_target() {
            index_add(&mut self.by_connect, target.to_lowercase(), key.clone());
        }
    }

    fn remove_service(&mut self, key: &InstanceKey, s: &NodeService) {
        index_remove(&mut self.by_service, &s.service.to_lowercase(), key);
        if let Some(target) = s.connect_target() {
            index_remove(&mut self.by_connect, &target.to_lowercase(), key);
        }
    }

    fn add_check(&mut self, node_lc: &str, id_lc: &str, c: &HealthCheck) {
        if c.service_id.is_empty() {
            index_add(&mut self.node_checks, node_lc.to_owned(), id_lc.to_owned());
        } else {
            let key = (node_lc.to_owned(), c.service_id.to_lowercase());
            index_add(&mut self.instance_checks, key, id_lc.to_owned());
        }
    }

    fn remove_check(&mut self, node_lc: &str, id_lc: &str, c: &HealthCheck) {
        if c.service_id.is_empty() {
            index_remove(
                &mut self.node_checks,
                &node_lc.to_owned(),
                &id_lc.to_owned(),
            );
        } else {
            let key = (node_lc.to_owned(), c.service_id.to_lowercase());
            index_remove(&mut self.instance_checks, &key, &id_lc.to_owned());
        }
    }
}

impl Tables {
    /// The index of a topic: the last write that touched it, or 1 if none did (Consul never hands out 0).
    pub(crate) fn topic_index(&self, topic: &Topic) -> u64 {
        self.topics.get(topic).copied().unwrap_or(0).max(1)
    }

    fn apply(&mut self, index: u64, muts: &[Mutation], touched: &mut BTreeSet<Topic>) {
        for m in muts {
            match m {
                Mutation::PutNode(n) => {
                    self.nodes.insert(n.node.to_lowercase(), n.clone());
                }
                Mutation::DeleteNode(name) => {
                    self.nodes.remove(&name.to_lowercase());
                }
                Mutation::PutService { node, service } => {
                    let key = (node.to_lowercase(), service.id.to_lowercase());
                    self.service_nodes.insert(key.clone(), node.clone());
                    if let Some(old) = self.services.insert(key.clone(), service.clone()) {
                        self.idx.remove_service(&key, &old);
                    }
                    self.idx.add_service(&key, service);
                }
                Mutation::DeleteService { node, id } => {
                    let key = (node.to_lowercase(), id.to_lowercase());
                    if let Some(old) = self.services.remove(&key) {
                        self.idx.remove_service(&key, &old);
                    }
                    self.service_nodes.remove(&key);
                }
                Mutation::PutCheck(c) => {
                    let (node_lc, id_lc) = (c.node.to_lowercase(), c.check_id.to_lowercase());
                    if let Some(old) = self
                        .checks
                        .insert((node_lc.clone(), id_lc.clone()), c.clone())
                    {
                        self.idx.remove_check(&node_lc, &id_lc, &old);
                    }
                    self.idx.add_check(&node_lc, &id_lc, c);
                }
                Mutation::DeleteCheck { node, id } => {
                    let (node_lc, id_lc) = (node.to_lowercase(), id.to_lowercase());
                    if let Some(old) = self.checks.remove(&(node_lc.clone(), id_lc.clone())) {
                        self.idx.remove_check(&node_lc, &id_lc, &old);
                    }
                }
                Mutation::PutKv(e) => {
                    self.kv_tombstones.remove(&e.key);
                    kv::touch_key(&e.key, touched);
                    self.kv.insert(e.key.clone(), e.clone());
                }
                Mutation::DeleteKv(key) => {
                    if self.kv.remove(key).is_some() {
                        self.kv_tombstones.insert(key.clone(), index);
                        kv::touch_key(key, touched);
                    }
                }
                Mutation::PutConfig(e) => {
                    self.config
                        .insert((e.kind.clone(), e.name.clone()), e.clone());
                }
                Mutation::DeleteConfig { kind, name } => {
                    self.config.remove(&(kind.clone(), name.clone()));
                }
                Mutation::PutExt { table, key, value } => {
                    self.ext
                        .entry(table.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Mutation::DeleteExt { table, key } => {
                    if let Some(t) = self.ext.get_mut(table) {
                        t.remove(key);
                    }
                }
                Mutation::Touch(topic) => {
                    self.topics.insert(topic.clone(), index);
                    touched.insert(topic.clone());
                }
            }
        }
        self.index = index;
    }
}

/// The changes a write wants to make, built by a planning closure.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    muts: Vec<Mutation>,
    topics: BTreeSet<Topic>,
}

impl Plan {
    /// Adds a mutation.
    pub(crate) fn push(&mut self, m: Mutation) {
        self.muts.push(m);
    }

    /// Marks a topic as changed by this write.
    pub(crate) fn touch(&mut self, t: Topic) {
        self.topics.insert(t);
    }

    /// Whether the plan changes anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.muts.is_empty() && self.topics.is_empty()
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError<E> {
    /// The planning closure refused the write.
    #[error(transparent)]
    Rejected(E),
    /// The write could not be made durable; nothing was applied.
    #[error("failed to persist the write: {0}")]
    Storage(String),
}

/// The state store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    tables: RwLock<Tables>,
    writer: Mutex<Option<persist::Log>>,
    hub: watch::Hub,
}

impl Store {
    /// Opens the store: in memory when `data_dir` is `None`, else recovered from the snapshot and log there.
    pub(crate) fn open(data_dir: Option<&Path>) -> Result<Store, Error> {
        let mut tables = Tables::default();
        let log = match data_dir {
            None => None,
            Some(dir) => {
                let (log, snapshot, records) = persist::Log::open(dir)?;
                if let Some(snap) = snapshot {
                    snap.restore_into(&mut tables);
                }
                let mut scratch = BTreeSet::new();
                for rec in records {
                    if rec.index <= tables.index {
                        continue;
                    }
                    tables.apply(rec.index, &rec.mutations, &mut scratch);
                }
                tracing::info!(index = tables.index, dir = %dir.display(), "state recovered");
                Some(log)
            }
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                tables: RwLock::new(tables),
                writer: Mutex::new(log),
                hub: watch::Hub::default(),
            }),
        })
    }

    /// Runs `f` against the current tables under a read lock. Do not block inside `f`.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        let guard = self.inner.tables.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Subscribes to topics; the returned subscription fires on the next write that touches any of them.
    pub(crate) fn subscribe(&self, topics: &[Topic]) -> Subscription {
        self.inner.hub.subscribe(topics)
    }

    /// Plans, persists and applies one write. Returns the index of the write (the current index when the
    /// plan was empty) and the closure's result. This blocks on disk I/O: call it from a blocking context.
    pub(crate) fn write<R, E>(
        &self,
        plan_fn: impl FnOnce(&Tables, u64, &mut Plan) -> Result<R, E>,
    ) -> Result<(u64, R), WriteError<E>> {
        let mut writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut plan = Plan::default();
        let (next, result) = {
            let tables = self.inner.tables.read().unwrap_or_else(|e| e.into_inner());
            let next = tables.index + 1;
            let result = plan_fn(&tables, next, &mut plan).map_err(WriteError::Rejected)?;
            if plan.is_empty() {
                return Ok((tables.index, result));
            }
            (next, result)
        };
        let mut muts = plan.muts;
        muts.extend(plan.topics.into_iter().map(Mutation::Touch));
        let record = persist::Record {
            index: next,
            mutations: muts,
        };
        if let Some(log) = writer.as_mut() {
            log.append(&record)
                .map_err(|e| WriteError::Storage(e.to_string()))?;
        }
        let mut touched = BTreeSet::new();
        {
            let mut tables = self.inner.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.apply(next, &record.mutations, &mut touched);
        }
        for t in &touched {
            self.inner.hub.notify(t);
        }
        if let Some(log) = writer.as_mut()
            && log.wants_compaction()
        {
            let snap = self.read(persist::Snapshot::capture);
            if let Err(e) = log.compact(&snap) {
                tracing::warn!(error = %e, "state compaction failed; the log keeps growing until it succeeds");
            }
        }
        Ok((next, result))
    }

    /// Writes a snapshot and truncates the log now (used at shutdown so the next start is quick).
    pub(crate) fn compact(&self) -> Result<(), Error> {
        let mut writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = writer.as_mut() {
            let snap = self.read(persist::Snapshot::capture);
            log.compact(&snap)?;
        }
        Ok(())
    }
}
