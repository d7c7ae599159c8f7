//! consul-ecs health-sync: mirrors the ECS health of a task's containers into Consul checks, and on
//! SIGTERM takes the task out of the mesh in order.
//!
//! [`run`] is the entry point:
//!
//! 1. start-up: read the task metadata, log in when `consulLogin.enabled` (unless `CONSUL_HTTP_TOKEN`
//!    is set), find a Consul server, and read the task's checks. Consul being unreachable is retried
//!    with backoff; a SIGTERM during start-up ends the run at once (upstream hangs until SIGKILL), with
//!    the checks still critical as mesh-init registered them;
//! 2. the sync loop ([`sync`]): every poll interval, compare each check with the container health
//!    ([`checks`]) and write only what changed, all in one request. Nothing is written while nothing
//!    changes;
//! 3. shutdown ([`shutdown`]): on SIGTERM every check turns critical in one write and stays critical;
//!    when the dataplane container has stopped ([`dataplane_monitor`]), the service and its sidecar (or
//!    the gateway) are deregistered and the login token is logged out.
//!
//! When Consul fails, writes are retried with backoff (finding a server again if the connection
//! broke), and once Consul answers the checks are read back and whatever differs is sent again. If
//! Consul lost the registration entirely while the task runs, it is registered again.

pub mod checks;
pub mod dataplane_monitor;
mod error;
pub mod shutdown;
pub mod sync;

use std::time::Duration;

use consul_ecs_config::Config;
use consul_ecs_mesh_init::connection::Connection;
use consul_ecs_mesh_init::login::Credentials;
use consul_ecs_mesh_init::task::{self, TaskIdentity};
use consul_ecs_mesh_init::{Environment, Error as InitError, logging, retry, watch_sigterm};

pub use error::Error;

use crate::shutdown::Phase;
use crate::sync::{LoadError, Syncer};

/// Runs health-sync until the task is deregistered (see the crate docs).
///
/// Logging is set up from `config.logLevel` (unless the process already has a subscriber); a failure
/// is logged at ERROR before it is returned.
pub async fn run(config: &Config, env: &Environment) -> Result<(), Error> {
    logging::init(config.log_level, env.log_format);
    let _sigterm = watch_sigterm(env);
    let result = sync_until_stopped(config, env).await;
    if let Err(err) = &result {
        tracing::error!(error = %err, "health-sync failed");
    }
    result
}

async fn sync_until_stopped(config: &Config, env: &Environment) -> Result<(), Error> {
    let Some(mut syncer) = start(config, env).await? else {
        return Ok(());
    };
    for name in syncer.unchecked_containers() {
        tracing::warn!(
            container = name,
            "gateways have no check for this container; it only feeds the dataplane readiness"
        );
    }
    let mut ticker = tokio::time::interval(env.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while syncer.phase() != Phase::Deregistering {
        let sigterm = if syncer.phase() == Phase::Syncing {
            tokio::select! {
                biased;
                _ = env.shutdown.cancelled() => true,
                _ = async {
                    ticker.tick().await;
                    syncer.step().await;
                } => false,
            }
        } else {
            ticker.tick().await;
            syncer.step().await;
            false
        };
        if sigterm {
            tracing::info!("marking every check critical and waiting for the dataplane to stop");
            syncer.begin_draining();
            syncer.step().await;
        }
    }
    let identity = syncer.identity().clone();
    shutdown::deregister_and_logout(syncer.connection_mut(), env, &identity).await
}

/// Start-up; `None` when a SIGTERM interrupted it.
async fn start<'a>(config: &'a Config, env: &'a Environment) -> Result<Option<Syncer<'a>>, Error> {
    let interrupted = |err: &InitError| {
        if err.is_interrupted() {
            tracing::warn!(
                "received SIGTERM before health-sync started; the checks stay critical as registered"
            );
            true
        } else {
            false
        }
    };
    // Unlike mesh-init, health-sync keeps trying until Consul answers or SIGTERM arrives: giving up
    // would leave the task's checks critical for good.
    let mut patient = env.clone();
    patient.retry_budget = Duration::MAX;
    let metadata = task::metadata_client(env)?;
    let prepared = async {
        let task_meta = task::read_task(&patient, &metadata).await?;
        let identity = TaskIdentity::new(config, &task_meta)?;
        let credentials = Credentials::resolve(config, &patient, &task_meta, &identity).await?;
        let connection = Connection::open(config, &patient, &credentials).await?;
        Ok::<_, InitError>((identity, connection))
    }
    .await;
    let (identity, connection) = match prepared {
        Ok(prepared) => prepared,
        Err(err) if interrupted(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let mut syncer = Syncer::new(config, env, identity, metadata, connection);
    let fetched = retry::retry(&patient, "reading the checks", || async {
        match syncer.fetch().await {
            Ok(found) => Ok(Ok(found)),
            Err(LoadError::Consul(err)) => Err(err),
            Err(LoadError::ProxyChecks(n)) => Ok(Err(n)),
        }
    })
    .await;
    match fetched {
        Ok(Ok(found)) => {
            let missing = syncer.loaded(found);
            if !missing.is_empty() {
                tracing::warn!(?missing, "Consul does not have some of the task's checks");
                syncer.mark_reload();
            }
            Ok(Some(syncer))
        }
        Ok(Err(n)) => Err(Error::ProxyChecks(n)),
        Err(err) if interrupted(&err) => {
            if let Err(err) = syncer.connection_mut().logout().await {
                tracing::warn!(error = %err, "logging out of Consul failed");
            }
            Ok(None)
        }
        Err(err) => Err(Error::FetchChecks(Box::new(err))),
    }
}
