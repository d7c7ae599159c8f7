//! From container health to Consul checks: what each tracked container's check should say, and which
//! checks differ from what Consul holds.
//!
//! * The tracked containers are `healthSyncContainers` (in order) and then `consul-dataplane`.
//! * A container's health is its ECS health check status; `HEALTHY` becomes `passing`, anything else
//!   `critical`. A container missing from the task metadata is not ready (consul-ecs#300).
//! * A container without an ECS health check (no `Health` in the metadata) counts as healthy while its
//!   known status is `RUNNING`. Upstream reads it as `""`, which its delta guard never writes, so its
//!   check stayed critical forever and held the dataplane check critical with it.
//! * The dataplane's checks (on the service and on the sidecar, or on the gateway) carry the aggregate:
//!   passing only if the dataplane and every other tracked container are healthy.
//! * While stopping, every check is critical, whatever the containers say (consul-ecs#284).
//!
//! The delta guard compares the Consul status each check should have with the status Consul last
//! accepted (read from Consul at start and after an outage), so only real changes are written, all in
//! one request.

use std::collections::BTreeMap;

use consul_client::health::{HealthCheck, HealthStatus};
use consul_ecs_aws::TaskMetadata;
use consul_ecs_aws::task_metadata::RUNNING;
use consul_ecs_mesh_init::task::{DATAPLANE_CONTAINER, TaskIdentity};

/// ECS's status of a healthy container.
pub const HEALTHY: &str = "HEALTHY";
/// ECS's status of an unhealthy container (also used for missing containers and while stopping).
pub const UNHEALTHY: &str = "UNHEALTHY";

/// What the task metadata says about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `HEALTHY`, `UNHEALTHY`, `UNKNOWN`, ... as ECS reports it (or derived, see the module docs).
    pub status: String,
    /// Whether the container is in the task metadata.
    pub found: bool,
    /// Whether the container has an ECS health check.
    pub has_health_check: bool,
    /// `Health.statusSince`.
    pub status_since: Option<String>,
    /// `Health.exitCode`.
    pub exit_code: Option<i64>,
}

impl Observed {
    /// Reads container `name` from the task metadata.
    pub fn container(task: &TaskMetadata, name: &str) -> Observed {
        let Some(container) = task.container(name) else {
            return Observed::unhealthy(false);
        };
        match container.health.as_ref().filter(|h| !h.status.is_empty()) {
            Some(health) => Observed {
                status: health.status.clone(),
                found: true,
                has_health_check: true,
                status_since: health.status_since.clone(),
                exit_code: health.exit_code,
            },
            None => Observed {
                status: if container.known_status == RUNNING && !container.has_stopped() {
                    HEALTHY.to_owned()
                } else {
                    UNHEALTHY.to_owned()
                },
                found: true,
                has_health_check: false,
                status_since: None,
                exit_code: None,
            },
        }
    }

    /// An unhealthy observation with no details.
    pub fn unhealthy(found: bool) -> Observed {
        Observed {
            status: UNHEALTHY.to_owned(),
            found,
            has_health_check: false,
            status_since: None,
            exit_code: None,
        }
    }

    /// Whether the check is passing.
    pub fn is_healthy(&self) -> bool {
        self.status == HEALTHY
    }

    /// The Consul status this observation maps to.
    pub fn consul_status(&self) -> HealthStatus {
        if self.is_healthy() {
            HealthStatus::Passing
        } else {
            HealthStatus::Critical
        }
    }
}

/// What every tracked container's checks should say now. `None` task metadata (while stopping) or
/// `stopping` makes everything unhealthy.
pub fn desired(
    tracked: &[String],
    task: Option<&TaskMetadata>,
    stopping: bool,
) -> Vec<(String, Observed)> {
    let observe = |name: &str| match task {
        Some(task) if !stopping => Observed::container(task, name),
        _ => Observed::unhealthy(true),
    };
    let mut out: Vec<(String, Observed)> = tracked
        .iter()
        .filter(|name| name.as_str() != DATAPLANE_CONTAINER)
        .map(|name| (name.clone(), observe(name)))
        .collect();
    let dataplane = observe(DATAPLANE_CONTAINER);
    let all_healthy = dataplane.is_healthy() && out.iter().all(|(_, o)| o.is_healthy());
    let aggregate = if all_healthy {
        dataplane
    } else {
        Observed {
            status: UNHEALTHY.to_owned(),
            ..dataplane
        }
    };
    out.push((DATAPLANE_CONTAINER.to_owned(), aggregate));
    out
}

