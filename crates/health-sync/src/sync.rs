//! The sync loop's state and one step of it.
//!
//! Every poll interval a step reads the task metadata once and then:
//!
//! 1. while draining, moves on to deregistration as soon as the dataplane has stopped;
//! 2. if Consul failed earlier, waits out the backoff, finds a server again if the failure was a
//!    connection problem, and re-reads the checks from Consul (so after an outage or a Consul restart
//!    the current state is sent again, and only what differs);
//! 3. every verify interval, re-reads the checks anyway (a read); if Consul lost the registration
//!    while the task is running, registers it again;
//! 4. compares what each check should say with what Consul holds and, if anything differs, sends the
//!    changed checks in one `PUT /v1/catalog/register` (one Raft index for all of them). Only when Consul
//!    accepts it are the new statuses recorded and one "container health check updated in Consul" line
//!    logged per changed container; a failed write is retried on a later step.
//!
//! Entering the draining phase marks every check critical in one write, even those Consul already
//! shows critical, so that a write of `passing` interrupted by the SIGTERM cannot survive it.

use std::time::Duration;

use consul_client::catalog::CatalogRegistration;
use consul_client::health::HealthCheck;
use consul_client::{Backoff, QueryOptions, RetryPolicy, WriteOptions};
use consul_ecs_aws::task_metadata::RUNNING;
use consul_ecs_aws::{TaskMetadata, TaskMetadataClient};
use consul_ecs_config::Config;
use consul_ecs_mesh_init::connection::Connection;
use consul_ecs_mesh_init::task::TaskIdentity;
use consul_ecs_mesh_init::{Environment, Error as InitError, registration};
use tokio::time::Instant;

use crate::checks::{self, CheckState, Plan};
use crate::dataplane_monitor::dataplane_stopped;
use crate::shutdown::Phase;

/// Longest wait between attempts to reach Consul again after a failure.
pub const MAX_CONSUL_BACKOFF: Duration = Duration::from_secs(30);

/// Why the checks could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// A Consul call failed.
    Consul(InitError),
    /// The sidecar has this many checks instead of one.
    ProxyChecks(usize),
}

/// Everything the loop keeps between steps.
pub struct Syncer<'a> {
    config: &'a Config,
    env: &'a Environment,
    identity: TaskIdentity,
    metadata: TaskMetadataClient,
    connection: Connection,
    tracked: Vec<String>,
    state: CheckState,
    phase: Phase,
    force_all: bool,
    outage: Outage,
    next_verify: Instant,
}

/// Consul's recent failures and what to do before the next write.
struct Outage {
    backoff: Backoff,
    retry_at: Option<Instant>,
    rediscover: bool,
    reload: bool,
}

