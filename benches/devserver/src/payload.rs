//! What the benchmark writes: catalog registrations shaped like the ones `consul-ecs mesh-init` sends for
//! a task (service, metadata, the app and dataplane checks), and health-sync's check updates.
//!
//! Task addresses come from 198.18.0.0/15, the range set aside for benchmarks; they are only data, and
//! nothing ever connects to them.

use serde_json::{Value, json};

/// The synthetic node every task registers on, as the controller names it.
pub(crate) const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/bench";

/// One ECS task running one service instance.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    /// Service name.
    pub(crate) name: String,
    /// Service ID, `<name>-<task id>`.
    pub(crate) id: String,
    task_id: String,
    ip: String,
}

impl Task {
    /// The `i`th task of service `name`.
    pub(crate) fn new(name: &str, i: usize) -> Task {
        // A task-ID-looking hex string that differs for every i.
        let task_id = format!(
            "{:032x}",
            (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        Task {
            name: name.to_owned(),
            id: format!("{name}-{task_id}"),
            ip: format!("198.18.{}.{}", (i / 250) % 256, i % 250 + 1),
            task_id,
        }
    }

    /// The check ID of the app container's health check.
    pub(crate) fn app_check_id(&self) -> String {
        format!("{}-app", self.id)
    }

    fn app_check(&self, status: &str) -> Value {
        json!({
            "Node": CLUSTER_ARN,
            "CheckID": self.app_check_id(),
            "Name": "Consul ECS health check synced",
            "Type": "consul-ecs-health-check",
            "Status": status,
            "ServiceID": self.id,
            "ServiceName": self.name,
            "Output": if status == "passing" {
                "ECS health check passing".to_owned()
            } else {
                format!("Service {} is not ready", self.name)
            },
            "Notes": "consul-ecs created and updates this check because the app container has an ECS health check.",
        })
    }

    /// The service registration mesh-init sends, with the app check at `status`.
    pub(crate) fn registration(&self, status: &str) -> Value {
        let arn = format!(
            "arn:aws:ecs:us-east-1:123456789012:task/bench/{}",
            self.task_id
        );
        json!({
            "Node": CLUSTER_ARN,
            "NodeMeta": {"synthetic-node": "true"},
            "Address": self.ip,
            "SkipNodeUpdate": true,
            "Service": {
                "ID": self.id,
                "Service": self.name,
                "Tags": ["bench"],
                "Meta": {"task-id": self.task_id, "task-arn": arn, "source": "consul-ecs"},
                "Port": 8080,
                "Address": self.ip,
                "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": false,
            },
            "Checks": [
                self.app_check(status),
                {
                    "Node": CLUSTER_ARN,
                    "CheckID": format!("{}-consul-dataplane", self.id),
                    "Name": "Consul dataplane readiness",
                    "Type": "consul-ecs-health-check",
                    "Status": "critical",
                    "ServiceID": self.id,
                    "ServiceName": self.name,
                    "Output": format!("Service {} is not ready", self.name),
                    "Notes": "consul-ecs created and updates this check to indicate consul-dataplane container's readiness",
                },
            ],
        })
    }

    /// The write health-sync sends when the app container's health changes.
    pub(crate) fn check_update(&self, status: &str) -> Value {
        json!({
            "Node": CLUSTER_ARN,
            "SkipNodeUpdate": true,
            "Checks": [self.app_check(status)],
        })
    }

    /// The etcd key this task's registration is stored under.
    pub(crate) fn etcd_key(&self) -> String {
        format!("consul-ecs/catalog/{}/{}", self.name, self.id)
    }
}

/// The synthetic node's own registration, as the controller sends it at start.
pub(crate) fn node_registration() -> Value {
    json!({
        "Node": CLUSTER_ARN,
        "NodeMeta": {"synthetic-node": "true"},
        "Address": "198.18.255.1",
    })
}

/// The service name of the `i`th registration (each has its own, so watchers can watch distinct ones).
pub(crate) fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_distinct_and_checks_carry_the_status() {
        let a = Task::new("web", 0);
        let b = Task::new("web", 1);
        assert_ne!(a.id, b.id);
        assert!(a.id.starts_with("web-"));
        let reg = a.registration("critical");
        assert_eq!(reg["Service"]["ID"], a.id);
        assert_eq!(reg["Checks"][0]["Status"], "critical");
        assert_eq!(reg["Checks"][0]["CheckID"], a.app_check_id());
        let upd = b.check_update("passing");
        assert_eq!(upd["Checks"][0]["Status"], "passing");
        assert_eq!(upd["Checks"][0]["ServiceID"], b.id);
        assert!(upd.get("Service").is_none());
    }
}
