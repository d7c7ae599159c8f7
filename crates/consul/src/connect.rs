//! Connect endpoints (`/v1/connect`): CA roots and CA configuration, intention match, check and
//! exact lookup, and intention upsert and delete through `service-intentions` config entries.

use std::collections::BTreeMap;
use std::fmt;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, require};
use crate::config_entry::{
    ConfigEntry, IntentionAction, IntentionPermission, SERVICE_INTENTIONS, ServiceIntentions,
    SourceIntention,
};
use crate::wire::{empty_as_none, is_default, null_default};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

/// How many times an intention upsert or delete re-reads and retries after losing a
/// check-and-set race.
const CAS_ATTEMPTS: u32 = 5;

/// The CA roots (`/v1/connect/ca/roots`, `/v1/agent/connect/ca/roots`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CaRootList {
    /// ID of the root that signs new certificates.
    #[serde(rename = "ActiveRootID")]
    pub active_root_id: String,
    /// Trust domain (`<cluster id>.consul`).
    pub trust_domain: String,
    /// Every root to trust (not just the active one).
    #[serde(deserialize_with = "null_default")]
    pub roots: Vec<CaRoot>,
}

impl CaRootList {
    /// The active root, if the list names one that is present.
    pub fn active(&self) -> Option<&CaRoot> {
        self.roots.iter().find(|r| r.id == self.active_root_id)
    }
}

/// One CA root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CaRoot {
    /// ID: colon-hex SHA-1 of the certificate.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    pub name: String,
    /// Serial number.
    pub serial_number: u64,
    /// ID of the signing key, colon-hex.
    #[serde(rename = "SigningKeyID")]
    pub signing_key_id: String,
    /// Trust domain of an external CA.
    #[serde(skip_serializing_if = "is_default")]
    pub external_trust_domain: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Root certificate in PEM.
    pub root_cert: String,
    /// Intermediates in PEM.
    #[serde(deserialize_with = "null_default")]
    pub intermediate_certs: Vec<String>,
    /// Whether this root signs new certificates.
    pub active: bool,
    /// Key type (`ec` or `rsa`).
    pub private_key_type: String,
    /// Key size.
    pub private_key_bits: u32,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// The CA configuration (`/v1/connect/ca/configuration`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CaConfig {
    /// Cluster ID (read only).
    #[serde(rename = "ClusterID", skip_serializing_if = "is_default")]
    pub cluster_id: String,
    /// Provider (`consul`, `vault`, `aws-pca`).
    pub provider: String,
    /// Provider settings (`LeafCertTTL`, `RotationPeriod`, `PrivateKeyType`, ...). May hold a
    /// private key or a Vault token, so `Debug` shows only the keys.
    #[serde(deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    /// Provider state (read only).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub state: BTreeMap<String, String>,
    /// Rotate roots without cross-signing.
    #[serde(skip_serializing_if = "is_default")]
    pub force_without_cross_signing: bool,
    /// Raft index of creation (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change (read only).
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
}

impl fmt::Debug for CaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaConfig")
            .field("cluster_id", &self.cluster_id)
            .field("provider", &self.provider)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field(
                "force_without_cross_signing",
                &self.force_without_cross_signing,
            )
            .field("modify_index", &self.modify_index)
            .finish_non_exhaustive()
    }
}

