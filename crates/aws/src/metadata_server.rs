//! An in-process ECS task metadata v4 endpoint with a mutable task document, for tests and for the
//! local ECS runtime.
//!
//! Routes (all `GET`), in the root form used by tests and the `/v4/<DockerId>` form the ECS agent
//! gives each container in `ECS_CONTAINER_METADATA_URI_V4`:
//!
//! | Path | Response |
//! | --- | --- |
//! | `/`, `/v4/<id>` | the container's own document (root form: the "self" container) |
//! | `/task`, `/v4/<id>/task` | the task document |
//! | `/taskWithTags`, `/v4/<id>/taskWithTags` | the task document with `TaskTags` |
//! | `/stats`, `/v4/<id>/stats` | Docker stats of the container |
//! | `/task/stats`, `/v4/<id>/task/stats` | Docker stats of every container, by Docker ID |
//! | `/v2/credentials/<id>` | task-role credentials in the shape the AWS SDKs' ECS provider reads |
//!
//! Point `AWS_CONTAINER_CREDENTIALS_FULL_URI` at [`MetadataServer::credentials_url`] (loopback is
//! allowed), or serve at `169.254.170.2:80` and use `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::task_metadata::{
    Container, HEALTHY, Health, Limits, NORMAL, Network, RUNNING, STOPPED, TaskMetadata, UNKNOWN,
};

/// Task-role credentials as the ECS agent serves them.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TaskRoleCredentials {
    /// The access key ID.
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    /// When the credentials expire (RFC 3339).
    #[serde(rename = "Expiration")]
    pub expiration: String,
    /// The task role's ARN.
    #[serde(rename = "RoleArn")]
    pub role_arn: String,
    /// The secret access key.
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: String,
    /// The session token.
    #[serde(rename = "Token")]
    pub token: String,
}

impl TaskRoleCredentials {
    /// Credentials for `role_arn` that expire at `expiration`.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        token: impl Into<String>,
        role_arn: impl Into<String>,
        expiration: SystemTime,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            expiration: rfc3339(expiration),
            role_arn: role_arn.into(),
            secret_access_key: secret_access_key.into(),
            token: token.into(),
        }
    }
}

impl fmt::Debug for TaskRoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRoleCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("role_arn", &self.role_arn)
            .field("secret_access_key", &"<redacted>")
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Default)]
struct ServerState {
    task: TaskMetadata,
    self_container: Option<String>,
    credentials: BTreeMap<String, TaskRoleCredentials>,
}

