//! [`Config::resolved`]: the config as JSON with every default applied, for people to read.
//!
//! The output uses the input's camelCase keys and is itself a valid config that resolves to the same
//! output again. Inherited TLS settings of `consulServers.http`/`grpc` are shown resolved; `gateway` is
//! left out when the task is not a gateway.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::*;

impl Config {
    /// The config with every default applied, as a JSON object with the input format's keys.
    pub fn resolved(&self) -> Value {
        let mut out = Map::new();
        out.insert("logLevel".into(), json!(self.log_level.as_str()));
        out.insert("bootstrapDir".into(), json!(self.bootstrap_dir));
        out.insert("consulLogin".into(), consul_login(&self.consul_login));
        out.insert("controller".into(), controller(&self.controller));
        out.insert("consulServers".into(), consul_servers(&self.consul_servers));
        out.insert(
            "healthSyncContainers".into(),
            json!(self.health_sync_containers),
        );
        out.insert("service".into(), service(&self.service));
        out.insert("proxy".into(), proxy(&self.proxy));
        if let Some(gateway) = &self.gateway {
            out.insert("gateway".into(), self::gateway(gateway));
        }
        out.insert(
            "transparentProxy".into(),
            transparent_proxy(&self.transparent_proxy),
        );
        Value::Object(out)
    }
}

fn consul_login(login: &ConsulLogin) -> Value {
    json!({
        "enabled": login.enabled,
        "method": login.method,
        "datacenter": login.datacenter,
        "includeEntity": login.include_entity,
        "meta": string_map(&login.meta),
        "region": login.region,
        "stsEndpoint": login.sts_endpoint,
        "serverIdHeaderValue": login.server_id_header_value,
    })
}

fn controller(controller: &Controller) -> Value {
    json!({
        "iamRolePath": controller.iam_role_path,
        "partitionsEnabled": controller.partitions_enabled,
        "partition": controller.partition,
    })
}

fn consul_servers(servers: &ConsulServers) -> Value {
    let http = servers.http_tls();
    let grpc = servers.grpc_tls();
    json!({
        "hosts": servers.hosts,
        "skipServerWatch": servers.skip_server_watch,
        "defaults": {
            "caCertFile": servers.defaults.ca_cert_file,
            "tls": servers.defaults.tls,
            "tlsServerName": servers.defaults.tls_server_name,
        },
        "http": {
            "port": servers.http.port,
            "https": servers.http.https,
            "tls": servers.http.tls,
            "caCertFile": http.ca_cert_file.unwrap_or_default(),
            "tlsServerName": http.server_name.unwrap_or_default(),
        },
        "grpc": {
            "port": servers.grpc.port,
            "tls": grpc.enabled,
            "caCertFile": grpc.ca_cert_file.unwrap_or_default(),
            "tlsServerName": grpc.server_name.unwrap_or_default(),
        },
    })
}

fn service(service: &Service) -> Value {
    json!({
        "name": service.name,
        "tags": service.tags,
        "port": service.port,
        "enableTagOverride": service.enable_tag_override,
        "meta": string_map(&service.meta),
        "weights": service.weights.map(|w| json!({"passing": w.passing, "warning": w.warning})),
        "namespace": service.namespace,
        "partition": service.partition,
        "networkResilienceConfig": service.network_resilience.as_ref().map(|r| json!({
            "enabled": r.enabled,
            "outlierDetection": outlier_detection(&r.outlier_detection),
        })),
    })
}

fn outlier_detection(od: &OutlierDetection) -> Value {
    let mut out = Map::new();
    let nanos = u64::try_from(od.interval.as_nanos()).unwrap_or(u64::MAX);
    out.insert("interval".into(), json!(nanos));
    // 0 means "left to the proxy"; the schema accepts only 1 and up, so it is shown by leaving it out.
    if od.max_failures != 0 {
        out.insert("maxFailures".into(), json!(od.max_failures));
    }
    if let Some(n) = od.enforcing_consecutive_5xx {
        out.insert("enforcingConsecutive5xx".into(), json!(n));
    }
    if let Some(n) = od.consecutive_5xx {
        out.insert("consecutive5xx".into(), json!(n));
    }
    out.insert(
        "enforcingConsecutiveGatewayFailure".into(),
        json!(od.enforcing_consecutive_gateway_failure),
    );
    if let Some(n) = od.consecutive_gateway_failure {
        out.insert("consecutiveGatewayFailure".into(), json!(n));
    }
    out.insert("maxEjectionPercent".into(), json!(od.max_ejection_percent));
    Value::Object(out)
}

fn proxy(proxy: &Proxy) -> Value {
    json!({
        "config": proxy.config,
        "localServiceAddress": proxy.local_service_address,
        "publicListenerPort": proxy.public_listener_port,
        "healthCheckPort": proxy.health_check_port,
        "upstreams": proxy.upstreams.iter().map(upstream).collect::<Vec<_>>(),
        "meshGateway": mesh_gateway(proxy.mesh_gateway),
        "expose": proxy.expose.as_ref().map(|e| json!({
            "checks": e.checks,
            "paths": e.paths.iter().map(|p| json!({
                "listenerPort": p.listener_port,
                "path": p.path,
                "localPathPort": p.local_path_port,
                "protocol": p.protocol,
            })).collect::<Vec<_>>(),
        })),
    })
}

fn upstream(upstream: &Upstream) -> Value {
    json!({
        "destinationType": upstream.destination_type.map(DestinationType::as_str),
        "destinationNamespace": upstream.destination_namespace,
        "destinationPartition": upstream.destination_partition,
        "destinationName": upstream.destination_name,
        "destinationPeer": upstream.destination_peer,
        "datacenter": upstream.datacenter,
        "localBindAddress": upstream.local_bind_address,
        "localBindPort": upstream.local_bind_port,
        "config": upstream.config,
        "meshGateway": mesh_gateway(upstream.mesh_gateway),
    })
}

fn mesh_gateway(mode: Option<MeshGatewayMode>) -> Value {
    match mode {
        Some(mode) => json!({ "mode": mode.as_str() }),
        None => Value::Null,
    }
}

fn gateway(gateway: &Gateway) -> Value {
    let address = |a: &Option<GatewayAddress>| {
        a.as_ref()
            .map(|a| json!({"address": a.address, "port": a.port}))
    };
    json!({
        "kind": gateway.kind.as_str(),
        "lanAddress": address(&gateway.lan_address),
        "wanAddress": address(&gateway.wan_address),
        "name": gateway.name,
        "tags": gateway.tags,
        "meta": string_map(&gateway.meta),
        "namespace": gateway.namespace,
        "partition": gateway.partition,
        "healthCheckPort": gateway.health_check_port,
        "proxy": gateway.proxy.as_ref().map(|p| json!({ "config": p.config })),
    })
}

fn transparent_proxy(tproxy: &TransparentProxy) -> Value {
    json!({
        "enabled": tproxy.enabled,
        "excludeInboundPorts": tproxy.exclude_inbound_ports,
        "excludeOutboundPorts": tproxy.exclude_outbound_ports,
        "excludeOutboundCIDRs": tproxy.exclude_outbound_cidrs,
        "excludeUIDs": tproxy.exclude_uids,
        "consulDNS": { "enabled": tproxy.consul_dns.enabled },
    })
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}
