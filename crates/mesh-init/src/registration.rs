//! The catalog registrations of a task, exactly as upstream builds them: the service and its sidecar
//! proxy, or the gateway alone. Every registration goes on the synthetic node named after the cluster
//! ARN, with `SkipNodeUpdate` so that tasks never overwrite the node the controller registered.
//!
//! * Meta: `task-id`, `task-arn` and `source: consul-ecs`, with the configured meta laid over them.
//! * Locality (service and proxy only): `AWS_REGION` and the task's availability zone, only when
//!   `AWS_REGION` is set.
//! * Transparent proxy: the service and the proxy carry the tagged address `virtual` = task IP and the
//!   *service* port, and the proxy is in `transparent` mode.
//! * Mesh gateways register the LAN address and port when configured, plus `lan`/`wan` tagged addresses.

use std::collections::BTreeMap;

use consul_client::catalog::{
    AgentService, CatalogRegistration, ExposeConfig, ExposePath, Locality, MeshGatewayConfig,
    MeshGatewayMode, ProxyConfig, ProxyMode, ServiceAddress, ServiceKind, Upstream,
    UpstreamDestinationType, Weights,
};
use consul_ecs_config::{
    Config, DestinationType, Gateway, GatewayKind, MeshGatewayMode as ConfigMeshGatewayMode,
};

use crate::Error;
use crate::checks::{container_check, dataplane_check};
use crate::task::TaskIdentity;

/// `NodeMeta` of the synthetic node.
pub const SYNTHETIC_NODE_META: (&str, &str) = ("synthetic-node", "true");
/// The tagged address transparent proxy registers.
pub const VIRTUAL_TAGGED_ADDRESS: &str = "virtual";
/// `source` meta value.
pub const META_SOURCE: &str = "consul-ecs";

/// The registrations of a task, in the order they are written: the service then its sidecar, or the
/// gateway alone.
pub fn registrations(
    config: &Config,
    task: &TaskIdentity,
    aws_region: Option<&str>,
) -> Result<Vec<CatalogRegistration>, Error> {
    match &config.gateway {
        Some(gateway) => Ok(vec![gateway_registration(gateway, task)]),
        None => {
            let service = service_registration(config, task, aws_region)?;
            let proxy = proxy_registration(config, task, &service);
            Ok(vec![service, proxy])
        }
    }
}

/// The envelope every registration shares.
fn envelope(task: &TaskIdentity, service: AgentService) -> CatalogRegistration {
    CatalogRegistration {
        node: task.node.clone(),
        node_meta: BTreeMap::from([(
            SYNTHETIC_NODE_META.0.to_owned(),
            SYNTHETIC_NODE_META.1.to_owned(),
        )]),
        address: task.node_ip.clone(),
        skip_node_update: true,
        partition: task.partition.clone(),
        service: Some(service),
        ..CatalogRegistration::default()
    }
}

fn meta(task: &TaskIdentity, configured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::from([
        ("task-id".to_owned(), task.task_id.clone()),
        ("task-arn".to_owned(), task.task_arn.clone()),
        ("source".to_owned(), META_SOURCE.to_owned()),
    ]);
    meta.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    meta
}

fn service_registration(
    config: &Config,
    task: &TaskIdentity,
    aws_region: Option<&str>,
) -> Result<CatalogRegistration, Error> {
    let svc = &config.service;
    let weights = svc
        .weights
        .map(|w| {
            Ok::<_, Error>(Weights {
                passing: weight("service.weights.passing", w.passing)?,
                warning: weight("service.weights.warning", w.warning)?,
            })
        })
        .transpose()?;
    let mut tagged_addresses = BTreeMap::new();
    if config.transparent_proxy_enabled() {
        tagged_addresses.insert(
            VIRTUAL_TAGGED_ADDRESS.to_owned(),
            ServiceAddress {
                address: task.node_ip.clone(),
                port: svc.port,
            },
        );
    }
    let locality = aws_region.filter(|r| !r.is_empty()).map(|region| Locality {
        region: region.to_owned(),
        zone: task.availability_zone.clone(),
    });
    let service = AgentService {
        id: task.service.id.clone(),
        service: task.service.name.clone(),
        tags: svc.tags.clone(),
        meta: meta(task, &svc.meta),
        port: svc.port,
        address: task.node_ip.clone(),
        tagged_addresses,
        weights,
        enable_tag_override: svc.enable_tag_override,
        namespace: task.namespace.clone(),
        partition: task.partition.clone(),
        locality,
        ..AgentService::default()
    };
    let mut registration = envelope(task, service);
    registration.checks = config
        .health_sync_containers
        .iter()
        .map(|container| container_check(&task.service, &task.namespace, container))
        .chain(std::iter::once(dataplane_check(
            &task.service,
            &task.namespace,
        )))
        .collect();
    Ok(registration)
}

fn weight(field: &'static str, value: i64) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::Config {
        field,
        message: format!("{value} is not a weight Consul accepts (0 to {})", u32::MAX),
    })
}

