//! Config entry endpoints (`/v1/config`): get, list, set (with check-and-set) and delete.
//!
//! The kinds our components use are typed: `service-defaults`, `proxy-defaults`, `mesh` and
//! `service-intentions`. Every other kind is kept as untyped JSON. Typed entries keep the fields
//! they do not name in `extra`, so an entry read, changed and written back loses nothing.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::catalog::{ExposeConfig, MeshGatewayConfig, ProxyMode, TransparentProxyConfig};
use crate::client::{Call, require};
use crate::wire::{
    NanosDuration, empty_as_none, encode_segment, is_default, null_default, string_enum,
};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

/// Kind name of [`ServiceDefaults`].
pub const SERVICE_DEFAULTS: &str = "service-defaults";
/// Kind name of [`ProxyDefaults`].
pub const PROXY_DEFAULTS: &str = "proxy-defaults";
/// Kind name of [`MeshConfig`].
pub const MESH: &str = "mesh";
/// Kind name of [`ServiceIntentions`].
pub const SERVICE_INTENTIONS: &str = "service-intentions";
/// The only name a `proxy-defaults` entry may have.
pub const PROXY_DEFAULTS_NAME: &str = "global";
/// The only name a `mesh` entry may have.
pub const MESH_NAME: &str = "mesh";

/// A config entry of any kind.
// Entries are read and written one at a time, never stored in bulk, so the size gap between the
// variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigEntry {
    /// `service-defaults`.
    ServiceDefaults(ServiceDefaults),
    /// `proxy-defaults`.
    ProxyDefaults(ProxyDefaults),
    /// `mesh`.
    Mesh(MeshConfig),
    /// `service-intentions`.
    ServiceIntentions(ServiceIntentions),
    /// Any other kind, as JSON.
    Other(UntypedConfigEntry),
}

/// A config entry of a kind this crate does not type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UntypedConfigEntry {
    /// The kind (`service-router`, `exported-services`, ...).
    pub kind: String,
    /// Every other field, as received.
    pub fields: Map<String, Value>,
}

impl ConfigEntry {
    /// The entry's kind.
    pub fn kind(&self) -> &str {
        match self {
            ConfigEntry::ServiceDefaults(_) => SERVICE_DEFAULTS,
            ConfigEntry::ProxyDefaults(_) => PROXY_DEFAULTS,
            ConfigEntry::Mesh(_) => MESH,
            ConfigEntry::ServiceIntentions(_) => SERVICE_INTENTIONS,
            ConfigEntry::Other(e) => &e.kind,
        }
    }

