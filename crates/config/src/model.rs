//! The typed configuration, with every default already applied, and the predicates derived from it.
//!
//! Values here are *effective*: a port that defaults to 20000 holds 20000, a login method that defaults
//! to `iam-ecs-service-token` holds that name. Strings that upstream leaves empty when not set stay
//! empty (`""` means "not set"); the helpers on each type say what an empty value falls back to.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

// === Defaults ===

/// Log level when `logLevel` is not set.
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;

/// Auth method logged in to when `consulLogin.method` is empty or not set.
pub const DEFAULT_AUTH_METHOD: &str = "iam-ecs-service-token";

/// `consulLogin.includeEntity` when `consulLogin` is given (even as `null`) without it.
///
/// When `consulLogin` itself is absent the value is `false`, as upstream has it; login is then off, so
/// the value is never used.
pub const DEFAULT_INCLUDE_ENTITY: bool = true;

/// IAM role path trusted by the controller's auth method when `controller.iamRolePath` is empty or not set
/// (and, unlike upstream, also when `controller` is absent).
pub const DEFAULT_IAM_ROLE_PATH: &str = "/consul-ecs/";

/// Admin partition of the controller when partitions are enabled and `controller.partition` is empty.
pub const DEFAULT_PARTITION: &str = "default";

/// Port of the servers' HTTP API when `consulServers.http.port` is not set.
pub const DEFAULT_HTTP_PORT: u16 = 8501;

/// Whether the HTTP API is spoken over HTTPS when `consulServers.http.https` is not set.
pub const DEFAULT_HTTPS: bool = true;

/// Port of the servers' gRPC interface when `consulServers.grpc.port` is not set.
pub const DEFAULT_GRPC_PORT: u16 = 8503;

/// Whether gRPC uses TLS when neither `consulServers.grpc.tls` nor `consulServers.defaults.tls` is set.
pub const DEFAULT_TLS: bool = true;

/// Port of the sidecar's public (inbound mTLS) listener when `proxy.publicListenerPort` is 0 or not set.
pub const DEFAULT_PUBLIC_LISTENER_PORT: u16 = 20000;

/// Port of the dataplane's readiness endpoint when `proxy.healthCheckPort` / `gateway.healthCheckPort`
/// is 0 or not set.
pub const DEFAULT_HEALTH_CHECK_PORT: u16 = 22000;

/// Port registered for a gateway, and the LAN/WAN port of a mesh gateway address given without one.
pub const DEFAULT_GATEWAY_PORT: u16 = 8443;

/// Whether transparent proxy is on when `transparentProxy` or its `enabled` is not set.
pub const DEFAULT_TRANSPARENT_PROXY_ENABLED: bool = true;

/// Whether Consul DNS is on when `transparentProxy.consulDNS.enabled` is not set.
pub const DEFAULT_CONSUL_DNS_ENABLED: bool = false;

/// Outlier detection sweep interval when `outlierDetection` is not set.
pub const DEFAULT_OUTLIER_INTERVAL: Duration = Duration::from_secs(10);

/// Consecutive failures before ejection when `outlierDetection` is not set.
pub const DEFAULT_OUTLIER_MAX_FAILURES: u32 = 5;

/// `enforcingConsecutiveGatewayFailure` when not set (whether or not `outlierDetection` is).
pub const DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE: u32 = 100;

/// `maxEjectionPercent` when not set (whether or not `outlierDetection` is).
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 50;

/// Prefix of `consulServers.hosts` that runs a command to discover the server addresses.
pub const EXEC_HOSTS_PREFIX: &str = "exec=";

// === Config ===

/// A validated `CONSUL_ECS_CONFIG_JSON` with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `logLevel`.
    pub log_level: LogLevel,
    /// `bootstrapDir`: mount path of the volume shared by the task's containers (never empty).
    pub bootstrap_dir: String,
    /// `consulLogin`.
    pub consul_login: ConsulLogin,
    /// `controller`.
    pub controller: Controller,
    /// `consulServers`.
    pub consul_servers: ConsulServers,
    /// `healthSyncContainers`: containers whose ECS health is mirrored into Consul, in config order.
    pub health_sync_containers: Vec<String>,
    /// `service`: all zero values when absent (gateway tasks ignore it).
    pub service: Service,
    /// `proxy`: treated as `{}` when absent or `null` (gateway tasks ignore it).
    pub proxy: Proxy,
    /// `gateway`: `Some` makes the task a gateway.
    pub gateway: Option<Gateway>,
    /// `transparentProxy`.
    pub transparent_proxy: TransparentProxy,
}

