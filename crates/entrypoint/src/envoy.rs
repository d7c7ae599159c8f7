//! `envoy-entrypoint`: runs the proxy (consul-dataplane or Envoy) and keeps it running after SIGTERM
//! until every application container of the task has stopped, so the application can still reach its
//! upstreams while it shuts down.
//!
//! SIGTERM is not forwarded. It starts a monitor that reads the task metadata every poll interval;
//! once all application containers have stopped, the proxy's process group gets SIGTERM. Every other
//! signal (except `SIGCHLD` and `SIGURG`) is forwarded to the proxy. The proxy's exit gives the exit
//! code.

use std::future::pending;
use std::time::Duration;

use consul_ecs_aws::task_metadata::{MetadataError, TaskMetadata, TaskMetadataClient};
use nix::sys::signal::Signal;
use tokio::task::JoinHandle;

use crate::child::{Child, EXIT_FAILURE};
use crate::signals::{Signals, is_never_forwarded};

/// How often the task metadata is read after SIGTERM, as upstream.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Containers of the mesh itself; every other `NORMAL` container of the task is an application.
pub const MESH_CONTAINERS: [&str; 3] = [
    "consul-ecs-mesh-init",
    "consul-dataplane",
    "consul-ecs-health-sync",
];

/// Flags of `consul-ecs envoy-entrypoint [flags] [--] <command> [args…]`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Runs <command> (Envoy or consul-dataplane) in its own process group. SIGTERM is not \
                  forwarded: once every application container of the task has stopped (read from \
                  ECS_CONTAINER_METADATA_URI_V4 every second), the command's process group gets \
                  SIGTERM. Other signals are forwarded. The exit code is the command's."
)]
pub struct EnvoyEntrypointArgs {
    /// Log level: trace, debug, info, warn, error (case-insensitive)
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// The command to run and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Where the task metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataEndpoint {
    /// `ECS_CONTAINER_METADATA_URI_V4`, read at each poll (unset is an error that is logged).
    FromEnv,
    /// This base URL.
    Url(String),
}

/// What `envoy-entrypoint` runs.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The task metadata endpoint.
    pub metadata: MetadataEndpoint,
    /// How often the metadata is read after SIGTERM.
    pub poll_interval: Duration,
}

impl EnvoyEntrypointArgs {
    /// Checks the flags; the error is the text to print.
    pub fn to_config(&self) -> Result<EnvoyConfig, String> {
        if self.command.is_empty() {
            return Err("command is required".to_owned());
        }
        Ok(EnvoyConfig {
            command: self.command.clone(),
            metadata: MetadataEndpoint::FromEnv,
            poll_interval: DEFAULT_POLL_INTERVAL,
        })
    }
}

/// Runs `envoy-entrypoint`: checks the flags, sets up logging, subscribes to signals, runs the command
/// and returns the exit code for the process (the command's, 128+N if signal N killed it, 1 on a usage
/// error or if the command could not be started).
pub fn run_envoy_entrypoint(args: EnvoyEntrypointArgs) -> u8 {
    let config = match args.to_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_FAILURE;
        }
    };
    crate::logging::init(&args.log_level);
    crate::block_on_with_signals(|signals| envoy_entrypoint(config, signals))
}

/// The `envoy-entrypoint` state machine over a given signal source: starts the proxy and returns the
/// exit code once it has exited.
pub async fn envoy_entrypoint(config: EnvoyConfig, mut signals: Signals) -> u8 {
    let mut child = match Child::spawn(&config.command) {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(command = ?config.command, error = %err, "Envoy failed to start");
            return EXIT_FAILURE;
        }
    };
    let mut monitor: Option<JoinHandle<()>> = None;
    let mut terminated = false;
    let mut signals_open = true;
    let code = loop {
        tokio::select! {
            code = child.wait() => break code,
            received = signals.recv(), if signals_open => {
                let Some(signal) = received else {
                    signals_open = false;
                    continue;
                };
                if is_never_forwarded(signal) {
                    continue;
                }
                if signal == Signal::SIGTERM {
                    if monitor.is_none() && !terminated {
                        tracing::info!("waiting for application container(s) to stop");
                        monitor = Some(tokio::spawn(wait_for_applications(
                            config.metadata.clone(),
                            config.poll_interval,
                        )));
                    }
                    continue;
                }
                child.forward(signal);
            }
            () = finished(&mut monitor) => {
                // The monitor is done for good; dropping it keeps this branch from firing again.
                monitor = None;
                terminated = true;
                tracing::info!("terminating Envoy with sigterm");
                child.terminate_group();
            }
        }
    };
    if let Some(monitor) = monitor {
        monitor.abort();
    }
    code
}

