//! Catalog endpoints (`/v1/catalog`): register and deregister nodes, services and checks; list
//! datacenters, nodes and services. Also the service and proxy types shared with other areas.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, require};
use crate::health::HealthCheck;
use crate::wire::{encode_segment, is_default, null_default, string_enum};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

string_enum! {
    /// Kind of a service (`Kind`); empty for an ordinary service.
    #[derive(Default)]
    pub enum ServiceKind {
        /// An ordinary service (`""`).
        #[default]
        Typical => "",
        /// A sidecar proxy (`connect-proxy`).
        ConnectProxy => "connect-proxy",
        /// A mesh gateway (`mesh-gateway`).
        MeshGateway => "mesh-gateway",
        /// A terminating gateway (`terminating-gateway`).
        TerminatingGateway => "terminating-gateway",
        /// An ingress gateway (`ingress-gateway`).
        IngressGateway => "ingress-gateway",
        /// An API gateway (`api-gateway`).
        ApiGateway => "api-gateway",
    }
}

string_enum! {
    /// How a proxy's traffic reaches it (`Mode`).
    #[derive(Default)]
    pub enum ProxyMode {
        /// Defer to central configuration (`""`).
        #[default]
        Default => "",
        /// Traffic is redirected to the proxy (`transparent`).
        Transparent => "transparent",
        /// Applications dial the proxy's listeners (`direct`).
        Direct => "direct",
    }
}

string_enum! {
    /// How upstream traffic uses mesh gateways (`MeshGateway.Mode`).
    #[derive(Default)]
    pub enum MeshGatewayMode {
        /// Defer to central configuration (`""`).
        #[default]
        Default => "",
        /// Connect directly (`none`).
        None => "none",
        /// Through a gateway in the local datacenter (`local`).
        Local => "local",
        /// Through a gateway in the remote datacenter (`remote`).
        Remote => "remote",
    }
}

string_enum! {
    /// How an upstream is discovered (`DestinationType`).
    #[derive(Default)]
    pub enum UpstreamDestinationType {
        /// Unset; Consul treats it as `service` (`""`).
        #[default]
        Unspecified => "",
        /// A service name (`service`).
        Service => "service",
        /// A prepared query (`prepared_query`).
        PreparedQuery => "prepared_query",
    }
}

/// Body of `PUT /v1/catalog/register`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogRegistration {
    /// Node ID (a UUID); optional.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Node address.
    #[serde(skip_serializing_if = "is_default")]
    pub address: String,
    /// Datacenter; the agent's when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub datacenter: String,
    /// Node tagged addresses (`lan`, `wan`, ...).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub node_meta: BTreeMap<String, String>,
    /// Service to register on the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<AgentService>,
    /// One check to register.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthCheck>,
    /// Checks to register.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
    /// Leave an existing node's address and metadata alone.
    #[serde(skip_serializing_if = "is_default")]
    pub skip_node_update: bool,
    /// Namespace of the service and checks (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition of the node (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Node locality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
}

/// Body of `PUT /v1/catalog/deregister`: the node alone, or one of its services or checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogDeregistration {
    /// Node name.
    pub node: String,
    /// Obsolete; ignored by Consul.
    #[serde(skip_serializing_if = "is_default")]
    pub address: String,
    /// Datacenter; the agent's when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub datacenter: String,
    /// Service to remove, with its checks.
    #[serde(rename = "ServiceID", skip_serializing_if = "is_default")]
    pub service_id: String,
    /// Check to remove.
    #[serde(rename = "CheckID", skip_serializing_if = "is_default")]
    pub check_id: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
}

