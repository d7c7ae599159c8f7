//! Configuration: the `consul-dataplane.json` file (the keys consul-ecs writes plus a few of ours),
//! `DP_*` environment variables and Go-style flags, merged in that order, then validated.
//!
//! Layers are merged on the JSON document itself: the file is read as a JSON object, every env var
//! and flag that is set writes its value at the key it stands for, and the result is decoded once.
//! So the precedence is defaults < file < environment < flags, as in consul-dataplane, and every
//! decode error names the JSON path at fault. Unknown keys are ignored.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

// === defaults ===

/// Port of the Consul HTTP API our data plane talks to (`consul.http.port`), as consul-ecs' default.
pub const DEFAULT_HTTP_PORT: u16 = 8501;
/// Port of the public (inbound mTLS) listener when the registration names none.
pub const DEFAULT_PUBLIC_PORT: u16 = 20000;
/// Readiness listener port (`envoy.readyBindPort`) when the file names none; consul-ecs writes 22000.
pub const DEFAULT_READY_PORT: u16 = 22000;
/// Lifecycle listener port (`envoy.gracefulPort`).
pub const DEFAULT_GRACEFUL_PORT: u16 = 20300;
/// Admin listener port (`envoy.adminBindPort`): `/ready` and `/stats/prometheus`.
pub const DEFAULT_ADMIN_PORT: u16 = 19000;
/// Prometheus listener port (`telemetry.prometheus.bindPort`, ours).
pub const DEFAULT_PROMETHEUS_PORT: u16 = 20200;
/// How long in-flight connections may run after a shutdown starts (`envoy.drainTimeSeconds`).
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(30);
/// Longest accepted drain time; larger values are refused (ECS kills at `stopTimeout`, max 120 s).
pub const MAX_DRAIN_TIME: Duration = Duration::from_secs(600);
/// Time allowed for a TLS handshake, either side (`envoy.handshakeTimeoutSeconds`, ours).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A spliced connection with no byte moving either way for this long is closed
/// (`envoy.idleTimeoutSeconds`, ours). Envoy's tcp_proxy default is also one hour.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time allowed to open a TCP connection to an upstream or the local app (`envoy.connectTimeoutMs`,
/// ours); Envoy's cluster default is 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Service name looked up for mesh gateways (`proxy.meshGatewayService`, ours).
pub const DEFAULT_MESH_GATEWAY_SERVICE: &str = "mesh-gateway";
/// Path of the Prometheus scrape (`telemetry.prometheus.scrapePath`).
pub const DEFAULT_SCRAPE_PATH: &str = "/metrics";

// === env var names ===

