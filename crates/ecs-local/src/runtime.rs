//! Starting a task, supervising its containers through their lifecycle, stopping it, and leaving
//! nothing behind.
//!
//! **Start.** Everything that can be refused is checked first and has no side effect: the definition,
//! the image table, users, secrets, task-role credentials. Only then is the task directory made, an
//! address allocated, the namespace and veth created and the metadata endpoint started; a failure
//! on the way undoes what was done.
//!
//! **Run.** A container starts when each of its `dependsOn` conditions holds: `START` (the dependency
//! has started), `COMPLETE` (it has exited), `SUCCESS` (it has exited with 0), `HEALTHY` (its health
//! check has passed once, "confirmed only at task startup"). A condition that can no longer hold (a
//! `SUCCESS` dependency exited 1, a dependency that stopped before it was healthy, or the dependency's
//! `startTimeout` ran out) means the container never starts; if it is essential, the task stops.
//! When an essential container exits, the task stops ("Essential container in task exited"); a
//! non-essential one may exit without consequence.
//!
//! **Stop.** Dependencies are reversed for shutdown, as on ECS: a container gets SIGTERM once every
//! container that depends on it has stopped, and SIGKILL (the whole container: its PID namespace
//! goes with it) after its `stopTimeout` (default 30 s). Containers that never started are marked
//! stopped. Then the metadata endpoint, the namespace, the veth, the container roots and the task
//! volumes are removed; the record and the logs stay.
//!
//! **Invariants.** One network namespace per task (none with host networking); every container
//! process lives in its own mount and PID namespaces; the host's mount table is never changed;
//! ecs-local never talks to Consul. If the supervising future is dropped before the task stopped
//! (a crash of the embedding program, a test that panicked), a guard kills the containers and
//! removes the namespace and veth synchronously.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use consul_ecs_aws::TaskMetadata;
use consul_ecs_aws::metadata_server::{MetadataServer, TaskRoleCredentials};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::aws::{
    CredentialsError, RoleCredentials, RoleCredentialsProvider, SecretError, SecretResolver,
};
use crate::health::{self, HealthReport, Probe};
use crate::images::ImageMap;
use crate::metadata::{DocumentInput, MetadataEndpoint, build_document, task_hostname};
use crate::network::{self, NetError, NetworkConfig, TaskLinks};
use crate::plan::{self, ContainerPlan, TaskPlan, dedup_env};
use crate::state::{ContainerRecord, Health, StateDir, StateError, Status, TaskRecord};
use crate::sys::shim::{Bind, EXIT_SETUP_FAILED, LaunchSpec, ProcessSpec};
use crate::sys::{PrivilegeError, ProcessId, check_privileges};
use crate::taskdef::{Condition, NetworkMode, TaskDefError, TaskDefinition, VolumeKind};
use crate::{Launcher, TaskOptions};

/// The stopped reason when an essential container exits (ECS's wording).
pub const ESSENTIAL_EXITED: &str = "Essential container in task exited";
/// The stopped reason when a user stops the task (ECS's wording).
pub const STOPPED_BY_USER: &str = "Task stopped by user";

/// How the runtime runs tasks.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where records, logs and volumes live.
    pub state_dir: PathBuf,
    /// The bridge and address range.
    pub network: NetworkConfig,
    /// Images → programs.
    pub images: ImageMap,
    /// How the runtime's executable is invoked for its hidden shim commands.
    pub launcher: Launcher,
    /// Resolves `secrets`.
    pub secrets: Arc<dyn SecretResolver>,
    /// Supplies task-role credentials; without one, containers get none.
    pub role_credentials: Option<Arc<dyn RoleCredentialsProvider>>,
    /// Copies container output to standard output, prefixed `[<family>-<task8>/<container>]`.
    pub echo_logs: bool,
    /// The cluster named in task ARNs and metadata.
    pub cluster: String,
    /// The region named in ARNs and given to containers as `AWS_REGION`.
    pub region: String,
    /// The account named in ARNs.
    pub account: String,
}

impl RuntimeConfig {
    /// A configuration with the defaults: bridge `ecsl0` on 198.18.0.0/15, the built-in image
    /// table, secrets from AWS (or moto through `AWS_ENDPOINT_URL`), no task-role credentials,
    /// cluster `default`, the region from `AWS_REGION` (else `us-east-1`), account 123456789012.
    pub fn new(state_dir: impl Into<PathBuf>, launcher: Launcher) -> Self {
        let region = std::env::var("AWS_REGION")
            .ok()
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        Self {
            state_dir: state_dir.into(),
            network: NetworkConfig::default_config(),
            images: ImageMap::new(),
            launcher,
            secrets: Arc::new(crate::aws::AwsSecrets::new(region.clone())),
            role_credentials: None,
            echo_logs: false,
            cluster: "default".to_owned(),
            region,
            account: "123456789012".to_owned(),
        }
    }
}