/// A service instance: what registration sends as `Service` and what Consul returns for a node's
/// or a health entry's service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentService {
    /// Service kind; empty for an ordinary service.
    #[serde(skip_serializing_if = "is_default")]
    pub kind: ServiceKind,
    /// Instance ID, unique on the node.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Service name.
    #[serde(skip_serializing_if = "is_default")]
    pub service: String,
    /// Tags.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u16,
    /// Address; the node's when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub address: String,
    /// Unix socket path, instead of an address and port.
    #[serde(skip_serializing_if = "is_default")]
    pub socket_path: String,
    /// Tagged addresses (`lan`, `wan`, `virtual`, ...).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// DNS SRV weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Let tags be changed outside the agent's anti-entropy.
    #[serde(skip_serializing_if = "is_default")]
    pub enable_tag_override: bool,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Agent content hash (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub content_hash: String,
    /// Proxy settings of a `connect-proxy` or gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyConfig>,
    /// Connect settings (native integration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ServiceConnect>,
    /// Peer the service was imported from (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub peer_name: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Datacenter (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub datacenter: String,
    /// Region and zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
}

/// A tagged address of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceAddress {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// DNS SRV weights of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Weights {
    /// Weight while all checks pass.
    pub passing: u32,
    /// Weight while some check warns.
    pub warning: u32,
}

/// Region and zone of a service or node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Locality {
    /// Region, such as an AWS region.
    #[serde(skip_serializing_if = "is_default")]
    pub region: String,
    /// Zone, such as an AWS availability zone.
    #[serde(skip_serializing_if = "is_default")]
    pub zone: String,
}

/// Connect settings of a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceConnect {
    /// The service speaks Connect natively.
    #[serde(skip_serializing_if = "is_default")]
    pub native: bool,
    /// Agent-side sidecar registration (agent API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_service: Option<Value>,
}

/// Proxy settings of a `connect-proxy` service or a gateway (`Proxy`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProxyConfig {
    /// Envoy extensions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub envoy_extensions: Vec<Value>,
    /// Name of the service this proxy fronts.
    #[serde(skip_serializing_if = "is_default")]
    pub destination_service_name: String,
    /// Instance ID of the service this proxy fronts.
    #[serde(rename = "DestinationServiceID", skip_serializing_if = "is_default")]
    pub destination_service_id: String,
    /// Address the application listens on; `127.0.0.1` when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub local_service_address: String,
    /// Port the application listens on.
    #[serde(skip_serializing_if = "is_default")]
    pub local_service_port: u16,
    /// Unix socket the application listens on.
    #[serde(skip_serializing_if = "is_default")]
    pub local_service_socket_path: String,
    /// Proxy mode.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: ProxyMode,
    /// Transparent proxy settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxy: Option<TransparentProxyConfig>,
    /// Opaque proxy configuration (`protocol`, `envoy_*`, ...).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    /// Upstreams the proxy listens for.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub upstreams: Vec<Upstream>,
    /// Mesh gateway use.
    #[serde(skip_serializing_if = "is_default")]
    pub mesh_gateway: MeshGatewayConfig,
    /// Paths exposed without mTLS.
    #[serde(skip_serializing_if = "is_default")]
    pub expose: ExposeConfig,
    /// Access log settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<Value>,
}

/// An upstream of a proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Upstream {
    /// How the destination is discovered.
    #[serde(skip_serializing_if = "is_default")]
    pub destination_type: UpstreamDestinationType,
    /// Admin partition of the destination (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub destination_partition: String,
    /// Namespace of the destination (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub destination_namespace: String,
    /// Cluster peer of the destination.
    #[serde(skip_serializing_if = "is_default")]
    pub destination_peer: String,
    /// Destination service (or prepared query) name.
    pub destination_name: String,
    /// Datacenter of the destination.
    #[serde(skip_serializing_if = "is_default")]
    pub datacenter: String,
    /// Address the proxy listens on for this upstream; `127.0.0.1` when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub local_bind_address: String,
    /// Port the proxy listens on for this upstream.
    #[serde(skip_serializing_if = "is_default")]
    pub local_bind_port: u16,
    /// Unix socket the proxy listens on for this upstream.
    #[serde(skip_serializing_if = "is_default")]
    pub local_bind_socket_path: String,
    /// Mode of that socket.
    #[serde(skip_serializing_if = "is_default")]
    pub local_bind_socket_mode: String,
    /// Opaque per-upstream configuration.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    /// Mesh gateway use for this upstream.
    #[serde(skip_serializing_if = "is_default")]
    pub mesh_gateway: MeshGatewayConfig,
    /// Set by Consul for upstreams that came from central configuration (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub centrally_configured: bool,
}

