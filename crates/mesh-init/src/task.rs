//! The names and IDs a task registers under, derived from the config and the task metadata.
//!
//! mesh-init registers with these names and health-sync finds its checks by them, so both use this one
//! definition:
//!
//! * node = the cluster ARN; address = the task's IPv4 address (or `127.0.0.1`);
//! * service name = the configured name, or the task family in lower case;
//! * service (or gateway) ID = `<name>-<taskID>`;
//! * sidecar proxy = `<serviceID>-sidecar-proxy`, named `<name>-sidecar-proxy`;
//! * check IDs = `<owning service ID>-<container name>`.

use consul_ecs_aws::task_metadata::DeriveError;
use consul_ecs_aws::{MetadataError, TaskMetadata, TaskMetadataClient};
use consul_ecs_config::{Config, GatewayKind};

use crate::environment::ENV_METADATA_URI;
use crate::{Environment, Error};

/// Name of the dataplane container, whose readiness check every registration carries.
pub const DATAPLANE_CONTAINER: &str = "consul-dataplane";

/// The suffix of the sidecar proxy's ID and name.
pub const SIDECAR_SUFFIX: &str = "-sidecar-proxy";

/// A service instance: its name and its ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// Service name.
    pub name: String,
    /// Instance ID.
    pub id: String,
}

/// Everything that identifies a task's registrations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdentity {
    /// The task ID (last segment of the task ARN).
    pub task_id: String,
    /// The task ARN.
    pub task_arn: String,
    /// The task definition family.
    pub family: String,
    /// The catalog node: the cluster ARN.
    pub node: String,
    /// The task's address.
    pub node_ip: String,
    /// The availability zone, if the metadata has one.
    pub availability_zone: String,
    /// The service, or the gateway.
    pub service: ServiceRef,
    /// The sidecar proxy; `None` for a gateway.
    pub sidecar: Option<ServiceRef>,
    /// The gateway kind, for a gateway.
    pub gateway_kind: Option<GatewayKind>,
    /// Namespace of the registrations (empty: not set).
    pub namespace: String,
    /// Admin partition of the registrations (empty: not set).
    pub partition: String,
}

impl TaskIdentity {
    /// Derives the identity from the config and the task metadata.
    pub fn new(config: &Config, task: &TaskMetadata) -> Result<TaskIdentity, DeriveError> {
        let node = task.cluster_arn()?;
        let task_id = task.task_id().to_owned();
        let name = config.service_name(&task.family);
        let id = format!("{name}-{task_id}");
        let sidecar = (!config.is_gateway()).then(|| ServiceRef {
            name: format!("{name}{SIDECAR_SUFFIX}"),
            id: format!("{id}{SIDECAR_SUFFIX}"),
        });
        Ok(TaskIdentity {
            task_arn: task.task_arn.clone(),
            family: task.family.clone(),
            node,
            node_ip: task.node_ip().to_owned(),
            availability_zone: task.availability_zone.clone().unwrap_or_default(),
            service: ServiceRef { name, id },
            sidecar,
            gateway_kind: config.gateway.as_ref().map(|g| g.kind),
            namespace: config.namespace().to_owned(),
            partition: config.partition().to_owned(),
            task_id,
        })
    }

    /// Whether the task is a gateway.
    pub fn is_gateway(&self) -> bool {
        self.gateway_kind.is_some()
    }

    /// The registered services: the service then its sidecar, or the gateway alone.
    pub fn services(&self) -> Vec<&ServiceRef> {
        std::iter::once(&self.service)
            .chain(self.sidecar.as_ref())
            .collect()
    }

    /// The ID of the check that mirrors `container`'s ECS health on the service.
    pub fn container_check_id(&self, container: &str) -> String {
        check_id(&self.service.id, container)
    }

    /// The IDs of the dataplane readiness checks: the service's and the sidecar's, or the gateway's.
    pub fn dataplane_check_ids(&self) -> Vec<String> {
        self.services()
            .into_iter()
            .map(|s| check_id(&s.id, DATAPLANE_CONTAINER))
            .collect()
    }
}

/// The task metadata client for `ECS_CONTAINER_METADATA_URI_V4`.
pub fn metadata_client(env: &Environment) -> Result<TaskMetadataClient, Error> {
    let url = env
        .var(ENV_METADATA_URI)
        .ok_or(MetadataError::MissingEnv(ENV_METADATA_URI))?;
    Ok(TaskMetadataClient::new(url)?)
}

/// Reads the task metadata, retrying an endpoint that does not answer yet.
pub async fn read_task(
    env: &Environment,
    client: &TaskMetadataClient,
) -> Result<TaskMetadata, Error> {
    crate::retry::retry(env, "reading the task metadata", || async {
        Ok(client.task().await?)
    })
    .await
}

/// `<serviceID>-<container>`.
pub fn check_id(service_id: &str, container: &str) -> String {
    format!("{service_id}-{container}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn task(family: &str) -> TaskMetadata {
        TaskMetadata {
            cluster: "arn:aws:ecs:us-east-1:123456789:cluster/test".into(),
            task_arn: "arn:aws:ecs:us-east-1:123456789:task/test/abcdef".into(),
            family: family.into(),
            ..TaskMetadata::default()
        }
    }

    fn config(extra: &str) -> Config {
        Config::from_json(&format!(
            r#"{{"bootstrapDir": "/consul", "consulServers": {{"hosts": "h"}}{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn names_and_ids_follow_the_family_or_the_configured_name() {
        let id =
            TaskIdentity::new(&config(r#","service":{"port":8080}"#), &task("Web-App")).unwrap();
        assert_eq!(id.node, "arn:aws:ecs:us-east-1:123456789:cluster/test");
        assert_eq!(id.node_ip, "127.0.0.1");
        assert_eq!(
            id.service,
            ServiceRef {
                name: "web-app".into(),
                id: "web-app-abcdef".into()
            }
        );
        assert_eq!(
            id.sidecar,
            Some(ServiceRef {
                name: "web-app-sidecar-proxy".into(),
                id: "web-app-abcdef-sidecar-proxy".into()
            })
        );
        assert_eq!(id.container_check_id("app"), "web-app-abcdef-app");
        assert_eq!(
            id.dataplane_check_ids(),
            [
                "web-app-abcdef-consul-dataplane",
                "web-app-abcdef-sidecar-proxy-consul-dataplane"
            ]
        );

        let id = TaskIdentity::new(
            &config(r#","service":{"name":"api","port":1}"#),
            &task("family"),
        )
        .unwrap();
        assert_eq!(id.service.id, "api-abcdef");
    }

    #[test]
    fn a_gateway_has_no_sidecar() {
        let id = TaskIdentity::new(
            &config(r#","gateway":{"kind":"mesh-gateway","namespace":"ns1"}"#),
            &task("MGW"),
        )
        .unwrap();
        assert_eq!(id.service.id, "mgw-abcdef");
        assert!(id.sidecar.is_none());
        assert!(id.is_gateway());
        assert_eq!(id.namespace, "ns1");
        assert_eq!(id.dataplane_check_ids(), ["mgw-abcdef-consul-dataplane"]);
    }
}
