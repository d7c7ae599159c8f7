//! A single-node Consul-compatible server for local use and tests.
//!
//! It speaks Consul's HTTP API (catalog, health, KV, config entries, status, a few agent endpoints, ACLs, and
//! Connect: CA roots and configuration, leaf certificates, CSR signing, authorize, intentions, discovery
//! chains) with Consul's JSON shapes, headers and blocking queries, keeps its state in memory or durably in
//! a data directory, and serves plain HTTP and, optionally, HTTPS with client-certificate verification. It
//! is what `consul agent -dev` is for Consul: `consul-ecs dev-server` runs it, and tests start it
//! in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), devserver::Error> {
//! let mut config = devserver::Config::default();
//! config.http_addr = "127.0.0.1:0".parse().expect("an address");
//! let server = devserver::DevServer::start(config).await?;
//! println!("Consul API on http://{}", server.http_addr());
//! // curl -X PUT --data '{"Node":"n1","Address":"10.0.0.1"}' http://<addr>/v1/catalog/register
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: `api` holds the router, one module per API area; `state` the tables, the write path, change
//! notification and the on-disk log (the Connect CA and the cached leafs live there too, in
//! `state::ca`); `config_entry` one module per config entry kind; `central_config` the merge behind
//! `?merge-central-config`; `clock` the time the CA follows; `filter` the `?filter=` language; `acl` the
//! ACL system (rules, tokens, policies, roles, auth methods and login); `server` the listeners, TLS and
//! the periodic CA root pruning and expired-token reaping.

mod acl;
mod api;
mod central_config;
mod clock;
mod config_entry;
mod decode;
mod duration;
mod filter;
mod server;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use acl::{AclConfig, DefaultPolicy};
pub use api::{AppState, app};
pub use clock::Clock;
pub use server::DevServer;

/// The Consul version this server reports (the API level it follows).
pub const CONSUL_VERSION: &str = "1.21.0";

/// Default HTTP address, as Consul's.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";
/// Default HTTPS port, as Consul's.
pub const DEFAULT_HTTPS_PORT: u16 = 8501;
/// Default datacenter name.
pub const DEFAULT_DATACENTER: &str = "dc1";
/// Default limit on a request body (KV values have their own limit of 512 KiB, as in Consul).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain HTTP listener address (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// HTTPS listener, if any.
    pub https: Option<HttpsConfig>,
    /// Where state is kept; `None` keeps it in memory only (like `consul agent -dev`).
    pub data_dir: Option<PathBuf>,
    /// The datacenter name.
    pub datacenter: String,
    /// This server's node name.
    pub node_name: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The clock the Connect CA follows for leaf renewal and root pruning (the system clock by default).
    /// Token expiry follows it too.
    pub clock: Clock,
    /// ACL settings; ACLs are off by default.
    pub acl: AclConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8500)),
            https: None,
            data_dir: None,
            datacenter: DEFAULT_DATACENTER.to_owned(),
            node_name: default_node_name(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            clock: Clock::system(),
            acl: AclConfig::default(),
        }
    }
}

fn default_node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dev-server".to_owned())
}

/// The HTTPS listener.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Listener address (port 0 picks a free port).
    pub addr: SocketAddr,
    /// PEM file with the server certificate chain.
    pub cert_file: PathBuf,
    /// PEM file with the server private key.
    pub key_file: PathBuf,
    /// PEM file with the CAs that sign client certificates; when set, clients must present one.
    pub client_ca_file: Option<PathBuf>,
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS settings are unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The data directory is unusable or its contents unreadable.
    #[error("state storage: {0}")]
    Storage(String),
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

/// Command-line flags of `consul-ecs dev-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address of the plain HTTP API
    #[arg(long, default_value = DEFAULT_HTTP_ADDR, env = "CONSUL_DEV_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Address of the HTTPS API (needs --tls-cert-file and --tls-key-file); defaults to port 8501 on the
    /// HTTP address's IP when a certificate is given
    #[arg(long)]
    pub https_addr: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS
    #[arg(long, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle; when set, HTTPS clients must present a certificate signed by it
    #[arg(long, requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Directory for durable state; without it, state lives in memory only
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Datacenter name
    #[arg(long, default_value = DEFAULT_DATACENTER)]
    pub datacenter: String,
    /// Node name of this server (default: $HOSTNAME or "dev-server")
    #[arg(long)]
    pub node_name: Option<String>,
    /// Log level (trace, debug, info, warn, error) or a tracing filter directive
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Enforce ACLs (Consul's `acl.enabled`)
    #[arg(long)]
    pub acl_enabled: bool,
    /// What no ACL rule covers: allow or deny
    #[arg(long, default_value = "allow")]
    pub acl_default_policy: DefaultPolicy,
    /// SecretID of a management token created at start (Consul's `acl.tokens.initial_management`);
    /// bootstrapping is then done
    #[arg(long, env = "CONSUL_DEV_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<Secret>,
}

