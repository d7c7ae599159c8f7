//! Agent endpoints (`/v1/agent`): the agent's own configuration, the Connect CA roots and leaf
//! certificates it serves, and Connect authorization.

use std::collections::BTreeMap;
use std::fmt;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, require};
use crate::connect::CaRootList;
use crate::wire::{encode_segment, is_default, null_default};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

/// What `GET /v1/agent/self` returns, with the fields our components read named.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentSelf {
    /// The agent's configuration summary.
    pub config: AgentConfig,
    /// The agent's full runtime configuration (its keys vary between releases).
    #[serde(deserialize_with = "null_default")]
    pub debug_config: Map<String, Value>,
    /// The agent's gossip membership entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<Value>,
    /// Node metadata.
    #[serde(deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Other sections (`Coord`, `Stats`, `xDS`, ...), kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AgentSelf {
    /// The primary datacenter: `Config.PrimaryDatacenter`, else `DebugConfig.PrimaryDatacenter`.
    pub fn primary_datacenter(&self) -> Option<&str> {
        self.config
            .primary_datacenter
            .as_deref()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                self.debug_config
                    .get("PrimaryDatacenter")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
            })
    }
}

/// The `Config` section of `/v1/agent/self`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentConfig {
    /// Datacenter of the agent; `None` when the key is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Primary datacenter; `None` when the key is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_datacenter: Option<String>,
    /// Node name.
    pub node_name: String,
    /// Node ID.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Whether the agent is a server.
    pub server: bool,
    /// Consul version.
    pub version: String,
    /// Git revision.
    pub revision: String,
    /// Other keys, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A leaf certificate for a service (`/v1/agent/connect/ca/leaf/:service`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LeafCert {
    /// Serial number, colon-separated hex.
    pub serial_number: String,
    /// Certificate chain in PEM (leaf first).
    #[serde(rename = "CertPEM")]
    pub cert_pem: String,
    /// Private key in PEM; never shown by `Debug`.
    #[serde(rename = "PrivateKeyPEM")]
    pub private_key_pem: String,
    /// Service name.
    pub service: String,
    /// SPIFFE ID of the service.
    #[serde(rename = "ServiceURI")]
    pub service_uri: String,
    /// Kind, for agent or gateway certificates.
    #[serde(skip_serializing_if = "is_default")]
    pub kind: String,
    /// Start of validity (RFC 3339).
    pub valid_after: String,
    /// End of validity (RFC 3339).
    pub valid_before: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl fmt::Debug for LeafCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafCert")
            .field("serial_number", &self.serial_number)
            .field("service", &self.service)
            .field("service_uri", &self.service_uri)
            .field("valid_after", &self.valid_after)
            .field("valid_before", &self.valid_before)
            .field("private_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Body of `POST /v1/agent/connect/authorize`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthorizeRequest {
    /// Destination service name.
    pub target: String,
    /// SPIFFE ID (URI SAN) of the client certificate.
    #[serde(rename = "ClientCertURI")]
    pub client_cert_uri: String,
    /// Serial number of the client certificate, colon-separated hex.
    pub client_cert_serial: String,
    /// Namespace of the target (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
}

/// Answer of `POST /v1/agent/connect/authorize`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthorizeResponse {
    /// Whether the connection is allowed.
    pub authorized: bool,
    /// Why, in Consul's words.
    pub reason: String,
}

/// Agent endpoints; see [`Client::agent`].
#[derive(Clone, Copy, Debug)]
pub struct Agent<'a> {
    client: &'a Client,
}

impl<'a> Agent<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `GET /v1/agent/self`.
    pub async fn self_info(self) -> Result<AgentSelf, Error> {
        self.client
            .call_json(Call::new(Method::GET, "/v1/agent/self"))
            .await
    }

    /// `GET /v1/agent/connect/ca/roots` (blocking, cached by the agent, no ACL needed).
    pub async fn ca_roots(
        self,
        options: &QueryOptions,
    ) -> Result<QueryResponse<CaRootList>, Error> {
        let call = Call::new(Method::GET, "/v1/agent/connect/ca/roots").query_options(options);
        self.client.query(call).await
    }

    /// `GET /v1/agent/connect/ca/leaf/:service` (blocking: returns when a new certificate is due).
    pub async fn leaf_cert(
        self,
        service: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<LeafCert>, Error> {
        require("service name", service)?;
        let path = format!("/v1/agent/connect/ca/leaf/{}", encode_segment(service));
        self.client
            .query(Call::new(Method::GET, path).query_options(options))
            .await
    }

    /// `POST /v1/agent/connect/authorize`: may a client with this certificate reach `target`?
    pub async fn authorize(
        self,
        request: &AuthorizeRequest,
        options: &WriteOptions,
    ) -> Result<AuthorizeResponse, Error> {
        require("authorize Target", &request.target)?;
        let call = Call::new(Method::POST, "/v1/agent/connect/authorize")
            .write_options(options)
            .json(request)?;
        self.client.call_json(call).await
    }
}
