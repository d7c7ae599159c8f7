//! The consul-ecs controller: sets up the ACL objects ECS tasks log in with, then removes the
//! tokens and catalog registrations of tasks that have left the cluster.
//!
//! [`run`] is the entry the CLI calls. The pieces it wires together are public so tests and the
//! benchmark can drive them: [`setup::setup`] (one-time upserts), [`reconcile::Reconciler`] (one
//! pass, with the indexes it keeps between passes), [`run_loop`] (the generic poll loop) and
//! [`EcsApi`] (the ECS calls, implemented on the AWS SDK by [`SdkEcs`]).

mod ecs;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod reconcile;
pub mod setup;

use std::future::Future;
use std::time::Duration;

pub use ecs::{DesiredStatus, EcsApi, EcsError, EcsTask, SdkEcs, TaskPage};
pub use reconcile::{PassError, PassStats, ReconcileSettings, Reconciler};
pub use setup::{SetupInput, setup};

/// Time between passes when `CONSUL_ECS_CONTROLLER_INTERVAL` is not set (as upstream).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Environment variable overriding the interval (a duration such as `10s` or `1m`).
pub const ENV_INTERVAL: &str = "CONSUL_ECS_CONTROLLER_INTERVAL";
/// Every this many passes tokens and services are listed even if no index moved.
pub const DEFAULT_FULL_SCAN_EVERY: u64 = 30;
/// Longest wait between passes while ECS throttles us or Consul is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The task metadata could not be read or did not name the cluster.
    #[error("task metadata: {0}")]
    Metadata(String),
    /// A Consul call failed.
    #[error("{context}: {source}")]
    Consul {
        /// What was being done.
        context: String,
        /// The client error.
        source: Box<consul_client::Error>,
    },
    /// A set-up step could not proceed.
    #[error("{0}")]
    Setup(String),
    /// A setting is invalid.
    #[error("invalid setting {name}: {message}")]
    Setting {
        /// The setting at fault.
        name: &'static str,
        /// Why.
        message: String,
    },
}

