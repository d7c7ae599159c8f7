//! ECS task metadata endpoint v4: the `/task` document, the values consul-ecs derives from it, and a
//! client for `ECS_CONTAINER_METADATA_URI_V4`.
//!
//! The types follow the JSON AWS documents (PascalCase keys, `Health` with camelCase keys). Every
//! field is optional or defaults when missing or `null`, because agents of different versions and
//! launch types leave different fields out; keys we do not model are kept in `extra` so a document
//! survives a round trip.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde::{Deserialize, Deserializer, Serialize};

use crate::arn::Arn;
use crate::transport::{self, HttpError};

/// The environment variable ECS sets to the container's metadata endpoint.
pub const METADATA_URI_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// `Health.status` of a container whose health check passes.
pub const HEALTHY: &str = "HEALTHY";
/// `Health.status` of a container whose health check fails.
pub const UNHEALTHY: &str = "UNHEALTHY";
/// `Health.status` before the first health check result.
pub const UNKNOWN: &str = "UNKNOWN";
/// `KnownStatus`/`DesiredStatus` of a running container or task.
pub const RUNNING: &str = "RUNNING";
/// `KnownStatus`/`DesiredStatus` of a stopped container or task.
pub const STOPPED: &str = "STOPPED";
/// `Type` of a container from the task definition (as opposed to ECS's internal containers).
pub const NORMAL: &str = "NORMAL";

/// The node address used when the metadata has no IPv4 address.
pub const FALLBACK_NODE_IP: &str = "127.0.0.1";