type Shared = Arc<Mutex<ServerState>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, ServerState> {
    // A panic while holding the lock cannot leave the document half-written in a way that matters
    // to readers, so keep serving.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running metadata endpoint. Dropping it without [`MetadataServer::shutdown`] stops it too.
#[derive(Debug)]
pub struct MetadataServer {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetadataServer {
    /// Binds `addr` (port 0 picks a free port) and serves `task`.
    pub async fn start(addr: SocketAddr, task: TaskMetadata) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(ServerState {
            task,
            ..ServerState::default()
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: a value for `ECS_CONTAINER_METADATA_URI_V4` in the root form.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr>/v4/<DockerId>` for the named container, as ECS gives each container.
    pub fn container_url(&self, name: &str) -> Option<String> {
        let state = lock(&self.state);
        let container = state.task.container(name)?;
        Some(format!("http://{}/v4/{}", self.addr, container.docker_id))
    }

    /// `/v2/credentials/<id>`: a value for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
    pub fn credentials_path(id: &str) -> String {
        format!("/v2/credentials/{id}")
    }

    /// `http://<addr>/v2/credentials/<id>`: a value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn credentials_url(&self, id: &str) -> String {
        format!("http://{}{}", self.addr, Self::credentials_path(id))
    }

    /// A copy of the current task document.
    pub fn task(&self) -> TaskMetadata {
        lock(&self.state).task.clone()
    }

    /// Replaces the task document.
    pub fn set_task(&self, task: TaskMetadata) {
        lock(&self.state).task = task;
    }

    /// Changes the task document in place.
    pub fn update<R>(&self, change: impl FnOnce(&mut TaskMetadata) -> R) -> R {
        change(&mut lock(&self.state).task)
    }

    /// Chooses the container `/` and `/stats` describe (default: the first `NORMAL` container).
    pub fn set_self_container(&self, name: &str) {
        lock(&self.state).self_container = Some(name.to_owned());
    }

    /// Sets `Health.status` of every container with this name (creating `Health` if absent) and
    /// stamps `statusSince`. Returns false if there is no such container.
    pub fn set_container_health(&self, name: &str, status: &str) -> bool {
        let now = rfc3339(SystemTime::now());
        self.update(|task| {
            let mut found = false;
            for container in task.containers.iter_mut().filter(|c| c.name == name) {
                let health = container.health.get_or_insert_with(Health::default);
                health.status = status.to_owned();
                health.status_since = Some(now.clone());
                health.exit_code = Some(if status == HEALTHY { 0 } else { 1 });
                found = true;
            }
            found
        })
    }

    /// Sets the known and desired status of every container with this name. A known status of
    /// `STOPPED` also records `FinishedAt` and an exit code of 0 unless one is set. Returns false
    /// if there is no such container.
    pub fn set_container_status(&self, name: &str, known: &str, desired: &str) -> bool {
        let now = rfc3339(SystemTime::now());
        self.update(|task| {
            let mut found = false;
            for container in task.containers.iter_mut().filter(|c| c.name == name) {
                container.known_status = known.to_owned();
                container.desired_status = desired.to_owned();
                if known == STOPPED {
                    container.finished_at.get_or_insert_with(|| now.clone());
                    container.exit_code.get_or_insert(0);
                }
                found = true;
            }
            found
        })
    }

    /// Removes every container with this name. Returns false if there was none.
    pub fn remove_container(&self, name: &str) -> bool {
        self.update(|task| {
            let before = task.containers.len();
            task.containers.retain(|c| c.name != name);
            task.containers.len() != before
        })
    }

    /// Serves `credentials` at `/v2/credentials/<id>`.
    pub fn set_credentials(&self, id: &str, credentials: TaskRoleCredentials) {
        lock(&self.state)
            .credentials
            .insert(id.to_owned(), credentials);
    }

    /// Stops serving the credentials at `/v2/credentials/<id>`.
    pub fn remove_credentials(&self, id: &str) {
        lock(&self.state).credentials.remove(id);
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(own_container))
        .route("/task", get(task_doc))
        .route("/taskWithTags", get(task_with_tags))
        .route("/stats", get(own_stats))
        .route("/task/stats", get(task_stats))
        .route("/v4/{id}", get(container_by_id))
        .route("/v4/{id}/task", get(task_for_id))
        .route("/v4/{id}/taskWithTags", get(task_with_tags_for_id))
        .route("/v4/{id}/stats", get(stats_by_id))
        .route("/v4/{id}/task/stats", get(task_stats_for_id))
        .route("/v2/credentials/{id}", get(credentials))
        .fallback(|| async { not_found("no such metadata path") })
        .with_state(state)
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "Error": message }))).into_response()
}

fn self_container(state: &ServerState) -> Option<&Container> {
    match &state.self_container {
        Some(name) => state.task.container(name),
        None => state
            .task
            .containers
            .iter()
            .find(|c| c.is_normal_type())
            .or_else(|| state.task.containers.first()),
    }
}

fn by_id<'a>(state: &'a ServerState, id: &str) -> Option<&'a Container> {
    let containers = &state.task.containers;
    containers
        .iter()
        .find(|c| c.docker_id == id)
        .or_else(|| containers.iter().find(|c| c.name == id))
}

async fn own_container(State(state): State<Shared>) -> Response {
    let state = lock(&state);
    match self_container(&state) {
        Some(container) => Json(container.clone()).into_response(),
        None => not_found("the task has no containers"),
    }
}

async fn container_by_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match by_id(&state, &id) {
        Some(container) => Json(container.clone()).into_response(),
        None => not_found("unknown container"),
    }
}

async fn task_doc(State(state): State<Shared>) -> Response {
    Json(lock(&state).task.clone()).into_response()
}

async fn task_for_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match by_id(&state, &id) {
        Some(_) => Json(state.task.clone()).into_response(),
        None => not_found("unknown container"),
    }
}

