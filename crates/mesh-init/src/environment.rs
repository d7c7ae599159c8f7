//! What a run takes from outside the config: environment variables, a few paths, retry timing and the
//! shutdown signal.
//!
//! Everything is explicit so that tests can run several tasks in one process without touching the
//! process environment: [`Environment::from_process`] snapshots the real environment once, and tests
//! build one with [`Environment::from_vars`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use consul_ecs_aws::Credentials;
use tokio_util::sync::CancellationToken;

/// `ECS_CONTAINER_METADATA_URI_V4`: the task metadata endpoint.
pub const ENV_METADATA_URI: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// `AWS_REGION`: when set, the service and proxy registrations carry a locality.
pub const ENV_AWS_REGION: &str = "AWS_REGION";
/// `CONSUL_HTTP_TOKEN`: a static ACL token; when set, no login happens.
pub const ENV_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// `CONSUL_GRPC_CACERT_PEM`: the CA (PEM) of the servers' gRPC interface, written for the dataplane.
pub const ENV_GRPC_CACERT_PEM: &str = "CONSUL_GRPC_CACERT_PEM";
/// `CONSUL_HTTPS_CACERT_PEM`: the CA (PEM) of the servers' HTTPS API.
pub const ENV_HTTPS_CACERT_PEM: &str = "CONSUL_HTTPS_CACERT_PEM";
/// `CONSUL_ECS_LOG_FORMAT`: `json` for one JSON object per log line (ours; upstream has text only).
pub const ENV_LOG_FORMAT: &str = "CONSUL_ECS_LOG_FORMAT";

/// The resolver file rewritten when Consul DNS is on.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// The program that applies transparent proxy rules.
pub const DEFAULT_IPTABLES: &str = "iptables";
/// How long one Consul operation (finding a server, logging in, one registration) is retried before
/// mesh-init gives up. Upstream retries forever; a bounded wait lets a broken task fail visibly.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(10 * 60);
/// First wait between attempts; it doubles up to [`DEFAULT_RETRY_MAX_BACKOFF`] (with jitter).
pub const DEFAULT_RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
pub const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long one Consul request may take. Shorter than the Consul client's default (60 s) so that a
/// server that stops answering is noticed and another one tried.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often health-sync reads the task metadata, as upstream (about 40 requests per second are allowed).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often health-sync checks that Consul still holds the checks it wrote (a read, never a write
/// unless Consul lost or changed them).
pub const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_secs(60);

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The outside world of one run of mesh-init, health-sync or control-plane.
#[derive(Clone)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    /// The resolver file rewritten when Consul DNS is on ([`DEFAULT_RESOLV_CONF`]).
    pub resolv_conf: PathBuf,
    /// The program copied to `<bootstrapDir>/consul-ecs`; `None` means the running executable.
    pub executable: Option<PathBuf>,
    /// The `iptables` program used to apply transparent proxy rules ([`DEFAULT_IPTABLES`]).
    pub iptables: PathBuf,
    /// How long one Consul operation is retried before giving up ([`DEFAULT_RETRY_BUDGET`]).
    pub retry_budget: Duration,
    /// First wait between attempts ([`DEFAULT_RETRY_INITIAL_BACKOFF`]).
    pub retry_initial_backoff: Duration,
    /// Longest wait between attempts ([`DEFAULT_RETRY_MAX_BACKOFF`]).
    pub retry_max_backoff: Duration,
    /// How long one Consul request may take ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// health-sync's task metadata poll interval ([`DEFAULT_POLL_INTERVAL`]).
    pub poll_interval: Duration,
    /// How often health-sync verifies Consul's copy of its checks ([`DEFAULT_VERIFY_INTERVAL`]).
    pub verify_interval: Duration,
    /// Cancelled when the process is asked to stop (SIGTERM).
    pub shutdown: CancellationToken,
    /// Whether a run installs a SIGTERM handler that cancels [`Environment::shutdown`].
    pub handle_sigterm: bool,
    /// AWS credentials for the login bearer token; `None` uses the AWS default credential chain.
    pub aws_credentials: Option<Credentials>,
    /// Log line format.
    pub log_format: LogFormat,
}

impl Environment {
    /// The process's environment, with SIGTERM handling and every default.
    pub fn from_process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect::<Vec<_>>();
        let mut env = Environment::from_vars(vars);
        env.handle_sigterm = true;
        env
    }

    /// An environment made of `vars` (name, value) with every default and no SIGTERM handler.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let log_format = match vars.get(ENV_LOG_FORMAT).map(|v| v.to_ascii_lowercase()) {
            Some(v) if v == "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        Environment {
            vars,
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            executable: None,
            iptables: PathBuf::from(DEFAULT_IPTABLES),
            retry_budget: DEFAULT_RETRY_BUDGET,
            retry_initial_backoff: DEFAULT_RETRY_INITIAL_BACKOFF,
            retry_max_backoff: DEFAULT_RETRY_MAX_BACKOFF,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            verify_interval: DEFAULT_VERIFY_INTERVAL,
            shutdown: CancellationToken::new(),
            handle_sigterm: false,
            aws_credentials: None,
            log_format,
        }
    }

    /// The value of a variable, if it is set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets (or with `None` removes) a variable.
    pub fn set_var(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.vars.insert(name.to_owned(), v.to_owned()),
            None => self.vars.remove(name),
        };
    }

    /// `AWS_REGION`, which gives the service and proxy a locality.
    pub fn aws_region(&self) -> Option<&str> {
        self.var(ENV_AWS_REGION)
    }

    /// The static ACL token from `CONSUL_HTTP_TOKEN`.
    pub fn static_token(&self) -> Option<&str> {
        self.var(ENV_HTTP_TOKEN)
    }

    /// Whether a stop was requested.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets (tokens, AWS keys): show only the names.
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("resolv_conf", &self.resolv_conf)
            .field("executable", &self.executable)
            .field("iptables", &self.iptables)
            .field("retry_budget", &self.retry_budget)
            .field("poll_interval", &self.poll_interval)
            .field("verify_interval", &self.verify_interval)
            .field("stopping", &self.stopping())
            .field("aws_credentials", &self.aws_credentials.is_some())
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Cancels `env.shutdown` on the first SIGTERM (and keeps swallowing later ones) while the returned guard
/// lives, when the environment asks for it.
pub fn watch_sigterm(env: &Environment) -> Option<SigtermGuard> {
    if !env.handle_sigterm {
        return None;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                return None;
            }
        };
        let token = env.shutdown.clone();
        let task = tokio::spawn(async move {
            while term.recv().await.is_some() {
                if !token.is_cancelled() {
                    tracing::info!("received SIGTERM");
                }
                token.cancel();
            }
        });
        Some(SigtermGuard(task))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Stops listening for SIGTERM when dropped.
pub struct SigtermGuard(tokio::task::JoinHandle<()>);

impl Drop for SigtermGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