/// The `${ECS_CONTAINER_METADATA_URI_V4}/task` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMetadata {
    /// The cluster's ARN (Fargate) or short name (EC2).
    #[serde(rename = "Cluster", default, deserialize_with = "nullable")]
    pub cluster: String,
    /// The ECS service that started the task, when there is one.
    #[serde(
        rename = "ServiceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_name: Option<String>,
    /// The VPC of the EC2 container instance (EC2 only).
    #[serde(rename = "VPCID", default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The task's ARN: `arn:<partition>:ecs:<region>:<account>:task/<cluster>/<id>`.
    #[serde(rename = "TaskARN", default, deserialize_with = "nullable")]
    pub task_arn: String,
    /// The task definition family.
    #[serde(rename = "Family", default, deserialize_with = "nullable")]
    pub family: String,
    /// The task definition revision, as a string.
    #[serde(rename = "Revision", default, deserialize_with = "nullable")]
    pub revision: String,
    /// The status ECS wants the task in.
    #[serde(rename = "DesiredStatus", default, deserialize_with = "nullable")]
    pub desired_status: String,
    /// The status the agent last saw.
    #[serde(rename = "KnownStatus", default, deserialize_with = "nullable")]
    pub known_status: String,
    /// Task-level CPU (vCPUs) and memory (MiB) limits.
    #[serde(rename = "Limits", default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// When the first image pull started.
    #[serde(
        rename = "PullStartedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pull_started_at: Option<String>,
    /// When the last image pull finished.
    #[serde(
        rename = "PullStoppedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pull_stopped_at: Option<String>,
    /// When the task's containers stopped.
    #[serde(
        rename = "ExecutionStoppedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub execution_stopped_at: Option<String>,
    /// The availability zone (Fargate, and EC2 with recent agents).
    #[serde(
        rename = "AvailabilityZone",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_zone: Option<String>,
    /// `FARGATE`, `EC2` or `EXTERNAL`.
    #[serde(
        rename = "LaunchType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub launch_type: Option<String>,
    /// The task's containers, including ECS-internal ones such as the pause container.
    #[serde(rename = "Containers", default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
    /// Task tags (only in the `/taskWithTags` response).
    #[serde(rename = "TaskTags", default, skip_serializing_if = "Option::is_none")]
    pub task_tags: Option<BTreeMap<String, String>>,
    /// Container instance tags (only in the `/taskWithTags` response, EC2 only).
    #[serde(
        rename = "ContainerInstanceTags",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_instance_tags: Option<BTreeMap<String, String>>,
    /// Keys this type does not model, kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One container in the task (also the response of `${ECS_CONTAINER_METADATA_URI_V4}` itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// The Docker ID (64 hex digits on EC2; `<task id>-<digits>` on Fargate).
    #[serde(rename = "DockerId", default, deserialize_with = "nullable")]
    pub docker_id: String,
    /// The container name from the task definition.
    #[serde(rename = "Name", default, deserialize_with = "nullable")]
    pub name: String,
    /// The name Docker knows the container by.
    #[serde(rename = "DockerName", default, deserialize_with = "nullable")]
    pub docker_name: String,
    /// The image reference.
    #[serde(rename = "Image", default, deserialize_with = "nullable")]
    pub image: String,
    /// The image digest.
    #[serde(rename = "ImageID", default, deserialize_with = "nullable")]
    pub image_id: String,
    /// Exposed ports, if any.
    #[serde(rename = "Ports", default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
    /// Docker labels, including `com.amazonaws.ecs.*`.
    #[serde(rename = "Labels", default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// The status ECS wants the container in.
    #[serde(rename = "DesiredStatus", default, deserialize_with = "nullable")]
    pub desired_status: String,
    /// The status the agent last saw.
    #[serde(rename = "KnownStatus", default, deserialize_with = "nullable")]
    pub known_status: String,
    /// The exit code of a stopped container.
    #[serde(rename = "ExitCode", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Container-level CPU units and memory (MiB).
    #[serde(rename = "Limits", default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// When the container was created.
    #[serde(rename = "CreatedAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the container started.
    #[serde(rename = "StartedAt", default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the container stopped.
    #[serde(
        rename = "FinishedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<String>,
    /// `NORMAL` for task-definition containers; `CNI_PAUSE` and others for ECS's own.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub container_type: String,
    /// The log driver, such as `awslogs`.
    #[serde(rename = "LogDriver", default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    /// The log driver's options.
    #[serde(
        rename = "LogOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_options: Option<BTreeMap<String, String>>,
    /// The container's ARN.
    #[serde(
        rename = "ContainerARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_arn: Option<String>,
    /// The container health check result; absent when the container has no health check.
    #[serde(rename = "Health", default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The container's network attachments.
    #[serde(rename = "Networks", default, deserialize_with = "nullable")]
    pub networks: Vec<Network>,
    /// Keys this type does not model, kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// CPU and memory limits. Numbers are kept as written (task CPU may be fractional, such as `0.25`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU: vCPUs at task level, CPU units at container level.
    #[serde(rename = "CPU", default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<serde_json::Number>,
    /// Memory in MiB.
    #[serde(rename = "Memory", default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<serde_json::Number>,
}

