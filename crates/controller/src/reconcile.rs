//! One reconcile pass: which tasks of the cluster are present in ECS, which Consul tokens and
//! registrations belong to tasks that are gone, and their removal. The pass keeps indexes between
//! calls so that, when neither ECS nor Consul changed, it reads two index probes and writes nothing.

use std::collections::{HashMap, HashSet};

use consul_client::acl::AclTokenFilter;
use consul_client::catalog::CatalogDeregistration;
use consul_client::{Client, QueryOptions, WriteOptions};
use serde_json::{Map, Value};

use crate::ecs::{DesiredStatus, EcsApi, EcsError, EcsTask};

/// Tag marking a task as part of the mesh.
pub const MESH_TAG: &str = "consul.hashicorp.com/mesh";
/// Tag naming a task's partition (partitions enabled).
pub const PARTITION_TAG: &str = "consul.hashicorp.com/partition";
/// Tag naming a task's namespace (partitions enabled).
pub const NAMESPACE_TAG: &str = "consul.hashicorp.com/namespace";
/// Login meta key (and service meta key `task-id`) naming the task.
pub const TASK_ID_META: &str = "consul.hashicorp.com/task-id";
/// Login meta key naming the cluster.
pub const CLUSTER_META: &str = "consul.hashicorp.com/cluster";
/// Service meta key naming the task.
pub const SERVICE_TASK_ID_META: &str = "task-id";
/// The prefix Consul puts before the login meta in a login token's description.
const LOGIN_PREFIX: &str = "token created via login:";
/// Largest `DescribeTasks` batch.
const DESCRIBE_BATCH: usize = 100;
/// A filter that matches nothing: the response carries only the index.
const PROBE_TOKENS: &str = "AccessorID == \"consul-ecs-controller-index-probe\"";
const PROBE_SERVICES: &str = "ID == \"consul-ecs-controller-index-probe\"";
/// Narrows the token list to tokens made by a login with task meta.
const TOKEN_FILTER: &str = "Description contains \"consul.hashicorp.com/task-id\"";

/// Settings of the reconcile pass.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// The cluster ARN (also the synthetic node's name).
    pub cluster_arn: String,
    /// The controller's partition when partitions are enabled.
    pub partition: Option<String>,
    /// Every this many passes the tokens and services are listed even if no index moved (a safety
    /// net; 0 means never).
    pub full_scan_every: u64,
}

/// What one pass did; the benchmark prints these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// ECS API calls made.
    pub ecs_calls: u32,
    /// Consul reads made.
    pub consul_reads: u32,
    /// Consul writes made.
    pub consul_writes: u32,
    /// Whether the full token list was read.
    pub listed_tokens: bool,
    /// Whether the node's services were read.
    pub listed_services: bool,
    /// Tasks ECS counts as present (running or still stopping, with the mesh tag).
    pub present_tasks: usize,
    /// Tokens deleted.
    pub tokens_deleted: u32,
    /// Services deregistered.
    pub services_deregistered: u32,
    /// Objects that could not be removed (logged; retried next pass).
    pub failures: u32,
}

/// Why a pass stopped before removing anything.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Listing the cluster's tasks failed: without a full picture nothing is removed.
    #[error("listing ECS tasks: {0}")]
    Ecs(#[from] EcsError),
    /// Consul could not be read.
    #[error("{context}: {source}")]
    Consul {
        /// What was being read.
        context: &'static str,
        /// The client error.
        source: consul_client::Error,
    },
}

impl PassError {
    /// Whether ECS throttled us (the loop backs off longer).
    pub fn is_throttled(&self) -> bool {
        matches!(self, PassError::Ecs(e) if e.is_throttled())
    }
}

#[derive(Clone, Copy, Debug)]
struct Known {
    mesh: bool,
    stopped: bool,
}

/// The reconciler and the state it keeps between passes.
#[derive(Debug)]
pub struct Reconciler<E> {
    consul: Client,
    ecs: E,
    settings: ReconcileSettings,
    /// Per task ARN: its mesh tag verdict and whether it has fully stopped (both final).
    known: HashMap<String, Known>,
    last_present: Option<HashSet<String>>,
    last_token_index: Option<u64>,
    last_service_index: Option<u64>,
    passes: u64,
}

impl<E: EcsApi> Reconciler<E> {
    /// A reconciler with no memory yet: its first pass lists everything.
    pub fn new(consul: Client, ecs: E, settings: ReconcileSettings) -> Self {
        Self {
            consul,
            ecs,
            settings,
            known: HashMap::new(),
            last_present: None,
            last_token_index: None,
            last_service_index: None,
            passes: 0,
        }
    }

    /// The ECS client (tests and benchmarks inspect their fakes through it).
    pub fn ecs(&self) -> &E {
        &self.ecs
    }

    fn q(&self) -> QueryOptions {
        QueryOptions {
            partition: self.settings.partition.clone(),
            ..QueryOptions::default()
        }
    }

