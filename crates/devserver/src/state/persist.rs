//! Durability: an append-only log of applied writes plus a periodic snapshot, in `data_dir`.
//!
//! Files (all 0600, the directory 0700):
//! - `state.snapshot`: the whole state at some index, JSON, replaced atomically (write a temporary file,
//!   fsync, rename, fsync the directory).
//! - `state.log`: the writes after the snapshot. Each record is `u32 length (LE) | 8-byte checksum (first
//!   bytes of SHA-256 of the payload) | payload (JSON of [`Record`])`. A record is written before the write
//!   is applied and fsynced (with any others written meanwhile) before it is acknowledged.
//!
//! On start the snapshot is loaded and the log replayed; records at or below the snapshot's index are
//! skipped (a crash between snapshot and log truncation leaves them behind). A final record that is cut
//! short or fails its checksum is what a crash in the middle of an append leaves: it was never
//! acknowledged, so it is logged, discarded and the file truncated before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config_entries::ConfigEntry;
use super::kv::KvEntry;
use super::types::{HealthCheck, Node, NodeService};
use super::{Mutation, Tables, Topic};
use crate::Error;

const LOG_FILE: &str = "state.log";
const SNAPSHOT_FILE: &str = "state.snapshot";
const HEADER_LEN: usize = 12;
/// Compact once the log holds this many records...
const COMPACT_RECORDS: u64 = 4096;
/// ...or this many bytes.
const COMPACT_BYTES: u64 = 32 * 1024 * 1024;
/// A record larger than this is taken as corruption rather than allocated.
const MAX_RECORD: u32 = 256 * 1024 * 1024;

/// One applied write.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) index: u64,
    pub(super) mutations: Vec<Mutation>,
}

/// The whole state at one index.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub(super) index: u64,
    nodes: Vec<Node>,
    services: Vec<(String, NodeService)>,
    checks: Vec<HealthCheck>,
    kv: Vec<KvEntry>,
    kv_tombstones: Vec<(String, u64)>,
    config: Vec<ConfigEntry>,
    ext: BTreeMap<String, BTreeMap<String, Value>>,
    topics: Vec<(Topic, u64)>,
}

impl Snapshot {
    pub(super) fn capture(t: &Tables) -> Snapshot {
        let mut topics: Vec<(Topic, u64)> = t.topics.iter().map(|(k, v)| (k.clone(), *v)).collect();
        topics.sort();
        Snapshot {
            index: t.index,
            nodes: t.nodes.values().cloned().collect(),
            services: t
                .services
                .iter()
                .map(|(k, s)| {
                    (
                        t.service_nodes
                            .get(k)
                            .cloned()
                            .unwrap_or_else(|| k.0.clone()),
                        s.clone(),
                    )
                })
                .collect(),
            checks: t.checks.values().cloned().collect(),
            kv: t.kv.values().cloned().collect(),
            kv_tombstones: t
                .kv_tombstones
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            config: t.config.values().cloned().collect(),
            ext: t.ext.clone(),
            topics,
        }
    }

    pub(super) fn restore_into(self, t: &mut Tables) {
        let mut muts = Vec::new();
        muts.extend(self.nodes.into_iter().map(Mutation::PutNode));
        muts.extend(
            self.services
                .into_iter()
                .map(|(node, service)| Mutation::PutService { node, service }),
        );
        muts.extend(self.checks.into_iter().map(Mutation::PutCheck));
        muts.extend(self.kv.into_iter().map(Mutation::PutKv));
        muts.extend(self.config.into_iter().map(Mutation::PutConfig));
        let mut scratch = BTreeSet::new();
        t.apply(self.index, &muts, &mut scratch);
        t.kv_tombstones = self.kv_tombstones.into_iter().collect();
        t.ext = self.ext;
        t.topics = self.topics.into_iter().collect();
        t.index = self.index;
    }
}

/// The open log file.
pub(super) struct Log {
    dir: PathBuf,
    file: File,
    len: u64,
    records: u64,
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn storage(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Storage(format!("{what} {}: {e}", path.display()))
}

fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true);
    if truncate {
        opts.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    let _ = dir;
    Ok(())
}

