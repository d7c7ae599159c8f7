//! ECS task definitions: the `RegisterTaskDefinition` JSON shape (camelCase keys), read into typed
//! values with every problem reported at once, each naming its container and field.
//!
//! Every key of the shape falls into one of three classes, listed in the tables below: supported
//! (it changes what runs), accepted without effect (resource limits, log drivers, labels; a note is
//! kept for the ones a user might expect to matter), and refused (features that have no local
//! meaning, such as FireLens or GPUs). An unknown key is refused too, so a typo never silently
//! changes a task. `null` values are treated as absent, as ECS does; Terraform renders them.
//!
//! `DescribeTaskDefinition` output (`{"taskDefinition": {…}}`, with `taskDefinitionArn`, `revision`,
//! `status` and the other read-only keys) is accepted as well, so a definition registered with the
//! ECS API (or moto) can be run as is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// Container keys that change what runs.
const CONTAINER_SUPPORTED: &[&str] = &[
    "name",
    "image",
    "essential",
    "entryPoint",
    "command",
    "environment",
    "secrets",
    "user",
    "workingDirectory",
    "dependsOn",
    "healthCheck",
    "stopTimeout",
    "startTimeout",
    "mountPoints",
    "volumesFrom",
    "portMappings",
    "ulimits",
    "linuxParameters",
    "extraHosts",
    "hostname",
    "dnsServers",
    "dnsSearchDomains",
    "disableNetworking",
];

/// Container keys accepted without effect.
const CONTAINER_IGNORED: &[&str] = &[
    "cpu",
    "memory",
    "memoryReservation",
    "logConfiguration",
    "dockerLabels",
    "repositoryCredentials",
    "readonlyRootFilesystem",
    "versionConsistency",
    "privileged",
    "interactive",
    "pseudoTerminal",
];

/// Container keys refused, with the reason given to the user.
const CONTAINER_REFUSED: &[(&str, &str)] = &[
    ("links", "links are a bridge-mode Docker feature"),
    ("environmentFiles", "environment files live in S3"),
    (
        "firelensConfiguration",
        "FireLens log routing needs Fluent Bit",
    ),
    ("resourceRequirements", "GPUs and inference accelerators"),
    ("systemControls", "namespaced sysctls"),
    ("dockerSecurityOptions", "SELinux and AppArmor labels"),
    ("credentialSpecs", "Active Directory credential specs"),
    ("restartPolicy", "container restart policies"),
];

/// Task keys that change what runs.
const TASK_SUPPORTED: &[&str] = &[
    "family",
    "containerDefinitions",
    "volumes",
    "networkMode",
    "taskRoleArn",
    "executionRoleArn",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "revision",
    "runtimePlatform",
];

/// Task keys accepted without effect (including `DescribeTaskDefinition`'s read-only keys).
const TASK_IGNORED: &[&str] = &[
    "tags",
    "placementConstraints",
    "ephemeralStorage",
    "pidMode",
    "enableFaultInjection",
    "taskDefinitionArn",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// Task keys refused, with the reason given to the user.
const TASK_REFUSED: &[(&str, &str)] = &[
    ("proxyConfiguration", "App Mesh proxy configuration"),
    ("inferenceAccelerators", "Elastic Inference accelerators"),
    ("ipcMode", "shared IPC namespaces"),
];

/// The ECS default for `stopTimeout`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The Docker default health check interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
/// The Docker default health check timeout.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The Docker default number of consecutive failures before a container is unhealthy.
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// The longest duration accepted for any timeout or interval (one day).
const MAX_SECONDS: f64 = 86_400.0;

/// A task definition, checked and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinition {
    /// `family`.
    pub family: String,
    /// `revision` (present in `DescribeTaskDefinition` output; 1 otherwise).
    pub revision: u32,
    /// `taskRoleArn`: the role whose credentials the task's containers receive.
    pub task_role_arn: Option<String>,
    /// `executionRoleArn` (recorded; secrets are fetched with the runtime's own credentials).
    pub execution_role_arn: Option<String>,
    /// `networkMode`.
    pub network_mode: NetworkMode,
    /// `requiresCompatibilities`.
    pub requires_compatibilities: Vec<String>,
    /// Task-level `cpu` (recorded in the metadata document's limits).
    pub cpu: Option<String>,
    /// Task-level `memory` (recorded in the metadata document's limits).
    pub memory: Option<String>,
    /// `volumes`.
    pub volumes: Vec<Volume>,
    /// `containerDefinitions`, in order.
    pub containers: Vec<ContainerDefinition>,
    /// Accepted settings that have no local effect and that a user might expect to matter.
    pub notes: Vec<String>,
}

/// How a task is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// `awsvpc` (the default here): the task gets its own namespace and address.
    Awsvpc,
    /// `bridge`: run like `awsvpc` (one namespace per task, not per container).
    Bridge,
    /// `host`: the task shares the host's network.
    Host,
}

impl NetworkMode {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Awsvpc => "awsvpc",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
        }
    }
}

/// A task volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `name`.
    pub name: String,
    /// Where its files live.
    pub kind: VolumeKind,
}