impl Config {
    /// Whether the task registers a gateway instead of a service and sidecar.
    pub fn is_gateway(&self) -> bool {
        self.gateway.is_some()
    }

    /// Whether traffic redirection is on: enabled in the config and not a gateway.
    pub fn transparent_proxy_enabled(&self) -> bool {
        self.transparent_proxy.enabled && !self.is_gateway()
    }

    /// Whether Consul DNS is on: transparent proxy on, DNS enabled, and not a gateway.
    pub fn consul_dns_enabled(&self) -> bool {
        self.transparent_proxy_enabled() && self.transparent_proxy.consul_dns.enabled
    }

    /// The Consul service name of the task: the configured `gateway.name` (for a gateway) or
    /// `service.name`, or else the task family in lower case.
    pub fn service_name(&self, task_family: &str) -> String {
        let configured = match &self.gateway {
            Some(gateway) => &gateway.name,
            None => &self.service.name,
        };
        if configured.is_empty() {
            task_family.to_lowercase()
        } else {
            configured.clone()
        }
    }

    /// Namespace of the task's registration, HTTP client, login and deregistration: the gateway's for a
    /// gateway, else the service's. Empty means "not set" (Consul's default).
    pub fn namespace(&self) -> &str {
        match &self.gateway {
            Some(gateway) => &gateway.namespace,
            None => &self.service.namespace,
        }
    }

    /// Admin partition of the task's registration, HTTP client, login and deregistration: the gateway's
    /// for a gateway, else the service's. Empty means "not set" (Consul's default).
    pub fn partition(&self) -> &str {
        match &self.gateway {
            Some(gateway) => &gateway.partition,
            None => &self.service.partition,
        }
    }

    /// Port of the dataplane's readiness endpoint: the gateway's for a gateway, else the proxy's.
    pub fn health_check_port(&self) -> u16 {
        match &self.gateway {
            Some(gateway) => gateway.health_check_port,
            None => self.proxy.health_check_port,
        }
    }
}

/// `logLevel`: upper case in the config, as upstream requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl LogLevel {
    /// The spelling used in the config and in the dataplane's `logging.logLevel`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<LogLevel> {
        Some(match text {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            _ => return None,
        })
    }
}

// === Login and controller ===

/// `consulLogin`: logging in to Consul's AWS IAM auth method.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsulLogin {
    /// `enabled`: log in (unless a static `CONSUL_HTTP_TOKEN` is set).
    pub enabled: bool,
    /// `method`: auth method name, [`DEFAULT_AUTH_METHOD`] when empty or not set.
    pub method: String,
    /// `datacenter`: login/logout datacenter; empty means the server's own.
    pub datacenter: String,
    /// `includeEntity`: embed the signed IAM GetRole/GetUser request (see [`DEFAULT_INCLUDE_ENTITY`]).
    pub include_entity: bool,
    /// `meta`: extra login metadata, laid over the built-in task-id and cluster entries.
    pub meta: BTreeMap<String, String>,
    /// `region`: STS signing region; empty means the region of the task ARN.
    pub region: String,
    /// `stsEndpoint`: STS base URL; empty means the regional AWS endpoint.
    pub sts_endpoint: String,
    /// `serverIdHeaderValue`: value of `X-Consul-IAM-ServerID`; empty means no header.
    pub server_id_header_value: String,
}

impl ConsulLogin {
    /// The values upstream has when `consulLogin` is absent: everything off, including `includeEntity`.
    pub(crate) fn absent() -> ConsulLogin {
        ConsulLogin {
            enabled: false,
            method: DEFAULT_AUTH_METHOD.to_owned(),
            datacenter: String::new(),
            include_entity: false,
            meta: BTreeMap::new(),
            region: String::new(),
            sts_endpoint: String::new(),
            server_id_header_value: String::new(),
        }
    }
}