/// Why a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Not Linux, not root, or no `ip` command.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// The definition (or the image table, or a user) refuses it.
    #[error("{0}")]
    Definition(#[from] TaskDefError),
    /// Secrets could not be resolved.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Secrets(Vec<SecretError>),
    /// Task-role credentials could not be had.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// Network setup.
    #[error(transparent)]
    Network(#[from] NetError),
    /// The task ID cannot be used.
    #[error("task id {0:?}: use 8 to 64 lowercase letters and digits, not already in use")]
    TaskId(String),
    /// A file or process of the runtime.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// Runs tasks.
#[derive(Debug, Clone)]
pub struct Runtime {
    config: Arc<RuntimeConfig>,
    state: StateDir,
}

impl Runtime {
    /// Checks privileges and prepares the state directory.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        check_privileges()?;
        std::fs::create_dir_all(config.state_dir.join("tasks"))
            .map_err(io_err(format!("creating {}", config.state_dir.display())))?;
        let state = StateDir::new(&config.state_dir);
        Ok(Self {
            config: Arc::new(config),
            state,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The host's address on the task bridge: where tasks reach services of the host.
    pub fn gateway(&self) -> Ipv4Addr {
        self.config.network.gateway()
    }

    /// Creates the bridge now, so services of the host (a dev server, moto) can listen on the
    /// gateway address before the first task starts, and keeps it when the last task stops; returns
    /// the gateway address. Call [`Runtime::release_network`] when done. (Without this, tasks create
    /// the bridge on demand and the last one to stop removes it.)
    pub fn prepare_network(&self) -> Result<Ipv4Addr, RuntimeError> {
        let _lock = self.state.lock()?;
        let owned = network::ensure_bridge(&self.config.network)?;
        if owned || self.state.root().join("network.json").exists() {
            self.state.remember_bridge(
                &self.config.network.bridge,
                &self.config.network.subnet,
                true,
            )?;
        }
        Ok(self.gateway())
    }

    /// Removes the bridge if this state directory made it and no task of it is running, undoing
    /// [`Runtime::prepare_network`].
    pub fn release_network(&self) {
        if let Ok(_lock) = self.state.lock() {
            self.state.unpin_bridge();
            self.state.release_bridge_if_unused("");
        }
    }

    /// Checks a definition against the image table and the users of this machine, starting nothing.
    pub fn check(&self, def: &TaskDefinition, options: &TaskOptions) -> Result<(), RuntimeError> {
        plan::plan(def, &self.config.images, &self.config.launcher, options)?;
        Ok(())
    }

    /// Starts a task. Returns once its namespace and metadata endpoint exist and its first
    /// containers are starting; a refused task leaves nothing behind.
    pub async fn start_task(
        &self,
        def: &TaskDefinition,
        options: TaskOptions,
    ) -> Result<RunningTask, RuntimeError> {
        let config = &self.config;
        let task_id = match &options.task_id {
            Some(id) => id.clone(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let id_ok = (8..=64).contains(&task_id.len())
            && task_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !id_ok || self.state.task_dir(&task_id).exists() {
            return Err(RuntimeError::TaskId(task_id));
        }
        let plan = plan::plan(def, &config.images, &config.launcher, &options)?;
        let secrets = self.resolve_secrets(&plan).await?;
        let role = match (&def.task_role_arn, &config.role_credentials) {
            (Some(arn), Some(provider)) => {
                let creds = provider.credentials(arn, &task_id).await?;
                Some((arn.clone(), provider.clone(), creds))
            }
            _ => None,
        };
        for note in &def.notes {
            tracing::info!(task = %task_id, "{note}");
        }

        // From here on, every step is undone if a later one fails.
        let task_dir = self.state.task_dir(&task_id);
        let mut guard = CleanupGuard {
            state: self.state.clone(),
            id: task_id.clone(),
            links: None,
            processes: Vec::new(),
            remove_everything: true,
            armed: true,
        };
        for sub in ["logs", "volumes", "etc", "rootfs"] {
            std::fs::create_dir_all(task_dir.join(sub))
                .map_err(io_err(format!("creating {}", task_dir.display())))?;
        }
        let cluster = options
            .cluster
            .clone()
            .unwrap_or_else(|| config.cluster.clone());
        let own_network = def.network_mode != NetworkMode::Host;
        let links = own_network.then(|| TaskLinks::for_task(&task_id));
        let arn = format!(
            "arn:aws:ecs:{}:{}:task/{cluster}/{task_id}",
            config.region, config.account
        );
        let mut record = TaskRecord {
            id: task_id.clone(),
            arn: arn.clone(),
            family: def.family.clone(),
            revision: def.revision,
            cluster: cluster.clone(),
            network_mode: def.network_mode.as_str().to_owned(),
            ip: None,
            netns: links.as_ref().map(|l| l.netns.clone()),
            veth: links.as_ref().map(|l| l.veth.clone()),
            bridge: own_network.then(|| config.network.bridge.clone()),
            supervisor: ProcessId::current(),
            last_status: Status::Pending,
            desired_status: Status::Running,
            created_at: rfc3339(SystemTime::now()),
            stopped_at: None,
            stopped_reason: None,
            containers: plan
                .containers
                .iter()
                .map(|c| ContainerRecord {
                    name: c.def.name.clone(),
                    image: c.def.image.clone(),
                    essential: c.def.essential,
                    last_status: Status::Pending,
                    exit_code: None,
                    health: c.health_check().map(|_| Health::Unknown),
                    reason: None,
                    process: None,
                    stop_timeout_secs: c.def.stop_timeout.as_secs_f64(),
                })
                .collect(),
        };
        {
            let _lock = self.state.lock()?;
            if own_network {
                if network::ensure_bridge(&config.network)? {
                    self.state.remember_bridge(
                        &config.network.bridge,
                        &config.network.subnet,
                        false,
                    )?;
                }
                record.ip = Some(self.state.allocate_ip(&config.network.subnet)?);
            }
            self.state.write(&record)?;
        }
        guard.remove_everything = false;
        if let (Some(links), Some(ip)) = (&links, record.ip) {
            let (network_config, task_links) = (config.network.clone(), links.clone());
            tokio::task::spawn_blocking(move || {
                network::setup_task(&network_config, &task_links, ip)
            })
            .await
            .map_err(|e| io_err("setting up the network")(std::io::Error::other(e)))??;
            guard.links = Some(links.clone());
        }
        let document = build_document(&DocumentInput {
            def,
            plan: &plan,
            task_id: &task_id,
            cluster: &cluster,
            region: &config.region,
            account: &config.account,
            ip: record.ip,
            network: &config.network,
            tags: &options.tags,
            started_by: options.started_by.as_deref(),
        });
        let endpoint =
            MetadataEndpoint::start(links.as_ref().map(TaskLinks::netns_path), document.clone())
                .await
                .map_err(io_err("starting the task metadata endpoint"))?;
        let credentials = match (role, endpoint.server()) {
            (Some((arn, provider, creds)), Some(server)) => {
                let id = uuid::Uuid::new_v4().to_string();
                server.set_credentials(&id, served_credentials(&creds, &arn));
                Some(RoleSession {
                    role_arn: arn,
                    id,
                    provider,
                    expiration: creds.expiration,
                    refreshing: None,
                })
            }
            _ => None,
        };
        let hostname = record.ip.map(task_hostname);
        let slots = plan_slots(SlotInput {
            state: &self.state,
            plan: &plan,
            secrets,
            task_id: &task_id,
            ip: record.ip,
            hostname: hostname.as_deref(),
            document: &document,
            endpoint: &endpoint,
            credentials: credentials.as_ref(),
            region: &config.region,
            own_network,
        })?;
        let label_prefix = format!("{}-{}", def.family, &task_id[..8]);
        let (record_tx, record_rx) = watch::channel(record.clone());
        let (metadata_tx, metadata_rx) = watch::channel(document);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let ip = record.ip;
        let supervisor = Supervisor {
            config: self.config.clone(),
            state: self.state.clone(),
            record,
            slots,
            endpoint: Some(endpoint),
            links,
            label_prefix,
            stopping: false,
            started: Instant::now(),
            credentials,
            events_tx,
            events_rx,
            health_tx,
            health_rx,
            control_rx,
            record_tx,
            metadata_tx,
            guard,
        };
        let join = tokio::spawn(supervisor.run());
        Ok(RunningTask {
            id: task_id,
            arn,
            ip,
            record: record_rx,
            metadata: metadata_rx,
            control: control_tx,
            join: Some(join),
        })
    }

    async fn resolve_secrets(
        &self,
        plan: &TaskPlan,
    ) -> Result<Vec<Vec<(String, String)>>, RuntimeError> {
        let mut values = Vec::with_capacity(plan.containers.len());
        let mut errors = Vec::new();
        for container in &plan.containers {
            let mut resolved = Vec::new();
            for secret in &container.def.secrets {
                match self.config.secrets.resolve(&secret.value_from).await {
                    Ok(value) => resolved.push((secret.name.clone(), value)),
                    Err(mut e) => {
                        e.reason = format!("container {:?}: {}", container.def.name, e.reason);
                        errors.push(e);
                    }
                }
            }
            values.push(resolved);
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(RuntimeError::Secrets(errors))
        }
    }
}

fn served_credentials(creds: &RoleCredentials, role_arn: &str) -> TaskRoleCredentials {
    TaskRoleCredentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        role_arn,
        creds.expiration,
    )
}

/// What `start_task` needs to prepare each container.
struct SlotInput<'a> {
    state: &'a StateDir,
    plan: &'a TaskPlan,
    secrets: Vec<Vec<(String, String)>>,
    task_id: &'a str,
    ip: Option<Ipv4Addr>,
    hostname: Option<&'a str>,
    document: &'a TaskMetadata,
    endpoint: &'a MetadataEndpoint,
    credentials: Option<&'a RoleSession>,
    region: &'a str,
    own_network: bool,
}

/// Final environments, volume directories and `/etc` files of every container.
fn plan_slots(input: SlotInput<'_>) -> Result<Vec<Slot>, RuntimeError> {
    let task_dir = input.state.task_dir(input.task_id);
    let mut slots = Vec::with_capacity(input.plan.containers.len());
    for ((container, secrets), document) in input
        .plan
        .containers
        .iter()
        .zip(input.secrets)
        .zip(&input.document.containers)
    {
        let name = &container.def.name;
        let hostname = container
            .def
            .hostname
            .clone()
            .or(input.hostname.map(ToOwned::to_owned));
        let metadata_uri = format!("{}/v4/{}", input.endpoint.base_url, document.docker_id);
        let mut env = vec![
            ("AWS_REGION".to_owned(), input.region.to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), input.region.to_owned()),
            ("AWS_EXECUTION_ENV".to_owned(), "AWS_ECS_FARGATE".to_owned()),
        ];
        if let Some(hostname) = &hostname {
            env.push(("HOSTNAME".to_owned(), hostname.clone()));
        }
        env.extend(container.env.iter().cloned());
        env.extend(secrets);
        env.push((
            "ECS_CONTAINER_METADATA_URI_V4".to_owned(),
            metadata_uri.clone(),
        ));
        // There is no separate v3 endpoint: v3 readers get the v4 document, a superset.
        env.push(("ECS_CONTAINER_METADATA_URI".to_owned(), metadata_uri));
        if let Some(session) = input.credentials {
            let path = MetadataServer::credentials_path(&session.id);
            if input.own_network {
                env.push(("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".to_owned(), path));
            } else {
                env.push((
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
                    format!("{}{path}", input.endpoint.base_url),
                ));
            }
        }
        let mut binds = Vec::new();
        for mount in &container.mounts {
            let source = match &mount.kind {
                VolumeKind::Task => task_dir.join("volumes").join(&mount.volume),
                VolumeKind::Shared => input.state.shared_volume(&mount.volume),
                VolumeKind::Host(path) => PathBuf::from(path),
            };
            std::fs::create_dir_all(&source)
                .map_err(io_err(format!("creating volume {}", source.display())))?;
            binds.push(Bind {
                source,
                target: mount.container_path.clone(),
                read_only: mount.read_only,
            });
        }
        if input.own_network {
            let etc = task_dir.join("etc").join(name);
            write_etc_files(&etc, container, input.ip, hostname.as_deref())?;
            for file in ["hosts", "hostname", "resolv.conf"] {
                binds.push(Bind {
                    source: etc.join(file),
                    target: format!("/etc/{file}"),
                    read_only: false,
                });
            }
        }
        slots.push(Slot {
            plan: container.clone(),
            env: dedup_env(env),
            binds,
            hostname,
            root_dir: task_dir.join("rootfs").join(name),
            state: SlotState::Pending,
            health: Health::Unknown,
            ever_healthy: false,
            launched_at: None,
            term_sent_at: None,
            killed: false,
            pid: None,
            pumps: Vec::new(),
            health_task: None,
        });
    }
    Ok(slots)
}

fn write_etc_files(
    dir: &Path,
    container: &ContainerPlan,
    ip: Option<Ipv4Addr>,
    hostname: Option<&str>,
) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let (Some(ip), Some(hostname)) = (ip, hostname) {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for (host, address) in &container.def.extra_hosts {
        hosts.push_str(&format!("{address}\t{host}\n"));
    }
    let resolv =
        if container.def.dns_servers.is_empty() && container.def.dns_search_domains.is_empty() {
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            let mut text = String::new();
            for server in &container.def.dns_servers {
                text.push_str(&format!("nameserver {server}\n"));
            }
            if !container.def.dns_search_domains.is_empty() {
                text.push_str(&format!(
                    "search {}\n",
                    container.def.dns_search_domains.join(" ")
                ));
            }
            text
        };
    let files = [
        ("hosts", hosts),
        ("hostname", format!("{}\n", hostname.unwrap_or("localhost"))),
        ("resolv.conf", resolv),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// A task being supervised.
#[derive(Debug)]
pub struct RunningTask {
    id: String,
    arn: String,
    ip: Option<Ipv4Addr>,
    record: watch::Receiver<TaskRecord>,
    metadata: watch::Receiver<TaskMetadata>,
    control: mpsc::UnboundedSender<Control>,
    join: Option<JoinHandle<TaskRecord>>,
}

impl RunningTask {
    /// The task ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The task ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The task's address (none with host networking).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.ip
    }

    /// The current record.
    pub fn record(&self) -> TaskRecord {
        self.record.borrow().clone()
    }

    /// The current task metadata document, as containers see it.
    pub fn metadata(&self) -> TaskMetadata {
        self.metadata.borrow().clone()
    }

    /// A receiver that sees every change of the record.
    pub fn subscribe(&self) -> watch::Receiver<TaskRecord> {
        self.record.clone()
    }

    /// A receiver that sees every change of the metadata document (the last one is the stopped
    /// task's).
    pub fn subscribe_metadata(&self) -> watch::Receiver<TaskMetadata> {
        self.metadata.clone()
    }

    /// Waits until `condition` holds for the record, or the task has stopped; returns the record.
    pub async fn wait_until(
        &mut self,
        mut condition: impl FnMut(&TaskRecord) -> bool,
    ) -> TaskRecord {
        loop {
            {
                let record = self.record.borrow_and_update();
                if condition(&record) || record.last_status == Status::Stopped {
                    return record.clone();
                }
            }
            if self.record.changed().await.is_err() {
                return self.record.borrow().clone();
            }
        }
    }

    /// Asks the supervisor to stop the task (returns at once).
    pub fn request_stop(&self) {
        let _ = self.control.send(Control::Stop(STOPPED_BY_USER.to_owned()));
    }

    /// Stops the task and waits until it is torn down; returns the final record.
    pub async fn stop(self) -> TaskRecord {
        self.request_stop();
        self.wait().await
    }

    /// Waits until the task has stopped and been torn down; returns the final record.
    pub async fn wait(mut self) -> TaskRecord {
        match self.join.take() {
            Some(join) => match join.await {
                Ok(record) => record,
                Err(_) => self.record.borrow().clone(),
            },
            None => self.record.borrow().clone(),
        }
    }
}

#[derive(Debug)]
enum Control {
    Stop(String),
}

#[derive(Debug)]
enum Event {
    Exited { index: usize, code: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Pending,
    Running,
    Exited(i32),
    /// Never started.
    Skipped,
}

/// One container under supervision.
struct Slot {
    plan: ContainerPlan,
    env: Vec<(String, String)>,
    binds: Vec<Bind>,
    hostname: Option<String>,
    root_dir: PathBuf,
    state: SlotState,
    health: Health,
    ever_healthy: bool,
    launched_at: Option<Instant>,
    term_sent_at: Option<Instant>,
    killed: bool,
    pid: Option<ProcessId>,
    pumps: Vec<JoinHandle<()>>,
    health_task: Option<JoinHandle<()>>,
}

impl Slot {
    fn name(&self) -> &str {
        &self.plan.def.name
    }

    fn done(&self) -> bool {
        matches!(self.state, SlotState::Exited(_) | SlotState::Skipped)
    }
}

/// The task role's served credentials.
struct RoleSession {
    role_arn: String,
    id: String,
    provider: Arc<dyn RoleCredentialsProvider>,
    expiration: SystemTime,
    refreshing: Option<tokio::sync::oneshot::Receiver<Result<RoleCredentials, CredentialsError>>>,
}

/// Whether a container may start.
enum Readiness {
    Ready,
    Wait,
    Never(String),
}

struct Supervisor {
    config: Arc<RuntimeConfig>,
    state: StateDir,
    record: TaskRecord,
    slots: Vec<Slot>,
    endpoint: Option<MetadataEndpoint>,
    links: Option<TaskLinks>,
    label_prefix: String,
    stopping: bool,
    started: Instant,
    credentials: Option<RoleSession>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    health_tx: mpsc::UnboundedSender<HealthReport>,
    health_rx: mpsc::UnboundedReceiver<HealthReport>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    record_tx: watch::Sender<TaskRecord>,
    metadata_tx: watch::Sender<TaskMetadata>,
    guard: CleanupGuard,
}

impl Supervisor {
    async fn run(mut self) -> TaskRecord {
        let mut tick = tokio::time::interval(health::POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        self.schedule().await;
        while !self.slots.iter().all(Slot::done) {
            tokio::select! {
                Some(event) = self.events_rx.recv() => match event {
                    Event::Exited { index, code } => self.on_exit(index, code),
                },
                Some(report) = self.health_rx.recv() => self.on_health(report),
                control = self.control_rx.recv(), if control_open => match control {
                    Some(Control::Stop(reason)) => self.begin_stop(&reason),
                    None => control_open = false,
                },
                _ = tick.tick() => self.on_tick(),
            }
            self.schedule().await;
        }
        self.teardown().await
    }

    fn server(&self) -> Option<&MetadataServer> {
        self.endpoint.as_ref().and_then(MetadataEndpoint::server)
    }

    /// Writes the record, publishes it and the metadata document.
    fn publish(&mut self) {
        for (slot, record) in self.slots.iter().zip(self.record.containers.iter_mut()) {
            record.last_status = match slot.state {
                SlotState::Pending => Status::Pending,
                SlotState::Running => Status::Running,
                SlotState::Exited(_) | SlotState::Skipped => Status::Stopped,
            };
            record.exit_code = match slot.state {
                SlotState::Exited(code) => Some(code),
                _ => None,
            };
            if slot.plan.health_check().is_some() {
                record.health = Some(slot.health);
            }
            record.process = slot.pid;
        }
        if let Err(e) = self.state.write(&self.record) {
            tracing::warn!(task = %self.record.id, error = %e, "cannot write the task record");
        }
        // The document first: whoever sees the new record finds the document at least as new.
        if let Some(server) = self.server() {
            let document = server.task();
            let _ = self.metadata_tx.send(document);
        }
        let _ = self.record_tx.send(self.record.clone());
    }

    fn label(&self, index: usize) -> String {
        format!("{}/{}", self.label_prefix, self.slots[index].name())
    }

    async fn schedule(&mut self) {
        if self.stopping {
            self.send_stop_signals();
            return;
        }
        let mut changed = true;
        while changed && !self.stopping {
            changed = false;
            for index in 0..self.slots.len() {
                if self.slots[index].state != SlotState::Pending || self.stopping {
                    continue;
                }
                match self.readiness(index) {
                    Readiness::Wait => {}
                    Readiness::Ready => {
                        self.launch(index).await;
                        changed = true;
                    }
                    Readiness::Never(reason) => {
                        self.skip(index, &reason);
                        if self.slots[index].plan.def.essential {
                            self.begin_stop(&reason);
                        }
                        changed = true;
                    }
                }
            }
        }
        let none_pending = self.slots.iter().all(|s| s.state != SlotState::Pending);
        if none_pending && self.record.last_status == Status::Pending && !self.stopping {
            self.record.last_status = Status::Running;
            if let Some(server) = self.server() {
                server.update(|task| task.known_status = "RUNNING".to_owned());
            }
            self.publish();
        }
        if self.stopping {
            self.send_stop_signals();
        }
    }

    fn readiness(&self, index: usize) -> Readiness {
        let slot = &self.slots[index];
        let mut ready = true;
        for dependency in &slot.plan.def.depends_on {
            let Some(dep) = self
                .slots
                .iter()
                .find(|s| s.name() == dependency.container_name)
            else {
                continue;
            };
            let name = dep.name();
            let condition = dependency.condition;
            let met = match (condition, dep.state) {
                (_, SlotState::Skipped) => {
                    return Readiness::Never(format!(
                        "dependency {name:?} never started, so {} cannot start",
                        slot.name()
                    ));
                }
                (Condition::Start, SlotState::Running | SlotState::Exited(_)) => true,
                (Condition::Complete, SlotState::Exited(_)) => true,
                (Condition::Success, SlotState::Exited(0)) => true,
                (Condition::Success, SlotState::Exited(code)) => {
                    return Readiness::Never(format!(
                        "dependency {name:?} exited with code {code}, so the SUCCESS condition of {} \
                         cannot be met",
                        slot.name()
                    ));
                }
                (Condition::Healthy, _) if dep.ever_healthy => true,
                (Condition::Healthy, SlotState::Exited(code)) => {
                    return Readiness::Never(format!(
                        "dependency {name:?} exited (code {code}) before it was healthy, so {} \
                         cannot start",
                        slot.name()
                    ));
                }
                _ => false,
            };
            if met {
                continue;
            }
            ready = false;
            if let Some(timeout) = dep.plan.def.start_timeout {
                let since = dep.launched_at.unwrap_or(self.started);
                if since.elapsed() >= timeout {
                    return Readiness::Never(format!(
                        "dependency {name:?} did not reach {condition} within its startTimeout of \
                         {timeout:?}, so {} cannot start",
                        slot.name()
                    ));
                }
            }
        }
        if ready {
            Readiness::Ready
        } else {
            Readiness::Wait
        }
    }

    fn skip(&mut self, index: usize, reason: &str) {
        let name = self.slots[index].name().to_owned();
        tracing::info!(task = %self.record.id, container = %name, "not starting: {reason}");
        self.slots[index].state = SlotState::Skipped;
        self.record.containers[index].reason = Some(reason.to_owned());
        if let Some(server) = self.server() {
            server.update(|task| {
                for c in task.containers.iter_mut().filter(|c| c.name == name) {
                    c.known_status = "STOPPED".to_owned();
                    c.desired_status = "STOPPED".to_owned();
                }
            });
        }
        self.publish();
    }

    async fn launch(&mut self, index: usize) {
        let label = self.label(index);
        let config = self.config.clone();
        let launcher = &config.launcher;
        let slot = &self.slots[index];
        let name = slot.name().to_owned();
        let root_dir = slot.root_dir.clone();
        let process = ProcessSpec {
            argv: slot.plan.argv.clone(),
            env: slot.env.clone(),
            cwd: slot.plan.cwd.clone(),
            user: slot.plan.user.clone(),
            rlimits: slot
                .plan
                .def
                .ulimits
                .iter()
                .map(|u| (u.name.clone(), u.soft, u.hard))
                .collect(),
            parent_pid: None,
        };
        let mut init_args = launcher.args.clone();
        init_args.extend(["shim-init".to_owned(), label.clone()]);
        let spec = LaunchSpec {
            netns: self.links.as_ref().map(TaskLinks::netns_path),
            hostname: slot.hostname.clone(),
            root_dir: root_dir.clone(),
            binds: slot.binds.clone(),
            tmpfs: slot
                .plan
                .def
                .tmpfs
                .iter()
                .map(|t| (t.container_path.clone(), t.size_mib))
                .collect(),
            init_args,
            process: process.clone(),
        };
        let health_check = slot.plan.health_check().cloned();
        let log_path = self.state.log_path(&self.record.id, &name);
        if let Err(e) = std::fs::create_dir_all(&root_dir) {
            self.launch_failed(index, &format!("creating {}: {e}", root_dir.display()));
            return;
        }
        let mut command = tokio::process::Command::new(&launcher.program);
        command
            .args(&launcher.args)
            .arg("shim")
            .arg(&label)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal reaches the supervisor only, which
            // then stops containers in order.
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.launch_failed(index, &format!("starting the container shim: {e}"));
                return;
            }
        };
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(ProcessId::of);
        if let Some(mut stdin) = child.stdin.take() {
            let text = serde_json::to_string(&spec).unwrap_or_default();
            let _ = stdin.write_all(text.as_bytes()).await;
        }
        let echo = config.echo_logs.then(|| format!("[{label}]"));
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(crate::logs::pump(
                out,
                log_path.clone(),
                echo.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(crate::logs::pump(err, log_path, echo)));
        }
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_status_code(status),
                Err(_) => i32::from(EXIT_SETUP_FAILED),
            };
            let _ = events.send(Event::Exited { index, code });
        });
        let health_task = match (health_check, pid) {
            (Some(check), Some(pid)) => Some(tokio::spawn(health::run(
                Probe {
                    index,
                    launcher: launcher.clone(),
                    label: label.clone(),
                    check,
                    process,
                    pid: pid.pid,
                },
                self.health_tx.clone(),
            ))),
            _ => None,
        };
        if let Some(pid) = pid {
            self.guard.processes.push(pid);
        }
        let slot = &mut self.slots[index];
        slot.state = SlotState::Running;
        slot.pid = pid;
        slot.launched_at = Some(Instant::now());
        slot.pumps = pumps;
        slot.health_task = health_task;
        tracing::info!(task = %self.record.id, container = %name, "started");
        let now = rfc3339(SystemTime::now());
        if let Some(server) = self.server() {
            server.update(|task| {
                for c in task.containers.iter_mut().filter(|c| c.name == name) {
                    c.known_status = "RUNNING".to_owned();
                    c.started_at = Some(now.clone());
                }
            });
        }
        self.publish();
    }

    fn launch_failed(&mut self, index: usize, reason: &str) {
        tracing::warn!(task = %self.record.id, container = %self.slots[index].name(), "{reason}");
        self.record.containers[index].reason = Some(reason.to_owned());
        self.slots[index].launched_at = Some(Instant::now());
        self.on_exit(index, i32::from(EXIT_SETUP_FAILED));
    }

    fn on_exit(&mut self, index: usize, code: i32) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Exited(code);
        slot.pid = None;
        if let Some(task) = slot.health_task.take() {
            task.abort();
        }
        let name = slot.name().to_owned();
        let essential = slot.plan.def.essential;
        tracing::info!(task = %self.record.id, container = %name, code, "exited");
        let now = rfc3339(SystemTime::now());
        if let Some(server) = self.server() {
            server.update(|task| {
                for c in task.containers.iter_mut().filter(|c| c.name == name) {
                    c.exit_code = Some(i64::from(code));
                    c.known_status = "STOPPED".to_owned();
                    c.desired_status = "STOPPED".to_owned();
                    c.finished_at = Some(now.clone());
                }
            });
        }
        self.publish();
        if essential && !self.stopping {
            self.begin_stop(ESSENTIAL_EXITED);
        }
    }

    fn on_health(&mut self, report: HealthReport) {
        let Some(slot) = self.slots.get_mut(report.index) else {
            return;
        };
        if slot.state != SlotState::Running {
            return;
        }
        slot.health = report.status;
        if report.status == Health::Healthy {
            slot.ever_healthy = true;
        }
        let name = slot.name().to_owned();
        tracing::info!(task = %self.record.id, container = %name, health = report.status.as_str(), "health changed");
        if let Some(server) = self.server() {
            server.set_container_health(&name, report.status.as_str());
            let output = report.output;
            server.update(|task| {
                for c in task.containers.iter_mut().filter(|c| c.name == name) {
                    if let Some(health) = c.health.as_mut() {
                        health.output = (!output.is_empty()).then(|| output.clone());
                    }
                }
            });
        }
        self.publish();
    }

    fn on_tick(&mut self) {
        if !self.stopping && self.state.stop_marker(&self.record.id).exists() {
            self.begin_stop(STOPPED_BY_USER);
        }
        for slot in &mut self.slots {
            let overdue = slot
                .term_sent_at
                .is_some_and(|at| at.elapsed() >= slot.plan.def.stop_timeout);
            if overdue && !slot.killed && slot.state == SlotState::Running {
                slot.killed = true;
                if let Some(pid) = slot.pid {
                    tracing::info!(task = %self.record.id, container = %slot.plan.def.name, "stopTimeout passed: SIGKILL");
                    pid.kill();
                }
            }
        }
        self.refresh_credentials();
    }

    /// Renews task-role credentials a quarter of an hour before they expire.
    fn refresh_credentials(&mut self) {
        let Some(session) = self.credentials.as_mut() else {
            return;
        };
        if let Some(pending) = session.refreshing.as_mut() {
            match pending.try_recv() {
                Ok(Ok(creds)) => {
                    session.expiration = creds.expiration;
                    session.refreshing = None;
                    let served = served_credentials(&creds, &session.role_arn);
                    let id = session.id.clone();
                    if let Some(server) = self.server() {
                        server.set_credentials(&id, served);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "refreshing task-role credentials");
                    session.refreshing = None;
                    // Try again in a minute.
                    session.expiration = SystemTime::now() + Duration::from_secs(16 * 60);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => session.refreshing = None,
            }
            return;
        }
        let due = session
            .expiration
            .checked_sub(Duration::from_secs(15 * 60))
            .is_none_or(|at| SystemTime::now() >= at);
        if due {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let provider = session.provider.clone();
            let role = session.role_arn.clone();
            let task = self.record.id.clone();
            tokio::spawn(async move {
                let _ = tx.send(provider.credentials(&role, &task).await);
            });
            session.refreshing = Some(rx);
        }
    }

    fn begin_stop(&mut self, reason: &str) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        tracing::info!(task = %self.record.id, "stopping: {reason}");
        self.record.stopped_reason = Some(reason.to_owned());
        self.record.desired_status = Status::Stopped;
        for index in 0..self.slots.len() {
            if self.slots[index].state == SlotState::Pending {
                self.slots[index].state = SlotState::Skipped;
                self.record.containers[index].reason =
                    Some("the task stopped before the container started".to_owned());
            }
        }
        if let Some(server) = self.server() {
            server.update(|task| {
                task.desired_status = "STOPPED".to_owned();
                for c in &mut task.containers {
                    c.desired_status = "STOPPED".to_owned();
                    if c.known_status == "PENDING" {
                        c.known_status = "STOPPED".to_owned();
                    }
                }
            });
        }
        self.publish();
        self.send_stop_signals();
    }

    /// SIGTERM to every running container whose dependents have all stopped.
    fn send_stop_signals(&mut self) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.state != SlotState::Running || slot.term_sent_at.is_some() {
                continue;
            }
            let name = slot.name();
            let dependents_running = self.slots.iter().any(|other| {
                other.state == SlotState::Running
                    && other
                        .plan
                        .def
                        .depends_on
                        .iter()
                        .any(|d| d.container_name == name)
            });
            if dependents_running {
                continue;
            }
            if let Some(pid) = slot.pid {
                tracing::info!(task = %self.record.id, container = %name, "SIGTERM");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid.pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            self.slots[index].term_sent_at = Some(Instant::now());
        }
    }

    async fn teardown(mut self) -> TaskRecord {
        for slot in &mut self.slots {
            if let Some(task) = slot.health_task.take() {
                task.abort();
            }
            for pump in std::mem::take(&mut slot.pumps) {
                // Output still in the pipes is copied; a stray writer cannot hold the task up.
                let abort = pump.abort_handle();
                if tokio::time::timeout(Duration::from_secs(2), pump)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
        }
        let now = rfc3339(SystemTime::now());
        if let Some(server) = self.server() {
            server.update(|task| {
                task.known_status = "STOPPED".to_owned();
                task.desired_status = "STOPPED".to_owned();
                task.execution_stopped_at = Some(now.clone());
            });
            let _ = self.metadata_tx.send(server.task());
        }
        if let Some(endpoint) = self.endpoint.take() {
            endpoint.shutdown().await;
        }
        let links = self.links.clone();
        let roots: Vec<PathBuf> = self.slots.iter().map(|s| s.root_dir.clone()).collect();
        let task_dir = self.state.task_dir(&self.record.id);
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(links) = links {
                network::teardown_task(&links);
            }
            for root in roots {
                let _ = std::fs::remove_dir(&root);
            }
            let _ = std::fs::remove_dir(task_dir.join("rootfs"));
            let _ = std::fs::remove_dir_all(task_dir.join("volumes"));
            let _ = std::fs::remove_file(task_dir.join("stop-requested"));
        })
        .await;
        self.record.last_status = Status::Stopped;
        self.record.desired_status = Status::Stopped;
        self.record.stopped_at = Some(now);
        if self.record.stopped_reason.is_none() {
            self.record.stopped_reason = Some("All containers exited".to_owned());
        }
        {
            let _lock = self.state.lock();
            self.publish();
            if self.record.bridge.is_some() {
                self.state.release_bridge_if_unused(&self.record.id);
            }
        }
        self.guard.armed = false;
        tracing::info!(task = %self.record.id, reason = ?self.record.stopped_reason, "stopped");
        self.record
    }
}

