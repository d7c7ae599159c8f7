//! Health endpoints (`/v1/health`): instances of a service with their checks, Connect-capable
//! instances, checks by service, node or state. Also the check types used in registrations.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::{AgentService, Node, list};
use crate::client::{Call, require};
use crate::wire::{GoDuration, encode_segment, is_default, null_default, string_enum};
use crate::{Client, Error, QueryOptions, QueryResponse};

string_enum! {
    /// Status of a check. The default is `critical`, Consul's status for a check that has not run.
    #[derive(Default)]
    pub enum HealthStatus {
        /// `passing`.
        Passing => "passing",
        /// `warning`.
        Warning => "warning",
        /// `critical`.
        #[default]
        Critical => "critical",
        /// `maintenance` (aggregated status only).
        Maintenance => "maintenance",
    }
}

/// A state to list checks by (`/v1/health/state/:state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// Every check (`any`).
    Any,
    /// Passing checks.
    Passing,
    /// Warning checks.
    Warning,
    /// Critical checks.
    Critical,
}

impl HealthState {
    fn as_str(self) -> &'static str {
        match self {
            HealthState::Any => "any",
            HealthState::Passing => "passing",
            HealthState::Warning => "warning",
            HealthState::Critical => "critical",
        }
    }
}

/// A health check, as the health endpoints return it and as catalog registration sends it.
///
/// Fields Consul sends that this type does not name are kept in `extra` and sent back, so a check
/// read and re-registered (as health-sync does) loses nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheck {
    /// Node name.
    #[serde(skip_serializing_if = "is_default")]
    pub node: String,
    /// Check ID, unique on the node.
    #[serde(rename = "CheckID", skip_serializing_if = "is_default")]
    pub check_id: String,
    /// Name.
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    /// Status.
    pub status: HealthStatus,
    /// Human-readable notes.
    #[serde(skip_serializing_if = "is_default")]
    pub notes: String,
    /// Output of the last run.
    #[serde(skip_serializing_if = "is_default")]
    pub output: String,
    /// Instance ID of the service the check belongs to; empty for a node check.
    #[serde(rename = "ServiceID", skip_serializing_if = "is_default")]
    pub service_id: String,
    /// Name of that service.
    #[serde(skip_serializing_if = "is_default")]
    pub service_name: String,
    /// Tags of that service.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// Check type (`http`, `tcp`, `ttl`, or a free-form type such as `consul-ecs-health-check`).
    #[serde(rename = "Type", skip_serializing_if = "is_default")]
    pub check_type: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Port exposed through the proxy for this check.
    #[serde(skip_serializing_if = "is_default")]
    pub exposed_port: u16,
    /// Peer the check was imported from.
    #[serde(skip_serializing_if = "is_default")]
    pub peer_name: String,
    /// How the check runs.
    #[serde(skip_serializing_if = "is_default")]
    pub definition: HealthCheckDefinition,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a check runs (`Definition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheckDefinition {
    /// URL of an HTTP check.
    #[serde(rename = "HTTP", skip_serializing_if = "is_default")]
    pub http: String,
    /// Headers of an HTTP check.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub header: BTreeMap<String, Vec<String>>,
    /// Method of an HTTP check.
    #[serde(skip_serializing_if = "is_default")]
    pub method: String,
    /// Body of an HTTP check.
    #[serde(skip_serializing_if = "is_default")]
    pub body: String,
    /// Server name for TLS checks.
    #[serde(rename = "TLSServerName", skip_serializing_if = "is_default")]
    pub tls_server_name: String,
    /// Skip certificate verification in TLS checks.
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "is_default")]
    pub tls_skip_verify: bool,
    /// `host:port` of a TCP check.
    #[serde(rename = "TCP", skip_serializing_if = "is_default")]
    pub tcp: String,
    /// Use TLS in a TCP check.
    #[serde(rename = "TCPUseTLS", skip_serializing_if = "is_default")]
    pub tcp_use_tls: bool,
    /// `host:port` of a UDP check.
    #[serde(rename = "UDP", skip_serializing_if = "is_default")]
    pub udp: String,
    /// Target of a gRPC check.
    #[serde(rename = "GRPC", skip_serializing_if = "is_default")]
    pub grpc: String,
    /// Use TLS in a gRPC check.
    #[serde(rename = "GRPCUseTLS", skip_serializing_if = "is_default")]
    pub grpc_use_tls: bool,
    /// Windows service of an OS service check.
    #[serde(rename = "OSService", skip_serializing_if = "is_default")]
    pub os_service: String,
    /// Run interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Timeout of one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Deregister the service after being critical this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregister_critical_service_after: Option<GoDuration>,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One instance of a service with its node and checks (`/v1/health/service/:name`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceEntry {
    /// The node.
    pub node: Node,
    /// The instance.
    pub service: AgentService,
    /// Node and service checks.
    #[serde(deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
}

impl ServiceEntry {
    /// The entry's overall status: maintenance, then critical, then warning, then passing.
    pub fn aggregated_status(&self) -> HealthStatus {
        aggregated_status(&self.checks)
    }
}

/// The overall status of a set of checks: maintenance (a `_node_maintenance` or
/// `_service_maintenance:` check) wins, then critical, then warning; otherwise passing.
pub fn aggregated_status(checks: &[HealthCheck]) -> HealthStatus {
    let mut worst = HealthStatus::Passing;
    for check in checks {
        if check.check_id == "_node_maintenance"
            || check.check_id.starts_with("_service_maintenance:")
        {
            return HealthStatus::Maintenance;
        }
        match check.status {
            HealthStatus::Critical => worst = HealthStatus::Critical,
            HealthStatus::Warning if worst != HealthStatus::Critical => {
                worst = HealthStatus::Warning
            }
            HealthStatus::Passing | HealthStatus::Warning => {}
            // An unknown status cannot be called healthy.
            HealthStatus::Maintenance | HealthStatus::Other(_) => worst = HealthStatus::Critical,
        }
    }
    worst
}

/// Filters for the service and connect endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceHealthOptions {
    /// Only instances whose checks all pass (`?passing=1`).
    pub passing_only: bool,
    /// Only instances carrying every one of these tags (`?tag=`).
    pub tags: Vec<String>,
}

/// Health endpoints; see [`Client::health`].
#[derive(Clone, Copy, Debug)]
pub struct Health<'a> {
    client: &'a Client,
}

impl<'a> Health<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `GET /v1/health/service/:name`.
    pub async fn service(
        self,
        name: &str,
        filters: &ServiceHealthOptions,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<ServiceEntry>>, Error> {
        self.entries("service", name, filters, options).await
    }

    /// `GET /v1/health/connect/:name`: the proxies (and native instances) that carry traffic for
    /// the service, with the proxy's health and, with `passing_only`, the service's too.
    pub async fn connect(
        self,
        name: &str,
        filters: &ServiceHealthOptions,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<ServiceEntry>>, Error> {
        self.entries("connect", name, filters, options).await
    }

    async fn entries(
        self,
        endpoint: &str,
        name: &str,
        filters: &ServiceHealthOptions,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<ServiceEntry>>, Error> {
        require("service name", name)?;
        let path = format!("/v1/health/{endpoint}/{}", encode_segment(name));
        let mut call = Call::new(Method::GET, path).query_options(options);
        for tag in &filters.tags {
            call = call.param_multi("tag", tag.as_str());
        }
        if filters.passing_only {
            call = call.param("passing", "1");
        }
        list(self.client.query(call).await?)
    }

    /// `GET /v1/health/checks/:service`.
    pub async fn checks(
        self,
        service: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<HealthCheck>>, Error> {
        require("service name", service)?;
        let path = format!("/v1/health/checks/{}", encode_segment(service));
        list(
            self.client
                .query(Call::new(Method::GET, path).query_options(options))
                .await?,
        )
    }

    /// `GET /v1/health/node/:node`.
    pub async fn node(
        self,
        node: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<HealthCheck>>, Error> {
        require("node name", node)?;
        let path = format!("/v1/health/node/{}", encode_segment(node));
        list(
            self.client
                .query(Call::new(Method::GET, path).query_options(options))
                .await?,
        )
    }

    /// `GET /v1/health/state/:state`.
    pub async fn state(
        self,
        state: HealthState,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<HealthCheck>>, Error> {
        let path = format!("/v1/health/state/{}", state.as_str());
        list(
            self.client
                .query(Call::new(Method::GET, path).query_options(options))
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: HealthStatus) -> HealthCheck {
        HealthCheck {
            check_id: id.into(),
            status,
            ..Default::default()
        }
    }

    #[test]
    fn aggregation_orders_statuses() {
        use HealthStatus::*;
        assert_eq!(aggregated_status(&[]), Passing);
        assert_eq!(
            aggregated_status(&[check("a", Passing), check("b", Warning)]),
            Warning
        );
        assert_eq!(
            aggregated_status(&[check("a", Critical), check("b", Warning)]),
            Critical
        );
        assert_eq!(
            aggregated_status(&[
                check("a", Passing),
                check("_service_maintenance:web", Critical)
            ]),
            Maintenance
        );
        assert_eq!(
            aggregated_status(&[check("a", Other("x".into()))]),
            Critical
        );
    }
}