    /// The entry's name (`mesh` for the mesh entry).
    pub fn name(&self) -> &str {
        match self {
            ConfigEntry::ServiceDefaults(e) => &e.name,
            ConfigEntry::ProxyDefaults(e) => &e.name,
            ConfigEntry::Mesh(_) => MESH_NAME,
            ConfigEntry::ServiceIntentions(e) => &e.name,
            ConfigEntry::Other(e) => e.fields.get("Name").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The Raft index of the entry's last change; the index to use for check-and-set.
    pub fn modify_index(&self) -> u64 {
        match self {
            ConfigEntry::ServiceDefaults(e) => e.modify_index,
            ConfigEntry::ProxyDefaults(e) => e.modify_index,
            ConfigEntry::Mesh(e) => e.modify_index,
            ConfigEntry::ServiceIntentions(e) => e.modify_index,
            ConfigEntry::Other(e) => e
                .fields
                .get("ModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        }
    }

    /// Decodes an entry from its JSON object, dispatching on `Kind`.
    pub fn from_value(value: Value) -> Result<Self, ConfigEntryError> {
        let fail = |field: &str, message: &str| ConfigEntryError {
            field: field.to_string(),
            message: message.to_string(),
        };
        let Value::Object(mut fields) = value else {
            return Err(fail(".", "a config entry must be a JSON object"));
        };
        let kind = match fields.remove("Kind") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(fail("Kind", "must be a string")),
            None => return Err(fail("Kind", "missing")),
        };
        fn typed<T: serde::de::DeserializeOwned>(
            fields: Map<String, Value>,
        ) -> Result<T, ConfigEntryError> {
            serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| ConfigEntryError {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })
        }
        Ok(match kind.as_str() {
            SERVICE_DEFAULTS => ConfigEntry::ServiceDefaults(typed(fields)?),
            PROXY_DEFAULTS => ConfigEntry::ProxyDefaults(typed(fields)?),
            MESH => ConfigEntry::Mesh(typed(fields)?),
            SERVICE_INTENTIONS => ConfigEntry::ServiceIntentions(typed(fields)?),
            _ => ConfigEntry::Other(UntypedConfigEntry { kind, fields }),
        })
    }
}

/// Why a JSON object is not a valid config entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at `{field}`: {message}")]
pub struct ConfigEntryError {
    /// JSON path of the value at fault, relative to the entry.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Serialize for ConfigEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T: Serialize> {
            #[serde(rename = "Kind")]
            kind: &'a str,
            #[serde(flatten)]
            entry: &'a T,
        }
        let kind = self.kind();
        match self {
            ConfigEntry::ServiceDefaults(entry) => Tagged { kind, entry }.serialize(s),
            ConfigEntry::ProxyDefaults(entry) => Tagged { kind, entry }.serialize(s),
            ConfigEntry::Mesh(entry) => Tagged { kind, entry }.serialize(s),
            ConfigEntry::ServiceIntentions(entry) => Tagged { kind, entry }.serialize(s),
            ConfigEntry::Other(entry) => {
                let mut fields = entry.fields.clone();
                fields.remove("Kind");
                Tagged {
                    kind,
                    entry: &fields,
                }
                .serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ConfigEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        ConfigEntry::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// `service-defaults`: defaults for every instance of one service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceDefaults {
    /// Service name.
    pub name: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Protocol (`tcp`, `http`, `http2`, `grpc`).
    #[serde(skip_serializing_if = "is_default")]
    pub protocol: String,
    /// Proxy mode.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: ProxyMode,
    /// Transparent proxy settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxy: Option<TransparentProxyConfig>,
    /// `strict` or `permissive` inbound mTLS.
    #[serde(rename = "MutualTLSMode", skip_serializing_if = "is_default")]
    pub mutual_tls_mode: String,
    /// Mesh gateway use.
    #[serde(skip_serializing_if = "is_default")]
    pub mesh_gateway: MeshGatewayConfig,
    /// Paths exposed without mTLS.
    #[serde(skip_serializing_if = "is_default")]
    pub expose: ExposeConfig,
    /// SNI for a service outside the mesh.
    #[serde(rename = "ExternalSNI", skip_serializing_if = "is_default")]
    pub external_sni: String,
    /// Settings for this service's upstreams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_config: Option<UpstreamConfiguration>,
    /// Destination of a terminating gateway service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Value>,
    /// Inbound connection limit per instance.
    #[serde(skip_serializing_if = "is_default")]
    pub max_inbound_connections: u32,
    /// Timeout connecting to the local application, in milliseconds.
    #[serde(skip_serializing_if = "is_default")]
    pub local_connect_timeout_ms: u32,
    /// Timeout of requests to the local application, in milliseconds.
    #[serde(skip_serializing_if = "is_default")]
    pub local_request_timeout_ms: u32,
    /// How inbound connections are balanced across threads.
    #[serde(skip_serializing_if = "is_default")]
    pub balance_inbound_connections: String,
    /// Envoy extensions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub envoy_extensions: Vec<Value>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `UpstreamConfig` of a `service-defaults` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpstreamConfiguration {
    /// Per-upstream settings.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub overrides: Vec<UpstreamConfig>,
    /// Settings for every upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaults: Option<UpstreamConfig>,
}

/// Settings for one upstream or for all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpstreamConfig {
    /// Upstream service name (overrides only).
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    /// Upstream partition (overrides only).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Upstream namespace (overrides only).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Upstream peer (overrides only).
    #[serde(skip_serializing_if = "is_default")]
    pub peer: String,
    /// Listener escape hatch.
    #[serde(rename = "EnvoyListenerJSON", skip_serializing_if = "is_default")]
    pub envoy_listener_json: String,
    /// Cluster escape hatch.
    #[serde(rename = "EnvoyClusterJSON", skip_serializing_if = "is_default")]
    pub envoy_cluster_json: String,
    /// Protocol of the upstream.
    #[serde(skip_serializing_if = "is_default")]
    pub protocol: String,
    /// Connect timeout in milliseconds.
    #[serde(skip_serializing_if = "is_default")]
    pub connect_timeout_ms: u32,
    /// Connection limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<UpstreamLimits>,
    /// Outlier detection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive_health_check: Option<PassiveHealthCheck>,
    /// Mesh gateway use.
    #[serde(skip_serializing_if = "is_default")]
    pub mesh_gateway: MeshGatewayConfig,
    /// How outbound connections are balanced.
    #[serde(skip_serializing_if = "is_default")]
    pub balance_outbound_connections: String,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Connection limits of an upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpstreamLimits {
    /// Most connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Most queued requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Most concurrent requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
}

/// Outlier detection of an upstream (`PassiveHealthCheck`). Durations are integer nanoseconds on
/// the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PassiveHealthCheck {
    /// Time between ejection sweeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<NanosDuration>,
    /// Consecutive 5xx responses before ejection.
    pub max_failures: u32,
    /// Percent chance of ejecting on consecutive 5xx.
    #[serde(
        rename = "EnforcingConsecutive5xx",
        skip_serializing_if = "Option::is_none"
    )]
    pub enforcing_consecutive_5xx: Option<u32>,
    /// Consecutive 5xx responses before ejection (newer releases).
    #[serde(rename = "Consecutive5xx", skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway failures before ejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    /// Percent chance of ejecting on consecutive gateway failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_gateway_failure: Option<u32>,
    /// Most hosts ejected at once, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Base ejection time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<NanosDuration>,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `proxy-defaults` (always named `global`): defaults for every proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProxyDefaults {
    /// Always `global`.
    pub name: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Proxy mode.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: ProxyMode,
    /// Transparent proxy settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxy: Option<TransparentProxyConfig>,
    /// `strict` or `permissive` inbound mTLS.
    #[serde(rename = "MutualTLSMode", skip_serializing_if = "is_default")]
    pub mutual_tls_mode: String,
    /// Opaque proxy configuration (`protocol`, `envoy_*`, ...).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    /// Mesh gateway use.
    #[serde(skip_serializing_if = "is_default")]
    pub mesh_gateway: MeshGatewayConfig,
    /// Paths exposed without mTLS.
    #[serde(skip_serializing_if = "is_default")]
    pub expose: ExposeConfig,
    /// Access log settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<Value>,
    /// Envoy extensions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub envoy_extensions: Vec<Value>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `mesh` (always named `mesh`): mesh-wide settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshConfig {
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Transparent proxy settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxy: Option<MeshTransparentProxy>,
    /// Allow services to use permissive mTLS.
    #[serde(
        rename = "AllowEnablingPermissiveMutualTLS",
        skip_serializing_if = "is_default"
    )]
    pub allow_enabling_permissive_mutual_tls: bool,
    /// Validate Envoy clusters.
    #[serde(skip_serializing_if = "is_default")]
    pub validate_clusters: bool,
    /// TLS settings of the mesh.
    #[serde(rename = "TLS", skip_serializing_if = "Option::is_none")]
    pub tls: Option<MeshTls>,
    /// HTTP settings of the mesh.
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub http: Option<MeshHttp>,
    /// Peering settings of the mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peering: Option<MeshPeering>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `TransparentProxy` of the mesh entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshTransparentProxy {
    /// Transparent proxies may only reach destinations in the mesh.
    pub mesh_destinations_only: bool,
}

