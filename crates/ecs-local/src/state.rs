//! The state directory: what `ps`, `logs` and `stop` read across invocations.
//!
//! ```text
//! <state-dir>/
//!   lock                      advisory lock: address allocation and the bridge's lifetime
//!   network.json              the bridge this state directory created (removed with its last task)
//!   volumes/<name>/           shared volumes (dockerVolumeConfiguration scope "shared")
//!   tasks/<task-id>/
//!     task.json               the task record (TaskRecord), rewritten on every change
//!     taskdef.json            the definition as given
//!     stop-requested          written by `stop`; the supervisor polls for it
//!     supervisor.log          a detached supervisor's own messages
//!     logs/<container>.log    each container's output (stdout and stderr)
//!     volumes/<name>/         task volumes (removed when the task stops)
//!     etc/<container>/        the container's hosts, hostname and resolv.conf
//!     rootfs/<container>/     empty mount points for container roots (removed when the task stops)
//! ```

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::network::Ipv4Cidr;
use crate::sys::ProcessId;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/consul-ecs-local";

/// A task's or container's lifecycle status, as ECS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Not started yet.
    Pending,
    /// Running.
    Running,
    /// Finished (or never started, for a container whose dependencies failed).
    Stopped,
}

impl Status {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Stopped => "STOPPED",
        }
    }
}

/// A container's health, as ECS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// No verdict yet.
    Unknown,
    /// The check passes.
    Healthy,
    /// The check failed `retries` times in a row.
    Unhealthy,
}

impl Health {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "UNKNOWN",
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
        }
    }
}

/// A container as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// The container's name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Whether its exit stops the task.
    pub essential: bool,
    /// Its status.
    pub last_status: Status,
    /// Its exit code, once it has exited (128+N when signal N ended it).
    pub exit_code: Option<i32>,
    /// Its health, when it has a health check.
    pub health: Option<Health>,
    /// Why it stopped or never started.
    pub reason: Option<String>,
    /// Its shim process while it runs.
    pub process: Option<ProcessId>,
    /// Its `stopTimeout` in seconds.
    pub stop_timeout_secs: f64,
}

/// A task as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The task ID (32 hexadecimal digits unless the caller chose one).
    pub id: String,
    /// The task ARN in the metadata document.
    pub arn: String,
    /// The task definition family.
    pub family: String,
    /// Its revision.
    pub revision: u32,
    /// The cluster named in the metadata document.
    pub cluster: String,
    /// `awsvpc`, `bridge` or `host`.
    pub network_mode: String,
    /// The task's address (none with host networking).
    pub ip: Option<Ipv4Addr>,
    /// The task's network namespace name.
    pub netns: Option<String>,
    /// The host side of its veth pair.
    pub veth: Option<String>,
    /// The bridge it is attached to.
    pub bridge: Option<String>,
    /// The process that supervises it.
    pub supervisor: Option<ProcessId>,
    /// The task's status.
    pub last_status: Status,
    /// What it should become.
    pub desired_status: Status,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it stopped (RFC 3339).
    pub stopped_at: Option<String>,
    /// Why it stopped.
    pub stopped_reason: Option<String>,
    /// Its containers, in definition order.
    pub containers: Vec<ContainerRecord>,
}

impl TaskRecord {
    /// The container with this name.
    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Whether the record says the task may still hold resources.
    pub fn is_active(&self) -> bool {
        self.last_status != Status::Stopped
    }
}

/// The bridge a state directory created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NetworkRecord {
    bridge: String,
    subnet: String,
    /// Kept when the last task stops (an embedder prepared it for services of its own).
    #[serde(default)]
    pinned: bool,
}

/// A problem with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A record could not be decoded.
    #[error("{path}: not a task record: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// No task matches.
    #[error("no task matches {0:?}")]
    NoSuchTask(String),
    /// Several tasks match a prefix.
    #[error("{prefix:?} matches several tasks: {matches}")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The IDs it matches.
        matches: String,
    },
    /// Every address of the range is taken.
    #[error("no free address left in {0}")]
    AddressesExhausted(Ipv4Cidr),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

