//! The checks mesh-init registers, all critical until health-sync says otherwise: one per
//! `healthSyncContainers` entry on the service, and a dataplane readiness check on every registration.

use consul_client::health::{HealthCheck, HealthStatus};

use crate::task::{DATAPLANE_CONTAINER, ServiceRef, check_id};

/// `Type` of every check consul-ecs creates.
pub const CHECK_TYPE: &str = "consul-ecs-health-check";
/// `Name` of a container's synced check.
pub const CONTAINER_CHECK_NAME: &str = "Consul ECS health check synced";
/// `Name` of the dataplane readiness check.
pub const DATAPLANE_CHECK_NAME: &str = "Consul dataplane readiness";

/// The check that mirrors `container`'s ECS health on `service`.
pub fn container_check(service: &ServiceRef, namespace: &str, container: &str) -> HealthCheck {
    HealthCheck {
        check_id: check_id(&service.id, container),
        name: CONTAINER_CHECK_NAME.to_owned(),
        check_type: CHECK_TYPE.to_owned(),
        status: HealthStatus::Critical,
        service_id: service.id.clone(),
        namespace: namespace.to_owned(),
        output: not_ready(&service.name),
        notes: format!(
            "consul-ecs created and updates this check because the {container} container has an ECS health check."
        ),
        ..HealthCheck::default()
    }
}

/// The dataplane readiness check of `service` (the service, its sidecar or the gateway).
pub fn dataplane_check(service: &ServiceRef, namespace: &str) -> HealthCheck {
    HealthCheck {
        check_id: check_id(&service.id, DATAPLANE_CONTAINER),
        name: DATAPLANE_CHECK_NAME.to_owned(),
        check_type: CHECK_TYPE.to_owned(),
        status: HealthStatus::Critical,
        service_id: service.id.clone(),
        namespace: namespace.to_owned(),
        output: not_ready(&service.name),
        notes: "consul-ecs created and updates this check to indicate consul-dataplane container's readiness"
            .to_owned(),
        ..HealthCheck::default()
    }
}

fn not_ready(service: &str) -> String {
    format!("Service {service} is not ready")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checks_carry_upstreams_ids_names_and_texts() {
        let web = ServiceRef {
            name: "web".into(),
            id: "web-abc".into(),
        };
        let check = serde_json::to_value(container_check(&web, "", "app")).unwrap();
        assert_eq!(
            check,
            serde_json::json!({
                "CheckID": "web-abc-app",
                "Name": "Consul ECS health check synced",
                "Status": "critical",
                "Notes": "consul-ecs created and updates this check because the app container has an ECS health check.",
                "Output": "Service web is not ready",
                "ServiceID": "web-abc",
                "Type": "consul-ecs-health-check",
            })
        );
        let proxy = ServiceRef {
            name: "web-sidecar-proxy".into(),
            id: "web-abc-sidecar-proxy".into(),
        };
        let check = serde_json::to_value(dataplane_check(&proxy, "ns")).unwrap();
        assert_eq!(
            check,
            serde_json::json!({
                "CheckID": "web-abc-sidecar-proxy-consul-dataplane",
                "Name": "Consul dataplane readiness",
                "Status": "critical",
                "Notes": "consul-ecs created and updates this check to indicate consul-dataplane container's readiness",
                "Output": "Service web-sidecar-proxy is not ready",
                "ServiceID": "web-abc-sidecar-proxy",
                "Type": "consul-ecs-health-check",
                "Namespace": "ns",
            })
        );
    }
}