impl<'a> Syncer<'a> {
    /// A syncer for a connected task; call [`Syncer::load`] before the first step.
    pub fn new(
        config: &'a Config,
        env: &'a Environment,
        identity: TaskIdentity,
        metadata: TaskMetadataClient,
        connection: Connection,
    ) -> Syncer<'a> {
        let tracked = checks::tracked_containers(&config.health_sync_containers);
        let state = CheckState::new(&identity, &tracked);
        let max = MAX_CONSUL_BACKOFF.max(env.poll_interval);
        Syncer {
            config,
            env,
            identity,
            metadata,
            connection,
            tracked,
            state,
            phase: Phase::Syncing,
            force_all: false,
            outage: Outage {
                backoff: RetryPolicy::new(env.poll_interval, max).backoff(),
                retry_at: None,
                rediscover: false,
                reload: false,
            },
            next_verify: Instant::now() + env.verify_interval,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The task's identity.
    pub fn identity(&self) -> &TaskIdentity {
        &self.identity
    }

    /// The connection, for deregistration and logout.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// Containers that have no check of their own (gateway tasks).
    pub fn unchecked_containers(&self) -> Vec<&str> {
        self.state.unchecked_containers()
    }

    /// SIGTERM: from now on every check is critical; the next step writes them all.
    pub fn begin_draining(&mut self) {
        self.phase = self.phase.on_sigterm();
        self.force_all = true;
        // Do not wait out a backoff before the critical write.
        self.outage.retry_at = None;
    }

    /// Reads the task's checks from Consul; returns the IDs Consul does not have.
    pub async fn load(&mut self) -> Result<Vec<String>, LoadError> {
        let found = self.fetch().await?;
        Ok(self.state.load(found))
    }

    /// Reads the task's checks from Consul without recording them.
    pub async fn fetch(&self) -> Result<Vec<HealthCheck>, LoadError> {
        let client = self.connection.client();
        let mut found = fetch_checks(
            client,
            &self.identity.service.name,
            &self.identity.service.id,
        )
        .await
        .map_err(LoadError::Consul)?;
        if let Some(sidecar) = &self.identity.sidecar {
            let proxy_checks = fetch_checks(client, &sidecar.name, &sidecar.id)
                .await
                .map_err(LoadError::Consul)?;
            if proxy_checks.len() > 1 {
                return Err(LoadError::ProxyChecks(proxy_checks.len()));
            }
            found.extend(proxy_checks);
        }
        Ok(found)
    }

    /// Records checks read with [`Syncer::fetch`]; returns the IDs Consul does not have.
    pub fn loaded(&mut self, found: Vec<HealthCheck>) -> Vec<String> {
        self.state.load(found)
    }

    /// Makes the next step read the checks from Consul again (and restore missing ones).
    pub fn mark_reload(&mut self) {
        self.outage.reload = true;
    }

    /// One step of the loop (see the module docs).
    pub async fn step(&mut self) {
        let task = match self.metadata.task().await {
            Ok(task) => Some(task),
            Err(err) => {
                tracing::error!(error = %err, "unable to get task metadata");
                None
            }
        };
        let stopped = self.phase == Phase::Draining && task.as_ref().is_some_and(dataplane_stopped);
        if task.is_some() || self.phase.forces_critical() {
            self.sync(task.as_ref()).await;
        }
        if stopped {
            tracing::info!("the dataplane container has stopped");
            self.phase = self.phase.on_dataplane_stopped();
        }
    }

    /// Brings Consul's checks in line with the containers (or with "all critical" while stopping).
    async fn sync(&mut self, task: Option<&TaskMetadata>) {
        let now = Instant::now();
        if self.outage.retry_at.is_some_and(|at| now < at) {
            return;
        }
        if self.outage.rediscover {
            if let Err(err) = self.connection.rediscover(self.config, self.env).await {
                self.failed(&err, "finding a Consul server");
                return;
            }
            self.outage.rediscover = false;
        }
        let verify = !self.phase.forces_critical() && now >= self.next_verify;
        if self.outage.reload || verify {
            if let Err(err) = self.reload(task).await {
                self.failed(&err, "reading the checks from Consul");
                return;
            }
            self.outage.reload = false;
            self.next_verify = Instant::now() + self.env.verify_interval;
        }

        let desired = checks::desired(&self.tracked, task, self.phase.forces_critical());
        let plan = if self.force_all {
            self.state.plan_all(&desired)
        } else {
            self.state.plan(&desired)
        };
        if plan.is_empty() {
            self.force_all = false;
            return;
        }
        match self.write(&plan).await {
            Ok(()) => {
                self.state.commit(&plan);
                self.force_all = false;
                self.outage.backoff.reset();
                self.log_changes(&plan);
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to update Consul health status");
                self.failed(&err, "");
            }
        }
    }

    async fn write(&self, plan: &Plan) -> Result<(), InitError> {
        let request = CatalogRegistration {
            node: self.identity.node.clone(),
            skip_node_update: true,
            checks: plan.checks.clone(),
            ..CatalogRegistration::default()
        };
        self.connection
            .client()
            .catalog()
            .register(&request, &WriteOptions::default())
            .await
            .map_err(|e| InitError::consul("updating the checks", e))
    }

    fn log_changes(&self, plan: &Plan) {
        for change in &plan.changes {
            let previous = change.previous.as_deref().unwrap_or("");
            if self.phase.forces_critical() {
                tracing::info!(container = %change.container, "set Consul health status to critical");
            } else if change.observed.found {
                tracing::info!(
                    container = %change.container,
                    status = %change.observed.status,
                    previous,
                    status_since = change.observed.status_since.as_deref().unwrap_or(""),
                    exit_code = change.observed.exit_code.unwrap_or_default(),
                    "container health check updated in Consul"
                );
            } else {
                tracing::info!(
                    container = %change.container,
                    status = %change.observed.status,
                    previous,
                    "container health check updated in Consul (container missing from the task metadata)"
                );
            }
        }
    }

    /// Re-reads the checks; if Consul lost the registration while the task runs, registers it again.
    async fn reload(&mut self, task: Option<&TaskMetadata>) -> Result<(), InitError> {
        let missing = match self.load().await {
            Ok(missing) => missing,
            Err(LoadError::Consul(err)) => return Err(err),
            Err(LoadError::ProxyChecks(n)) => {
                tracing::warn!(
                    checks = n,
                    "the sidecar has more than one check; keeping the ones read before"
                );
                return Ok(());
            }
        };
        if missing.is_empty() {
            return Ok(());
        }
        let running = task.is_some_and(|t| t.desired_status == RUNNING);
        if self.phase != Phase::Syncing || !running {
            tracing::warn!(
                ?missing,
                "Consul does not have these checks; not restoring them while the task stops"
            );
            return Ok(());
        }
        tracing::warn!(
            ?missing,
            "Consul lost the task's registration; registering it again"
        );
        let client = self.connection.client();
        for registration in
            registration::registrations(self.config, &self.identity, self.env.aws_region())?
        {
            client
                .catalog()
                .register(&registration, &WriteOptions::default())
                .await
                .map_err(|e| InitError::consul("registering the task again", e))?;
        }
        match self.load().await {
            Ok(_) => Ok(()),
            Err(LoadError::Consul(err)) => Err(err),
            Err(LoadError::ProxyChecks(_)) => Ok(()),
        }
    }

    /// Records a Consul failure: wait before the next attempt, and re-read Consul's state then.
    fn failed(&mut self, err: &InitError, doing: &str) {
        let delay = self.outage.backoff.next_delay().max(self.env.poll_interval);
        if !doing.is_empty() {
            tracing::warn!(error = %err, retry_in = ?delay, "{doing} failed");
        }
        self.outage.retry_at = Some(Instant::now() + delay);
        self.outage.reload = true;
        if is_connection_problem(err) {
            self.outage.rediscover = true;
        }
    }
}

fn is_connection_problem(err: &InitError) -> bool {
    match err {
        InitError::Consul { source, .. } => matches!(
            **source,
            consul_client::Error::Transport { .. }
                | consul_client::Error::Timeout { .. }
                | consul_client::Error::Tls { .. }
        ),
        InitError::Discovery(_) | InitError::NoLeader(_) => true,
        _ => false,
    }
}

/// `GET /v1/health/checks/<service>?filter=ServiceID == \`<id>\``.
async fn fetch_checks(
    client: &consul_client::Client,
    name: &str,
    id: &str,
) -> Result<Vec<HealthCheck>, InitError> {
    let options = QueryOptions {
        filter: Some(format!("ServiceID == `{id}`")),
        ..QueryOptions::default()
    };
    client
        .health()
        .checks(name, &options)
        .await
        .map(|r| r.value)
        .map_err(|e| InitError::consul(format!("reading the checks of {id}"), e))
}
