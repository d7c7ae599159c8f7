//! Catalog records, in Consul's JSON shapes (PascalCase, Consul's `omitempty` choices).
//!
//! The same types decode request bodies (through [`crate::decode`], which is lenient like Go), are
//! written to the log and snapshot, and render responses, so what a client registers comes back as sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A node in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Node {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) node: String,
    pub(crate) address: String,
    pub(crate) datacenter: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) partition: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) peer_name: String,
    pub(crate) tagged_addresses: BTreeMap<String, String>,
    pub(crate) meta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) locality: Option<Locality>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl Node {
    /// Equal apart from the indexes (Consul's `IsSame`).
    pub(crate) fn same_as(&self, other: &Node) -> bool {
        let mut a = self.clone();
        a.create_index = other.create_index;
        a.modify_index = other.modify_index;
        a == *other
    }
}

/// A region/zone pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Locality {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) region: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) zone: String,
}

/// An address and port, as in a service's tagged addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ServiceAddress {
    pub(crate) address: String,
    pub(crate) port: i64,
}

/// DNS weights of a service instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Weights {
    pub(crate) passing: i64,
    pub(crate) warning: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

impl Weights {
    fn valid(&self) -> bool {
        self.passing >= 1 && self.warning >= 0 && self.passing <= 65535 && self.warning <= 65535
    }
}

/// A service instance registered on a node (Consul's `NodeService`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct NodeService {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) kind: String,
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) tags: Vec<String>,
    pub(crate) address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub(crate) meta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) socket_path: String,
    pub(crate) weights: Option<Weights>,
    pub(crate) enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) locality: Option<Locality>,
    pub(crate) proxy: ProxyConfig,
    pub(crate) connect: Map<String, Value>,
    pub(crate) peer_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) partition: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl NodeService {
    /// Fills in what Consul fills in on registration: ID from the name, weights {1,1} when absent or
    /// invalid, and expose path protocols.
    pub(crate) fn apply_defaults(&mut self) {
        if self.id.is_empty() && !self.service.is_empty() {
            self.id = self.service.clone();
        }
        match &self.weights {
            Some(w) if w.valid() => {}
            _ => self.weights = Some(Weights::default()),
        }
        for p in &mut self.proxy.expose.paths {
            if p.protocol.is_empty() {
                p.protocol = "http".into();
            }
        }
    }

    /// Equal apart from the indexes.
    pub(crate) fn same_as(&self, other: &NodeService) -> bool {
        let mut a = self.clone();
        a.create_index = other.create_index;
        a.modify_index = other.modify_index;
        a == *other
    }

    /// Whether this instance is Connect-native.
    pub(crate) fn is_native(&self) -> bool {
        self.connect
            .get("Native")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The service name this instance serves over Connect, if any (a sidecar's destination or a native
    /// service's own name).
    pub(crate) fn connect_target(&self) -> Option<&str> {
        if self.kind == "connect-proxy" && !self.proxy.destination_service_name.is_empty() {
            Some(&self.proxy.destination_service_name)
        } else if self.is_native() {
            Some(&self.service)
        } else {
            None
        }
    }
}

/// Proxy settings of a service (Consul's `ConnectProxyConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ProxyConfig {
    #[serde(skip_serializing_if = "Vec::is_empty", alias = "envoy_extensions")]
    pub(crate) envoy_extensions: Vec<Value>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "destination_service_name"
    )]
    pub(crate) destination_service_name: String,
    #[serde(
        rename = "DestinationServiceID",
        alias = "destination_service_id",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) destination_service_id: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "local_service_address"
    )]
    pub(crate) local_service_address: String,
    #[serde(skip_serializing_if = "is_zero", alias = "local_service_port")]
    pub(crate) local_service_port: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "local_service_socket_path"
    )]
    pub(crate) local_service_socket_path: String,
    pub(crate) mode: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(crate) config: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) upstreams: Vec<Upstream>,
    #[serde(alias = "mesh_gateway")]
    pub(crate) mesh_gateway: MeshGatewayConfig,
    pub(crate) expose: ExposeConfig,
    #[serde(
        skip_serializing_if = "TransparentProxyConfig::is_zero",
        alias = "transparent_proxy"
    )]
    pub(crate) transparent_proxy: TransparentProxyConfig,
    #[serde(skip_serializing_if = "Map::is_empty", alias = "access_logs")]
    pub(crate) access_logs: Map<String, Value>,
}

/// One upstream of a proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Upstream {
    #[serde(alias = "destination_type")]
    pub(crate) destination_type: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "destination_namespace"
    )]
    pub(crate) destination_namespace: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "destination_partition"
    )]
    pub(crate) destination_partition: String,
    #[serde(skip_serializing_if = "String::is_empty", alias = "destination_peer")]
    pub(crate) destination_peer: String,
    #[serde(alias = "destination_name")]
    pub(crate) destination_name: String,
    pub(crate) datacenter: String,
    #[serde(skip_serializing_if = "String::is_empty", alias = "local_bind_address")]
    pub(crate) local_bind_address: String,
    #[serde(skip_serializing_if = "is_zero", alias = "local_bind_port")]
    pub(crate) local_bind_port: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "local_bind_socket_path"
    )]
    pub(crate) local_bind_socket_path: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        alias = "local_bind_socket_mode"
    )]
    pub(crate) local_bind_socket_mode: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(crate) config: Map<String, Value>,
    #[serde(alias = "mesh_gateway")]
    pub(crate) mesh_gateway: MeshGatewayConfig,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) centrally_configured: bool,
}