fn with_tags(task: &TaskMetadata) -> TaskMetadata {
    let mut task = task.clone();
    task.task_tags.get_or_insert_with(BTreeMap::new);
    task
}

async fn task_with_tags(State(state): State<Shared>) -> Response {
    Json(with_tags(&lock(&state).task)).into_response()
}

async fn task_with_tags_for_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match by_id(&state, &id) {
        Some(_) => Json(with_tags(&state.task)).into_response(),
        None => not_found("unknown container"),
    }
}

async fn own_stats(State(state): State<Shared>) -> Response {
    let state = lock(&state);
    match self_container(&state) {
        Some(container) => Json(stats(container)).into_response(),
        None => not_found("the task has no containers"),
    }
}

async fn stats_by_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match by_id(&state, &id) {
        Some(container) => Json(stats(container)).into_response(),
        None => not_found("unknown container"),
    }
}

fn all_stats(task: &TaskMetadata) -> Value {
    let map: serde_json::Map<String, Value> = task
        .containers
        .iter()
        .map(|c| (c.docker_id.clone(), stats(c)))
        .collect();
    Value::Object(map)
}

async fn task_stats(State(state): State<Shared>) -> Response {
    Json(all_stats(&lock(&state).task)).into_response()
}

async fn task_stats_for_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match by_id(&state, &id) {
        Some(_) => Json(all_stats(&state.task)).into_response(),
        None => not_found("unknown container"),
    }
}

/// Docker stats in the Engine API's shape; `null` for a stopped container, as the agent sends.
fn stats(container: &Container) -> Value {
    if container.known_status == STOPPED {
        return Value::Null;
    }
    let memory_limit = container
        .limits
        .as_ref()
        .and_then(|l| l.memory.as_ref())
        .and_then(serde_json::Number::as_u64)
        .filter(|m| *m > 0)
        .unwrap_or(512)
        .saturating_mul(1024 * 1024);
    let cpu = json!({
        "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
        "system_cpu_usage": 0,
        "online_cpus": 2,
        "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 }
    });
    json!({
        "read": rfc3339(SystemTime::now()),
        "preread": "0001-01-01T00:00:00Z",
        "name": format!("/{}", container.docker_name),
        "id": container.docker_id,
        "num_procs": 0,
        "pids_stats": { "current": 1 },
        "cpu_stats": cpu,
        "precpu_stats": cpu,
        "memory_stats": { "usage": 0, "max_usage": 0, "stats": {}, "limit": memory_limit }
    })
}

async fn credentials(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&state).credentials.get(&id) {
        Some(credentials) => Json(credentials.clone()).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "code": "InvalidIdInRequest",
                "message": "CredentialsV2Request: Credentials not found",
                "HTTPErrorCode": 400
            })),
        )
            .into_response(),
    }
}

fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Where a task runs; shapes the ARNs, IDs and networks of a built document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchType {
    /// Fargate: `Cluster` is a full ARN, Docker IDs are `<task id>-<digits>`, network `awsvpc`.
    Fargate,
    /// EC2: `Cluster` is the short name, Docker IDs are 64 hex digits, `VPCID` is set.
    Ec2,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    name: String,
    image: String,
    health_check: bool,
    container_type: String,
}

/// Builds realistic task documents for [`MetadataServer`].
#[derive(Debug, Clone)]
pub struct TaskBuilder {
    launch_type: LaunchType,
    partition: String,
    region: String,
    account: String,
    cluster: String,
    family: String,
    revision: u32,
    task_id: Option<String>,
    ip: String,
    network_mode: String,
    service_name: Option<String>,
    containers: Vec<ContainerSpec>,
}

impl TaskBuilder {
    /// A Fargate task in `cluster` (a short name or a cluster ARN).
    pub fn fargate(cluster: &str) -> Self {
        Self::new(LaunchType::Fargate, cluster)
    }

    /// An EC2 task in `cluster` (a short name or a cluster ARN).
    pub fn ec2(cluster: &str) -> Self {
        Self::new(LaunchType::Ec2, cluster)
    }