/// `controller`: settings only the controller uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    /// `iamRolePath`: roles under this path may log in; [`DEFAULT_IAM_ROLE_PATH`] when empty or not set.
    pub iam_role_path: String,
    /// `partitionsEnabled`: admin partitions and namespaces (Consul Enterprise).
    pub partitions_enabled: bool,
    /// `partition`: as configured (may be empty); see [`Controller::effective_partition`].
    pub partition: String,
}

impl Controller {
    /// The partition the controller manages: `None` when partitions are off, else the configured one or
    /// [`DEFAULT_PARTITION`].
    pub fn effective_partition(&self) -> Option<&str> {
        if !self.partitions_enabled {
            None
        } else if self.partition.is_empty() {
            Some(DEFAULT_PARTITION)
        } else {
            Some(&self.partition)
        }
    }
}

// === Consul servers ===

/// `consulServers`: finding the servers and connecting to them.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsulServers {
    /// `hosts`: an IP, a DNS name, or `exec=<command>` (verbatim; may be empty).
    pub hosts: String,
    /// `skipServerWatch`: do not follow the server set over gRPC.
    pub skip_server_watch: bool,
    /// `defaults`: TLS settings shared by HTTP and gRPC.
    pub defaults: ServerDefaults,
    /// `http`: the HTTP API.
    pub http: HttpSettings,
    /// `grpc`: the gRPC interface.
    pub grpc: GrpcSettings,
}

/// `consulServers.defaults`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerDefaults {
    /// `caCertFile`: CA file for both interfaces; empty means none.
    pub ca_cert_file: String,
    /// `tls`: gRPC TLS unless `grpc.tls` overrides it ([`DEFAULT_TLS`] when not set).
    pub tls: bool,
    /// `tlsServerName`: SNI for both interfaces; empty means none.
    pub tls_server_name: String,
}

/// `consulServers.http`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// `port` ([`DEFAULT_HTTP_PORT`] when not set).
    pub port: u16,
    /// `https`: the only switch between `http` and `https` ([`DEFAULT_HTTPS`] when not set).
    pub https: bool,
    /// `tls`: accepted and kept, but it has no effect (as upstream).
    pub tls: Option<bool>,
    /// `caCertFile` as configured; empty inherits `defaults.caCertFile`.
    pub ca_cert_file: String,
    /// `tlsServerName` as configured; empty inherits `defaults.tlsServerName`.
    pub tls_server_name: String,
}

/// `consulServers.grpc`.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcSettings {
    /// `port` ([`DEFAULT_GRPC_PORT`] when not set).
    pub port: u16,
    /// `tls` as configured; `None` inherits `defaults.tls`.
    pub tls: Option<bool>,
    /// `caCertFile` as configured; empty inherits `defaults.caCertFile`.
    pub ca_cert_file: String,
    /// `tlsServerName` as configured; empty inherits `defaults.tlsServerName`.
    pub tls_server_name: String,
}

/// TLS settings of one server interface, resolved against `consulServers.defaults`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Whether the connection uses TLS (for HTTP: whether the scheme is `https`).
    pub enabled: bool,
    /// CA file, if one is configured (an environment-supplied PEM takes precedence at run time).
    pub ca_cert_file: Option<String>,
    /// Configured TLS server name, if any. See [`ConsulServers::server_name`] for the fallback to `hosts`.
    pub server_name: Option<String>,
}

impl ConsulServers {
    /// TLS settings of the HTTP API: `https` decides; CA file and server name fall back to `defaults`.
    pub fn http_tls(&self) -> TlsSettings {
        TlsSettings {
            enabled: self.http.https,
            ca_cert_file: first_non_empty(&self.http.ca_cert_file, &self.defaults.ca_cert_file),
            server_name: first_non_empty(
                &self.http.tls_server_name,
                &self.defaults.tls_server_name,
            ),
        }
    }

    /// TLS settings of gRPC: `grpc.tls`, else `defaults.tls`; CA file and server name fall back to
    /// `defaults`.
    pub fn grpc_tls(&self) -> TlsSettings {
        TlsSettings {
            enabled: self.grpc.tls.unwrap_or(self.defaults.tls),
            ca_cert_file: first_non_empty(&self.grpc.ca_cert_file, &self.defaults.ca_cert_file),
            server_name: first_non_empty(
                &self.grpc.tls_server_name,
                &self.defaults.tls_server_name,
            ),
        }
    }