/// Where a volume's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    /// A directory of the task, removed when the task stops (no `host`, or a task-scoped Docker volume).
    Task,
    /// `dockerVolumeConfiguration` with `scope: shared`: a directory of the state directory, kept.
    Shared,
    /// `host.sourcePath`: a directory of this machine.
    Host(String),
}

/// One container of a task definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDefinition {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `essential` (default true).
    pub essential: bool,
    /// `entryPoint` (replaces the image's entry point).
    pub entry_point: Option<Vec<String>>,
    /// `command` (replaces the image's default arguments).
    pub command: Option<Vec<String>>,
    /// `environment`, in order.
    pub environment: Vec<(String, String)>,
    /// `secrets`: variables whose values come from Secrets Manager or SSM Parameter Store.
    pub secrets: Vec<SecretRef>,
    /// `user`: `uid`, `uid:gid`, `name` or `name:group`.
    pub user: Option<String>,
    /// `workingDirectory`.
    pub working_directory: Option<String>,
    /// `dependsOn`.
    pub depends_on: Vec<Dependency>,
    /// `healthCheck` (absent, or `NONE`, means no check).
    pub health_check: Option<HealthCheck>,
    /// `stopTimeout` (default 30 s).
    pub stop_timeout: Duration,
    /// `startTimeout`: how long containers that depend on this one wait for their condition.
    pub start_timeout: Option<Duration>,
    /// `mountPoints`.
    pub mount_points: Vec<MountPoint>,
    /// `volumesFrom`.
    pub volumes_from: Vec<VolumeFrom>,
    /// `portMappings` (reported in the metadata document; nothing is forwarded).
    pub port_mappings: Vec<PortMapping>,
    /// `ulimits`, applied with `setrlimit` before the process starts.
    pub ulimits: Vec<Ulimit>,
    /// `linuxParameters.tmpfs`: tmpfs mounts of the container.
    pub tmpfs: Vec<TmpfsMount>,
    /// `extraHosts`: `(hostname, address)` lines added to the container's `/etc/hosts`.
    pub extra_hosts: Vec<(String, String)>,
    /// `hostname` (default: the task's host name).
    pub hostname: Option<String>,
    /// `dnsServers` for the container's `/etc/resolv.conf`.
    pub dns_servers: Vec<String>,
    /// `dnsSearchDomains` for the container's `/etc/resolv.conf`.
    pub dns_search_domains: Vec<String>,
}

/// A `secrets` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The environment variable to set.
    pub name: String,
    /// A Secrets Manager ARN (optionally with `:json-key:version-stage:version-id`), or an SSM
    /// parameter ARN or name.
    pub value_from: String,
}

/// A `dependsOn` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The container depended on.
    pub container_name: String,
    /// What it must reach before this container starts.
    pub condition: Condition,
}

/// A `dependsOn` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// The dependency has started.
    Start,
    /// The dependency has exited.
    Complete,
    /// The dependency has exited with code 0.
    Success,
    /// The dependency's health check passes.
    Healthy,
}

impl Condition {
    /// The name ECS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// What to run.
    pub command: HealthCommand,
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    pub retries: u32,
    /// Grace period during which failures do not count.
    pub start_period: Duration,
}

/// The command of a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCommand {
    /// `["CMD", program, args…]` (or `[program, args…]`): run directly.
    Exec(Vec<String>),
    /// `["CMD-SHELL", script]`: run with `/bin/sh -c`.
    Shell(String),
}

/// A `mountPoints` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// The task volume.
    pub source_volume: String,
    /// Where the container sees it (absolute).
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A `volumesFrom` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFrom {
    /// The container whose mount points are copied.
    pub source_container: String,
    /// Forces the copies read-only.
    pub read_only: bool,
}

/// A `portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `containerPort`.
    pub container_port: u16,
    /// `hostPort` (awsvpc: the same as the container port).
    pub host_port: Option<u16>,
    /// `protocol` (`tcp` or `udp`).
    pub protocol: String,
}

/// A `ulimits` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The limit's name, such as `nofile`.
    pub name: String,
    /// `softLimit`.
    pub soft: u64,
    /// `hardLimit`.
    pub hard: u64,
}

/// A `linuxParameters.tmpfs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Where the container sees it.
    pub container_path: String,
    /// Its size in MiB.
    pub size_mib: u64,
}

/// One problem with a task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The container it concerns, if any.
    pub container: Option<String>,
    /// The field's path inside the container (or the task), such as `healthCheck.interval`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.container {
            Some(container) => write!(
                f,
                "container {container:?}: {}: {}",
                self.field, self.message
            ),
            None => write!(f, "task definition: {}: {}", self.field, self.message),
        }
    }
}