/// An intention as the intention endpoints return it (one source, one destination).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Intention {
    /// Legacy ID, if the intention has one.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Source peer.
    #[serde(skip_serializing_if = "is_default")]
    pub source_peer: String,
    /// Source namespace.
    #[serde(rename = "SourceNS", skip_serializing_if = "is_default")]
    pub source_ns: String,
    /// Source service name (or `*`).
    pub source_name: String,
    /// Source partition.
    #[serde(skip_serializing_if = "is_default")]
    pub source_partition: String,
    /// Source sameness group.
    #[serde(skip_serializing_if = "is_default")]
    pub source_sameness_group: String,
    /// Destination namespace.
    #[serde(rename = "DestinationNS", skip_serializing_if = "is_default")]
    pub destination_ns: String,
    /// Destination service name (or `*`).
    pub destination_name: String,
    /// Destination partition.
    #[serde(skip_serializing_if = "is_default")]
    pub destination_partition: String,
    /// Source type; `consul`.
    #[serde(skip_serializing_if = "is_default")]
    pub source_type: String,
    /// L4 decision; absent for L7 intentions.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_as_none"
    )]
    pub action: Option<IntentionAction>,
    /// L7 permissions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub permissions: Vec<IntentionPermission>,
    /// Metadata.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    /// Precedence; higher is evaluated first.
    #[serde(skip_serializing_if = "is_default")]
    pub precedence: i32,
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Update time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Content hash.
    #[serde(skip_serializing_if = "is_default")]
    pub hash: String,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
}

/// Which side `intention_match` matches names on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentionMatchBy {
    /// Intentions whose source matches (`by=source`).
    Source,
    /// Intentions whose destination matches (`by=destination`).
    Destination,
}

/// Connect endpoints; see [`Client::connect`].
#[derive(Clone, Copy, Debug)]
pub struct Connect<'a> {
    client: &'a Client,
}