    /// Scheme of the HTTP API: `https` or `http`.
    pub fn http_scheme(&self) -> &'static str {
        if self.http.https { "https" } else { "http" }
    }

    /// Whether `hosts` names a discovery command (`exec=…`) rather than an address.
    pub fn uses_exec_discovery(&self) -> bool {
        self.hosts.starts_with(EXEC_HOSTS_PREFIX)
    }

    /// Server name to verify a server certificate against: the configured one, else `hosts` unless it
    /// is an `exec=` command.
    pub fn server_name(&self, tls: &TlsSettings) -> Option<String> {
        match &tls.server_name {
            Some(name) => Some(name.clone()),
            None if self.uses_exec_discovery() || self.hosts.is_empty() => None,
            None => Some(self.hosts.clone()),
        }
    }
}

fn first_non_empty(preferred: &str, fallback: &str) -> Option<String> {
    [preferred, fallback]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

// === Service ===

/// `service`: the Consul service of a non-gateway task.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Service {
    /// `name` as configured; empty means the lower-cased task family (see [`Config::service_name`]).
    pub name: String,
    /// `tags`.
    pub tags: Vec<String>,
    /// `port`: the application's port (0: none).
    pub port: u16,
    /// `enableTagOverride`.
    pub enable_tag_override: bool,
    /// `meta`: laid over the built-in task-id, task-arn and source entries.
    pub meta: BTreeMap<String, String>,
    /// `weights`: `None` leaves them to the server.
    pub weights: Option<Weights>,
    /// `namespace` (Consul Enterprise); empty means not set.
    pub namespace: String,
    /// `partition` (Consul Enterprise); empty means not set.
    pub partition: String,
    /// `networkResilienceConfig`: `None` when absent or `null`.
    pub network_resilience: Option<NetworkResilience>,
}

/// `service.weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// `passing`: weight while all checks pass.
    pub passing: i64,
    /// `warning`: weight while some check warns.
    pub warning: i64,
}

/// `service.networkResilienceConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkResilience {
    /// `enabled`: write the passive health check into service-defaults.
    pub enabled: bool,
    /// `outlierDetection`, with upstream's defaults applied (full defaults when it is absent or `null`).
    pub outlier_detection: OutlierDetection,
}

/// `service.networkResilienceConfig.outlierDetection`, as written into the passive health check.
#[derive(Clone, Debug, PartialEq)]
pub struct OutlierDetection {
    /// `interval`: [`DEFAULT_OUTLIER_INTERVAL`] when the object is absent; zero when it is given
    /// without it.
    pub interval: Duration,
    /// `maxFailures`: [`DEFAULT_OUTLIER_MAX_FAILURES`] when the object is absent; 0 (left to the proxy)
    /// when it is given without it.
    pub max_failures: u32,
    /// `enforcingConsecutive5xx`: never defaulted.
    pub enforcing_consecutive_5xx: Option<u32>,
    /// `consecutive5xx`: never defaulted.
    pub consecutive_5xx: Option<u32>,
    /// `enforcingConsecutiveGatewayFailure` ([`DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE`] when not set).
    pub enforcing_consecutive_gateway_failure: u32,
    /// `consecutiveGatewayFailure`: never defaulted.
    pub consecutive_gateway_failure: Option<u32>,
    /// `maxEjectionPercent` ([`DEFAULT_MAX_EJECTION_PERCENT`] when not set).
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    /// The settings used when `outlierDetection` is absent or `null`.
    fn default() -> Self {
        OutlierDetection {
            interval: DEFAULT_OUTLIER_INTERVAL,
            max_failures: DEFAULT_OUTLIER_MAX_FAILURES,
            enforcing_consecutive_5xx: None,
            consecutive_5xx: None,
            enforcing_consecutive_gateway_failure: DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE,
            consecutive_gateway_failure: None,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
        }
    }
}

// === Proxy ===