/// `TLS` of the mesh entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshTls {
    /// Settings for inbound connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming: Option<MeshDirectionalTls>,
    /// Settings for outbound connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<MeshDirectionalTls>,
}

/// TLS versions and cipher suites for one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshDirectionalTls {
    /// Lowest TLS version (`TLSv1_2`, ...).
    #[serde(rename = "TLSMinVersion", skip_serializing_if = "is_default")]
    pub tls_min_version: String,
    /// Highest TLS version.
    #[serde(rename = "TLSMaxVersion", skip_serializing_if = "is_default")]
    pub tls_max_version: String,
    /// Cipher suites for TLS 1.2 and below.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub cipher_suites: Vec<String>,
}

/// `HTTP` of the mesh entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshHttp {
    /// Remove incoming `X-Forwarded-Client-Cert` headers.
    #[serde(rename = "SanitizeXForwardedClientCert")]
    pub sanitize_x_forwarded_client_cert: bool,
}

/// `Peering` of the mesh entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshPeering {
    /// Peering control traffic goes through mesh gateways.
    pub peer_through_mesh_gateways: bool,
}

string_enum! {
    /// An intention's decision.
    pub enum IntentionAction {
        /// `allow`.
        Allow => "allow",
        /// `deny`.
        Deny => "deny",
    }
}

