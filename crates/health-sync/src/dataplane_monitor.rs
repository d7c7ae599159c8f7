//! Knowing when the dataplane has stopped, which is when health-sync may deregister the task.
//!
//! After SIGTERM the sync loop keeps reading the task metadata every poll interval; the dataplane has
//! stopped when no container named `consul-dataplane` is still running (every such container has desired
//! and known status `STOPPED`, and a missing one counts as stopped). A metadata read that fails is
//! logged and the next tick tries again.

use consul_ecs_aws::TaskMetadata;
use consul_ecs_mesh_init::task::DATAPLANE_CONTAINER;

/// Whether the dataplane container has stopped.
pub fn dataplane_stopped(task: &TaskMetadata) -> bool {
    task.has_container_stopped(DATAPLANE_CONTAINER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_ecs_aws::task_metadata::{Container, RUNNING, STOPPED};

    fn task(known: &str, desired: &str) -> TaskMetadata {
        TaskMetadata {
            containers: vec![Container {
                name: DATAPLANE_CONTAINER.into(),
                known_status: known.into(),
                desired_status: desired.into(),
                ..Container::default()
            }],
            ..TaskMetadata::default()
        }
    }

    #[test]
    fn stopped_means_desired_and_known_stopped_or_absent() {
        assert!(!dataplane_stopped(&task(RUNNING, RUNNING)));
        assert!(!dataplane_stopped(&task(RUNNING, STOPPED)));
        assert!(dataplane_stopped(&task(STOPPED, STOPPED)));
        assert!(dataplane_stopped(&TaskMetadata::default()));
    }
}