/// Mode (`sidecar` only).
pub const ENV_MODE: &str = "DP_MODE";
/// Server addresses.
pub const ENV_CONSUL_ADDRESSES: &str = "DP_CONSUL_ADDRESSES";
/// TLS off for the Consul connection.
pub const ENV_TLS_DISABLED: &str = "DP_TLS_DISABLED";
/// CA certificates for the Consul connection.
pub const ENV_CA_CERTS: &str = "DP_CA_CERTS";
/// TLS server name for the Consul connection.
pub const ENV_TLS_SERVER_NAME: &str = "DP_TLS_SERVER_NAME";
/// Skip verification of Consul's certificate.
pub const ENV_TLS_INSECURE_SKIP_VERIFY: &str = "DP_TLS_INSECURE_SKIP_VERIFY";
/// `static` or `login`.
pub const ENV_CREDENTIAL_TYPE: &str = "DP_CREDENTIAL_TYPE";
/// Static ACL token.
pub const ENV_STATIC_TOKEN: &str = "DP_CREDENTIAL_STATIC_TOKEN";
/// Auth method for login.
pub const ENV_LOGIN_AUTH_METHOD: &str = "DP_CREDENTIAL_LOGIN_AUTH_METHOD";
/// Namespace for login.
pub const ENV_LOGIN_NAMESPACE: &str = "DP_CREDENTIAL_LOGIN_NAMESPACE";
/// Partition for login.
pub const ENV_LOGIN_PARTITION: &str = "DP_CREDENTIAL_LOGIN_PARTITION";
/// Datacenter for login.
pub const ENV_LOGIN_DATACENTER: &str = "DP_CREDENTIAL_LOGIN_DATACENTER";
/// Bearer token for login.
pub const ENV_LOGIN_BEARER_TOKEN: &str = "DP_CREDENTIAL_LOGIN_BEARER_TOKEN";
/// File holding the bearer token for login.
pub const ENV_LOGIN_BEARER_TOKEN_PATH: &str = "DP_CREDENTIAL_LOGIN_BEARER_TOKEN_PATH";
/// Catalog node name of the proxy.
pub const ENV_PROXY_NODE_NAME: &str = "DP_PROXY_NODE_NAME";
/// Catalog node ID of the proxy.
pub const ENV_PROXY_NODE_ID: &str = "DP_PROXY_NODE_ID";
/// Proxy service ID.
pub const ENV_PROXY_ID: &str = "DP_PROXY_ID";
/// File holding the proxy service ID.
pub const ENV_PROXY_ID_PATH: &str = "DP_PROXY_ID_PATH";
/// Proxy namespace.
pub const ENV_PROXY_NAMESPACE: &str = "DP_PROXY_NAMESPACE";
/// Proxy partition.
pub const ENV_PROXY_PARTITION: &str = "DP_PROXY_PARTITION";
/// Log level.
pub const ENV_LOG_LEVEL: &str = "DP_LOG_LEVEL";
/// JSON logs.
pub const ENV_LOG_JSON: &str = "DP_LOG_JSON";
/// Admin bind address.
pub const ENV_ADMIN_BIND_ADDRESS: &str = "DP_ENVOY_ADMIN_BIND_ADDRESS";
/// Admin bind port.
pub const ENV_ADMIN_BIND_PORT: &str = "DP_ENVOY_ADMIN_BIND_PORT";
/// Ready bind address.
pub const ENV_READY_BIND_ADDRESS: &str = "DP_ENVOY_READY_BIND_ADDRESS";
/// Ready bind port.
pub const ENV_READY_BIND_PORT: &str = "DP_ENVOY_READY_BIND_PORT";
/// Worker threads.
pub const ENV_CONCURRENCY: &str = "DP_ENVOY_CONCURRENCY";
/// Drain time in seconds.
pub const ENV_DRAIN_TIME: &str = "DP_ENVOY_DRAIN_TIME";
/// Lifecycle address.
pub const ENV_GRACEFUL_ADDR: &str = "DP_GRACEFUL_ADDR";
/// Lifecycle port.
pub const ENV_GRACEFUL_PORT: &str = "DP_GRACEFUL_PORT";
/// Shutdown path.
pub const ENV_GRACEFUL_SHUTDOWN_PATH: &str = "DP_GRACEFUL_SHUTDOWN_PATH";
/// Startup path.
pub const ENV_GRACEFUL_STARTUP_PATH: &str = "DP_GRACEFUL_STARTUP_PATH";
/// Prometheus scrape path.
pub const ENV_PROM_SCRAPE_PATH: &str = "DP_TELEMETRY_PROM_SCRAPE_PATH";

/// What kind of value a flag or env var carries, so it lands in the JSON with the right type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// One setting reachable from the command line and the environment: flag name (without dashes),
/// env var, JSON path, value kind.
struct Setting {
    flag: &'static str,
    env: Option<&'static str>,
    path: &'static [&'static str],
    kind: Kind,
}

const fn s(
    flag: &'static str,
    env: Option<&'static str>,
    path: &'static [&'static str],
    kind: Kind,
) -> Setting {
    Setting {
        flag,
        env,
        path,
        kind,
    }
}