/// The tracked containers: `healthSyncContainers` in order (without duplicates) and the dataplane.
pub fn tracked_containers(configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in configured {
        if name != DATAPLANE_CONTAINER && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out.push(DATAPLANE_CONTAINER.to_owned());
    out
}

/// One container whose checks change in a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Container name.
    pub container: String,
    /// What it is now.
    pub observed: Observed,
    /// The status last written for it (`None` before the first write of this run).
    pub previous: Option<String>,
}

/// The checks to write in one request and the containers they belong to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Full check objects with the new status and output.
    pub checks: Vec<HealthCheck>,
    /// The containers whose checks change.
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

/// The task's checks as Consul holds them and the statuses it accepted.
#[derive(Clone, Debug, Default)]
pub struct CheckState {
    /// Container → the IDs of its checks.
    check_ids: Vec<(String, Vec<String>)>,
    /// Check ID → the check as read from Consul (the template for writes).
    templates: BTreeMap<String, HealthCheck>,
    /// Container → the ECS status last written.
    written: BTreeMap<String, String>,
}

impl CheckState {
    /// The checks each tracked container owns.
    pub fn new(identity: &TaskIdentity, tracked: &[String]) -> CheckState {
        let check_ids = tracked
            .iter()
            .map(|name| {
                let ids = if name == DATAPLANE_CONTAINER {
                    identity.dataplane_check_ids()
                } else if identity.is_gateway() {
                    // Gateways carry only the dataplane check; these containers only feed the aggregate.
                    Vec::new()
                } else {
                    vec![identity.container_check_id(name)]
                };
                (name.clone(), ids)
            })
            .collect();
        CheckState {
            check_ids,
            ..CheckState::default()
        }
    }

    /// Every check ID the task should have in Consul.
    pub fn expected_ids(&self) -> Vec<&str> {
        self.check_ids
            .iter()
            .flat_map(|(_, ids)| ids.iter().map(String::as_str))
            .collect()
    }