/// Holds the state directory's lock until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    /// The state directory at `root` (nothing is created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where task directories live.
    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join("tasks")
    }

    /// A task's directory.
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.tasks_dir().join(id)
    }

    /// A task's record file.
    pub fn record_path(&self, id: &str) -> PathBuf {
        self.task_dir(id).join("task.json")
    }

    /// A container's log file.
    pub fn log_path(&self, id: &str, container: &str) -> PathBuf {
        self.task_dir(id)
            .join("logs")
            .join(format!("{container}.log"))
    }

    /// The file `stop` writes to ask a task's supervisor to stop it.
    pub fn stop_marker(&self, id: &str) -> PathBuf {
        self.task_dir(id).join("stop-requested")
    }

    /// A shared volume's directory.
    pub fn shared_volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// Takes the state directory's lock (creating the directory if needed).
    pub fn lock(&self) -> Result<StateLock, StateError> {
        std::fs::create_dir_all(&self.root).map_err(io_error(&self.root))?;
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        file.lock().map_err(io_error(&path))?;
        Ok(StateLock { _file: file })
    }

    /// Writes a record (atomically: a temporary file renamed over the old one).
    pub fn write(&self, record: &TaskRecord) -> Result<(), StateError> {
        let path = self.record_path(&record.id);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(record).map_err(|e| StateError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(&text).map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))
    }

    /// Reads a record.
    pub fn read(&self, id: &str) -> Result<TaskRecord, StateError> {
        let path = self.record_path(id);
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Every readable record, oldest first.
    pub fn list(&self) -> Vec<TaskRecord> {
        let Ok(entries) = std::fs::read_dir(self.tasks_dir()) else {
            return Vec::new();
        };
        let mut records: Vec<TaskRecord> = entries
            .flatten()
            .filter_map(|e| self.read(&e.file_name().to_string_lossy()).ok())
            .collect();
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        records
    }

    /// The task whose ID is `prefix` or starts with it.
    pub fn find(&self, prefix: &str) -> Result<TaskRecord, StateError> {
        let records = self.list();
        if let Some(exact) = records.iter().find(|r| r.id == prefix) {
            return Ok(exact.clone());
        }
        let matches: Vec<&TaskRecord> = records
            .iter()
            .filter(|r| !prefix.is_empty() && r.id.starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [] => Err(StateError::NoSuchTask(prefix.to_owned())),
            [one] => Ok((*one).clone()),
            many => Err(StateError::Ambiguous {
                prefix: prefix.to_owned(),
                matches: many
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The first free address of `subnet` among active tasks (call with the lock held).
    pub(crate) fn allocate_ip(&self, subnet: &Ipv4Cidr) -> Result<Ipv4Addr, StateError> {
        let used: Vec<Ipv4Addr> = self
            .list()
            .into_iter()
            .filter(TaskRecord::is_active)
            .filter_map(|r| r.ip)
            .collect();
        subnet
            .hosts()
            .find(|ip| !used.contains(ip))
            .ok_or(StateError::AddressesExhausted(*subnet))
    }

    /// Records that this state directory created `bridge` (call with the lock held). A pinned
    /// bridge stays when the last task stops, until [`StateDir::unpin_bridge`].
    pub(crate) fn remember_bridge(
        &self,
        bridge: &str,
        subnet: &Ipv4Cidr,
        pinned: bool,
    ) -> Result<(), StateError> {
        let path = self.root.join("network.json");
        let pinned = pinned || self.network_record().is_some_and(|r| r.pinned);
        let record = NetworkRecord {
            bridge: bridge.to_owned(),
            subnet: subnet.to_string(),
            pinned,
        };
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        std::fs::write(&path, text).map_err(io_error(&path))
    }

    fn network_record(&self) -> Option<NetworkRecord> {
        let text = std::fs::read_to_string(self.root.join("network.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Lets the bridge go with the last task again (call with the lock held).
    pub(crate) fn unpin_bridge(&self) {
        if let Some(mut record) = self.network_record() {
            record.pinned = false;
            let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
            let _ = std::fs::write(self.root.join("network.json"), text);
        }
    }

    /// Removes the bridge this state directory created when no active task is left and it is not
    /// pinned (call with the lock held). `leaving` is a task that is on its way out and does not
    /// count.
    pub(crate) fn release_bridge_if_unused(&self, leaving: &str) {
        let busy = self
            .list()
            .iter()
            .any(|r| r.is_active() && r.id != leaving && r.bridge.is_some());
        if busy {
            return;
        }
        let Some(record) = self.network_record() else {
            return;
        };
        if record.pinned {
            return;
        }
        crate::network::delete_bridge(&record.bridge);
        let _ = std::fs::remove_file(self.root.join("network.json"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(id: &str, ip: &str, status: Status) -> TaskRecord {
        TaskRecord {
            id: id.to_owned(),
            arn: format!("arn:aws:ecs:us-east-1:123456789012:task/local/{id}"),
            family: "web".to_owned(),
            revision: 1,
            cluster: "local".to_owned(),
            network_mode: "awsvpc".to_owned(),
            ip: Some(ip.parse().unwrap()),
            netns: None,
            veth: None,
            bridge: Some("ecsl-test".to_owned()),
            supervisor: None,
            last_status: status,
            desired_status: Status::Running,
            created_at: format!("2024-01-01T00:00:0{}Z", id.len() % 10),
            stopped_at: None,
            stopped_reason: None,
            containers: Vec::new(),
        }
    }

    #[test]
    fn records_round_trip_and_prefixes_find_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        for (id, ip) in [
            ("aaaa1111", "10.9.0.2"),
            ("aaaa2222", "10.9.0.3"),
            ("bbbb", "10.9.0.4"),
        ] {
            std::fs::create_dir_all(state.task_dir(id)).unwrap();
            state.write(&record(id, ip, Status::Running)).unwrap();
        }
        assert_eq!(
            state.read("bbbb").unwrap(),
            record("bbbb", "10.9.0.4", Status::Running)
        );
        assert_eq!(state.find("aaaa1").unwrap().id, "aaaa1111");
        assert_eq!(state.find("bbbb").unwrap().id, "bbbb");
        assert!(matches!(
            state.find("aaaa"),
            Err(StateError::Ambiguous { .. })
        ));
        assert!(matches!(state.find("cccc"), Err(StateError::NoSuchTask(_))));
        assert!(matches!(state.find(""), Err(StateError::NoSuchTask(_))));
        assert_eq!(state.list().len(), 3);
    }

    #[test]
    fn addresses_skip_active_tasks_and_reuse_stopped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let subnet: Ipv4Cidr = "10.9.0.0/29".parse().unwrap();
        let _lock = state.lock().unwrap();
        assert_eq!(state.allocate_ip(&subnet).unwrap().to_string(), "10.9.0.2");
        for (id, ip, status) in [
            ("t1", "10.9.0.2", Status::Running),
            ("t2", "10.9.0.3", Status::Stopped),
            ("t3", "10.9.0.4", Status::Pending),
        ] {
            std::fs::create_dir_all(state.task_dir(id)).unwrap();
            state.write(&record(id, ip, status)).unwrap();
        }
        assert_eq!(state.allocate_ip(&subnet).unwrap().to_string(), "10.9.0.3");
        let tiny: Ipv4Cidr = "10.9.0.0/30".parse().unwrap();
        assert!(matches!(
            state.allocate_ip(&tiny),
            Err(StateError::AddressesExhausted(_))
        ));
    }
}