impl<'a> Connect<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `GET /v1/connect/ca/roots` (blocking).
    pub async fn ca_roots(
        self,
        options: &QueryOptions,
    ) -> Result<QueryResponse<CaRootList>, Error> {
        let call = Call::new(Method::GET, "/v1/connect/ca/roots").query_options(options);
        self.client.query(call).await
    }

    /// `GET /v1/connect/ca/configuration`.
    pub async fn ca_config(self, options: &QueryOptions) -> Result<QueryResponse<CaConfig>, Error> {
        let call = Call::new(Method::GET, "/v1/connect/ca/configuration").query_options(options);
        self.client.query(call).await
    }

    /// `PUT /v1/connect/ca/configuration`.
    pub async fn set_ca_config(
        self,
        config: &CaConfig,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        require("CA Provider", &config.provider)?;
        let call = Call::new(Method::PUT, "/v1/connect/ca/configuration")
            .write_options(options)
            .json(config)?;
        self.client.call_unit(call).await
    }

    /// `GET /v1/connect/intentions/match?by=..&name=..`: for each name, the intentions that
    /// match it, in evaluation order (blocking).
    pub async fn intention_match(
        self,
        by: IntentionMatchBy,
        names: &[&str],
        options: &QueryOptions,
    ) -> Result<QueryResponse<BTreeMap<String, Vec<Intention>>>, Error> {
        if names.is_empty() {
            return Err(Error::InvalidArgument(
                "intention match needs at least one name".into(),
            ));
        }
        let by = match by {
            IntentionMatchBy::Source => "source",
            IntentionMatchBy::Destination => "destination",
        };
        let mut call = Call::new(Method::GET, "/v1/connect/intentions/match")
            .param("by", by)
            .query_options(options);
        for name in names {
            require("intention match name", name)?;
            call = call.param_multi("name", *name);
        }
        let response: QueryResponse<Option<BTreeMap<String, Option<Vec<Intention>>>>> =
            self.client.query(call).await?;
        Ok(response.map(|matches| {
            matches
                .unwrap_or_default()
                .into_iter()
                .map(|(name, list)| (name, list.unwrap_or_default()))
                .collect()
        }))
    }

    /// `GET /v1/connect/intentions/check?source=..&destination=..`: would a connection be allowed?
    /// L7 intentions count as deny here, as in Consul.
    pub async fn intention_check(
        self,
        source: &str,
        destination: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<bool>, Error> {
        require("intention source", source)?;
        require("intention destination", destination)?;
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Allowed")]
            allowed: bool,
        }
        let call = Call::new(Method::GET, "/v1/connect/intentions/check")
            .param("source", source)
            .param("destination", destination)
            .query_options(options);
        let response: QueryResponse<Answer> = self.client.query(call).await?;
        Ok(response.map(|a| a.allowed))
    }

    /// `GET /v1/connect/intentions/exact?source=..&destination=..`; `None` when there is none.
    pub async fn intention_get_exact(
        self,
        source: &str,
        destination: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<Intention>>, Error> {
        require("intention source", source)?;
        require("intention destination", destination)?;
        let call = Call::new(Method::GET, "/v1/connect/intentions/exact")
            .param("source", source)
            .param("destination", destination)
            .query_options(options);
        let response: QueryResponse<Option<Option<Intention>>> =
            self.client.query_optional(call).await?;
        Ok(response.map(Option::flatten))
    }

    /// Adds `source` to the `service-intentions` entry of `destination` (creating the entry if
    /// needed), replacing any source that names the same service. Uses check-and-set writes and
    /// re-reads when another writer got there first. The namespace and partition of the entry come
    /// from `options`.
    pub async fn upsert_intention(
        self,
        destination: &str,
        source: SourceIntention,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        require("intention destination", destination)?;
        require("intention source Name", &source.name)?;
        self.update_intentions(destination, options, |entry| {
            match entry.sources.iter_mut().find(|s| s.same_source(&source)) {
                Some(existing) => *existing = source.clone(),
                None => entry.sources.push(source.clone()),
            }
            true
        })
        .await
        .map(|_| ())
    }

    /// Removes the source naming the same service as `source` from the `service-intentions`
    /// entry of `destination`; deletes the entry when no source is left. Returns whether a
    /// source was removed.
    pub async fn delete_intention(
        self,
        destination: &str,
        source: &SourceIntention,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        require("intention destination", destination)?;
        require("intention source Name", &source.name)?;
        self.update_intentions(destination, options, |entry| {
            let before = entry.sources.len();
            entry.sources.retain(|s| !s.same_source(source));
            entry.sources.len() != before
        })
        .await
    }

    /// Reads the destination's entry, applies `change` (which says whether it changed anything),
    /// and writes it back with check-and-set, retrying on conflicts.
    async fn update_intentions(
        self,
        destination: &str,
        options: &WriteOptions,
        mut change: impl FnMut(&mut ServiceIntentions) -> bool,
    ) -> Result<bool, Error> {
        let read = QueryOptions {
            datacenter: options.datacenter.clone(),
            namespace: options.namespace.clone(),
            partition: options.partition.clone(),
            token: options.token.clone(),
            ..QueryOptions::default()
        };
        let entries = self.client.config_entries();
        for _ in 0..CAS_ATTEMPTS {
            let current = entries
                .get(SERVICE_INTENTIONS, destination, &read)
                .await?
                .value;
            let (mut entry, index) = match current {
                Some(ConfigEntry::ServiceIntentions(entry)) => {
                    let index = entry.modify_index;
                    (entry, index)
                }
                Some(other) => {
                    return Err(Error::InvalidArgument(format!(
                        "expected a {SERVICE_INTENTIONS} entry, got kind {}",
                        other.kind()
                    )));
                }
                None => (
                    ServiceIntentions {
                        name: destination.to_string(),
                        namespace: options.namespace.clone().unwrap_or_default(),
                        partition: options.partition.clone().unwrap_or_default(),
                        ..ServiceIntentions::default()
                    },
                    0,
                ),
            };
            if !change(&mut entry) {
                return Ok(false);
            }
            let written = if entry.sources.is_empty() {
                if index == 0 {
                    return Ok(true);
                }
                entries
                    .delete_cas(SERVICE_INTENTIONS, destination, index, options)
                    .await?
            } else {
                entries
                    .set_cas(&ConfigEntry::ServiceIntentions(entry), index, options)
                    .await?
            };
            if written {
                return Ok(true);
            }
            tracing::debug!(
                destination,
                "intention write lost a check-and-set race; re-reading"
            );
        }
        Err(Error::CasConflict {
            what: format!("{SERVICE_INTENTIONS} entry {destination:?}"),
            attempts: CAS_ATTEMPTS,
        })
    }
}