    /// Containers that have no check of their own (gateway task).
    pub fn unchecked_containers(&self) -> Vec<&str> {
        self.check_ids
            .iter()
            .filter(|(_, ids)| ids.is_empty())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Replaces the templates with Consul's current copies; returns the expected IDs Consul lacks.
    pub fn load(&mut self, from_consul: Vec<HealthCheck>) -> Vec<String> {
        self.templates = from_consul
            .into_iter()
            .map(|c| (c.check_id.clone(), c))
            .collect();
        self.expected_ids()
            .into_iter()
            .filter(|id| !self.templates.contains_key(*id))
            .map(str::to_owned)
            .collect()
    }

    /// The status Consul holds for a check, if the check is known.
    pub fn status(&self, check_id: &str) -> Option<&HealthStatus> {
        self.templates.get(check_id).map(|c| &c.status)
    }

    /// The checks that must change for Consul to match `desired`.
    pub fn plan(&self, desired: &[(String, Observed)]) -> Plan {
        self.plan_with(desired, false)
    }

    /// Every check with the status `desired` gives it, changed or not (the write on SIGTERM).
    pub fn plan_all(&self, desired: &[(String, Observed)]) -> Plan {
        self.plan_with(desired, true)
    }

    fn plan_with(&self, desired: &[(String, Observed)], all: bool) -> Plan {
        let mut plan = Plan::default();
        for (container, observed) in desired {
            let ids = self
                .check_ids
                .iter()
                .find(|(name, _)| name == container)
                .map(|(_, ids)| ids.as_slice())
                .unwrap_or_default();
            let wanted = observed.consul_status();
            let mut changed = false;
            for id in ids {
                let Some(template) = self.templates.get(id) else {
                    continue;
                };
                if !all && template.status == wanted {
                    continue;
                }
                let mut check = template.clone();
                check.status = wanted.clone();
                check.output = output(container, id, observed);
                plan.checks.push(check);
                changed = true;
            }
            if changed {
                plan.changes.push(Change {
                    container: container.clone(),
                    observed: observed.clone(),
                    previous: self.written.get(container).cloned(),
                });
            }
        }
        plan
    }

    /// Records that Consul accepted `plan`.
    pub fn commit(&mut self, plan: &Plan) {
        for check in &plan.checks {
            self.templates.insert(check.check_id.clone(), check.clone());
        }
        for change in &plan.changes {
            self.written
                .insert(change.container.clone(), change.observed.status.clone());
        }
    }
}

/// The check output: upstream's text for a reported status, and a plain statement for a container
/// without an ECS health check.
fn output(container: &str, check_id: &str, observed: &Observed) -> String {
    if observed.found && !observed.has_health_check && container != DATAPLANE_CONTAINER {
        format!(
            "container {container:?} has no ECS health check; counted as {:?} from its known status",
            observed.status
        )
    } else {
        format!(
            "ECS health status is {:?} for container {check_id:?}",
            observed.status
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use consul_ecs_aws::task_metadata::{Container, Health, STOPPED};

    fn container(name: &str, health: Option<&str>, known: &str) -> Container {
        Container {
            name: name.into(),
            known_status: known.into(),
            desired_status: RUNNING.into(),
            health: health.map(|s| Health {
                status: s.into(),
                ..Health::default()
            }),
            ..Container::default()
        }
    }

    fn task(containers: Vec<Container>) -> TaskMetadata {
        TaskMetadata {
            containers,
            ..TaskMetadata::default()
        }
    }

    fn statuses(desired: &[(String, Observed)]) -> Vec<(&str, &str)> {
        desired
            .iter()
            .map(|(n, o)| (n.as_str(), o.status.as_str()))
            .collect()
    }

    #[test]
    fn observation_follows_the_health_check_or_the_known_status() {
        let t = task(vec![
            container("a", Some("HEALTHY"), RUNNING),
            container("b", Some("UNKNOWN"), RUNNING),
            container("c", None, RUNNING),
            container("d", None, "PENDING"),
            container("e", Some(""), STOPPED),
        ]);
        let o = |n| Observed::container(&t, n);
        assert!(o("a").is_healthy());
        assert_eq!(o("b").consul_status(), HealthStatus::Critical);
        assert!(o("c").is_healthy() && !o("c").has_health_check);
        assert_eq!(o("d").status, UNHEALTHY);
        assert_eq!(o("e").status, UNHEALTHY);
        assert!(!o("missing").found);
        assert_eq!(o("missing").status, UNHEALTHY);
    }

    #[test]
    fn the_dataplane_aggregate_needs_every_container_healthy() {
        let tracked = tracked_containers(&["app".into(), "app".into(), DATAPLANE_CONTAINER.into()]);
        assert_eq!(tracked, ["app", DATAPLANE_CONTAINER]);
        let healthy = task(vec![
            container("app", Some("HEALTHY"), RUNNING),
            container(DATAPLANE_CONTAINER, Some("HEALTHY"), RUNNING),
        ]);
        assert_eq!(
            statuses(&desired(&tracked, Some(&healthy), false)),
            [("app", HEALTHY), (DATAPLANE_CONTAINER, HEALTHY)]
        );
        let app_missing = task(vec![container(
            DATAPLANE_CONTAINER,
            Some("HEALTHY"),
            RUNNING,
        )]);
        assert_eq!(
            statuses(&desired(&tracked, Some(&app_missing), false)),
            [("app", UNHEALTHY), (DATAPLANE_CONTAINER, UNHEALTHY)]
        );
        assert_eq!(
            statuses(&desired(&tracked, Some(&healthy), true)),
            [("app", UNHEALTHY), (DATAPLANE_CONTAINER, UNHEALTHY)]
        );
    }
}