/// `proxy`: the sidecar registered beside the service.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    /// `config`: opaque proxy configuration.
    pub config: Option<Map<String, Value>>,
    /// `localServiceAddress`; empty means Consul's default (127.0.0.1).
    pub local_service_address: String,
    /// `publicListenerPort` ([`DEFAULT_PUBLIC_LISTENER_PORT`] when 0 or not set).
    pub public_listener_port: u16,
    /// `healthCheckPort` ([`DEFAULT_HEALTH_CHECK_PORT`] when 0 or not set).
    pub health_check_port: u16,
    /// `upstreams`, in config order.
    pub upstreams: Vec<Upstream>,
    /// `meshGateway.mode`.
    pub mesh_gateway: Option<MeshGatewayMode>,
    /// `expose`.
    pub expose: Option<Expose>,
}

impl Default for Proxy {
    /// The proxy of a config without `proxy` (or with `proxy: null` or `{}`).
    fn default() -> Self {
        Proxy {
            config: None,
            local_service_address: String::new(),
            public_listener_port: DEFAULT_PUBLIC_LISTENER_PORT,
            health_check_port: DEFAULT_HEALTH_CHECK_PORT,
            upstreams: Vec::new(),
            mesh_gateway: None,
            expose: None,
        }
    }
}

/// One entry of `proxy.upstreams`.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// `destinationType`; `None` means Consul's default (service).
    pub destination_type: Option<DestinationType>,
    /// `destinationNamespace`; empty means not set.
    pub destination_namespace: String,
    /// `destinationPartition`; empty means not set.
    pub destination_partition: String,
    /// `destinationName`.
    pub destination_name: String,
    /// `destinationPeer`; empty means not set.
    pub destination_peer: String,
    /// `datacenter`; empty means the local one.
    pub datacenter: String,
    /// `localBindAddress`; empty means loopback.
    pub local_bind_address: String,
    /// `localBindPort`.
    pub local_bind_port: u16,
    /// `config`: opaque upstream configuration.
    pub config: Option<Map<String, Value>>,
    /// `meshGateway.mode`.
    pub mesh_gateway: Option<MeshGatewayMode>,
}

/// `proxy.upstreams[].destinationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationType {
    /// `service`.
    Service,
    /// `prepared_query`.
    PreparedQuery,
}

impl DestinationType {
    /// The spelling used in the config and by Consul.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::Service => "service",
            DestinationType::PreparedQuery => "prepared_query",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<DestinationType> {
        match text {
            "service" => Some(DestinationType::Service),
            "prepared_query" => Some(DestinationType::PreparedQuery),
            _ => None,
        }
    }
}

/// `meshGateway.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeshGatewayMode {
    /// `none`: reach remote upstreams directly.
    None,
    /// `local`: through the local datacenter's mesh gateway.
    Local,
    /// `remote`: through the remote datacenter's mesh gateway.
    Remote,
}

impl MeshGatewayMode {
    /// The spelling used in the config and by Consul.
    pub fn as_str(self) -> &'static str {
        match self {
            MeshGatewayMode::None => "none",
            MeshGatewayMode::Local => "local",
            MeshGatewayMode::Remote => "remote",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<MeshGatewayMode> {
        match text {
            "none" => Some(MeshGatewayMode::None),
            "local" => Some(MeshGatewayMode::Local),
            "remote" => Some(MeshGatewayMode::Remote),
            _ => None,
        }
    }
}

/// `proxy.expose`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Expose {
    /// `checks`: expose the paths of the service's HTTP and gRPC checks.
    pub checks: bool,
    /// `paths`.
    pub paths: Vec<ExposePath>,
}

/// One entry of `proxy.expose.paths`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExposePath {
    /// `listenerPort`: where the proxy serves the path.
    pub listener_port: u16,
    /// `path`.
    pub path: String,
    /// `localPathPort`: the application's port for the path.
    pub local_path_port: u16,
    /// `protocol`: `http` or `http2`; empty means Consul's default (http).
    pub protocol: String,
}

// === Gateway ===