/// Completes when the monitor does; never if there is none.
async fn finished(monitor: &mut Option<JoinHandle<()>>) {
    match monitor {
        Some(handle) => {
            // A monitor that panicked cannot tell us anything more: treat it as done.
            let _ = handle.await;
        }
        None => pending().await,
    }
}

/// Reads the task metadata now and then every `interval` until every application container has
/// stopped. Errors are logged and polling continues.
async fn wait_for_applications(endpoint: MetadataEndpoint, interval: Duration) {
    loop {
        match fetch(&endpoint).await {
            Ok(task) if applications_stopped(&task) => return,
            Ok(_) => tracing::debug!("application containers are still running"),
            Err(err) => tracing::error!(err = %err, "fetching task metadata"),
        }
        tokio::time::sleep(interval).await;
    }
}

async fn fetch(endpoint: &MetadataEndpoint) -> Result<TaskMetadata, MetadataError> {
    let client = match endpoint {
        MetadataEndpoint::FromEnv => TaskMetadataClient::from_env()?,
        MetadataEndpoint::Url(url) => TaskMetadataClient::new(url)?,
    };
    client.task().await
}

/// True when no application container is still running: every `NORMAL` container that is not one of
/// [`MESH_CONTAINERS`] has desired and known status `STOPPED`. A task without application containers
/// counts as stopped.
pub fn applications_stopped(task: &TaskMetadata) -> bool {
    task.containers
        .iter()
        .filter(|c| c.is_normal_type() && !MESH_CONTAINERS.contains(&c.name.as_str()))
        .all(|c| c.has_stopped())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use consul_ecs_aws::task_metadata::{Container, NORMAL, RUNNING, STOPPED};

    fn container(name: &str, kind: &str, desired: &str, known: &str) -> Container {
        Container {
            name: name.to_owned(),
            container_type: kind.to_owned(),
            desired_status: desired.to_owned(),
            known_status: known.to_owned(),
            ..Container::default()
        }
    }

    fn task(containers: Vec<Container>) -> TaskMetadata {
        TaskMetadata {
            containers,
            ..TaskMetadata::default()
        }
    }

    #[test]
    fn only_application_containers_count() {
        let mesh_running = vec![
            container("consul-ecs-mesh-init", NORMAL, STOPPED, STOPPED),
            container("consul-dataplane", NORMAL, RUNNING, RUNNING),
            container("consul-ecs-health-sync", NORMAL, RUNNING, RUNNING),
            container("~internal~ecs~pause", "CNI_PAUSE", RUNNING, RUNNING),
        ];
        assert!(applications_stopped(&task(Vec::new())));
        assert!(applications_stopped(&task(mesh_running.clone())));

        let mut with_app = mesh_running.clone();
        with_app.push(container("app", NORMAL, RUNNING, RUNNING));
        assert!(!applications_stopped(&task(with_app)));

        // Stopping means desired and known status both STOPPED.
        let mut stopping = mesh_running.clone();
        stopping.push(container("app", NORMAL, STOPPED, RUNNING));
        assert!(!applications_stopped(&task(stopping)));

        let mut two = mesh_running.clone();
        two.push(container("app", NORMAL, STOPPED, STOPPED));
        two.push(container("worker", NORMAL, RUNNING, RUNNING));
        assert!(!applications_stopped(&task(two.clone())));
        two.pop();
        assert!(applications_stopped(&task(two)));
    }

    #[test]
    fn flags_are_checked() {
        let args = EnvoyEntrypointArgs {
            log_level: "debug".to_owned(),
            command: Vec::new(),
        };
        assert_eq!(args.to_config().unwrap_err(), "command is required");
        let args = EnvoyEntrypointArgs {
            log_level: "debug".to_owned(),
            command: vec!["envoy".to_owned(), "--config-path".to_owned()],
        };
        let config = args.to_config().unwrap();
        assert_eq!(config.metadata, MetadataEndpoint::FromEnv);
        assert_eq!(config.poll_interval, Duration::from_secs(1));
    }
}
