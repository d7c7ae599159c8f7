//! The state store: tables, the write path, change notification and durability.
//!
//! **Invariants.**
//! - Every write goes through [`Store::write`]: a planning closure reads the current tables and produces a
//!   list of [`Mutation`]s (or an error, and then nothing changes). Writes are serialised (planned,
//!   appended to the log and applied in index order under the writer lock); each non-empty write gets the
//!   next index. The index never goes backwards, also across restarts (it is stored with every log record
//!   and in the snapshot).
//! - **Group commit.** The fsync is not done under the writer lock. A write appends its record to the log
//!   file, applies it in memory and releases the lock; it is then acknowledged (and its watchers woken)
//!   only once an fsync that started after its record was written has finished. One waiting writer at a
//!   time runs the fsync, covering every record appended so far; the others wait for it, so concurrent
//!   writes share one fsync. A reply to a write whose plan was empty or rejected also waits until the
//!   state it was decided on is durable. So nothing is acknowledged before it is on disk, and a write
//!   acknowledged survives a crash.
//! - Because a write is applied before its fsync, readers may see it a moment before it is durable. If
//!   the record cannot be written at all, nothing is applied. If an fsync fails, every write it was to
//!   cover fails, and the store refuses all further writes until a restart (what is on disk is then
//!   unknown, and Linux may have dropped the dirty pages, so a retry proves nothing); the restart recovers
//!   exactly what reached the disk.
//! - Applying mutations cannot fail, so replaying the log rebuilds exactly the tables that were served.
//!
//! Readers take a short read lock ([`Store::read`]). Blocking queries subscribe to [`Topic`]s before they
//! read, and wait on a `tokio::sync::watch` channel per topic; a write notifies only the topics it touched.
//! An idle blocking query costs one channel receiver and no CPU.

pub(crate) mod ca;
pub(crate) mod catalog;
pub(crate) mod config_entries;
#[cfg(test)]
mod group_commit_tests;
#[cfg(test)]
mod index_tests;
pub(crate) mod intentions;
pub(crate) mod kv;
mod persist;
pub(crate) mod types;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

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
    /// Present when the store is on disk.
    durability: Option<Durability>,
    hub: watch::Hub,
}

/// Group commit: which indexes are on disk, and who is syncing.
struct Durability {
    /// A second handle on the log file, used to fsync it without holding the writer lock.
    file: std::fs::File,
    /// The index of the last record written to the log file (maybe not yet synced). Set under the writer
    /// lock after the bytes are written.
    appended: AtomicU64,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Every write at or below this index is durable.
    synced: u64,
    /// Whether a writer is running an fsync now.
    syncing: bool,
    /// The error of a failed fsync; once set, no write is acknowledged again.
    failed: Option<String>,
}

impl Durability {
    fn failure(&self) -> Option<String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.failed.clone()
    }

    /// Records that everything up to `index` is on disk by other means (a snapshot).
    fn mark_synced(&self, index: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.synced = st.synced.max(index);
        drop(st);
        self.synced_cv.notify_all();
    }

    /// Returns once the write at `index` is durable: runs an fsync if none is running, else waits for the
    /// one running (and runs the next one if that did not cover `index`).
    fn wait(&self, index: u64) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.synced >= index {
                return Ok(());
            }
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            if st.syncing {
                st = self.synced_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.syncing = true;
            drop(st);
            // Every record up to `target` was fully written before `appended` was set, so an fsync
            // started now covers them all.
            let target = self.appended.load(Ordering::Acquire);
            let result = self.file.sync_data();
            st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.syncing = false;
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    tracing::error!(error = %e, "fsync of the state log failed; refusing further writes until a restart");
                    st.failed = Some(format!("fsync of the state log failed: {e}"));
                }
            }
            self.synced_cv.notify_all();
        }
    }
}

impl Store {
    /// Opens the store: in memory when `data_dir` is `None`, else recovered from the snapshot and log there.
    pub(crate) fn open(data_dir: Option<&Path>) -> Result<Store, Error> {
        let mut tables = Tables::default();
        let (log, durability) = match data_dir {
            None => (None, None),
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
                let durability = Durability {
                    file: log.sync_handle()?,
                    appended: AtomicU64::new(tables.index),
                    state: Mutex::new(SyncState {
                        synced: tables.index,
                        ..SyncState::default()
                    }),
                    synced_cv: Condvar::new(),
                };
                (Some(log), Some(durability))
            }
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                tables: RwLock::new(tables),
                writer: Mutex::new(log),
                durability,
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

    /// Waits until the write at `index` is durable (at once for a memory-only store).
    fn wait_durable<E>(&self, index: u64) -> Result<(), WriteError<E>> {
        match &self.inner.durability {
            None => Ok(()),
            Some(d) => d.wait(index).map_err(WriteError::Storage),
        }
    }

    /// Plans, persists and applies one write. Returns the index of the write (the current index when the
    /// plan was empty) and the closure's result, once the write is durable. Concurrent writes share an
    /// fsync (see the module docs). This blocks on disk I/O: call it from a blocking context.
    pub(crate) fn write<R, E>(
        &self,
        plan_fn: impl FnOnce(&Tables, u64, &mut Plan) -> Result<R, E>,
    ) -> Result<(u64, R), WriteError<E>> {
        let mut writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = self.inner.durability.as_ref().and_then(Durability::failure) {
            return Err(WriteError::Storage(e));
        }
        let mut plan = Plan::default();
        let (next, result) = {
            let tables = self.inner.tables.read().unwrap_or_else(|e| e.into_inner());
            let next = tables.index + 1;
            let seen = tables.index;
            match plan_fn(&tables, next, &mut plan) {
                Err(e) => {
                    drop(tables);
                    drop(writer);
                    // The refusal was decided on the state at `seen`: do not report it before that is durable.
                    self.wait_durable::<E>(seen)?;
                    return Err(WriteError::Rejected(e));
                }
                Ok(result) if plan.is_empty() => {
                    drop(tables);
                    drop(writer);
                    self.wait_durable(seen)?;
                    return Ok((seen, result));
                }
                Ok(result) => (next, result),
            }
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
        if let Some(d) = &self.inner.durability {
            d.appended.store(next, Ordering::Release);
        }
        let mut touched = BTreeSet::new();
        {
            let mut tables = self.inner.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.apply(next, &record.mutations, &mut touched);
        }
        if let Some(log) = writer.as_mut()
            && log.wants_compaction()
        {
            let snap = self.read(persist::Snapshot::capture);
            let snap_index = snap.index;
            match log.compact(&snap) {
                Ok(()) => {
                    if let Some(d) = &self.inner.durability {
                        d.mark_synced(snap_index);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "state compaction failed; the log keeps growing until it succeeds");
                }
            }
        }
        drop(writer);
        self.wait_durable(next)?;
        for t in &touched {
            self.inner.hub.notify(t);
        }
        Ok((next, result))
    }

    /// Writes a snapshot and truncates the log now (used at shutdown so the next start is quick).
    pub(crate) fn compact(&self) -> Result<(), Error> {
        let mut writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = writer.as_mut() {
            let snap = self.read(persist::Snapshot::capture);
            let snap_index = snap.index;
            log.compact(&snap)?;
            if let Some(d) = &self.inner.durability {
                d.mark_synced(snap_index);
            }
        }
        Ok(())
    }
}