/// Everything wrong with a task definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TaskDefError {
    /// The problems, in document order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for TaskDefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl TaskDefinition {
    /// Reads a task definition from JSON text.
    pub fn from_json(text: &str) -> Result<Self, TaskDefError> {
        let value: Value = serde_json::from_str(text).map_err(|e| TaskDefError {
            errors: vec![FieldError {
                container: None,
                field: "(document)".to_owned(),
                message: format!("not valid JSON: {e}"),
            }],
        })?;
        Self::from_value(&value)
    }

    /// Reads a task definition from a JSON value.
    pub fn from_value(value: &Value) -> Result<Self, TaskDefError> {
        let mut reader = Reader::default();
        let definition = reader.task(value);
        if reader.errors.is_empty()
            && let Some(definition) = definition
        {
            return Ok(definition);
        }
        if reader.errors.is_empty() {
            reader.task_error("(document)", "not a task definition".to_owned());
        }
        Err(TaskDefError {
            errors: reader.errors,
        })
    }

    /// The container with this name.
    pub fn container(&self, name: &str) -> Option<&ContainerDefinition> {
        self.containers.iter().find(|c| c.name == name)
    }
}

#[derive(Default)]
struct Reader {
    errors: Vec<FieldError>,
    notes: Vec<String>,
    /// The container being read (for error messages).
    container: Option<String>,
}