/// An exposed port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// The port inside the container.
    #[serde(
        rename = "ContainerPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub container_port: Option<u32>,
    /// `tcp` or `udp`.
    #[serde(rename = "Protocol", default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port on the host.
    #[serde(rename = "HostPort", default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    /// The host address the port is bound to.
    #[serde(rename = "HostIp", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// The container health check result (`Health`; note its keys are camelCase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
    #[serde(rename = "status", default, deserialize_with = "nullable")]
    pub status: String,
    /// When the status last changed.
    #[serde(
        rename = "statusSince",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub status_since: Option<String>,
    /// The exit code of the last health check command.
    #[serde(rename = "exitCode", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The output of the last failing health check command.
    #[serde(rename = "output", default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A network attachment of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// `awsvpc`, `bridge`, `host`, …
    #[serde(rename = "NetworkMode", default, deserialize_with = "nullable")]
    pub network_mode: String,
    /// The IPv4 addresses.
    #[serde(rename = "IPv4Addresses", default, deserialize_with = "nullable")]
    pub ipv4_addresses: Vec<String>,
    /// The IPv6 addresses.
    #[serde(
        rename = "IPv6Addresses",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_addresses: Option<Vec<String>>,
    /// The ENI attachment index (awsvpc).
    #[serde(
        rename = "AttachmentIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub attachment_index: Option<u32>,
    /// The ENI's MAC address (awsvpc).
    #[serde(
        rename = "MACAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_address: Option<String>,
    /// The subnet's IPv4 CIDR block (awsvpc).
    #[serde(
        rename = "IPv4SubnetCIDRBlock",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_subnet_cidr_block: Option<String>,
    /// The subnet's IPv6 CIDR block (awsvpc).
    #[serde(
        rename = "IPv6SubnetCIDRBlock",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_subnet_cidr_block: Option<String>,
    /// DNS servers (awsvpc).
    #[serde(
        rename = "DomainNameServers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub domain_name_servers: Option<Vec<String>>,
    /// DNS search domains (awsvpc).
    #[serde(
        rename = "DomainNameSearchList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub domain_name_search_list: Option<Vec<String>>,
    /// The private DNS name of the ENI (awsvpc).
    #[serde(
        rename = "PrivateDNSName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub private_dns_name: Option<String>,
    /// The subnet's gateway address with prefix length (awsvpc).
    #[serde(
        rename = "SubnetGatewayIpv4Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_gateway_ipv4_address: Option<String>,
    /// Keys this type does not model, kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Treats JSON `null` like a missing key: the type's default.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Values derived from task metadata that could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    /// The task ARN has no region.
    #[error("unable to determine AWS region from Task ARN: {0:?}")]
    Region(String),
    /// The task ARN has no account.
    #[error("unable to determine AWS account id from Task ARN: {0:?}")]
    Account(String),
    /// The cluster ARN could not be built.
    #[error(
        "unable to determine the cluster ARN from Cluster {cluster:?} and TaskARN {task_arn:?}"
    )]
    ClusterArn {
        /// The `Cluster` field.
        cluster: String,
        /// The `TaskARN` field.
        task_arn: String,
    },
}

impl TaskMetadata {
    /// The task ID: the last `/` segment of the task ARN.
    pub fn task_id(&self) -> &str {
        self.task_arn
            .rsplit_once('/')
            .map_or(self.task_arn.as_str(), |(_, id)| id)
    }

    /// The cluster ARN. A `Cluster` that is already an ARN (Fargate) is returned as is. A short
    /// cluster name (EC2) is expanded with the task ARN's partition, region and account:
    /// `arn:<partition>:ecs:<region>:<account>:cluster/<name>`. Without a `Cluster` value the name is
    /// taken from a task ARN of the form `task/<cluster>/<id>`.
    pub fn cluster_arn(&self) -> Result<String, DeriveError> {
        if self.cluster.starts_with("arn:") {
            return Ok(self.cluster.clone());
        }
        let error = || DeriveError::ClusterArn {
            cluster: self.cluster.clone(),
            task_arn: self.task_arn.clone(),
        };
        let task = Arn::parse(&self.task_arn).map_err(|_| error())?;
        if task.region.is_empty() || task.account.is_empty() {
            return Err(error());
        }
        let name = if self.cluster.is_empty() {
            match task.resource.split('/').collect::<Vec<_>>().as_slice() {
                ["task", cluster, _id] if !cluster.is_empty() => (*cluster).to_owned(),
                _ => return Err(error()),
            }
        } else {
            self.cluster.clone()
        };
        Ok(format!(
            "arn:{}:ecs:{}:{}:cluster/{}",
            task.partition, task.region, task.account, name
        ))
    }

    /// The region, from the task ARN.
    pub fn region(&self) -> Result<String, DeriveError> {
        match Arn::parse(&self.task_arn) {
            Ok(arn) if !arn.region.is_empty() => Ok(arn.region),
            _ => Err(DeriveError::Region(self.task_arn.clone())),
        }
    }

    /// The account ID, from the task ARN.
    pub fn account(&self) -> Result<String, DeriveError> {
        match Arn::parse(&self.task_arn) {
            Ok(arn) if !arn.account.is_empty() => Ok(arn.account),
            _ => Err(DeriveError::Account(self.task_arn.clone())),
        }
    }