/// Flags and env vars, consul-dataplane's names. Flags with no env var are ours.
const SETTINGS: &[Setting] = &[
    s("mode", Some(ENV_MODE), &["mode"], Kind::Str),
    s(
        "addresses",
        Some(ENV_CONSUL_ADDRESSES),
        &["consul", "addresses"],
        Kind::Str,
    ),
    s(
        "tls-disabled",
        Some(ENV_TLS_DISABLED),
        &["consul", "tls", "disabled"],
        Kind::Bool,
    ),
    s(
        "ca-certs",
        Some(ENV_CA_CERTS),
        &["consul", "tls", "caCertsPath"],
        Kind::Str,
    ),
    s(
        "tls-server-name",
        Some(ENV_TLS_SERVER_NAME),
        &["consul", "tls", "serverName"],
        Kind::Str,
    ),
    s(
        "tls-insecure-skip-verify",
        Some(ENV_TLS_INSECURE_SKIP_VERIFY),
        &["consul", "tls", "insecureSkipVerify"],
        Kind::Bool,
    ),
    s("http-port", None, &["consul", "http", "port"], Kind::Int),
    s("http-https", None, &["consul", "http", "https"], Kind::Bool),
    s(
        "credential-type",
        Some(ENV_CREDENTIAL_TYPE),
        &["consul", "credentials", "type"],
        Kind::Str,
    ),
    s(
        "static-token",
        Some(ENV_STATIC_TOKEN),
        &["consul", "credentials", "static", "token"],
        Kind::Str,
    ),
    s(
        "login-auth-method",
        Some(ENV_LOGIN_AUTH_METHOD),
        &["consul", "credentials", "login", "authMethod"],
        Kind::Str,
    ),
    s(
        "login-namespace",
        Some(ENV_LOGIN_NAMESPACE),
        &["consul", "credentials", "login", "namespace"],
        Kind::Str,
    ),
    s(
        "login-partition",
        Some(ENV_LOGIN_PARTITION),
        &["consul", "credentials", "login", "partition"],
        Kind::Str,
    ),
    s(
        "login-datacenter",
        Some(ENV_LOGIN_DATACENTER),
        &["consul", "credentials", "login", "datacenter"],
        Kind::Str,
    ),
    s(
        "login-bearer-token",
        Some(ENV_LOGIN_BEARER_TOKEN),
        &["consul", "credentials", "login", "bearerToken"],
        Kind::Str,
    ),
    s(
        "login-bearer-token-path",
        Some(ENV_LOGIN_BEARER_TOKEN_PATH),
        &["consul", "credentials", "login", "bearerTokenPath"],
        Kind::Str,
    ),
    s(
        "proxy-node-name",
        Some(ENV_PROXY_NODE_NAME),
        &["proxy", "nodeName"],
        Kind::Str,
    ),
    s(
        "proxy-node-id",
        Some(ENV_PROXY_NODE_ID),
        &["proxy", "nodeID"],
        Kind::Str,
    ),
    s("proxy-id", Some(ENV_PROXY_ID), &["proxy", "id"], Kind::Str),
    s(
        "proxy-id-path",
        Some(ENV_PROXY_ID_PATH),
        &["proxy", "idPath"],
        Kind::Str,
    ),
    s(
        "proxy-namespace",
        Some(ENV_PROXY_NAMESPACE),
        &["proxy", "namespace"],
        Kind::Str,
    ),
    s(
        "proxy-partition",
        Some(ENV_PROXY_PARTITION),
        &["proxy", "partition"],
        Kind::Str,
    ),
    s(
        "log-level",
        Some(ENV_LOG_LEVEL),
        &["logging", "logLevel"],
        Kind::Str,
    ),
    s(
        "log-json",
        Some(ENV_LOG_JSON),
        &["logging", "logJSON"],
        Kind::Bool,
    ),
    s(
        "envoy-admin-bind-address",
        Some(ENV_ADMIN_BIND_ADDRESS),
        &["envoy", "adminBindAddress"],
        Kind::Str,
    ),
    s(
        "envoy-admin-bind-port",
        Some(ENV_ADMIN_BIND_PORT),
        &["envoy", "adminBindPort"],
        Kind::Int,
    ),
    s(
        "envoy-ready-bind-address",
        Some(ENV_READY_BIND_ADDRESS),
        &["envoy", "readyBindAddress"],
        Kind::Str,
    ),
    s(
        "envoy-ready-bind-port",
        Some(ENV_READY_BIND_PORT),
        &["envoy", "readyBindPort"],
        Kind::Int,
    ),
    s(
        "envoy-concurrency",
        Some(ENV_CONCURRENCY),
        &["envoy", "concurrency"],
        Kind::Int,
    ),
    s(
        "envoy-drain-time-seconds",
        Some(ENV_DRAIN_TIME),
        &["envoy", "drainTimeSeconds"],
        Kind::Int,
    ),
    s(
        "graceful-addr",
        Some(ENV_GRACEFUL_ADDR),
        &["envoy", "gracefulAddr"],
        Kind::Str,
    ),
    s(
        "graceful-port",
        Some(ENV_GRACEFUL_PORT),
        &["envoy", "gracefulPort"],
        Kind::Int,
    ),
    s(
        "graceful-shutdown-path",
        Some(ENV_GRACEFUL_SHUTDOWN_PATH),
        &["envoy", "gracefulShutdownPath"],
        Kind::Str,
    ),
    s(
        "graceful-startup-path",
        Some(ENV_GRACEFUL_STARTUP_PATH),
        &["envoy", "gracefulStartupPath"],
        Kind::Str,
    ),
    s(
        "telemetry-prom-scrape-path",
        Some(ENV_PROM_SCRAPE_PATH),
        &["telemetry", "prometheus", "scrapePath"],
        Kind::Str,
    ),
];