    fn new(launch_type: LaunchType, cluster: &str) -> Self {
        // Accept a cluster ARN and keep only its name; the document's form depends on the launch type.
        let name = cluster
            .strip_prefix("arn:")
            .and_then(|_| cluster.rsplit_once("cluster/"))
            .map_or(cluster, |(_, name)| name);
        Self {
            launch_type,
            partition: "aws".to_owned(),
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            cluster: name.to_owned(),
            family: "app".to_owned(),
            revision: 1,
            task_id: None,
            ip: "10.0.1.23".to_owned(),
            network_mode: "awsvpc".to_owned(),
            service_name: None,
            containers: Vec::new(),
        }
    }

    /// The region (default `us-east-1`).
    pub fn region(mut self, region: &str) -> Self {
        self.region = region.to_owned();
        self
    }

    /// The partition (default `aws`).
    pub fn partition(mut self, partition: &str) -> Self {
        self.partition = partition.to_owned();
        self
    }

    /// The account (default `123456789012`).
    pub fn account(mut self, account: &str) -> Self {
        self.account = account.to_owned();
        self
    }

    /// The task definition family and revision (default `app`, 1).
    pub fn family(mut self, family: &str, revision: u32) -> Self {
        self.family = family.to_owned();
        self.revision = revision;
        self
    }

    /// The task ID (default: 32 random hex digits).
    pub fn task_id(mut self, task_id: &str) -> Self {
        self.task_id = Some(task_id.to_owned());
        self
    }