/// The exit code of a finished process: its code, or 128+N when signal N ended it.
fn exit_status_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => i32::from(EXIT_SETUP_FAILED),
    }
}

/// Undoes a task's side effects when its supervision ends without a teardown.
struct CleanupGuard {
    state: StateDir,
    id: String,
    links: Option<TaskLinks>,
    processes: Vec<ProcessId>,
    /// Before the record exists: remove the whole task directory.
    remove_everything: bool,
    armed: bool,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for process in &self.processes {
            process.kill();
        }
        if let Some(links) = &self.links {
            network::teardown_task(links);
        }
        let task_dir = self.state.task_dir(&self.id);
        let _lock = self.state.lock();
        if self.remove_everything {
            let _ = std::fs::remove_dir_all(&task_dir);
            return;
        }
        match self.state.read(&self.id) {
            Ok(mut record) if record.is_active() => {
                record.last_status = Status::Stopped;
                record.desired_status = Status::Stopped;
                record.stopped_at = Some(rfc3339(SystemTime::now()));
                record.stopped_reason = Some(
                    "the supervisor ended before the task stopped; containers were killed"
                        .to_owned(),
                );
                for container in &mut record.containers {
                    container.last_status = Status::Stopped;
                    container.process = None;
                }
                let _ = self.state.write(&record);
            }
            Ok(_) => {}
            // A task that never got as far as a record leaves nothing worth keeping.
            Err(_) => {
                let _ = std::fs::remove_dir_all(&task_dir);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(task_dir.join("rootfs"));
        let _ = std::fs::remove_dir_all(task_dir.join("volumes"));
        self.state.release_bridge_if_unused(&self.id);
    }
}

/// Time as RFC 3339.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Stops a task recorded in `state`, whoever supervises it: asks its supervisor (through the stop
/// marker) and waits for the record to say `STOPPED`. When the supervisor is gone, or has not
/// finished within `patience`, kills the containers and removes the namespace and veth itself.
pub fn stop_recorded_task(
    state: &StateDir,
    id: &str,
    patience: Duration,
) -> Result<TaskRecord, StateError> {
    let record = state.read(id)?;
    if !record.is_active() {
        return Ok(record);
    }
    let marker = state.stop_marker(id);
    std::fs::write(&marker, b"").map_err(|source| StateError::Io {
        path: marker.display().to_string(),
        source,
    })?;
    let deadline = Instant::now() + patience;
    loop {
        let record = state.read(id)?;
        if !record.is_active() {
            // The supervisor records STOPPED just before it exits; wait for the exit too, so that when `stop`
            // returns nothing of the task is left running.
            wait_for_supervisor_exit(&record, deadline);
            return Ok(record);
        }
        let supervised = record.supervisor.is_some_and(|p| p.is_alive());
        if !supervised || Instant::now() >= deadline {
            return Ok(force_cleanup(state, record));
        }
        std::thread::sleep(health::POLL);
    }
}

/// Waits (until `deadline`, and at least a short grace) for a stopped task's supervisor process to exit, and
/// kills it if it lingers.
fn wait_for_supervisor_exit(record: &TaskRecord, deadline: Instant) {
    let Some(supervisor) = record.supervisor else {
        return;
    };
    let deadline = deadline.max(Instant::now() + Duration::from_secs(5));
    while supervisor.is_alive() {
        if Instant::now() >= deadline {
            supervisor.kill();
            return;
        }
        std::thread::sleep(health::POLL);
    }
}

/// Cleans up after a task whose supervisor is gone: kills its recorded container processes, removes
/// its namespace, veth, container roots and task volumes, and marks it stopped.
pub fn force_cleanup(state: &StateDir, mut record: TaskRecord) -> TaskRecord {
    if let Some(supervisor) = record.supervisor {
        supervisor.kill();
    }
    for container in &record.containers {
        if let Some(process) = container.process {
            process.kill();
        }
    }
    if let (Some(netns), Some(veth)) = (&record.netns, &record.veth) {
        network::teardown_task(&TaskLinks {
            netns: netns.clone(),
            veth: veth.clone(),
        });
    }
    let task_dir = state.task_dir(&record.id);
    let _ = std::fs::remove_dir_all(task_dir.join("rootfs"));
    let _ = std::fs::remove_dir_all(task_dir.join("volumes"));
    let _ = std::fs::remove_file(task_dir.join("stop-requested"));
    record.last_status = Status::Stopped;
    record.desired_status = Status::Stopped;
    record.stopped_at = Some(rfc3339(SystemTime::now()));
    record.stopped_reason = Some(match record.stopped_reason.take() {
        Some(reason) => format!("{reason} (cleaned up after its supervisor was gone)"),
        None => "cleaned up after its supervisor was gone".to_owned(),
    });
    for container in &mut record.containers {
        container.last_status = Status::Stopped;
        container.process = None;
    }
    let _lock = state.lock();
    let _ = state.write(&record);
    state.release_bridge_if_unused(&record.id);
    record
}

/// What a detached supervisor is asked to run (sent as JSON on its standard input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorRequest {
    /// How to build the runtime.
    pub settings: crate::RunSettings,
    /// The task definition (JSON).
    pub definition: serde_json::Value,
    /// The task's options.
    pub options: TaskOptions,
}