/// `service-intentions`: who may reach one destination service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceIntentions {
    /// Destination service name (or `*`).
    pub name: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Sources, each with its action or permissions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub sources: Vec<SourceIntention>,
    /// JWT requirements.
    #[serde(rename = "JWT", skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Value>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One source of a `service-intentions` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SourceIntention {
    /// Source service name (or `*`).
    pub name: String,
    /// Source cluster peer.
    #[serde(skip_serializing_if = "is_default")]
    pub peer: String,
    /// Source admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Source namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Source sameness group (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub sameness_group: String,
    /// L4 decision; absent when `permissions` are given.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub action: Option<IntentionAction>,
    /// L7 permissions, first match wins.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub permissions: Vec<IntentionPermission>,
    /// Precedence (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub precedence: i32,
    /// Source type; `consul`.
    #[serde(rename = "Type", skip_serializing_if = "is_default")]
    pub source_type: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// ID of the legacy intention this source came from.
    #[serde(rename = "LegacyID", skip_serializing_if = "is_default")]
    pub legacy_id: String,
    /// Metadata of the legacy intention.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub legacy_meta: BTreeMap<String, String>,
    /// Creation time of the legacy intention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_create_time: Option<String>,
    /// Update time of the legacy intention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_update_time: Option<String>,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SourceIntention {
    /// True when `other` names the same source (name, namespace, partition, peer, sameness group).
    pub fn same_source(&self, other: &SourceIntention) -> bool {
        self.name == other.name
            && self.namespace == other.namespace
            && self.partition == other.partition
            && self.peer == other.peer
            && self.sameness_group == other.sameness_group
    }
}

/// An L7 permission of an intention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IntentionPermission {
    /// Decision when the permission matches.
    pub action: IntentionAction,
    /// HTTP request match.
    #[serde(rename = "HTTP", default, skip_serializing_if = "Option::is_none")]
    pub http: Option<IntentionHttpPermission>,
    /// JWT requirements.
    #[serde(rename = "JWT", default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Value>,
}

/// HTTP request match of an L7 permission.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IntentionHttpPermission {
    /// Exact path.
    #[serde(skip_serializing_if = "is_default")]
    pub path_exact: String,
    /// Path prefix.
    #[serde(skip_serializing_if = "is_default")]
    pub path_prefix: String,
    /// Path regular expression.
    #[serde(skip_serializing_if = "is_default")]
    pub path_regex: String,
    /// Methods.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub methods: Vec<String>,
    /// Header matches, all of which must hold.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub header: Vec<IntentionHttpHeaderPermission>,
}

/// A header match of an L7 permission.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IntentionHttpHeaderPermission {
    /// Header name.
    pub name: String,
    /// The header is present.
    #[serde(skip_serializing_if = "is_default")]
    pub present: bool,
    /// Exact value.
    #[serde(skip_serializing_if = "is_default")]
    pub exact: String,
    /// Value prefix.
    #[serde(skip_serializing_if = "is_default")]
    pub prefix: String,
    /// Value suffix.
    #[serde(skip_serializing_if = "is_default")]
    pub suffix: String,
    /// Value substring.
    #[serde(skip_serializing_if = "is_default")]
    pub contains: String,
    /// Value regular expression.
    #[serde(skip_serializing_if = "is_default")]
    pub regex: String,
    /// Compare case-insensitively.
    #[serde(skip_serializing_if = "is_default")]
    pub ignore_case: bool,
    /// Invert the match.
    #[serde(skip_serializing_if = "is_default")]
    pub invert: bool,
}