/// How traffic uses mesh gateways.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct MeshGatewayConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) mode: String,
}

/// Paths exposed through the proxy without mTLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ExposeConfig {
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) checks: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<ExposePath>,
}

/// One exposed path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ExposePath {
    #[serde(skip_serializing_if = "is_zero", alias = "listener_port")]
    pub(crate) listener_port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) path: String,
    #[serde(skip_serializing_if = "is_zero", alias = "local_path_port")]
    pub(crate) local_path_port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) protocol: String,
    #[serde(skip_serializing_if = "is_false", alias = "parsed_from_check")]
    pub(crate) parsed_from_check: bool,
}

/// Transparent proxy settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct TransparentProxyConfig {
    #[serde(skip_serializing_if = "is_zero", alias = "outbound_listener_port")]
    pub(crate) outbound_listener_port: i64,
    #[serde(skip_serializing_if = "is_false", alias = "dialed_directly")]
    pub(crate) dialed_directly: bool,
}

impl TransparentProxyConfig {
    fn is_zero(&self) -> bool {
        self.outbound_listener_port == 0 && !self.dialed_directly
    }
}

/// A health check (Consul's `HealthCheck`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct HealthCheck {
    pub(crate) node: String,
    #[serde(rename = "CheckID")]
    pub(crate) check_id: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) notes: String,
    pub(crate) output: String,
    #[serde(rename = "ServiceID")]
    pub(crate) service_id: String,
    pub(crate) service_name: String,
    pub(crate) service_tags: Vec<String>,
    #[serde(rename = "Type")]
    pub(crate) check_type: String,
    pub(crate) interval: String,
    pub(crate) timeout: String,
    pub(crate) exposed_port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) peer_name: String,
    pub(crate) definition: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) partition: String,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl HealthCheck {
    /// Equal apart from the indexes.
    pub(crate) fn same_as(&self, other: &HealthCheck) -> bool {
        let mut a = self.clone();
        a.create_index = other.create_index;
        a.modify_index = other.modify_index;
        a == *other
    }
}

/// The health statuses a check may have.
pub(crate) const STATUSES: &[&str] = &["passing", "warning", "critical", "maintenance"];

/// Check definition keys, in Consul's spelling, with whether they hold a duration.
const DEFINITION_KEYS: &[(&str, bool)] = &[
    ("HTTP", false),
    ("TLSServerName", false),
    ("TLSSkipVerify", false),
    ("Header", false),
    ("Method", false),
    ("Body", false),
    ("DisableRedirects", false),
    ("TCP", false),
    ("TCPUseTLS", false),
    ("UDP", false),
    ("H2PING", false),
    ("OSService", false),
    ("H2PingUseTLS", false),
    ("Interval", true),
    ("OutputMaxSize", false),
    ("Timeout", true),
    ("DeregisterCriticalServiceAfter", true),
    ("ScriptArgs", false),
    ("DockerContainerID", false),
    ("Shell", false),
    ("GRPC", false),
    ("GRPCUseTLS", false),
    ("AliasNode", false),
    ("AliasService", false),
    ("TTL", true),
];

/// Normalises a check definition as Consul stores it: known keys in Consul's spelling, durations as Go
/// duration strings, zero values dropped.
pub(crate) fn normalize_definition(def: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, v) in def {
        let Some((name, is_duration)) = DEFINITION_KEYS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&k))
        else {
            continue;
        };
        let v = if *is_duration {
            match &v {
                Value::String(s) if s.is_empty() => continue,
                Value::String(s) => {
                    let d = crate::duration::parse_go(s)
                        .map_err(|e| format!("Definition.{name}: {e}"))?;
                    Value::String(crate::duration::format_go(d))
                }
                Value::Number(n) => {
                    let nanos = n.as_f64().unwrap_or(0.0);
                    if nanos == 0.0 {
                        continue;
                    }
                    if !(0.0..=(u64::MAX as f64)).contains(&nanos) {
                        return Err(format!("Definition.{name}: duration out of range"));
                    }
                    Value::String(crate::duration::format_go(std::time::Duration::from_nanos(
                        nanos as u64,
                    )))
                }
                Value::Null => continue,
                _ => return Err(format!("Definition.{name}: expected a duration")),
            }
        } else {
            v
        };
        let zero = match &v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
        };
        if !zero {
            out.insert((*name).to_owned(), v);
        }
    }
    Ok(out)
}

/// The check type Consul infers from a definition when none is given.
pub(crate) fn infer_check_type(def: &Map<String, Value>) -> &'static str {
    const ORDER: &[(&str, &str)] = &[
        ("ScriptArgs", "script"),
        ("HTTP", "http"),
        ("TCP", "tcp"),
        ("UDP", "udp"),
        ("GRPC", "grpc"),
        ("H2PING", "h2ping"),
        ("OSService", "os_service"),
        ("DockerContainerID", "docker"),
        ("TTL", "ttl"),
        ("AliasNode", "alias"),
        ("AliasService", "alias"),
    ];
    ORDER
        .iter()
        .find(|(k, _)| def.contains_key(*k))
        .map_or("", |(_, t)| t)
}