    /// The address registered for the task: the first IPv4 address of the first network of the
    /// first container, or [`FALLBACK_NODE_IP`] if any of those is missing.
    pub fn node_ip(&self) -> &str {
        self.containers
            .first()
            .and_then(|c| c.networks.first())
            .and_then(|n| n.ipv4_addresses.first())
            .map_or(FALLBACK_NODE_IP, String::as_str)
    }

    /// The first container with this name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// True unless some container with this name is still running. Every container with the name
    /// must be stopped (desired and known status `STOPPED`); a name with no container counts as
    /// stopped.
    pub fn has_container_stopped(&self, name: &str) -> bool {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .all(Container::has_stopped)
    }
}

impl Container {
    /// The health check status, or `""` when the container has no health check.
    pub fn health_status(&self) -> &str {
        self.health.as_ref().map_or("", |h| h.status.as_str())
    }

    /// True when both the desired and the known status are `STOPPED`.
    pub fn has_stopped(&self) -> bool {
        self.desired_status == STOPPED && self.known_status == STOPPED
    }

    /// True for containers from the task definition (`Type` `NORMAL`), false for ECS's own.
    pub fn is_normal_type(&self) -> bool {
        self.container_type == NORMAL
    }
}

/// Why the metadata endpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `ECS_CONTAINER_METADATA_URI_V4` is not set (or is empty).
    #[error("{0} env var not set")]
    MissingEnv(&'static str),
    /// The base URL is not an absolute http(s) URL.
    #[error("invalid task metadata endpoint {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No response.
    #[error("fetching task metadata from {url}: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport failure.
        source: HttpError,
    },
    /// A response other than 200.
    #[error("fetching task metadata from {url}: HTTP {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The body is not the expected JSON.
    #[error("decoding task metadata from {url}: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
}

/// The default deadline for one metadata request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the task metadata endpoint.
#[derive(Debug, Clone)]
pub struct TaskMetadataClient {
    base: String,
    timeout: Duration,
}

impl TaskMetadataClient {
    /// A client for the endpoint in `ECS_CONTAINER_METADATA_URI_V4`.
    pub fn from_env() -> Result<Self, MetadataError> {
        match std::env::var(METADATA_URI_ENV) {
            Ok(value) if !value.trim().is_empty() => Self::new(value.trim()),
            _ => Err(MetadataError::MissingEnv(METADATA_URI_ENV)),
        }
    }

    /// A client for the given endpoint, such as `http://169.254.170.2/v4/<container id>`.
    pub fn new(base_url: &str) -> Result<Self, MetadataError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let invalid = |reason: String| MetadataError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base.parse().map_err(|e| invalid(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(invalid("the scheme must be http or https".to_owned())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("missing host".to_owned()));
        }
        Ok(Self {
            base,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the deadline for each request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint this client reads.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET <base>/task`.
    pub async fn task(&self) -> Result<TaskMetadata, MetadataError> {
        self.get_json("/task").await
    }

    /// `GET <base>/taskWithTags`: the task document plus task and container-instance tags.
    pub async fn task_with_tags(&self) -> Result<TaskMetadata, MetadataError> {
        self.get_json("/taskWithTags").await
    }

    /// `GET <base>`: the calling container's own document.
    pub async fn container(&self) -> Result<Container, MetadataError> {
        self.get_json("").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, MetadataError> {
        let url = format!("{}{}", self.base, path);
        let request = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| MetadataError::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let response = transport::send(request, self.timeout)
            .await
            .map_err(|source| MetadataError::Http {
                url: url.clone(),
                source,
            })?;
        if response.status != http::StatusCode::OK {
            return Err(MetadataError::Status {
                url,
                status: response.status.as_u16(),
                body: transport::excerpt(&response.body),
            });
        }
        serde_json::from_slice(&response.body)
            .map_err(|source| MetadataError::Decode { url, source })
    }
}