fn decode_entry(value: Value, path: &str, prefix: &str) -> Result<ConfigEntry, Error> {
    ConfigEntry::from_value(value).map_err(|e| Error::Decode {
        method: "GET".to_string(),
        path: path.to_string(),
        field: match (prefix.is_empty(), e.field.as_str()) {
            (true, _) => e.field,
            (false, ".") => prefix.to_string(),
            (false, _) => format!("{prefix}.{}", e.field),
        },
        message: e.message,
    })
}

/// Config entry endpoints; see [`Client::config_entries`].
#[derive(Clone, Copy, Debug)]
pub struct ConfigEntries<'a> {
    client: &'a Client,
}

impl<'a> ConfigEntries<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `GET /v1/config/:kind/:name`; `None` when there is no such entry.
    pub async fn get(
        self,
        kind: &str,
        name: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<ConfigEntry>>, Error> {
        require("config entry kind", kind)?;
        require("config entry name", name)?;
        let path = format!(
            "/v1/config/{}/{}",
            encode_segment(kind),
            encode_segment(name)
        );
        let response: QueryResponse<Option<Value>> = self
            .client
            .query_optional(Call::new(Method::GET, path.clone()).query_options(options))
            .await?;
        let QueryResponse { value, meta } = response;
        let entry = match value {
            None | Some(Value::Null) => None,
            Some(value) => Some(decode_entry(value, &path, "")?),
        };
        Ok(QueryResponse { value: entry, meta })
    }

    /// `GET /v1/config/:kind`.
    pub async fn list(
        self,
        kind: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<ConfigEntry>>, Error> {
        require("config entry kind", kind)?;
        let path = format!("/v1/config/{}", encode_segment(kind));
        let response: QueryResponse<Option<Vec<Value>>> = self
            .client
            .query(Call::new(Method::GET, path.clone()).query_options(options))
            .await?;
        let QueryResponse { value, meta } = response;
        let entries = value
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, value)| decode_entry(value, &path, &format!("[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueryResponse {
            value: entries,
            meta,
        })
    }

    /// `PUT /v1/config`. Returns Consul's answer; `false` means it did not apply the entry.
    pub async fn set(self, entry: &ConfigEntry, options: &WriteOptions) -> Result<bool, Error> {
        require("config entry name", entry.name())?;
        let call = Call::new(Method::PUT, "/v1/config")
            .write_options(options)
            .json(entry)?;
        self.client.call_bool(call).await
    }

    /// `PUT /v1/config?cas=:index`: writes only if the entry's `ModifyIndex` is still `index`
    /// (0: only if it does not exist). `false` when another write got there first.
    pub async fn set_cas(
        self,
        entry: &ConfigEntry,
        index: u64,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        require("config entry name", entry.name())?;
        let call = Call::new(Method::PUT, "/v1/config")
            .param("cas", index.to_string())
            .write_options(options)
            .json(entry)?;
        self.client.call_bool(call).await
    }

    /// `DELETE /v1/config/:kind/:name`. Deleting an entry that does not exist succeeds.
    pub async fn delete(self, kind: &str, name: &str, options: &WriteOptions) -> Result<(), Error> {
        require("config entry kind", kind)?;
        require("config entry name", name)?;
        let path = format!(
            "/v1/config/{}/{}",
            encode_segment(kind),
            encode_segment(name)
        );
        self.client
            .call_unit(Call::new(Method::DELETE, path).write_options(options))
            .await
    }

    /// `DELETE /v1/config/:kind/:name?cas=:index`: deletes only if the entry's `ModifyIndex` is
    /// still `index`. `false` when it was not deleted.
    pub async fn delete_cas(
        self,
        kind: &str,
        name: &str,
        index: u64,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        require("config entry kind", kind)?;
        require("config entry name", name)?;
        let path = format!(
            "/v1/config/{}/{}",
            encode_segment(kind),
            encode_segment(name)
        );
        let call = Call::new(Method::DELETE, path)
            .param("cas", index.to_string())
            .write_options(options);
        self.client.call_bool(call).await
    }
}