impl Log {
    /// Opens (creating if needed) the state in `dir`: returns the log positioned for appending, the
    /// snapshot if there is one, and the valid log records in order.
    pub(super) fn open(dir: &Path) -> Result<(Log, Option<Snapshot>, Vec<Record>), Error> {
        fs::create_dir_all(dir).map_err(|e| storage(dir, "cannot create data directory", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| storage(dir, "cannot restrict data directory", e))?;
        }
        let snap_path = dir.join(SNAPSHOT_FILE);
        let snapshot = match fs::read(&snap_path) {
            Ok(bytes) => Some(serde_json::from_slice::<Snapshot>(&bytes).map_err(|e| {
                Error::Storage(format!(
                    "snapshot {} is unreadable ({e}); refusing to start",
                    snap_path.display()
                ))
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(storage(&snap_path, "cannot read snapshot", e)),
        };
        let log_path = dir.join(LOG_FILE);
        let mut file =
            open_private(&log_path, false).map_err(|e| storage(&log_path, "cannot open log", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| storage(&log_path, "cannot read log", e))?;
        let (records, valid_len) = parse_records(&bytes, &log_path);
        if (valid_len as usize) < bytes.len() {
            tracing::warn!(
                file = %log_path.display(),
                offset = valid_len,
                discarded_bytes = bytes.len() as u64 - valid_len,
                "discarding a torn or corrupt record at the end of the state log (a write that was never acknowledged)"
            );
            file.set_len(valid_len)
                .map_err(|e| storage(&log_path, "cannot truncate log", e))?;
            file.sync_all()
                .map_err(|e| storage(&log_path, "cannot sync log", e))?;
        }
        file.seek(SeekFrom::Start(valid_len))
            .map_err(|e| storage(&log_path, "cannot seek log", e))?;
        let count = records.len() as u64;
        Ok((
            Log {
                dir: dir.to_path_buf(),
                file,
                len: valid_len,
                records: count,
            },
            snapshot,
            records,
        ))
    }

    /// A second handle on the log file, for syncing it while other records are appended.
    pub(super) fn sync_handle(&self) -> Result<File, Error> {
        let path = self.dir.join(LOG_FILE);
        self.file
            .try_clone()
            .map_err(|e| storage(&path, "cannot duplicate the handle of log", e))
    }

    /// Appends one record, without syncing it (the store's group commit does that). On failure the file
    /// is cut back to its previous length.
    pub(super) fn append(&mut self, rec: &Record) -> io::Result<()> {
        let payload = serde_json::to_vec(rec).map_err(io::Error::other)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| io::Error::other("write too large"))?;
        let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&checksum(&payload));
        buf.extend_from_slice(&payload);
        match self.file.write_all(&buf) {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.records += 1;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    pub(super) fn wants_compaction(&self) -> bool {
        self.records >= COMPACT_RECORDS || self.len >= COMPACT_BYTES
    }

    /// Writes `snap` atomically and empties the log.
    pub(super) fn compact(&mut self, snap: &Snapshot) -> Result<(), Error> {
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let path = self.dir.join(SNAPSHOT_FILE);
        let bytes = serde_json::to_vec(snap)
            .map_err(|e| Error::Storage(format!("cannot encode snapshot: {e}")))?;
        let mut f =
            open_private(&tmp, true).map_err(|e| storage(&tmp, "cannot create snapshot", e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| storage(&tmp, "cannot write snapshot", e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| storage(&path, "cannot install snapshot", e))?;
        sync_dir(&self.dir).map_err(|e| storage(&self.dir, "cannot sync data directory", e))?;
        let log_path = self.dir.join(LOG_FILE);
        self.file
            .set_len(0)
            .map_err(|e| storage(&log_path, "cannot truncate log", e))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| storage(&log_path, "cannot seek log", e))?;
        self.file
            .sync_all()
            .map_err(|e| storage(&log_path, "cannot sync log", e))?;
        self.len = 0;
        self.records = 0;
        Ok(())
    }
}

/// Splits the log into records; returns them and the length of the valid prefix.
fn parse_records(bytes: &[u8], path: &Path) -> (Vec<Record>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut last_index = 0u64;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + HEADER_LEN) else {
            break;
        };
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&header[..4]);
        let len = u32::from_le_bytes(len_bytes);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(pos + HEADER_LEN..pos + HEADER_LEN + len as usize) else {
            break;
        };
        if checksum(payload) != header[4..12] {
            break;
        }
        let Ok(rec) = serde_json::from_slice::<Record>(payload) else {
            tracing::warn!(file = %path.display(), offset = pos, "state log record passes its checksum but does not decode");
            break;
        };
        if rec.index <= last_index {
            tracing::warn!(file = %path.display(), offset = pos, "state log record goes back in index");
            break;
        }
        last_index = rec.index;
        out.push(rec);
        pos += HEADER_LEN + len as usize;
    }
    (out, pos as u64)
}