fn proxy_registration(
    config: &Config,
    task: &TaskIdentity,
    service_registration: &CatalogRegistration,
) -> CatalogRegistration {
    let proxy = &config.proxy;
    let service = service_registration.service.clone().unwrap_or_default();
    let sidecar = task.sidecar.clone().unwrap_or_else(|| task.service.clone());
    let settings = ProxyConfig {
        destination_service_name: task.service.name.clone(),
        destination_service_id: task.service.id.clone(),
        local_service_port: config.service.port,
        local_service_address: proxy.local_service_address.clone(),
        mode: if config.transparent_proxy_enabled() {
            ProxyMode::Transparent
        } else {
            ProxyMode::Default
        },
        config: proxy.config.clone().unwrap_or_default(),
        upstreams: proxy.upstreams.iter().map(upstream).collect(),
        mesh_gateway: mesh_gateway(proxy.mesh_gateway),
        expose: proxy
            .expose
            .as_ref()
            .map(|e| ExposeConfig {
                checks: e.checks,
                paths: e
                    .paths
                    .iter()
                    .map(|p| ExposePath {
                        listener_port: p.listener_port,
                        path: p.path.clone(),
                        local_path_port: p.local_path_port,
                        protocol: p.protocol.clone(),
                        parsed_from_check: false,
                    })
                    .collect(),
            })
            .unwrap_or_default(),
        ..ProxyConfig::default()
    };
    let proxy_service = AgentService {
        kind: ServiceKind::ConnectProxy,
        id: sidecar.id.clone(),
        service: sidecar.name.clone(),
        port: proxy.public_listener_port,
        address: task.node_ip.clone(),
        proxy: Some(settings),
        // Copied from the service, tagged addresses included: `virtual` keeps the service's port.
        tags: service.tags,
        meta: service.meta,
        tagged_addresses: service.tagged_addresses,
        weights: service.weights,
        enable_tag_override: service.enable_tag_override,
        namespace: service.namespace,
        partition: service.partition,
        locality: service.locality,
        ..AgentService::default()
    };
    let mut registration = envelope(task, proxy_service);
    registration.checks = vec![dataplane_check(&sidecar, &task.namespace)];
    registration
}

fn upstream(u: &consul_ecs_config::Upstream) -> Upstream {
    Upstream {
        destination_type: match u.destination_type {
            None => UpstreamDestinationType::Unspecified,
            Some(DestinationType::Service) => UpstreamDestinationType::Service,
            Some(DestinationType::PreparedQuery) => UpstreamDestinationType::PreparedQuery,
        },
        destination_namespace: u.destination_namespace.clone(),
        destination_partition: u.destination_partition.clone(),
        destination_name: u.destination_name.clone(),
        destination_peer: u.destination_peer.clone(),
        datacenter: u.datacenter.clone(),
        local_bind_address: u.local_bind_address.clone(),
        local_bind_port: u.local_bind_port,
        config: u.config.clone().unwrap_or_default(),
        mesh_gateway: mesh_gateway(u.mesh_gateway),
        ..Upstream::default()
    }
}

fn mesh_gateway(mode: Option<ConfigMeshGatewayMode>) -> MeshGatewayConfig {
    MeshGatewayConfig {
        mode: match mode {
            None => MeshGatewayMode::Default,
            Some(ConfigMeshGatewayMode::None) => MeshGatewayMode::None,
            Some(ConfigMeshGatewayMode::Local) => MeshGatewayMode::Local,
            Some(ConfigMeshGatewayMode::Remote) => MeshGatewayMode::Remote,
        },
    }
}

fn gateway_registration(gateway: &Gateway, task: &TaskIdentity) -> CatalogRegistration {
    let mut address = task.node_ip.clone();
    let mut tagged_addresses = BTreeMap::new();
    if gateway.kind == GatewayKind::MeshGateway {
        if let Some(lan) = gateway
            .lan_address
            .as_ref()
            .filter(|a| !a.address.is_empty())
        {
            address.clone_from(&lan.address);
            tagged_addresses.insert(
                "lan".to_owned(),
                ServiceAddress {
                    address: lan.address.clone(),
                    port: lan.port_or_default(),
                },
            );
        }
        // Upstream defaults the WAN port to 8443 rather than to the LAN port; so do we.
        if let Some(wan) = gateway
            .wan_address
            .as_ref()
            .filter(|a| !a.address.is_empty())
        {
            tagged_addresses.insert(
                "wan".to_owned(),
                ServiceAddress {
                    address: wan.address.clone(),
                    port: wan.port_or_default(),
                },
            );
        }
    }
    let service = AgentService {
        kind: match gateway.kind {
            GatewayKind::MeshGateway => ServiceKind::MeshGateway,
            GatewayKind::TerminatingGateway => ServiceKind::TerminatingGateway,
            GatewayKind::ApiGateway => ServiceKind::ApiGateway,
        },
        id: task.service.id.clone(),
        service: task.service.name.clone(),
        tags: gateway.tags.clone(),
        meta: meta(task, &gateway.meta),
        namespace: task.namespace.clone(),
        partition: task.partition.clone(),
        address,
        port: gateway.service_port(),
        tagged_addresses,
        proxy: gateway.proxy.as_ref().map(|p| ProxyConfig {
            config: p.config.clone().unwrap_or_default(),
            ..ProxyConfig::default()
        }),
        ..AgentService::default()
    };
    let mut registration = envelope(task, service);
    registration.checks = vec![dataplane_check(&task.service, &task.namespace)];
    registration
}
