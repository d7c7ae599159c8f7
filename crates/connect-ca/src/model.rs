//! The JSON shapes Consul serves for CA roots and leaf certificates, plus the secret wrapper.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The `Name` Consul's built-in provider gives its roots.
pub const ROOT_NAME: &str = "Consul CA Primary Cert";

/// A PEM string holding a private key. `Debug` and `Display` print a placeholder, never the key;
/// serde reads and writes the plain string (for persistence and the leaf API).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps a PEM string.
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// The PEM text. Handle with care: this is key material.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("SecretPem(<empty>)")
        } else {
            f.write_str("SecretPem(<redacted>)")
        }
    }
}

/// One trusted root, as an element of `Roots` in `GET /v1/connect/ca/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaRoot {
    /// Colon-hex SHA-1 fingerprint of the certificate DER.
    #[serde(rename = "ID")]
    pub id: String,
    /// Human-friendly name (`Consul CA Primary Cert`).
    pub name: String,
    /// The certificate's serial number.
    pub serial_number: u64,
    /// Colon-hex subject key ID of the signing key (the AKI of every leaf it signs).
    #[serde(rename = "SigningKeyID")]
    pub signing_key_id: String,
    /// The cluster ID the root was generated under.
    pub external_trust_domain: String,
    /// Start of validity.
    #[serde(with = "rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "rfc3339")]
    pub not_after: OffsetDateTime,
    /// PEM of the root certificate, with a trailing newline.
    pub root_cert: String,
    /// PEM of certificates to send after leafs signed by this root (the cross-signed copy of this
    /// root after a rotation); `null` when there are none.
    pub intermediate_certs: Option<Vec<String>>,
    /// Whether this root signs new leafs. Exactly one root is active.
    pub active: bool,
    /// `ec` or `rsa`.
    pub private_key_type: String,
    /// Key size in bits (256 for P-256).
    pub private_key_bits: u32,
    /// Store index at creation.
    pub create_index: u64,
    /// Store index at the last change.
    pub modify_index: u64,
}

/// The body of `GET /v1/connect/ca/roots` and `GET /v1/agent/connect/ca/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaRoots {
    /// `ID` of the active root.
    #[serde(rename = "ActiveRootID")]
    pub active_root_id: String,
    /// `<cluster-id>.consul`.
    pub trust_domain: String,
    /// Every root still trusted, active first.
    pub roots: Vec<CaRoot>,
}

impl CaRoots {
    /// The `?pem=true` body (`application/pem-certificate-chain`): every root certificate followed
    /// by its intermediates.
    pub fn pem_bundle(&self) -> String {
        let mut out = String::new();
        for root in &self.roots {
            push_pem(&mut out, &root.root_cert);
            for intermediate in root.intermediate_certs.iter().flatten() {
                push_pem(&mut out, intermediate);
            }
        }
        out
    }

    /// The active root, if the bundle is well-formed.
    pub fn active(&self) -> Option<&CaRoot> {
        self.roots.iter().find(|r| r.id == self.active_root_id)
    }
}

fn push_pem(out: &mut String, pem: &str) {
    out.push_str(pem);
    if !pem.ends_with('\n') {
        out.push('\n');
    }
}

/// A signed leaf, shaped as `GET /v1/agent/connect/ca/leaf/:service` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IssuedCert {
    /// Colon-hex serial number (`08`, `01:2c`).
    pub serial_number: String,
    /// PEM of the leaf followed by any intermediates of the signing root.
    #[serde(rename = "CertPEM")]
    pub cert_pem: String,
    /// PEM (`EC PRIVATE KEY`, SEC1) of the leaf key; empty (omitted) when a CSR was signed.
    #[serde(
        rename = "PrivateKeyPEM",
        default,
        skip_serializing_if = "SecretPem::is_empty"
    )]
    pub private_key_pem: SecretPem,
    /// Service name, for service identities.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// The SPIFFE URI, for service identities.
    #[serde(
        rename = "ServiceURI",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub service_uri: String,
    /// Agent (node) name, for client agent identities.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent: String,
    /// The SPIFFE URI, for client agent identities.
    #[serde(rename = "AgentURI", default, skip_serializing_if = "String::is_empty")]
    pub agent_uri: String,
    /// The SPIFFE URI, for server identities.
    #[serde(
        rename = "ServerURI",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub server_uri: String,
    /// `mesh-gateway` for mesh gateway identities.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The SPIFFE URI, for mesh gateway identities.
    #[serde(rename = "KindURI", default, skip_serializing_if = "String::is_empty")]
    pub kind_uri: String,
    /// NotBefore of the certificate.
    #[serde(with = "rfc3339")]
    pub valid_after: OffsetDateTime,
    /// NotAfter of the certificate.
    #[serde(with = "rfc3339")]
    pub valid_before: OffsetDateTime,
    /// Namespace of the service (Enterprise field; set by the caller if wanted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Partition of the service (Enterprise field; set by the caller if wanted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Store index at creation (the serial number unless the caller overrides it).
    pub create_index: u64,
    /// Store index at the last change (the serial number unless the caller overrides it).
    pub modify_index: u64,
}

/// Go's `time.Time` JSON form for whole-second UTC times: `2018-05-25T21:39:23Z`.
pub(crate) mod rfc3339 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

/// Optional variant of [`rfc3339`] for persisted state.
pub(crate) mod rfc3339_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| OffsetDateTime::parse(&t, &Rfc3339).map_err(serde::de::Error::custom))
            .transpose()
    }
}