impl Error {
    pub(crate) fn consul(context: impl Into<String>, source: consul_client::Error) -> Self {
        Error::Consul {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Whether Consul said "ACL not found" (a missing object, for reads by name).
    pub fn is_acl_not_found(&self) -> bool {
        matches!(self, Error::Consul { source, .. } if source.is_acl_not_found())
    }
}

/// Runs passes every `interval` (the first right away) until `shutdown` resolves; a pass in
/// progress always finishes. Failed passes are logged and retried with a doubling wait up to
/// [`MAX_BACKOFF`]. `on_pass` sees each pass's outcome.
pub async fn run_loop<E: EcsApi>(
    reconciler: &mut Reconciler<E>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
    mut on_pass: impl FnMut(&Result<PassStats, PassError>),
) {
    tokio::pin!(shutdown);
    let mut wait = interval;
    loop {
        let outcome = reconciler.pass().await;
        match &outcome {
            Ok(stats) => {
                wait = interval;
                if stats.consul_writes > 0 || stats.failures > 0 {
                    tracing::info!(?stats, "reconcile pass");
                } else {
                    tracing::debug!(?stats, "reconcile pass");
                }
            }
            Err(e) => {
                wait = (wait * 2).clamp(interval, MAX_BACKOFF.max(interval));
                tracing::warn!(error = %e, retry_in = ?wait, throttled = e.is_throttled(), "error during reconcile");
            }
        }
        on_pass(&outcome);
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The `controller` subcommand: reads the configuration and task metadata from the environment,
/// runs the set-up, then reconciles until SIGTERM or SIGINT (exit 0 after the current pass).
pub async fn run(config: &consul_ecs_config::Config) -> Result<(), Error> {
    let env = consul_ecs_mesh_init::Environment::from_process();
    consul_ecs_mesh_init::logging::init(config.log_level, env.log_format);
    let metadata = consul_ecs_aws::TaskMetadataClient::from_env()
        .map_err(|e| Error::Metadata(e.to_string()))?
        .task()
        .await
        .map_err(|e| Error::Metadata(e.to_string()))?;
    let cluster_arn = metadata
        .cluster_arn()
        .map_err(|e| Error::Metadata(e.to_string()))?;
    let account = metadata
        .account()
        .map_err(|e| Error::Metadata(e.to_string()))?;
    let region = match std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()) {
        Some(region) => region,
        None => metadata
            .region()
            .map_err(|e| Error::Metadata(e.to_string()))?,
    };
    let interval = match std::env::var(ENV_INTERVAL).ok().filter(|v| !v.is_empty()) {
        None => DEFAULT_INTERVAL,
        Some(text) => parse_interval(&text)?,
    };
    let controller = &config.controller;
    let partition = controller.effective_partition().map(str::to_owned);
    if !controller.partitions_enabled && !controller.partition.is_empty() {
        return Err(Error::Setup(
            "`config.controller.partition` provided without setting `config.controller.partitionEnabled = true`".into(),
        ));
    }
    let consul = consul_client(config, partition.clone()).await?;
    let input = SetupInput {
        cluster_arn: cluster_arn.clone(),
        account,
        iam_role_path: controller.iam_role_path.clone(),
        partition: partition.clone(),
        node_ip: metadata.node_ip().to_owned(),
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // Consul may not be up yet (or be restarting): retry what may pass (no connection, timeouts,
    // 5xx, 429); other set-up errors (a token without permission, ...) are fatal as upstream.
    let mut wait = Duration::from_secs(1);
    loop {
        match setup(&consul, &input).await {
            Ok(writes) => {
                tracing::info!(writes, cluster = %cluster_arn, "controller set-up done");
                break;
            }
            Err(Error::Consul { context, source }) if source.is_retryable() => {
                let e = Error::Consul { context, source };
                tracing::warn!(error = %e, retry_in = ?wait, "set-up failed; retrying");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }

    let ecs = SdkEcs::new(&region).await;
    let mut reconciler = Reconciler::new(
        consul,
        ecs,
        ReconcileSettings {
            cluster_arn,
            partition,
            full_scan_every: DEFAULT_FULL_SCAN_EVERY,
        },
    );
    run_loop(&mut reconciler, interval, shutdown, |_| {}).await;
    tracing::info!("controller stopped");
    Ok(())
}

fn parse_interval(text: &str) -> Result<Duration, Error> {
    let parsed = text
        .parse::<humantime::Duration>()
        .map(Duration::from)
        .or_else(|_| text.parse::<u64>().map(Duration::from_secs))
        .map_err(|_| Error::Setting {
            name: ENV_INTERVAL,
            message: format!("{text:?} is not a duration such as 10s"),
        })?;
    if parsed.is_zero() {
        return Err(Error::Setting {
            name: ENV_INTERVAL,
            message: "must be more than zero".into(),
        });
    }
    Ok(parsed)
}

/// The Consul client. `CONSUL_HTTP_ADDR` (with the other `CONSUL_HTTP_*` variables) names a fixed
/// server; otherwise the first address `consulServers.hosts` resolves to (an IP, a DNS name or
/// `exec=<command>`), with `consulServers` TLS settings. The token comes only from `CONSUL_HTTP_TOKEN`
/// (or `CONSUL_HTTP_TOKEN_FILE`), never from a login, as upstream.
async fn consul_client(
    config: &consul_ecs_config::Config,
    partition: Option<String>,
) -> Result<consul_client::Client, Error> {
    let env = consul_ecs_mesh_init::Environment::from_process();
    let from_env = consul_client::ClientConfig::from_env()
        .map_err(|e| Error::consul("reading CONSUL_HTTP_* variables", e))?;
    let mut client = if !from_env.address.is_empty() {
        from_env
    } else {
        let servers = &config.consul_servers;
        let ips = consul_ecs_mesh_init::discovery::resolve(&servers.hosts)
            .await
            .map_err(|e| Error::Setup(format!("finding the Consul servers: {e}")))?;
        let ip = ips
            .first()
            .copied()
            .ok_or_else(|| Error::Setup("consulServers.hosts resolved to no address".into()))?;
        let addr = std::net::SocketAddr::new(ip, servers.http.port);
        let mut client =
            consul_ecs_mesh_init::connection::client_config(config, &env, addr, from_env.token)
                .map_err(|e| Error::Setup(format!("Consul client settings: {e}")))?;
        client.namespace = None;
        client
    };
    client.partition = partition;
    consul_client::Client::new(client).map_err(|e| Error::consul("building the Consul client", e))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the controller");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn interval_parses_durations_and_rejects_zero() {
        assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("15").unwrap(), Duration::from_secs(15));
        assert!(matches!(parse_interval("0s"), Err(Error::Setting { .. })));
        assert!(matches!(parse_interval("soon"), Err(Error::Setting { .. })));
    }

    #[test]
    fn bound_arn_pattern_trims_the_path() {
        assert_eq!(
            setup::bound_arn_pattern("123", "/consul-ecs/"),
            "arn:aws:iam::123:role/consul-ecs/*"
        );
        assert_eq!(
            setup::bound_arn_pattern("123", "/"),
            "arn:aws:iam::123:role/*"
        );
    }

    #[test]
    fn login_meta_reads_consul_descriptions() {
        let d = r#"token created via login: {"consul.hashicorp.com/cluster":"arn:c","consul.hashicorp.com/task-id":"t1"}"#;
        assert_eq!(
            reconcile::login_meta(d),
            Some(("t1".to_owned(), "arn:c".to_owned()))
        );
        assert_eq!(reconcile::login_meta("a token"), None);
        assert_eq!(
            reconcile::login_meta(
                r#"token created via login: {"consul.hashicorp.com/task-id":"t1"}"#
            ),
            None
        );
        assert_eq!(reconcile::task_id("arn:aws:ecs:r:1:task/c/abc"), "abc");
    }
}