/// A secret from the command line or the environment; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(Secret(s.to_owned()))
        }
    }
}

impl Args {
    /// Turns the flags into a [`Config`].
    pub fn to_config(&self) -> Result<Config, Error> {
        let https = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(HttpsConfig {
                addr: self
                    .https_addr
                    .unwrap_or_else(|| SocketAddr::new(self.http_addr.ip(), DEFAULT_HTTPS_PORT)),
                cert_file: cert.clone(),
                key_file: key.clone(),
                client_ca_file: self.tls_client_ca_file.clone(),
            }),
            (None, None) if self.https_addr.is_some() => {
                return Err(Error::Config(
                    "--https-addr needs --tls-cert-file and --tls-key-file".into(),
                ));
            }
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "--tls-cert-file and --tls-key-file go together".into(),
                ));
            }
        };
        if self.datacenter.is_empty() {
            return Err(Error::Config("--datacenter must not be empty".into()));
        }
        if self.bootstrap_token.is_some() && !self.acl_enabled {
            return Err(Error::Config(
                "--bootstrap-token needs --acl-enabled".into(),
            ));
        }
        let mut config = Config {
            http_addr: self.http_addr,
            https,
            data_dir: self.data_dir.clone(),
            datacenter: self.datacenter.clone(),
            acl: AclConfig {
                enabled: self.acl_enabled,
                default_policy: self.acl_default_policy,
                bootstrap_token: self.bootstrap_token.as_ref().map(|s| s.0.clone()),
            },
            ..Config::default()
        };
        if let Some(n) = &self.node_name {
            if n.is_empty() {
                return Err(Error::Config("--node-name must not be empty".into()));
            }
            config.node_name.clone_from(n);
        }
        Ok(config)
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", args.log_level))?;
    // The binary may have installed a subscriber already; then that one wins.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let config = args.to_config()?;
    let server = DevServer::start(config).await?;
    tracing::info!(
        http = %server.http_addr(),
        https = ?server.https_addr(),
        version = CONSUL_VERSION,
        "dev server running"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("dev-server").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_a_config() {
        let c = parse(&[
            "--http-addr",
            "127.0.0.1:0",
            "--datacenter",
            "east",
            "--node-name",
            "n1",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(c.datacenter, "east");
        assert_eq!(c.node_name, "n1");
        assert!(c.https.is_none());
        assert_eq!(c.data_dir.as_deref(), Some(std::path::Path::new("/tmp/x")));
        let c = parse(&[
            "--http-addr",
            "10.0.0.1:8500",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ])
        .unwrap();
        let https = c.https.unwrap();
        assert_eq!(https.addr, "10.0.0.1:8501".parse().unwrap());
        assert!(https.client_ca_file.is_none());
        let c = parse(&[
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
            "--tls-client-ca-file",
            "ca.pem",
            "--https-addr",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(c.https.unwrap().addr, "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn inconsistent_flags_are_refused() {
        assert!(parse(&["--tls-cert-file", "c.pem"]).is_err());
        assert!(
            parse(&["--https-addr", "127.0.0.1:8501"])
                .unwrap_err()
                .contains("--tls-cert-file")
        );
        assert!(parse(&["--datacenter", ""]).is_err());
        assert!(parse(&["--node-name", ""]).is_err());
        assert!(parse(&["--http-addr", "nonsense"]).is_err());
        assert!(parse(&["--bootstrap-token", "s"]).is_err());
        assert!(parse(&["--acl-default-policy", "maybe"]).is_err());
    }

    #[test]
    fn acl_flags() {
        let c = parse(&[]).unwrap();
        assert!(!c.acl.enabled);
        assert_eq!(c.acl.default_policy, DefaultPolicy::Allow);
        let c = parse(&[
            "--acl-enabled",
            "--acl-default-policy",
            "deny",
            "--bootstrap-token",
            "root-secret",
        ])
        .unwrap();
        assert!(c.acl.enabled);
        assert_eq!(c.acl.default_policy, DefaultPolicy::Deny);
        assert_eq!(c.acl.bootstrap_token.as_deref(), Some("root-secret"));
        assert!(!format!("{c:?}").contains("root-secret"));
    }
}