/// `gateway`: the task is a gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    /// `kind`.
    pub kind: GatewayKind,
    /// `lanAddress` (mesh gateways only).
    pub lan_address: Option<GatewayAddress>,
    /// `wanAddress` (mesh gateways only).
    pub wan_address: Option<GatewayAddress>,
    /// `name` as configured; empty means the lower-cased task family (see [`Config::service_name`]).
    pub name: String,
    /// `tags`.
    pub tags: Vec<String>,
    /// `meta`: laid over the built-in entries.
    pub meta: BTreeMap<String, String>,
    /// `namespace` (Consul Enterprise); empty means not set.
    pub namespace: String,
    /// `partition` (Consul Enterprise); empty means not set.
    pub partition: String,
    /// `healthCheckPort` ([`DEFAULT_HEALTH_CHECK_PORT`] when 0 or not set).
    pub health_check_port: u16,
    /// `proxy`: `Some` sends a proxy block (with `config`, possibly `None`) in the registration.
    pub proxy: Option<GatewayProxy>,
}

impl Gateway {
    /// Port registered for the gateway service: for a mesh gateway with a `lanAddress`, its port (or
    /// [`DEFAULT_GATEWAY_PORT`] when 0); otherwise [`DEFAULT_GATEWAY_PORT`].
    pub fn service_port(&self) -> u16 {
        match (&self.kind, &self.lan_address) {
            (GatewayKind::MeshGateway, Some(lan)) => lan.port_or_default(),
            _ => DEFAULT_GATEWAY_PORT,
        }
    }
}

/// `gateway.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatewayKind {
    /// `mesh-gateway`.
    MeshGateway,
    /// `terminating-gateway`.
    TerminatingGateway,
    /// `api-gateway`.
    ApiGateway,
}

impl GatewayKind {
    /// The spelling used in the config and as the Consul service kind.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::MeshGateway => "mesh-gateway",
            GatewayKind::TerminatingGateway => "terminating-gateway",
            GatewayKind::ApiGateway => "api-gateway",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<GatewayKind> {
        match text {
            "mesh-gateway" => Some(GatewayKind::MeshGateway),
            "terminating-gateway" => Some(GatewayKind::TerminatingGateway),
            "api-gateway" => Some(GatewayKind::ApiGateway),
            _ => None,
        }
    }
}

/// `gateway.lanAddress` / `gateway.wanAddress`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GatewayAddress {
    /// `address`; empty means not set.
    pub address: String,
    /// `port` as configured; 0 means not set (see [`GatewayAddress::port_or_default`]).
    pub port: u16,
}

impl GatewayAddress {
    /// The port, or [`DEFAULT_GATEWAY_PORT`] when it is 0.
    pub fn port_or_default(&self) -> u16 {
        if self.port == 0 {
            DEFAULT_GATEWAY_PORT
        } else {
            self.port
        }
    }
}

/// `gateway.proxy`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GatewayProxy {
    /// `config`: opaque proxy configuration.
    pub config: Option<Map<String, Value>>,
}

// === Transparent proxy ===

/// `transparentProxy`.
#[derive(Clone, Debug, PartialEq)]
pub struct TransparentProxy {
    /// `enabled` ([`DEFAULT_TRANSPARENT_PROXY_ENABLED`] when not set). See
    /// [`Config::transparent_proxy_enabled`] for the effective switch.
    pub enabled: bool,
    /// `excludeInboundPorts`.
    pub exclude_inbound_ports: Vec<u16>,
    /// `excludeOutboundPorts`.
    pub exclude_outbound_ports: Vec<u16>,
    /// `excludeOutboundCIDRs`.
    pub exclude_outbound_cidrs: Vec<String>,
    /// `excludeUIDs`.
    pub exclude_uids: Vec<String>,
    /// `consulDNS`.
    pub consul_dns: ConsulDns,
}

impl Default for TransparentProxy {
    /// The settings when `transparentProxy` is absent, `null` or `{}`.
    fn default() -> Self {
        TransparentProxy {
            enabled: DEFAULT_TRANSPARENT_PROXY_ENABLED,
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
            exclude_uids: Vec::new(),
            consul_dns: ConsulDns {
                enabled: DEFAULT_CONSUL_DNS_ENABLED,
            },
        }
    }
}

/// `transparentProxy.consulDNS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsulDns {
    /// `enabled` ([`DEFAULT_CONSUL_DNS_ENABLED`] when not set). See [`Config::consul_dns_enabled`].
    pub enabled: bool,
}