    /// One pass. Removal happens only after ECS was listed completely.
    pub async fn pass(&mut self) -> Result<PassStats, PassError> {
        let mut stats = PassStats::default();
        self.passes += 1;
        // Probe Consul's indexes before listing ECS: an object created after the probe may belong
        // to a task that started after our ECS listing, so it is left for the next pass.
        let token_index = self.probe_tokens(&mut stats).await?;
        let service_index = self.probe_services(&mut stats).await?;
        let present = self.list_present(&mut stats).await?;
        stats.present_tasks = present.len();

        let full = self.settings.full_scan_every > 0
            && self.passes.is_multiple_of(self.settings.full_scan_every);
        let tasks_changed = self.last_present.as_ref() != Some(&present);
        let do_tokens = full || tasks_changed || self.last_token_index != Some(token_index);
        let do_services = full || tasks_changed || self.last_service_index != Some(service_index);

        if do_tokens {
            self.clean_tokens(&present, token_index, &mut stats).await?;
        }
        if do_services {
            self.clean_services(&present, service_index, &mut stats)
                .await?;
        }
        if stats.failures == 0 {
            self.last_present = Some(present);
            self.last_token_index = Some(token_index);
            self.last_service_index = Some(service_index);
        } else {
            // Something could not be removed: look again next pass.
            self.last_present = None;
        }
        Ok(stats)
    }

    async fn probe_tokens(&self, stats: &mut PassStats) -> Result<u64, PassError> {
        let q = QueryOptions {
            filter: Some(PROBE_TOKENS.into()),
            ..self.q()
        };
        stats.consul_reads += 1;
        let response = self
            .consul
            .acl()
            .token_list(&AclTokenFilter::default(), &q)
            .await
            .map_err(|source| PassError::Consul {
                context: "probing the ACL token index",
                source,
            })?;
        Ok(response.meta.last_index)
    }

    async fn probe_services(&self, stats: &mut PassStats) -> Result<u64, PassError> {
        let q = QueryOptions {
            filter: Some(PROBE_SERVICES.into()),
            ..self.q()
        };
        stats.consul_reads += 1;
        let response = self
            .consul
            .catalog()
            .node_services(&self.settings.cluster_arn, &q)
            .await
            .map_err(|source| PassError::Consul {
                context: "probing the node's service index",
                source,
            })?;
        Ok(response.meta.last_index)
    }

    /// Task IDs ECS counts as present: desired RUNNING, or desired STOPPED but not yet stopped.
    async fn list_present(&mut self, stats: &mut PassStats) -> Result<HashSet<String>, PassError> {
        let cluster = self.settings.cluster_arn.clone();
        let running = self.list_arns(DesiredStatus::Running, stats).await?;
        let stopping = self.list_arns(DesiredStatus::Stopped, stats).await?;

        // Running tasks: tags never change, so describe only ARNs not seen before.
        let unknown: Vec<String> = running
            .iter()
            .filter(|a| !self.known.contains_key(*a))
            .cloned()
            .collect();
        for task in self.describe(&cluster, &unknown, stats).await? {
            let mesh = self.is_mesh(&task);
            self.known.insert(
                task.arn.clone(),
                Known {
                    mesh,
                    stopped: false,
                },
            );
        }
        // Stopping tasks: describe each pass until ECS says STOPPED (final).
        let pending: Vec<String> = stopping
            .iter()
            .filter(|a| !self.known.get(*a).is_some_and(|k| k.stopped))
            .cloned()
            .collect();
        let mut still_stopping = HashSet::new();
        for task in self.describe(&cluster, &pending, stats).await? {
            let mesh = self.is_mesh(&task);
            let stopped = task.last_status == "STOPPED";
            if !stopped {
                still_stopping.insert(task.arn.clone());
            }
            self.known.insert(task.arn.clone(), Known { mesh, stopped });
        }

        // Forget tasks ECS no longer lists, so memory follows the cluster's size.
        let listed: HashSet<&String> = running.iter().chain(stopping.iter()).collect();
        self.known.retain(|arn, _| listed.contains(arn));

        let mut present = HashSet::new();
        for arn in running.iter().chain(still_stopping.iter()) {
            if self.known.get(arn).is_some_and(|k| k.mesh) {
                present.insert(task_id(arn).to_owned());
            }
        }
        Ok(present)
    }

    async fn list_arns(
        &self,
        desired: DesiredStatus,
        stats: &mut PassStats,
    ) -> Result<Vec<String>, PassError> {
        let mut arns = Vec::new();
        let mut next = None;
        loop {
            stats.ecs_calls += 1;
            let page = self
                .ecs
                .list_tasks(&self.settings.cluster_arn, desired, next)
                .await?;
            arns.extend(page.arns);
            match page.next_token {
                Some(token) => next = Some(token),
                None => return Ok(arns),
            }
        }
    }

