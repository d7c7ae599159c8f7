//! A local Amazon ECS runtime: ECS task definitions run as processes of this Linux machine, one
//! network namespace per task, with the task metadata endpoint, task-role credentials, `dependsOn`,
//! `essential`, health checks and `stopTimeout` behaving as on ECS.
//!
//! Embedders (such as `consul-ecs local up`) build a [`RuntimeConfig`], make a [`Runtime`] and call
//! [`Runtime::start_task`] with a [`TaskDefinition`]; the returned [`RunningTask`] reports its
//! [`TaskRecord`] as it changes, serves its metadata document, and stops on request. The `local`
//! commands ([`cli::LocalCommand`]) are a thin layer over the same calls, with a state directory
//! ([`StateDir`]) that lets `ps`, `logs` and `stop` work across invocations.
//!
//! Invariants:
//! * one network namespace per task (awsvpc and bridge alike; none with `host`), named
//!   `ecsl-<first 8 of the task ID>`, joined to the host bridge by a veth named `ecslv<…>`;
//! * every container process runs in its own mount and PID namespaces, under an init that is its
//!   PID 1; the host's mount table is never changed, and killing a container's shim ends it all;
//! * nothing is started until the whole task definition has been accepted, and a failed start
//!   undoes what it did;
//! * ecs-local never talks to Consul; it only runs what the task definition says.
//!
//! Requires Linux and root (or CAP_NET_ADMIN and CAP_SYS_ADMIN), and the `ip` command.

pub mod aws;
pub mod cli;
mod health;
pub mod images;
pub mod logs;
mod metadata;
pub mod network;
mod plan;
mod runtime;
pub mod state;
mod sys;
pub mod taskdef;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use aws::{
    AssumeRole, AwsSecrets, RoleCredentialsProvider, SecretResolver, StaticRoleCredentials,
    StaticSecrets,
};
pub use images::{ImageEntry, ImageMap};
pub use network::{Ipv4Cidr, NetworkConfig};
pub use runtime::{
    ESSENTIAL_EXITED, RunningTask, Runtime, RuntimeConfig, RuntimeError, STOPPED_BY_USER,
    SupervisorRequest, force_cleanup, stop_recorded_task,
};
pub use state::{ContainerRecord, Health, StateDir, Status, TaskRecord};
pub use sys::{PrivilegeError, ProcessId, check_privileges};
pub use taskdef::TaskDefinition;

/// How the runtime's own executable is invoked for its hidden commands (`shim`, `shim-init`,
/// `shim-join`, `supervise`, `fake-service`): the program, and the arguments that reach the
/// `local` command table (`["local"]` for `consul-ecs local`, none for `consul-ecs-local`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launcher {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the command name.
    pub args: Vec<String>,
}

impl Launcher {
    /// The running executable, with `args` before the command name.
    pub fn current(args: &[&str]) -> std::io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })
    }
}

/// Per-task choices, like those of `RunTask`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOptions {
    /// The task ID (8 to 64 lowercase letters and digits; default: 32 random hex digits).
    pub task_id: Option<String>,
    /// The cluster named in the task ARN and metadata (default: the runtime's).
    pub cluster: Option<String>,
    /// Variables added to every container (after the definition's own).
    pub environment: Vec<(String, String)>,
    /// Variables added to one container, by container name (`containerOverrides`).
    pub container_environment: BTreeMap<String, Vec<(String, String)>>,
    /// `startedBy`; `ecs-svc/<name>` also sets the metadata document's `ServiceName`.
    pub started_by: Option<String>,
    /// Task tags (served at `/taskWithTags`).
    pub tags: BTreeMap<String, String>,
}

/// The settings of `local run`, in a form a detached supervisor receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The bridge.
    pub bridge: String,
    /// The address range.
    pub subnet: String,
    /// `image=program` entries.
    pub image_map: Vec<String>,
    /// A JSON image map file.
    pub image_map_file: Option<PathBuf>,
    /// The cluster name.
    pub cluster: String,
    /// The region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// The account.
    pub account: String,
    /// Serve task-role credentials from STS `AssumeRole`.
    pub assume_task_role: bool,
}

impl RunSettings {
    /// The runtime configuration these settings describe.
    pub fn runtime_config(
        &self,
        launcher: Launcher,
        echo_logs: bool,
    ) -> Result<RuntimeConfig, String> {
        let mut config = RuntimeConfig::new(&self.state_dir, launcher);
        config.network = NetworkConfig {
            bridge: self.bridge.clone(),
            subnet: self
                .subnet
                .parse()
                .map_err(|e: network::CidrError| e.to_string())?,
        };
        if self.bridge.is_empty()
            || self.bridge.len() > 15
            || !self
                .bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "bridge name {:?}: use 1 to 15 letters, digits, - or _",
                self.bridge
            ));
        }
        if let Some(file) = &self.image_map_file {
            config.images.load_file(file).map_err(|e| e.to_string())?;
        }
        for flag in &self.image_map {
            config.images.add_flag(flag).map_err(|e| e.to_string())?;
        }
        if let Some(region) = &self.region {
            config.region = region.clone();
            config.secrets = Arc::new(AwsSecrets::new(region.clone()));
        }
        if self.assume_task_role {
            config.role_credentials = Some(Arc::new(AssumeRole::new(config.region.clone())));
        }
        config.cluster = self.cluster.clone();
        config.account = self.account.clone();
        config.echo_logs = echo_logs;
        Ok(config)
    }
}