/// Mesh gateway use (`MeshGateway`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MeshGatewayConfig {
    /// Mode.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: MeshGatewayMode,
}

/// Transparent proxy settings (`TransparentProxy`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TransparentProxyConfig {
    /// Port outbound traffic is redirected to.
    #[serde(skip_serializing_if = "is_default")]
    pub outbound_listener_port: u16,
    /// Other transparent proxies may dial this instance directly.
    #[serde(skip_serializing_if = "is_default")]
    pub dialed_directly: bool,
}

/// Paths exposed without mTLS (`Expose`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExposeConfig {
    /// Expose the paths of HTTP and gRPC checks.
    #[serde(skip_serializing_if = "is_default")]
    pub checks: bool,
    /// Paths to expose.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub paths: Vec<ExposePath>,
}

/// One exposed path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExposePath {
    /// Port of the proxy's listener for the path.
    #[serde(skip_serializing_if = "is_default")]
    pub listener_port: u16,
    /// The path, such as `/metrics`.
    #[serde(skip_serializing_if = "is_default")]
    pub path: String,
    /// Port the application serves the path on.
    #[serde(skip_serializing_if = "is_default")]
    pub local_path_port: u16,
    /// `http` or `http2`.
    #[serde(skip_serializing_if = "is_default")]
    pub protocol: String,
    /// Set by Consul for paths taken from checks (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub parsed_from_check: bool,
}

/// A node as the catalog returns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Tagged addresses.
    #[serde(deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Metadata.
    #[serde(deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Peer the node was imported from.
    #[serde(skip_serializing_if = "is_default")]
    pub peer_name: String,
    /// Locality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
}

/// One instance of a service as `/v1/catalog/service/:name` returns it (node and service fields
/// side by side).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogService {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Node address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Node tagged addresses.
    #[serde(deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    #[serde(deserialize_with = "null_default")]
    pub node_meta: BTreeMap<String, String>,
    /// Service kind.
    #[serde(skip_serializing_if = "is_default")]
    pub service_kind: ServiceKind,
    /// Service instance ID.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Service address.
    pub service_address: String,
    /// Service tagged addresses.
    #[serde(deserialize_with = "null_default")]
    pub service_tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Service tags.
    #[serde(deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// Service metadata.
    #[serde(deserialize_with = "null_default")]
    pub service_meta: BTreeMap<String, String>,
    /// Service port.
    pub service_port: u16,
    /// Service weights.
    pub service_weights: Weights,
    /// Service tag override flag.
    pub service_enable_tag_override: bool,
    /// Proxy settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_proxy: Option<ProxyConfig>,
    /// Connect settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_connect: Option<ServiceConnect>,
    /// Service locality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_locality: Option<Locality>,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Checks (returned only by some endpoints).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
}

/// A node and its services keyed by instance ID (`/v1/catalog/node/:node`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogNode {
    /// The node.
    pub node: Option<Node>,
    /// Its services by instance ID.
    #[serde(deserialize_with = "null_default")]
    pub services: BTreeMap<String, AgentService>,
}

/// A node and its services as a list (`/v1/catalog/node-services/:node`), which also works with
/// the `*` namespace wildcard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogNodeServiceList {
    /// The node.
    pub node: Option<Node>,
    /// Its services.
    #[serde(deserialize_with = "null_default")]
    pub services: Vec<AgentService>,
}