    /// The task's IPv4 address (default `10.0.1.23`).
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.to_owned();
        self
    }

    /// The network mode (default `awsvpc`; EC2 tasks may use `bridge` or `host`).
    pub fn network_mode(mut self, mode: &str) -> Self {
        self.network_mode = mode.to_owned();
        self
    }

    /// The ECS service that started the task.
    pub fn service_name(mut self, service: &str) -> Self {
        self.service_name = Some(service.to_owned());
        self
    }

    /// Adds a running `NORMAL` container without a health check.
    pub fn container(self, name: &str) -> Self {
        self.add(name, false, NORMAL)
    }

    /// Adds a running `NORMAL` container with a health check whose status is `UNKNOWN`.
    pub fn container_with_health_check(self, name: &str) -> Self {
        self.add(name, true, NORMAL)
    }

    /// Adds a container of another `Type`, such as `CNI_PAUSE`.
    pub fn internal_container(self, name: &str, container_type: &str) -> Self {
        self.add(name, false, container_type)
    }

    fn add(mut self, name: &str, health_check: bool, container_type: &str) -> Self {
        self.containers.push(ContainerSpec {
            name: name.to_owned(),
            image: format!("public.ecr.aws/example/{name}:latest"),
            health_check,
            container_type: container_type.to_owned(),
        });
        self
    }

    /// The task document.
    pub fn build(&self) -> TaskMetadata {
        let now = SystemTime::now();
        let started = rfc3339(now);
        let task_id = self.task_id.clone().unwrap_or_else(random_hex32);
        let prefix = format!(
            "arn:{}:ecs:{}:{}",
            self.partition, self.region, self.account
        );
        let cluster_arn = format!("{prefix}:cluster/{}", self.cluster);
        let task_arn = format!("{prefix}:task/{}/{task_id}", self.cluster);
        let fargate = self.launch_type == LaunchType::Fargate;
        let cluster_field = if fargate {
            cluster_arn
        } else {
            self.cluster.clone()
        };
        let containers = self
            .containers
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let docker_id = if fargate {
                    format!("{task_id}-{:010}", 1_000_000_000u64 + index as u64)
                } else {
                    format!("{}{}", random_hex32(), random_hex32())
                };
                let docker_name = if fargate {
                    spec.name.clone()
                } else {
                    format!(
                        "ecs-{}-{}-{}-{}",
                        self.family,
                        self.revision,
                        spec.name.replace(['_', '.'], ""),
                        &random_hex32()[..20]
                    )
                };
                let mut labels = BTreeMap::new();
                labels.insert(
                    "com.amazonaws.ecs.cluster".to_owned(),
                    cluster_field.clone(),
                );
                labels.insert(
                    "com.amazonaws.ecs.container-name".to_owned(),
                    spec.name.clone(),
                );
                labels.insert("com.amazonaws.ecs.task-arn".to_owned(), task_arn.clone());
                labels.insert(
                    "com.amazonaws.ecs.task-definition-family".to_owned(),
                    self.family.clone(),
                );
                labels.insert(
                    "com.amazonaws.ecs.task-definition-version".to_owned(),
                    self.revision.to_string(),
                );
                let mut log_options = BTreeMap::new();
                log_options.insert("awslogs-group".to_owned(), format!("/ecs/{}", self.family));
                log_options.insert("awslogs-region".to_owned(), self.region.clone());
                log_options.insert(
                    "awslogs-stream".to_owned(),
                    format!("ecs/{}/{task_id}", spec.name),
                );
                Container {
                    docker_id,
                    name: spec.name.clone(),
                    docker_name,
                    image: spec.image.clone(),
                    image_id: format!("sha256:{}{}", random_hex32(), random_hex32()),
                    labels,
                    desired_status: RUNNING.to_owned(),
                    known_status: RUNNING.to_owned(),
                    limits: Some(Limits {
                        cpu: Some(0.into()),
                        memory: None,
                    }),
                    created_at: Some(started.clone()),
                    started_at: Some(started.clone()),
                    container_type: spec.container_type.clone(),
                    log_driver: Some("awslogs".to_owned()),
                    log_options: Some(log_options),
                    container_arn: Some(format!(
                        "{prefix}:container/{}/{task_id}/{}",
                        self.cluster,
                        uuid::Uuid::new_v4()
                    )),
                    health: spec.health_check.then(|| Health {
                        status: UNKNOWN.to_owned(),
                        ..Health::default()
                    }),
                    networks: vec![self.network(index)],
                    ..Container::default()
                }
            })
            .collect();
        TaskMetadata {
            cluster: cluster_field,
            service_name: self.service_name.clone(),
            vpc_id: (!fargate).then(|| "vpc-0123456789abcdef0".to_owned()),
            task_arn,
            family: self.family.clone(),
            revision: self.revision.to_string(),
            desired_status: RUNNING.to_owned(),
            known_status: RUNNING.to_owned(),
            limits: Some(Limits {
                cpu: serde_json::Number::from_f64(0.25),
                memory: Some(512.into()),
            }),
            pull_started_at: Some(started.clone()),
            pull_stopped_at: Some(started),
            availability_zone: Some(format!("{}a", self.region)),
            launch_type: Some(if fargate { "FARGATE" } else { "EC2" }.to_owned()),
            containers,
            ..TaskMetadata::default()
        }
    }

    fn network(&self, index: usize) -> Network {
        if self.network_mode != "awsvpc" {
            // Bridge and host mode: Docker's address for each container, nothing else.
            let ip = if self.network_mode == "bridge" {
                format!("172.17.0.{}", 2 + index % 250)
            } else {
                self.ip.clone()
            };
            return Network {
                network_mode: self.network_mode.clone(),
                ipv4_addresses: vec![ip],
                ..Network::default()
            };
        }
        let octets: Vec<&str> = self.ip.split('.').collect();
        let (subnet, gateway, dns) = match octets.as_slice() {
            [a, b, c, _] => (
                format!("{a}.{b}.{c}.0/24"),
                format!("{a}.{b}.{c}.1/24"),
                format!("{a}.{b}.0.2"),
            ),
            _ => (String::new(), String::new(), String::new()),
        };
        Network {
            network_mode: "awsvpc".to_owned(),
            ipv4_addresses: vec![self.ip.clone()],
            attachment_index: Some(0),
            mac_address: Some("0a:1b:2c:3d:4e:5f".to_owned()),
            ipv4_subnet_cidr_block: Some(subnet),
            domain_name_servers: Some(vec![dns]),
            domain_name_search_list: Some(vec![format!("{}.compute.internal", self.region)]),
            private_dns_name: Some(format!(
                "ip-{}.{}.compute.internal",
                self.ip.replace('.', "-"),
                self.region
            )),
            subnet_gateway_ipv4_address: Some(gateway),
            ..Network::default()
        }
    }
}

fn random_hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