/// Why the configuration cannot be used. Every variant names the key, flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not JSON, or not an object.
    #[error("config file {path} is not a JSON object: {message}")]
    NotJson {
        /// Its path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The config file name does not end in `.json` (consul-dataplane's rule).
    #[error("config file {0} must have a .json extension")]
    Extension(PathBuf),
    /// A value has the wrong type.
    #[error("invalid value at `{path}`: {message}")]
    Decode {
        /// JSON path of the value.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A flag, env var or key has a value that cannot be used.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The key, flag or variable.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A required setting is missing.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A flag that does not exist, or a flag without its value.
    #[error("{0}")]
    Usage(String),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

// === the file (and merged) document ===

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileConfig {
    mode: Option<String>,
    consul: FileConsul,
    proxy: FileProxy,
    service: FileService,
    logging: FileLogging,
    envoy: FileEnvoy,
    telemetry: FileTelemetry,
    #[serde(rename = "static")]
    static_: Option<StaticConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileConsul {
    addresses: Option<String>,
    tls: FileConsulTls,
    credentials: Option<FileCredentials>,
    http: FileConsulHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileConsulTls {
    disabled: Option<bool>,
    ca_certs_path: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    tls_server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileConsulHttp {
    port: Option<u16>,
    https: Option<bool>,
    ca_certs_path: Option<String>,
    server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileCredentials {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "static")]
    static_: FileStaticCredentials,
    login: FileLogin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileStaticCredentials {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileLogin {
    auth_method: Option<String>,
    namespace: Option<String>,
    partition: Option<String>,
    datacenter: Option<String>,
    bearer_token: Option<String>,
    bearer_token_path: Option<String>,
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileProxy {
    node_name: Option<String>,
    #[serde(rename = "nodeID")]
    node_id: Option<String>,
    id: Option<String>,
    id_path: Option<String>,
    namespace: Option<String>,
    partition: Option<String>,
    mesh_gateway_service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileService {
    node_name: Option<String>,
    #[serde(rename = "nodeID")]
    node_id: Option<String>,
    #[serde(rename = "serviceID")]
    service_id: Option<String>,
    namespace: Option<String>,
    partition: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileLogging {
    log_level: Option<String>,
    #[serde(rename = "logJSON")]
    log_json: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileEnvoy {
    admin_bind_address: Option<String>,
    admin_bind_port: Option<u16>,
    ready_bind_address: Option<String>,
    ready_bind_port: Option<u16>,
    concurrency: Option<u32>,
    drain_time_seconds: Option<u64>,
    graceful_addr: Option<String>,
    graceful_port: Option<u16>,
    graceful_shutdown_path: Option<String>,
    graceful_startup_path: Option<String>,
    startup_grace_period_seconds: Option<u64>,
    // Ours.
    public_bind_address: Option<String>,
    handshake_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    connect_timeout_ms: Option<u64>,
    balancer: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FileTelemetry {
    prometheus: FilePrometheus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FilePrometheus {
    scrape_path: Option<String>,
    // Ours.
    bind_address: Option<String>,
    bind_port: Option<u16>,
}

// === the validated configuration ===

/// A validated configuration. Build it with [`Config::load`] (file + env + flags) or
/// [`Config::from_json`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy's identity, registration and policy come from.
    pub source: Source,
    /// Listener addresses and timeouts.
    pub proxy: ProxySettings,
    /// Log level filter (`trace`..`error`, lower-cased).
    pub log_level: String,
    /// Whether logs are JSON lines.
    pub log_json: bool,
    /// Worker threads asked for by `envoy.concurrency`; `None` sizes from the cgroup CPU quota.
    pub concurrency: Option<usize>,
}

/// Where the proxy gets its certificates, registration, intentions and upstream endpoints.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// From Consul's HTTP API (the normal case).
    Consul(ConsulSettings),
    /// From files and the config itself (tests, benchmarks, and running without Consul).
    Static(StaticConfig),
}

/// How to reach Consul and who the proxy is.
#[derive(Debug, Clone)]
pub struct ConsulSettings {
    /// `consul.addresses`: a DNS name, an IP, or `exec=<command>`.
    pub addresses: String,
    /// HTTP API port (`consul.http.port`, ours; default [`DEFAULT_HTTP_PORT`]).
    pub http_port: u16,
    /// HTTPS (`consul.http.https`, ours; default true unless `consul.tls.disabled`).
    pub https: bool,
    /// CA bundle for Consul's certificate (`consul.http.caCertsPath`, else `consul.tls.caCertsPath`).
    pub ca_certs_path: Option<PathBuf>,
    /// TLS server name (`consul.http.serverName`, else `consul.tls.serverName` or `tlsServerName`,
    /// else the address when it is a DNS name).
    pub server_name: Option<String>,
    /// Client certificate and key for Consul (`consul.tls.certFile`, `keyFile`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Skip verification of Consul's certificate.
    pub insecure_skip_verify: bool,
    /// How the proxy obtains its ACL token.
    pub credentials: Credentials,
    /// Catalog node of the proxy registration.
    pub node_name: String,
    /// Proxy service ID.
    pub proxy_id: String,
    /// Namespace of the proxy (Enterprise).
    pub namespace: String,
    /// Partition of the proxy (Enterprise).
    pub partition: String,
    /// Service name of mesh gateways (`proxy.meshGatewayService`, ours).
    pub mesh_gateway_service: String,
}

/// ACL credentials.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No token.
    #[default]
    None,
    /// A fixed token.
    Static(String),
    /// `POST /v1/acl/login` with an auth method.
    Login(LoginSettings),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Static(_) => f.write_str("Static(<redacted>)"),
            Credentials::Login(l) => f.debug_tuple("Login").field(l).finish(),
        }
    }
}

/// Settings of an auth-method login.
#[derive(Clone)]
pub struct LoginSettings {
    /// Auth method name.
    pub auth_method: String,
    /// Bearer token given inline.
    pub bearer_token: Option<String>,
    /// File holding the bearer token; read at every login, so a refreshed file is picked up.
    pub bearer_token_path: Option<PathBuf>,
    /// Namespace of the auth method.
    pub namespace: String,
    /// Partition of the auth method.
    pub partition: String,
    /// Datacenter to log in to.
    pub datacenter: String,
    /// Metadata attached to the token.
    pub meta: BTreeMap<String, String>,
}

impl std::fmt::Debug for LoginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSettings")
            .field("auth_method", &self.auth_method)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("bearer_token_path", &self.bearer_token_path)
            .field("namespace", &self.namespace)
            .field("partition", &self.partition)
            .field("datacenter", &self.datacenter)
            .field("meta", &self.meta)
            .finish()
    }
}

/// How new upstream connections pick an instance (`envoy.balancer`, ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Each new connection goes to the next healthy instance.
    #[default]
    RoundRobin,
    /// The instance with the fewest open connections from this proxy (ties: round robin).
    LeastConnections,
}

/// Listener addresses, timeouts and balancing, whatever the source.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// IP the public listener binds (`envoy.publicBindAddress`, ours; default `0.0.0.0`).
    pub public_bind_ip: IpAddr,
    /// Readiness listener (`envoy.readyBindAddress:readyBindPort`).
    pub ready_addr: SocketAddr,
    /// Lifecycle listener (`envoy.gracefulAddr:gracefulPort`).
    pub graceful_addr: SocketAddr,
    /// Path that starts a drain.
    pub graceful_shutdown_path: String,
    /// Path that answers once ready.
    pub graceful_startup_path: String,
    /// Longest `/graceful_startup` waits; `None` waits until ready.
    pub startup_grace_period: Option<Duration>,
    /// Admin listener (`envoy.adminBindAddress:adminBindPort`): `/ready`, `/stats/prometheus`.
    pub admin_addr: SocketAddr,
    /// Prometheus listener (`telemetry.prometheus.bindAddress:bindPort`, ours).
    pub prometheus_addr: SocketAddr,
    /// Scrape path on the Prometheus listener.
    pub scrape_path: String,
    /// Drain bound.
    pub drain_time: Duration,
    /// TLS handshake bound.
    pub handshake_timeout: Duration,
    /// Idle bound of spliced connections.
    pub idle_timeout: Duration,
    /// TCP connect bound.
    pub connect_timeout: Duration,
    /// Instance choice.
    pub balancer: Balancer,
}

/// The `static` section (ours): identity from files, fixed listeners, endpoints and intentions.
/// Real consul-dataplane ignores it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StaticConfig {
    /// PEM leaf certificate (chain).
    pub cert_file: PathBuf,
    /// PEM private key of the leaf.
    pub key_file: PathBuf,
    /// PEM bundle of trusted roots.
    pub ca_file: PathBuf,
    /// Port of the public listener.
    pub public_port: u16,
    /// Address of the local application (default `127.0.0.1`).
    pub local_service_address: Option<String>,
    /// Port of the local application.
    pub local_service_port: u16,
    /// Protocol of the service (`tcp`, `http`, `http2`, `grpc`), for ALPN.
    pub protocol: Option<String>,
    /// Upstream listeners.
    pub upstreams: Vec<StaticUpstream>,
    /// Intentions with the destination = this service, in Consul's JSON shape.
    pub intentions: Vec<connect::intention::Intention>,
    /// Decision when no intention matches (default true).
    pub default_allow: Option<bool>,
}

/// An upstream of the `static` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StaticUpstream {
    /// Destination service.
    pub destination_name: String,
    /// Destination namespace.
    pub destination_namespace: String,
    /// Destination partition.
    pub destination_partition: String,
    /// Destination datacenter; the proxy's own when empty.
    pub datacenter: String,
    /// Local bind address (default `127.0.0.1`).
    pub local_bind_address: Option<String>,
    /// Local bind port.
    pub local_bind_port: u16,
    /// `host:port` of the destination's public listeners.
    pub endpoints: Vec<String>,
}

impl Config {
    /// Reads the config the way the binary does: `args` are the command-line arguments after the
    /// program name (Go-style flags, one or two dashes, `-flag value` or `-flag=value`), `env` looks
    /// up environment variables.
    pub fn load(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let flags = parse_flags(args)?;
        let mut doc = match &flags.config_file {
            Some(path) => read_file(path)?,
            None => Map::new(),
        };
        for setting in SETTINGS {
            if let Some(var) = setting.env
                && let Some(value) = env(var).filter(|v| !v.is_empty())
            {
                set_path(&mut doc, setting, &value, var)?;
            }
        }
        for (setting, value) in &flags.values {
            set_path(&mut doc, setting, value, &format!("-{}", setting.flag))?;
        }
        Self::from_document(doc)
    }

    /// Decodes and validates a JSON document (the file alone, no env or flags).
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::NotJson {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        match value {
            Value::Object(map) => Self::from_document(map),
            _ => Err(ConfigError::NotJson {
                path: PathBuf::from("<inline>"),
                message: "top level is not an object".into(),
            }),
        }
    }

    fn from_document(doc: Map<String, Value>) -> Result<Config, ConfigError> {
        let file: FileConfig =
            serde_path_to_error::deserialize(Value::Object(doc)).map_err(|e| {
                ConfigError::Decode {
                    path: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        validate(file)
    }
}

fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    if path.extension().and_then(|e| e.to_str()) != Some("json") {
        return Err(ConfigError::Extension(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        what: "config file",
        path: path.to_path_buf(),
        source,
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConfigError::NotJson {
            path: path.to_path_buf(),
            message: "top level is not an object".into(),
        }),
        Err(e) => Err(ConfigError::NotJson {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// Writes `value` (typed by the setting's kind) at the setting's JSON path, creating objects.
fn set_path(
    doc: &mut Map<String, Value>,
    setting: &Setting,
    value: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let typed =
        match setting.kind {
            Kind::Str => Value::String(value.to_owned()),
            Kind::Int => Value::from(value.trim().parse::<u64>().map_err(|_| {
                invalid(origin, format!("{value:?} is not a non-negative integer"))
            })?),
            Kind::Bool => Value::Bool(
                parse_bool(value)
                    .ok_or_else(|| invalid(origin, format!("{value:?} is not a boolean")))?,
            ),
        };
    let (last, parents) = match setting.path.split_last() {
        Some(split) => split,
        None => return Ok(()),
    };
    let mut node = doc;
    for key in parents {
        let entry = node
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = match entry {
            Value::Object(map) => map,
            _ => return Ok(()),
        };
    }
    node.insert((*last).to_owned(), typed);
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The parsed command line.
#[derive(Default)]
struct Flags {
    config_file: Option<PathBuf>,
    values: Vec<(&'static Setting, String)>,
}

/// Flags that are not config settings.
pub(crate) const FLAG_CONFIG_FILE: &str = "config-file";

fn parse_flags(args: &[String]) -> Result<Flags, ConfigError> {
    let mut flags = Flags::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(ConfigError::Usage(format!(
                "unexpected argument {arg:?} (extra arguments for Envoy are not supported)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == FLAG_CONFIG_FILE {
            let value = take_value(name, inline, &mut iter)?;
            flags.config_file = Some(PathBuf::from(value));
            continue;
        }
        let Some(setting) = SETTINGS.iter().find(|s| s.flag == name) else {
            return Err(ConfigError::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = if setting.kind == Kind::Bool && inline.is_none() {
            "true".to_owned()
        } else {
            take_value(name, inline, &mut iter)?
        };
        flags.values.push((setting, value));
    }
    Ok(flags)
}

fn take_value<'a>(
    name: &str,
    inline: Option<String>,
    iter: &mut impl Iterator<Item = &'a String>,
) -> Result<String, ConfigError> {
    match inline {
        Some(v) => Ok(v),
        None => iter
            .next()
            .cloned()
            .ok_or_else(|| ConfigError::Usage(format!("flag needs an argument: -{name}"))),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn parse_ip(field: &str, value: Option<String>, default: IpAddr) -> Result<IpAddr, ConfigError> {
    match non_empty(value) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| invalid(field, format!("{text:?} is not an IP address"))),
    }
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn validate(file: FileConfig) -> Result<Config, ConfigError> {
    if let Some(mode) = non_empty(file.mode.clone())
        && mode != "sidecar"
    {
        return Err(invalid(
            "mode",
            format!("{mode:?} is not supported; only \"sidecar\" is"),
        ));
    }
    let log_level = non_empty(file.logging.log_level.clone())
        .unwrap_or_else(|| "info".into())
        .to_ascii_lowercase();
    if !matches!(
        log_level.as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        return Err(invalid(
            "logging.logLevel",
            format!("{log_level:?} is not one of trace, debug, info, warn, error"),
        ));
    }
    let envoy = &file.envoy;
    let secs = |field: &str, v: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(0) => Err(invalid(field, "must be greater than 0")),
            Some(n) => Ok(Duration::from_secs(n)),
        }
    };
    let drain_time = match envoy.drain_time_seconds {
        None => DEFAULT_DRAIN_TIME,
        Some(n) => Duration::from_secs(n),
    };
    if drain_time > MAX_DRAIN_TIME {
        return Err(invalid(
            "envoy.drainTimeSeconds",
            format!(
                "{} exceeds the bound of {}",
                drain_time.as_secs(),
                MAX_DRAIN_TIME.as_secs()
            ),
        ));
    }
    let balancer = match non_empty(envoy.balancer.clone()).as_deref() {
        None | Some("round_robin") => Balancer::RoundRobin,
        Some("least_connections") => Balancer::LeastConnections,
        Some(other) => {
            return Err(invalid(
                "envoy.balancer",
                format!("{other:?} is not round_robin or least_connections"),
            ));
        }
    };
    let scrape_path = non_empty(file.telemetry.prometheus.scrape_path.clone())
        .unwrap_or_else(|| DEFAULT_SCRAPE_PATH.into());
    if !scrape_path.starts_with('/') {
        return Err(invalid(
            "telemetry.prometheus.scrapePath",
            "must start with /",
        ));
    }
    let path_or = |field: &str, v: &Option<String>, default: &str| -> Result<String, ConfigError> {
        let p = non_empty(v.clone()).unwrap_or_else(|| default.into());
        if p.starts_with('/') {
            Ok(p)
        } else {
            Err(invalid(field, "must start with /"))
        }
    };
    let proxy = ProxySettings {
        public_bind_ip: parse_ip(
            "envoy.publicBindAddress",
            envoy.public_bind_address.clone(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        )?,
        ready_addr: SocketAddr::new(
            parse_ip(
                "envoy.readyBindAddress",
                envoy.ready_bind_address.clone(),
                LOCALHOST,
            )?,
            envoy.ready_bind_port.unwrap_or(DEFAULT_READY_PORT),
        ),
        graceful_addr: SocketAddr::new(
            parse_ip("envoy.gracefulAddr", envoy.graceful_addr.clone(), LOCALHOST)?,
            envoy.graceful_port.unwrap_or(DEFAULT_GRACEFUL_PORT),
        ),
        graceful_shutdown_path: path_or(
            "envoy.gracefulShutdownPath",
            &envoy.graceful_shutdown_path,
            "/graceful_shutdown",
        )?,
        graceful_startup_path: path_or(
            "envoy.gracefulStartupPath",
            &envoy.graceful_startup_path,
            "/graceful_startup",
        )?,
        startup_grace_period: envoy
            .startup_grace_period_seconds
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        admin_addr: SocketAddr::new(
            parse_ip(
                "envoy.adminBindAddress",
                envoy.admin_bind_address.clone(),
                LOCALHOST,
            )?,
            envoy.admin_bind_port.unwrap_or(DEFAULT_ADMIN_PORT),
        ),
        prometheus_addr: SocketAddr::new(
            parse_ip(
                "telemetry.prometheus.bindAddress",
                file.telemetry.prometheus.bind_address.clone(),
                LOCALHOST,
            )?,
            file.telemetry
                .prometheus
                .bind_port
                .unwrap_or(DEFAULT_PROMETHEUS_PORT),
        ),
        scrape_path,
        drain_time,
        handshake_timeout: secs(
            "envoy.handshakeTimeoutSeconds",
            envoy.handshake_timeout_seconds,
            DEFAULT_HANDSHAKE_TIMEOUT,
        )?,
        idle_timeout: secs(
            "envoy.idleTimeoutSeconds",
            envoy.idle_timeout_seconds,
            DEFAULT_IDLE_TIMEOUT,
        )?,
        connect_timeout: match envoy.connect_timeout_ms {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(0) => return Err(invalid("envoy.connectTimeoutMs", "must be greater than 0")),
            Some(ms) => Duration::from_millis(ms),
        },
        balancer,
    };
    let concurrency = match envoy.concurrency {
        None => None,
        Some(0) => return Err(invalid("envoy.concurrency", "must be at least 1")),
        Some(n) => Some(n as usize),
    };
    let source = match file.static_ {
        Some(s) => {
            validate_static(&s)?;
            Source::Static(s)
        }
        None => Source::Consul(validate_consul(&file)?),
    };
    Ok(Config {
        source,
        proxy,
        log_level,
        log_json: file.logging.log_json.unwrap_or(false),
        concurrency,
    })
}

fn validate_static(s: &StaticConfig) -> Result<(), ConfigError> {
    for (field, path) in [
        ("static.certFile", &s.cert_file),
        ("static.keyFile", &s.key_file),
        ("static.caFile", &s.ca_file),
    ] {
        if path.as_os_str().is_empty() {
            return Err(invalid(field, "must be set"));
        }
    }
    for (i, u) in s.upstreams.iter().enumerate() {
        if u.destination_name.is_empty() {
            return Err(invalid(
                format!("static.upstreams[{i}].destinationName"),
                "must be set",
            ));
        }
        for (j, e) in u.endpoints.iter().enumerate() {
            if e.parse::<SocketAddr>().is_err() {
                return Err(invalid(
                    format!("static.upstreams[{i}].endpoints[{j}]"),
                    format!("{e:?} is not ip:port"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_consul(file: &FileConfig) -> Result<ConsulSettings, ConfigError> {
    let consul = &file.consul;
    let addresses =
        non_empty(consul.addresses.clone()).ok_or(ConfigError::Missing("consul.addresses"))?;
    let tls_disabled = consul.tls.disabled.unwrap_or(false);
    let https = consul.http.https.unwrap_or(!tls_disabled);
    let server_name = non_empty(consul.http.server_name.clone())
        .or_else(|| non_empty(consul.tls.server_name.clone()))
        .or_else(|| non_empty(consul.tls.tls_server_name.clone()))
        .or_else(|| {
            let a = addresses.trim();
            (!a.starts_with("exec=") && a.parse::<IpAddr>().is_err()).then(|| a.to_owned())
        });
    let ca_certs_path = non_empty(consul.http.ca_certs_path.clone())
        .or_else(|| non_empty(consul.tls.ca_certs_path.clone()))
        .map(PathBuf::from);
    let client_cert = match (
        non_empty(consul.tls.cert_file.clone()),
        non_empty(consul.tls.key_file.clone()),
    ) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "consul.tls.certFile",
                "certFile and keyFile go together",
            ));
        }
    };
    let credentials = match &consul.credentials {
        None => Credentials::None,
        Some(c) => match non_empty(c.kind.clone()).as_deref() {
            None => Credentials::None,
            Some("static") => match non_empty(c.static_.token.clone()) {
                Some(t) => Credentials::Static(t),
                None => return Err(ConfigError::Missing("consul.credentials.static.token")),
            },
            Some("login") => {
                let l = &c.login;
                let auth_method = non_empty(l.auth_method.clone())
                    .ok_or(ConfigError::Missing("consul.credentials.login.authMethod"))?;
                let bearer_token = non_empty(l.bearer_token.clone());
                let bearer_token_path = non_empty(l.bearer_token_path.clone()).map(PathBuf::from);
                if bearer_token.is_none() && bearer_token_path.is_none() {
                    return Err(ConfigError::Missing(
                        "consul.credentials.login.bearerToken or bearerTokenPath",
                    ));
                }
                Credentials::Login(LoginSettings {
                    auth_method,
                    bearer_token,
                    bearer_token_path,
                    namespace: l.namespace.clone().unwrap_or_default(),
                    partition: l.partition.clone().unwrap_or_default(),
                    datacenter: l.datacenter.clone().unwrap_or_default(),
                    meta: l.meta.clone().unwrap_or_default(),
                })
            }
            Some(other) => {
                return Err(invalid(
                    "consul.credentials.type",
                    format!("{other:?} is not static or login"),
                ));
            }
        },
    };
    // The deprecated `service.*` keys count only when every `proxy.*` key is empty.
    let p = &file.proxy;
    let proxy_empty = [
        &p.node_name,
        &p.node_id,
        &p.id,
        &p.id_path,
        &p.namespace,
        &p.partition,
    ]
    .iter()
    .all(|v| non_empty((*v).clone()).is_none());
    let (node_name, node_id, id, id_path, namespace, partition) = if proxy_empty {
        let s = &file.service;
        (
            s.node_name.clone(),
            s.node_id.clone(),
            s.service_id.clone(),
            None,
            s.namespace.clone(),
            s.partition.clone(),
        )
    } else {
        (
            p.node_name.clone(),
            p.node_id.clone(),
            p.id.clone(),
            p.id_path.clone(),
            p.namespace.clone(),
            p.partition.clone(),
        )
    };
    let proxy_id = match non_empty(id) {
        Some(id) => id,
        None => match non_empty(id_path) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    what: "proxy ID file",
                    path: PathBuf::from(&path),
                    source,
                })?;
                non_empty(Some(text.trim().to_owned()))
                    .ok_or_else(|| invalid("proxy.idPath", format!("file {path} is empty")))?
            }
            None => return Err(ConfigError::Missing("proxy.id")),
        },
    };
    if non_empty(node_id).is_some() && non_empty(node_name.clone()).is_none() {
        return Err(invalid(
            "proxy.nodeID",
            "lookup by node ID is not supported over the HTTP API; set proxy.nodeName",
        ));
    }
    let node_name = non_empty(node_name).ok_or(ConfigError::Missing("proxy.nodeName"))?;
    Ok(ConsulSettings {
        addresses,
        http_port: consul.http.port.unwrap_or(DEFAULT_HTTP_PORT),
        https,
        ca_certs_path,
        server_name,
        client_cert,
        insecure_skip_verify: consul.tls.insecure_skip_verify.unwrap_or(false),
        credentials,
        node_name,
        proxy_id,
        namespace: namespace.unwrap_or_default(),
        partition: partition.unwrap_or_default(),
        mesh_gateway_service: non_empty(p.mesh_gateway_service.clone())
            .unwrap_or_else(|| DEFAULT_MESH_GATEWAY_SERVICE.into()),
    })
}

#[cfg(test)]
mod tests;