/// Catalog endpoints; see [`Client::catalog`].
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a> {
    client: &'a Client,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `PUT /v1/catalog/register`.
    pub async fn register(
        self,
        registration: &CatalogRegistration,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        require("registration Node", &registration.node)?;
        let call = Call::new(Method::PUT, "/v1/catalog/register")
            .write_options(options)
            .json(registration)?;
        self.client.call_unit(call).await
    }

    /// `PUT /v1/catalog/deregister`.
    pub async fn deregister(
        self,
        deregistration: &CatalogDeregistration,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        require("deregistration Node", &deregistration.node)?;
        let call = Call::new(Method::PUT, "/v1/catalog/deregister")
            .write_options(options)
            .json(deregistration)?;
        self.client.call_unit(call).await
    }

    /// `GET /v1/catalog/datacenters`.
    pub async fn datacenters(self) -> Result<Vec<String>, Error> {
        let call = Call::new(Method::GET, "/v1/catalog/datacenters");
        let list: Option<Vec<String>> = self.client.call_json(call).await?;
        Ok(list.unwrap_or_default())
    }

    /// `GET /v1/catalog/nodes`.
    pub async fn nodes(self, options: &QueryOptions) -> Result<QueryResponse<Vec<Node>>, Error> {
        let call = Call::new(Method::GET, "/v1/catalog/nodes").query_options(options);
        list(self.client.query(call).await?)
    }

    /// `GET /v1/catalog/services`: service names and their tags.
    pub async fn services(
        self,
        options: &QueryOptions,
    ) -> Result<QueryResponse<BTreeMap<String, Vec<String>>>, Error> {
        let call = Call::new(Method::GET, "/v1/catalog/services").query_options(options);
        let response: QueryResponse<Option<BTreeMap<String, Option<Vec<String>>>>> =
            self.client.query(call).await?;
        Ok(response.map(|services| {
            services
                .unwrap_or_default()
                .into_iter()
                .map(|(name, tags)| (name, tags.unwrap_or_default()))
                .collect()
        }))
    }

    /// `GET /v1/catalog/service/:name`, keeping instances that carry every tag in `tags`.
    pub async fn service(
        self,
        name: &str,
        tags: &[&str],
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<CatalogService>>, Error> {
        self.instances("service", name, tags, options).await
    }

    /// `GET /v1/catalog/connect/:name`: the Connect-capable instances (proxies) of a service.
    pub async fn connect(
        self,
        name: &str,
        tags: &[&str],
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<CatalogService>>, Error> {
        self.instances("connect", name, tags, options).await
    }

    async fn instances(
        self,
        endpoint: &str,
        name: &str,
        tags: &[&str],
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<CatalogService>>, Error> {
        require("service name", name)?;
        let path = format!("/v1/catalog/{endpoint}/{}", encode_segment(name));
        let mut call = Call::new(Method::GET, path).query_options(options);
        for tag in tags {
            call = call.param_multi("tag", *tag);
        }
        list(self.client.query(call).await?)
    }

    /// `GET /v1/catalog/node/:node`; `None` when the node is unknown.
    pub async fn node(
        self,
        node: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<CatalogNode>>, Error> {
        require("node name", node)?;
        let path = format!("/v1/catalog/node/{}", encode_segment(node));
        let call = Call::new(Method::GET, path).query_options(options);
        let response: QueryResponse<Option<Option<CatalogNode>>> =
            self.client.query_optional(call).await?;
        Ok(response.map(Option::flatten))
    }

    /// `GET /v1/catalog/node-services/:node`; `None` when the node is unknown.
    pub async fn node_services(
        self,
        node: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<CatalogNodeServiceList>>, Error> {
        require("node name", node)?;
        let path = format!("/v1/catalog/node-services/{}", encode_segment(node));
        let call = Call::new(Method::GET, path).query_options(options);
        let response: QueryResponse<Option<Option<CatalogNodeServiceList>>> =
            self.client.query_optional(call).await?;
        Ok(response.map(|found| found.flatten().filter(|list| list.node.is_some())))
    }
}

/// Reads a JSON list that Consul may send as `null`.
pub(crate) fn list<T>(
    response: QueryResponse<Option<Vec<T>>>,
) -> Result<QueryResponse<Vec<T>>, Error> {
    Ok(response.map(Option::unwrap_or_default))
}