    async fn describe(
        &self,
        cluster: &str,
        arns: &[String],
        stats: &mut PassStats,
    ) -> Result<Vec<EcsTask>, PassError> {
        let mut out = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            stats.ecs_calls += 1;
            out.extend(self.ecs.describe_tasks(cluster, chunk).await?);
        }
        Ok(out)
    }

    fn is_mesh(&self, task: &EcsTask) -> bool {
        if task.tags.get(MESH_TAG).map(String::as_str) != Some("true") {
            return false;
        }
        let Some(ours) = self.settings.partition.as_deref() else {
            return true;
        };
        let partition = task.tags.get(PARTITION_TAG);
        let namespace = task.tags.get(NAMESPACE_TAG);
        let partition = match (partition, namespace) {
            (None, None) => "default",
            (Some(p), Some(_)) => p.as_str(),
            _ => {
                tracing::warn!(
                    task = %task.arn,
                    "task definition requires both partition and namespace tags"
                );
                return false;
            }
        };
        partition == ours
    }

    async fn clean_tokens(
        &self,
        present: &HashSet<String>,
        probe_index: u64,
        stats: &mut PassStats,
    ) -> Result<(), PassError> {
        let q = QueryOptions {
            filter: Some(TOKEN_FILTER.into()),
            ..self.q()
        };
        stats.consul_reads += 1;
        stats.listed_tokens = true;
        let tokens = self
            .consul
            .acl()
            .token_list(&AclTokenFilter::default(), &q)
            .await
            .map_err(|source| PassError::Consul {
                context: "listing ACL tokens",
                source,
            })?
            .value;
        for token in tokens {
            let Some((task, cluster)) = login_meta(&token.description) else {
                continue;
            };
            if cluster != self.settings.cluster_arn
                || present.contains(&task)
                || token.create_index > probe_index
            {
                continue;
            }
            let w = WriteOptions {
                namespace: Some(token.namespace.clone()).filter(|n| !n.is_empty()),
                partition: Some(token.partition.clone())
                    .filter(|p| !p.is_empty())
                    .or_else(|| self.settings.partition.clone()),
                ..WriteOptions::default()
            };
            stats.consul_writes += 1;
            match self.consul.acl().token_delete(&token.accessor_id, &w).await {
                Ok(()) => {
                    stats.tokens_deleted += 1;
                    tracing::info!(task = %task, accessor = %token.accessor_id, "deleted token of a gone task");
                }
                // Another replica got there first.
                Err(e) if e.is_not_found() || e.is_acl_not_found() => {}
                Err(e) => {
                    stats.failures += 1;
                    tracing::warn!(task = %task, accessor = %token.accessor_id, error = %e, "deleting token failed");
                }
            }
        }
        Ok(())
    }

    async fn clean_services(
        &self,
        present: &HashSet<String>,
        probe_index: u64,
        stats: &mut PassStats,
    ) -> Result<(), PassError> {
        let mut q = self.q();
        if q.partition.is_some() {
            q.namespace = Some("*".into());
        }
        stats.consul_reads += 1;
        stats.listed_services = true;
        let list = self
            .consul
            .catalog()
            .node_services(&self.settings.cluster_arn, &q)
            .await
            .map_err(|source| PassError::Consul {
                context: "listing the node's services",
                source,
            })?
            .value;
        let Some(list) = list else {
            return Ok(());
        };
        for service in list.services {
            let Some(task) = service.meta.get(SERVICE_TASK_ID_META) else {
                // Upstream fails the whole pass here; one foreign service must not block cleanup.
                tracing::debug!(service = %service.id, "service without task-id meta; skipped");
                continue;
            };
            if present.contains(task) || service.modify_index > probe_index {
                continue;
            }
            let deregistration = CatalogDeregistration {
                node: self.settings.cluster_arn.clone(),
                service_id: service.id.clone(),
                namespace: service.namespace.clone(),
                partition: service.partition.clone(),
                ..CatalogDeregistration::default()
            };
            stats.consul_writes += 1;
            match self
                .consul
                .catalog()
                .deregister(&deregistration, &WriteOptions::default())
                .await
            {
                Ok(()) => {
                    stats.services_deregistered += 1;
                    tracing::info!(task = %task, service = %service.id, "deregistered service of a gone task");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    stats.failures += 1;
                    tracing::warn!(task = %task, service = %service.id, error = %e, "deregistering service failed");
                }
            }
        }
        Ok(())
    }
}

/// The task ID: the last segment of the task ARN.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The task ID and cluster of a login token, from its description.
pub fn login_meta(description: &str) -> Option<(String, String)> {
    let json = description.replacen(LOGIN_PREFIX, "", 1);
    let meta: Map<String, Value> = serde_json::from_str(json.trim()).ok()?;
    let get = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some((get(TASK_ID_META)?, get(CLUSTER_META)?))
}