/// Where a value sits, for error messages: `healthCheck.interval`, `mountPoints[1].containerPath`.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Reader {
    fn error(&mut self, field: &str, message: String) {
        self.errors.push(FieldError {
            container: self.container.clone(),
            field: field.to_owned(),
            message,
        });
    }

    fn task_error(&mut self, field: &str, message: String) {
        self.errors.push(FieldError {
            container: None,
            field: field.to_owned(),
            message,
        });
    }

    /// Checks an object's keys against the known ones; `null` values count as absent.
    fn check_keys(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        known: &[&str],
        refused: &[(&str, &str)],
    ) {
        for (key, value) in object {
            if value.is_null() || known.contains(&key.as_str()) {
                continue;
            }
            let field = join(path, key);
            match refused.iter().find(|(name, _)| name == key) {
                Some((_, what)) => {
                    self.error(&field, format!("not supported by ecs-local ({what})"));
                }
                None => self.error(&field, "unknown or unsupported field".to_owned()),
            }
        }
    }

    /// ECS names (families, containers, volumes): 1 to 255 letters, digits, `_` and `-`.
    fn check_name(&mut self, name: &str, field: &str) -> bool {
        let ok = name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            self.error(
                field,
                format!("{name:?} is not a name (up to 255 letters, digits, _ and -)"),
            );
        }
        ok
    }

    fn object<'v>(&mut self, value: &'v Value, field: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(
                    field,
                    format!("expected an object, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn get<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        object.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, object: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match Self::get(object, key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let message = format!("expected a string, got {}", type_name(other));
                self.error(&join(path, key), message);
                None
            }
        }
    }

    fn required_string(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        let value = self.string(object, key, path);
        match &value {
            Some(s) if !s.is_empty() => value,
            Some(_) => {
                self.error(&join(path, key), "must not be empty".to_owned());
                None
            }
            None if Self::get(object, key).is_none() => {
                self.error(&join(path, key), "is required".to_owned());
                None
            }
            None => None,
        }
    }

    fn bool(&mut self, object: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        match Self::get(object, key)? {
            Value::Bool(b) => Some(*b),
            other => {
                let message = format!("expected a boolean, got {}", type_name(other));
                self.error(&join(path, key), message);
                None
            }
        }
    }

    fn array<'v>(&mut self, object: &'v Map<String, Value>, key: &str, path: &str) -> &'v [Value] {
        match Self::get(object, key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                let message = format!("expected an array, got {}", type_name(other));
                self.error(&join(path, key), message);
                &[]
            }
        }
    }

    fn strings(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<Vec<String>> {
        Self::get(object, key)?;
        let items = self.array(object, key, path);
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => {
                    let field = format!("{}[{index}]", join(path, key));
                    self.error(
                        &field,
                        format!("expected a string, got {}", type_name(other)),
                    );
                }
            }
        }
        Some(out)
    }

    /// A number of seconds (ECS uses integers; fractions are accepted here so tests can be quick).
    fn seconds(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        path: &str,
        allow_zero: bool,
    ) -> Option<Duration> {
        let value = Self::get(object, key)?;
        let field = join(path, key);
        let Some(number) = value.as_f64() else {
            self.error(
                &field,
                format!("expected a number of seconds, got {}", type_name(value)),
            );
            return None;
        };
        let low_ok = if allow_zero {
            number >= 0.0
        } else {
            number > 0.0
        };
        if !number.is_finite() || !low_ok || number > MAX_SECONDS {
            let bound = if allow_zero {
                "at least 0"
            } else {
                "more than 0"
            };
            self.error(
                &field,
                format!("{number} seconds is out of range ({bound} and at most {MAX_SECONDS})"),
            );
            return None;
        }
        Some(Duration::from_secs_f64(number))
    }

    fn unsigned(&mut self, object: &Map<String, Value>, key: &str, path: &str) -> Option<u64> {
        let value = Self::get(object, key)?;
        match value.as_u64() {
            Some(n) => Some(n),
            None => {
                let field = join(path, key);
                let message = format!("expected a whole number, got {value}");
                self.error(&field, message);
                None
            }
        }
    }

    fn task(&mut self, value: &Value) -> Option<TaskDefinition> {
        let object = match value {
            Value::Object(map) => map,
            other => {
                self.task_error(
                    "(document)",
                    format!("expected a JSON object, got {}", type_name(other)),
                );
                return None;
            }
        };
        // DescribeTaskDefinition output wraps the definition.
        if let Some(inner @ Value::Object(_)) = object.get("taskDefinition") {
            return self.task(inner);
        }
        let known: Vec<&str> = TASK_SUPPORTED.iter().chain(TASK_IGNORED).copied().collect();
        self.check_keys(object, "", &known, TASK_REFUSED);
        let family = self
            .required_string(object, "family", "")
            .filter(|n| self.check_name(n, "family"));
        let revision = match Self::get(object, "revision") {
            None => 1,
            Some(value) => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => n,
                _ => {
                    self.task_error(
                        "revision",
                        format!("expected a positive whole number, got {value}"),
                    );
                    1
                }
            },
        };
        let network_mode = match self.string(object, "networkMode", "").as_deref() {
            None | Some("awsvpc") => NetworkMode::Awsvpc,
            Some("bridge") => NetworkMode::Bridge,
            Some("host") => NetworkMode::Host,
            Some(other) => {
                self.task_error(
                    "networkMode",
                    format!("{other:?} is not supported (use awsvpc, bridge or host)"),
                );
                NetworkMode::Awsvpc
            }
        };
        if let Some(platform) = Self::get(object, "runtimePlatform").and_then(Value::as_object)
            && let Some(Value::String(os)) = platform.get("operatingSystemFamily")
            && os != "LINUX"
        {
            self.task_error(
                "runtimePlatform.operatingSystemFamily",
                format!("{os:?} tasks cannot run here (only LINUX)"),
            );
        }
        let task_role_arn = self
            .string(object, "taskRoleArn", "")
            .filter(|s| !s.is_empty());
        let execution_role_arn = self
            .string(object, "executionRoleArn", "")
            .filter(|s| !s.is_empty());
        let requires_compatibilities = self
            .strings(object, "requiresCompatibilities", "")
            .unwrap_or_default();
        let cpu = self.number_or_string(object, "cpu");
        let memory = self.number_or_string(object, "memory");
        let volumes = self.volumes(object);
        let mut containers = Vec::new();
        let items = self.array(object, "containerDefinitions", "");
        if items.is_empty()
            && Self::get(object, "containerDefinitions").is_some_and(Value::is_array)
        {
            self.task_error(
                "containerDefinitions",
                "must list at least one container".to_owned(),
            );
        } else if Self::get(object, "containerDefinitions").is_none() {
            self.task_error("containerDefinitions", "is required".to_owned());
        }
        for (index, item) in items.iter().enumerate() {
            // Name the container in errors as soon as its name is known.
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map_or_else(
                    || format!("containerDefinitions[{index}]"),
                    ToOwned::to_owned,
                );
            self.container = Some(name);
            if let Some(container) = self.container_definition(item) {
                containers.push(container);
            }
            self.container = None;
        }
        let definition = TaskDefinition {
            family: family.unwrap_or_default(),
            revision,
            task_role_arn,
            execution_role_arn,
            network_mode,
            requires_compatibilities,
            cpu,
            memory,
            volumes,
            containers,
            notes: std::mem::take(&mut self.notes),
        };
        self.cross_checks(&definition);
        Some(definition)
    }

    fn number_or_string(&mut self, object: &Map<String, Value>, key: &str) -> Option<String> {
        match Self::get(object, key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.task_error(
                    key,
                    format!("expected a string or a number, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn volumes(&mut self, object: &Map<String, Value>) -> Vec<Volume> {
        let mut volumes = Vec::new();
        let mut seen = BTreeSet::new();
        for (index, item) in self.array(object, "volumes", "").iter().enumerate() {
            let path = format!("volumes[{index}]");
            let Some(volume) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(
                volume,
                &path,
                &[
                    "name",
                    "host",
                    "dockerVolumeConfiguration",
                    "configuredAtLaunch",
                ],
                &[
                    ("efsVolumeConfiguration", "EFS volumes"),
                    ("fsxWindowsFileServerVolumeConfiguration", "FSx volumes"),
                ],
            );
            let Some(name) = self
                .required_string(volume, "name", &path)
                .filter(|n| self.check_name(n, &format!("{path}.name")))
            else {
                continue;
            };
            if !seen.insert(name.clone()) {
                self.task_error(
                    &format!("{path}.name"),
                    format!("volume {name:?} is declared twice"),
                );
            }
            if self.bool(volume, "configuredAtLaunch", &path) == Some(true) {
                self.task_error(
                    &format!("{path}.configuredAtLaunch"),
                    "volumes configured at launch (EBS) are not supported".to_owned(),
                );
            }
            let mut kind = VolumeKind::Task;
            if let Some(host) = Self::get(volume, "host") {
                let host_path = format!("{path}.host");
                if let Some(host) = self.object(host, &host_path) {
                    self.check_keys(host, &host_path, &["sourcePath"], &[]);
                    if let Some(source) = self.string(host, "sourcePath", &host_path) {
                        if !source.starts_with('/') {
                            self.task_error(
                                &format!("{host_path}.sourcePath"),
                                format!("{source:?} is not an absolute path"),
                            );
                        }
                        kind = VolumeKind::Host(source);
                    }
                }
            }
            if let Some(docker) = Self::get(volume, "dockerVolumeConfiguration") {
                let docker_path = format!("{path}.dockerVolumeConfiguration");
                if let Some(docker) = self.object(docker, &docker_path) {
                    self.check_keys(
                        docker,
                        &docker_path,
                        &["scope", "autoprovision", "driver", "driverOpts", "labels"],
                        &[],
                    );
                    if let Some(driver) = self.string(docker, "driver", &docker_path)
                        && driver != "local"
                    {
                        self.task_error(
                            &format!("{docker_path}.driver"),
                            format!("volume driver {driver:?} is not supported (only local)"),
                        );
                    }
                    if let Some(opts) = Self::get(docker, "driverOpts").and_then(Value::as_object)
                        && !opts.is_empty()
                    {
                        self.task_error(
                            &format!("{docker_path}.driverOpts"),
                            "volume driver options are not supported".to_owned(),
                        );
                    }
                    match self.string(docker, "scope", &docker_path).as_deref() {
                        None | Some("task") => {}
                        Some("shared") => kind = VolumeKind::Shared,
                        Some(other) => self.task_error(
                            &format!("{docker_path}.scope"),
                            format!("{other:?} is not a scope (task or shared)"),
                        ),
                    }
                }
            }
            volumes.push(Volume { name, kind });
        }
        volumes
    }

    fn container_definition(&mut self, value: &Value) -> Option<ContainerDefinition> {
        let object = self.object(value, "(container)")?;
        let known: Vec<&str> = CONTAINER_SUPPORTED
            .iter()
            .chain(CONTAINER_IGNORED)
            .copied()
            .collect();
        self.check_keys(object, "", &known, CONTAINER_REFUSED);
        let name = self
            .required_string(object, "name", "")
            .filter(|n| self.check_name(n, "name"));
        let image = self.required_string(object, "image", "");
        let essential = self.bool(object, "essential", "").unwrap_or(true);
        let entry_point = self.strings(object, "entryPoint", "");
        let command = self.strings(object, "command", "");
        let environment = self.name_values(object, "environment", "value");
        let secrets = self
            .name_values(object, "secrets", "valueFrom")
            .into_iter()
            .map(|(name, value_from)| SecretRef { name, value_from })
            .collect();
        let user = self.string(object, "user", "").filter(|s| !s.is_empty());
        let working_directory = self
            .string(object, "workingDirectory", "")
            .filter(|s| !s.is_empty());
        if let Some(dir) = &working_directory
            && let Err(message) = check_container_path(dir)
        {
            self.error("workingDirectory", message);
        }
        let depends_on = self.depends_on(object);
        let health_check = self.health_check(object);
        let stop_timeout = self
            .seconds(object, "stopTimeout", "", true)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let start_timeout = self.seconds(object, "startTimeout", "", false);
        let mount_points = self.mount_points(object);
        let volumes_from = self.volumes_from(object);
        let port_mappings = self.port_mappings(object);
        let ulimits = self.ulimits(object);
        let tmpfs = self.linux_parameters(object);
        let extra_hosts = self.extra_hosts(object);
        let hostname = self
            .string(object, "hostname", "")
            .filter(|s| !s.is_empty());
        let dns_servers = self.strings(object, "dnsServers", "").unwrap_or_default();
        let dns_search_domains = self
            .strings(object, "dnsSearchDomains", "")
            .unwrap_or_default();
        if self.bool(object, "disableNetworking", "") == Some(true) {
            self.error("disableNetworking", "not supported by ecs-local".to_owned());
        }
        if self.bool(object, "readonlyRootFilesystem", "") == Some(true) {
            self.note("readonlyRootFilesystem is not enforced".to_owned());
        }
        if Self::get(object, "logConfiguration").is_some() {
            self.note(
                "logConfiguration is ignored: output goes to the task's log files".to_owned(),
            );
        }
        Some(ContainerDefinition {
            name: name?,
            image: image?,
            essential,
            entry_point,
            command,
            environment,
            secrets,
            user,
            working_directory,
            depends_on,
            health_check,
            stop_timeout,
            start_timeout,
            mount_points,
            volumes_from,
            port_mappings,
            ulimits,
            tmpfs,
            extra_hosts,
            hostname,
            dns_servers,
            dns_search_domains,
        })
    }

    fn note(&mut self, message: String) {
        let note = match &self.container {
            Some(container) => format!("container {container:?}: {message}"),
            None => message,
        };
        self.notes.push(note);
    }

    /// `[{name, <value_key>}]` lists: `environment` and `secrets`.
    fn name_values(
        &mut self,
        object: &Map<String, Value>,
        key: &str,
        value_key: &str,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, key, "").iter().enumerate() {
            let path = format!("{key}[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(entry, &path, &["name", value_key], &[]);
            let name = self.required_string(entry, "name", &path);
            let value = if key == "environment" {
                self.string(entry, value_key, &path).or(Some(String::new()))
            } else {
                self.required_string(entry, value_key, &path)
            };
            if let (Some(name), Some(value)) = (name, value) {
                if name.contains('=') || name.contains('\0') {
                    self.error(
                        &format!("{path}.name"),
                        format!("{name:?} is not a variable name"),
                    );
                    continue;
                }
                if value.contains('\0') {
                    self.error(
                        &format!("{path}.{value_key}"),
                        "contains a NUL byte".to_owned(),
                    );
                    continue;
                }
                out.push((name, value));
            }
        }
        out
    }

    fn depends_on(&mut self, object: &Map<String, Value>) -> Vec<Dependency> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "dependsOn", "").iter().enumerate() {
            let path = format!("dependsOn[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(entry, &path, &["containerName", "condition"], &[]);
            let name = self.required_string(entry, "containerName", &path);
            let condition = match self.required_string(entry, "condition", &path).as_deref() {
                Some("START") => Some(Condition::Start),
                Some("COMPLETE") => Some(Condition::Complete),
                Some("SUCCESS") => Some(Condition::Success),
                Some("HEALTHY") => Some(Condition::Healthy),
                Some(other) => {
                    self.error(
                        &format!("{path}.condition"),
                        format!(
                            "{other:?} is not a condition (START, COMPLETE, SUCCESS or HEALTHY)"
                        ),
                    );
                    None
                }
                None => None,
            };
            if let (Some(container_name), Some(condition)) = (name, condition) {
                out.push(Dependency {
                    container_name,
                    condition,
                });
            }
        }
        out
    }

    fn health_check(&mut self, object: &Map<String, Value>) -> Option<HealthCheck> {
        let value = Self::get(object, "healthCheck")?;
        let check = self.object(value, "healthCheck")?;
        let path = "healthCheck";
        self.check_keys(
            check,
            path,
            &["command", "interval", "timeout", "retries", "startPeriod"],
            &[],
        );
        let interval = self
            .seconds(check, "interval", path, false)
            .unwrap_or(DEFAULT_HEALTH_INTERVAL);
        let timeout = self
            .seconds(check, "timeout", path, false)
            .unwrap_or(DEFAULT_HEALTH_TIMEOUT);
        let start_period = self
            .seconds(check, "startPeriod", path, true)
            .unwrap_or(Duration::ZERO);
        let retries = match self.unsigned(check, "retries", path) {
            None => DEFAULT_HEALTH_RETRIES,
            Some(n) if (1..=1000).contains(&n) => {
                u32::try_from(n).unwrap_or(DEFAULT_HEALTH_RETRIES)
            }
            Some(n) => {
                self.error(
                    "healthCheck.retries",
                    format!("{n} is out of range (1 to 1000)"),
                );
                DEFAULT_HEALTH_RETRIES
            }
        };
        let words = self.strings(check, "command", path);
        let command = match words.as_deref() {
            None => {
                self.error("healthCheck.command", "is required".to_owned());
                return None;
            }
            Some([first, ..]) if first == "NONE" => return None,
            Some([first, rest @ ..]) if first == "CMD" && !rest.is_empty() => {
                HealthCommand::Exec(rest.to_vec())
            }
            Some([first, rest @ ..]) if first == "CMD-SHELL" && !rest.is_empty() => {
                HealthCommand::Shell(rest.join(" "))
            }
            // ECS runs a command without a prefix in exec form; the consul-ecs Terraform modules
            // render the dataplane's check that way.
            Some(all @ [first, ..])
                if first != "CMD" && first != "CMD-SHELL" && !first.is_empty() =>
            {
                HealthCommand::Exec(all.to_vec())
            }
            Some(_) => {
                self.error(
                    "healthCheck.command",
                    "must name a command (optionally after \"CMD\" or \"CMD-SHELL\")".to_owned(),
                );
                return None;
            }
        };
        Some(HealthCheck {
            command,
            interval,
            timeout,
            retries,
            start_period,
        })
    }

    fn mount_points(&mut self, object: &Map<String, Value>) -> Vec<MountPoint> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "mountPoints", "").iter().enumerate() {
            let path = format!("mountPoints[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(
                entry,
                &path,
                &["sourceVolume", "containerPath", "readOnly"],
                &[],
            );
            let source = self.required_string(entry, "sourceVolume", &path);
            let target = self.required_string(entry, "containerPath", &path);
            let read_only = self.bool(entry, "readOnly", &path).unwrap_or(false);
            if let Some(target) = &target
                && let Err(message) = check_container_path(target)
            {
                self.error(&format!("{path}.containerPath"), message);
                continue;
            }
            if let (Some(source_volume), Some(container_path)) = (source, target) {
                out.push(MountPoint {
                    source_volume,
                    container_path: normalize_path(&container_path),
                    read_only,
                });
            }
        }
        out
    }

    fn volumes_from(&mut self, object: &Map<String, Value>) -> Vec<VolumeFrom> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "volumesFrom", "").iter().enumerate() {
            let path = format!("volumesFrom[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(entry, &path, &["sourceContainer", "readOnly"], &[]);
            let source = self.required_string(entry, "sourceContainer", &path);
            let read_only = self.bool(entry, "readOnly", &path).unwrap_or(false);
            if let Some(source_container) = source {
                out.push(VolumeFrom {
                    source_container,
                    read_only,
                });
            }
        }
        out
    }

    fn port_mappings(&mut self, object: &Map<String, Value>) -> Vec<PortMapping> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "portMappings", "").iter().enumerate() {
            let path = format!("portMappings[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(
                entry,
                &path,
                &[
                    "containerPort",
                    "hostPort",
                    "protocol",
                    "name",
                    "appProtocol",
                ],
                &[("containerPortRange", "port ranges")],
            );
            let port = |reader: &mut Self, key: &str| -> Option<u16> {
                let n = reader.unsigned(entry, key, &path)?;
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Some(p),
                    _ => {
                        reader.error(&format!("{path}.{key}"), format!("{n} is not a port"));
                        None
                    }
                }
            };
            let container_port = port(self, "containerPort");
            let host_port = port(self, "hostPort");
            let protocol = match self.string(entry, "protocol", &path) {
                None => "tcp".to_owned(),
                Some(p) if p == "tcp" || p == "udp" => p,
                Some(p) => {
                    self.error(
                        &format!("{path}.protocol"),
                        format!("{p:?} is not tcp or udp"),
                    );
                    continue;
                }
            };
            match container_port {
                Some(container_port) => out.push(PortMapping {
                    container_port,
                    host_port,
                    protocol,
                }),
                None if Self::get(entry, "containerPort").is_none() => {
                    self.error(&format!("{path}.containerPort"), "is required".to_owned());
                }
                None => {}
            }
        }
        out
    }

    fn ulimits(&mut self, object: &Map<String, Value>) -> Vec<Ulimit> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "ulimits", "").iter().enumerate() {
            let path = format!("ulimits[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(entry, &path, &["name", "softLimit", "hardLimit"], &[]);
            let name = self.required_string(entry, "name", &path);
            if let Some(name) = &name
                && !crate::sys::ULIMIT_NAMES.contains(&name.as_str())
            {
                self.error(
                    &format!("{path}.name"),
                    format!("{name:?} is not a ulimit name"),
                );
                continue;
            }
            let soft = self.unsigned(entry, "softLimit", &path);
            let hard = self.unsigned(entry, "hardLimit", &path);
            match (name, soft, hard) {
                (Some(name), Some(soft), Some(hard)) if soft <= hard => {
                    out.push(Ulimit { name, soft, hard });
                }
                (Some(_), Some(soft), Some(hard)) => self.error(
                    &format!("{path}.softLimit"),
                    format!("{soft} is above the hard limit {hard}"),
                ),
                (Some(_), None, _) if Self::get(entry, "softLimit").is_none() => {
                    self.error(&format!("{path}.softLimit"), "is required".to_owned());
                }
                (Some(_), _, None) if Self::get(entry, "hardLimit").is_none() => {
                    self.error(&format!("{path}.hardLimit"), "is required".to_owned());
                }
                _ => {}
            }
        }
        out
    }

    fn linux_parameters(&mut self, object: &Map<String, Value>) -> Vec<TmpfsMount> {
        let Some(value) = Self::get(object, "linuxParameters") else {
            return Vec::new();
        };
        let path = "linuxParameters";
        let Some(params) = self.object(value, path) else {
            return Vec::new();
        };
        self.check_keys(
            params,
            path,
            &[
                "capabilities",
                "initProcessEnabled",
                "tmpfs",
                "sharedMemorySize",
                "maxSwap",
                "swappiness",
                "devices",
            ],
            &[],
        );
        let _ = self.bool(params, "initProcessEnabled", path);
        if let Some(caps) = Self::get(params, "capabilities") {
            let caps_path = "linuxParameters.capabilities";
            if let Some(caps) = self.object(caps, caps_path) {
                self.check_keys(caps, caps_path, &["add", "drop"], &[]);
                let add = self.strings(caps, "add", caps_path).unwrap_or_default();
                let drop = self.strings(caps, "drop", caps_path).unwrap_or_default();
                if !add.is_empty() || !drop.is_empty() {
                    self.note(format!(
                        "capabilities (add {add:?}, drop {drop:?}) are not applied: processes run as \
                         root have every capability, others have none"
                    ));
                }
            }
        }
        if !self.array(params, "devices", path).is_empty() {
            self.error(
                "linuxParameters.devices",
                "not supported by ecs-local (host devices)".to_owned(),
            );
        }
        let mut out = Vec::new();
        for (index, item) in self.array(params, "tmpfs", path).iter().enumerate() {
            let entry_path = format!("linuxParameters.tmpfs[{index}]");
            let Some(entry) = self.object(item, &entry_path) else {
                continue;
            };
            self.check_keys(
                entry,
                &entry_path,
                &["containerPath", "size", "mountOptions"],
                &[],
            );
            let target = self.required_string(entry, "containerPath", &entry_path);
            let size = self.unsigned(entry, "size", &entry_path);
            let options = self
                .strings(entry, "mountOptions", &entry_path)
                .unwrap_or_default();
            if !options.is_empty() {
                self.note(format!("tmpfs mount options {options:?} are ignored"));
            }
            if let Some(target) = &target
                && let Err(message) = check_container_path(target)
            {
                self.error(&format!("{entry_path}.containerPath"), message);
                continue;
            }
            match (target, size) {
                (Some(container_path), Some(size_mib)) if size_mib > 0 => out.push(TmpfsMount {
                    container_path: normalize_path(&container_path),
                    size_mib,
                }),
                (Some(_), _) => {
                    self.error(
                        &format!("{entry_path}.size"),
                        "must be a size in MiB above 0".to_owned(),
                    );
                }
                _ => {}
            }
        }
        out
    }

    fn extra_hosts(&mut self, object: &Map<String, Value>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (index, item) in self.array(object, "extraHosts", "").iter().enumerate() {
            let path = format!("extraHosts[{index}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            self.check_keys(entry, &path, &["hostname", "ipAddress"], &[]);
            let host = self.required_string(entry, "hostname", &path);
            let ip = self.required_string(entry, "ipAddress", &path);
            if let (Some(host), Some(ip)) = (host, ip) {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    self.error(
                        &format!("{path}.ipAddress"),
                        format!("{ip:?} is not an IP address"),
                    );
                    continue;
                }
                if host.chars().any(char::is_whitespace) {
                    self.error(
                        &format!("{path}.hostname"),
                        format!("{host:?} is not a host name"),
                    );
                    continue;
                }
                out.push((host, ip));
            }
        }
        out
    }

    /// Checks across containers: names, volumes, dependencies and their conditions.
    fn cross_checks(&mut self, task: &TaskDefinition) {
        let mut names = BTreeSet::new();
        for container in &task.containers {
            if !names.insert(container.name.as_str()) {
                self.task_error(
                    "containerDefinitions",
                    format!("container name {:?} is used twice", container.name),
                );
            }
        }
        if !task.containers.is_empty() && !task.containers.iter().any(|c| c.essential) {
            self.task_error(
                "containerDefinitions",
                "at least one container must be essential".to_owned(),
            );
        }
        let volumes: BTreeSet<&str> = task.volumes.iter().map(|v| v.name.as_str()).collect();
        for container in &task.containers {
            self.container = Some(container.name.clone());
            for (index, mount) in container.mount_points.iter().enumerate() {
                if !volumes.contains(mount.source_volume.as_str()) {
                    self.error(
                        &format!("mountPoints[{index}].sourceVolume"),
                        format!("there is no task volume named {:?}", mount.source_volume),
                    );
                }
            }
            for (index, from) in container.volumes_from.iter().enumerate() {
                if from.source_container == container.name
                    || task.container(&from.source_container).is_none()
                {
                    self.error(
                        &format!("volumesFrom[{index}].sourceContainer"),
                        format!(
                            "there is no other container named {:?}",
                            from.source_container
                        ),
                    );
                }
            }
            for (index, dependency) in container.depends_on.iter().enumerate() {
                let field = format!("dependsOn[{index}]");
                let Some(target) = task.container(&dependency.container_name) else {
                    self.error(
                        &format!("{field}.containerName"),
                        format!(
                            "there is no container named {:?}",
                            dependency.container_name
                        ),
                    );
                    continue;
                };
                if target.name == container.name {
                    self.error(
                        &format!("{field}.containerName"),
                        "a container cannot depend on itself".to_owned(),
                    );
                    continue;
                }
                match dependency.condition {
                    Condition::Complete | Condition::Success if target.essential => self.error(
                        &format!("{field}.condition"),
                        format!(
                            "{} cannot be used with the essential container {:?}",
                            dependency.condition, target.name
                        ),
                    ),
                    Condition::Healthy if target.health_check.is_none() => self.error(
                        &format!("{field}.condition"),
                        format!(
                            "HEALTHY needs a health check on container {:?}",
                            target.name
                        ),
                    ),
                    _ => {}
                }
            }
        }
        self.container = None;
        if let Some(cycle) = dependency_cycle(task) {
            self.task_error(
                "containerDefinitions",
                format!("dependsOn forms a cycle: {}", cycle.join(" -> ")),
            );
        }
    }
}

/// A container path must be absolute, without `..`, and not a place the runtime itself provides.
fn check_container_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not an absolute path"));
    }
    if path.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{path:?} must not contain .."));
    }
    let normalized = normalize_path(path);
    let reserved = ["/", "/proc", "/sys", "/dev"];
    if reserved.contains(&normalized.as_str()) {
        return Err(format!("{path:?} cannot be mounted over"));
    }
    Ok(())
}

/// `/a//b/./c/` → `/a/b/c`.
fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The first dependency cycle found, as container names.
fn dependency_cycle(task: &TaskDefinition) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = task
        .containers
        .iter()
        .map(|c| {
            let deps = c
                .depends_on
                .iter()
                .map(|d| d.container_name.as_str())
                .filter(|d| task.container(d).is_some())
                .collect();
            (c.name.as_str(), deps)
        })
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|s| (*s).to_owned()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node, 1);
        path.push(node);
        for next in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
            if let Some(cycle) = visit(next, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    for node in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(node, &edges, &mut state, &mut path) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests;
