//! The CA itself: configuration, persisted state, roots, leafs, rotation.

use std::net::IpAddr;
use std::time::Duration;

use connect::{ServiceId, SigningId, SpiffeId, TrustDomain, colon_hex};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
    SerialNumber, SubjectPublicKeyInfo,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::csr::{self, SignPolicy};
use crate::der;
use crate::error::{CaError, CsrError};
use crate::model::{CaRoot, CaRoots, IssuedCert, ROOT_NAME, SecretPem, rfc3339_opt};
use crate::pem;

/// Default lifetime of a leaf certificate (Consul's `LeafCertTTL`, 72h).
pub const DEFAULT_LEAF_CERT_TTL: Duration = Duration::from_secs(72 * 3600);
/// Default lifetime of a root certificate (ten years, as Consul's built-in provider).
pub const DEFAULT_ROOT_CERT_TTL: Duration = Duration::from_secs(87_600 * 3600);
/// Shortest leaf TTL Consul accepts.
pub const MIN_LEAF_CERT_TTL: Duration = Duration::from_secs(3600);
/// Longest leaf TTL Consul accepts (exclusive).
pub const MAX_LEAF_CERT_TTL: Duration = Duration::from_secs(8760 * 3600);
/// Lifetime of the cross-signed copy of a new root made at rotation (seven days, as Consul).
pub const CROSS_SIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far leafs are backdated to absorb clock drift between nodes.
const CLOCK_DRIFT: time::Duration = time::Duration::minutes(1);

/// CA settings; build with [`CaConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaConfig {
    /// The datacenter this CA serves: leafs are issued for it and CSRs must name it.
    pub datacenter: String,
    /// Lifetime of leaf certificates; within [`MIN_LEAF_CERT_TTL`] and [`MAX_LEAF_CERT_TTL`].
    pub leaf_cert_ttl: Duration,
    /// Lifetime of root certificates; must exceed the leaf TTL.
    pub root_cert_ttl: Duration,
}

impl CaConfig {
    /// Defaults for `datacenter`: 72 h leafs, ten-year roots.
    pub fn new(datacenter: impl Into<String>) -> Self {
        Self {
            datacenter: datacenter.into(),
            leaf_cert_ttl: DEFAULT_LEAF_CERT_TTL,
            root_cert_ttl: DEFAULT_ROOT_CERT_TTL,
        }
    }

    /// Checks the bounds, with Consul's wording for the leaf TTL.
    pub fn validate(&self) -> Result<(), CaError> {
        if self.datacenter.is_empty() {
            return Err(CaError::Config("datacenter must be set".into()));
        }
        if self.leaf_cert_ttl < MIN_LEAF_CERT_TTL {
            return Err(CaError::Config(
                "leaf cert TTL must be greater or equal than 1h0m0s".into(),
            ));
        }
        if self.leaf_cert_ttl >= MAX_LEAF_CERT_TTL {
            return Err(CaError::Config(
                "leaf cert TTL must be less than 8760h0m0s".into(),
            ));
        }
        if self.root_cert_ttl <= self.leaf_cert_ttl {
            return Err(CaError::Config(
                "root cert TTL must be longer than the leaf cert TTL".into(),
            ));
        }
        Ok(())
    }
}

/// One root with its private key, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootState {
    /// The public view served in the roots list.
    pub root: CaRoot,
    /// PKCS#8 PEM of the root's private key (redacted in `Debug`).
    pub private_key_pem: SecretPem,
    /// When the root stopped being active (`None` while active).
    #[serde(with = "rfc3339_opt", default)]
    pub rotated_out_at: Option<OffsetDateTime>,
}

/// Everything needed to restore a [`Ca`]: write it to a 0600 file, it contains private keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaState {
    /// The cluster ID (a UUID); the trust domain is `<cluster_id>.consul`.
    pub cluster_id: String,
    /// Settings.
    pub config: CaConfig,
    /// The last serial number handed out; the next certificate gets one more.
    pub last_serial: u64,
    /// Every trusted root, active one first.
    pub roots: Vec<RootState>,
}

/// The built-in Connect CA. Methods that issue certificates take `&mut self` (the serial counter);
/// share it behind a lock.
#[derive(Debug)]
pub struct Ca {
    state: CaState,
    trust_domain: TrustDomain,
    signing_id: SigningId,
}

/// An active signing key with its issuer description.
struct Signer {
    key: KeyPair,
    cert_der: CertificateDer<'static>,
    intermediates: Vec<String>,
}

impl Ca {
    /// Bootstraps a CA for `cluster_id` (a UUID) with a fresh ECDSA P-256 root. `index` becomes the
    /// root's `CreateIndex`/`ModifyIndex`.
    pub fn generate(cluster_id: &str, config: CaConfig, index: u64) -> Result<Self, CaError> {
        config.validate()?;
        let trust_domain = TrustDomain::from_cluster_id(cluster_id).map_err(CaError::ClusterId)?;
        let mut ca = Self {
            signing_id: SigningId::new(trust_domain.clone()),
            trust_domain,
            state: CaState {
                cluster_id: cluster_id.to_ascii_lowercase(),
                config,
                last_serial: 0,
                roots: Vec::new(),
            },
        };
        let (root, _key, _params) = ca.new_root(index)?;
        ca.state.roots.push(root);
        Ok(ca)
    }

    /// Restores a CA from persisted state, checking that every root certificate parses, carries
    /// the right URI, matches its ID and its private key, and that exactly one root is active.
    pub fn from_state(state: CaState) -> Result<Self, CaError> {
        state.config.validate()?;
        let trust_domain =
            TrustDomain::from_cluster_id(&state.cluster_id).map_err(CaError::ClusterId)?;
        let signing_id = SigningId::new(trust_domain.clone());
        if state.roots.is_empty() {
            return Err(CaError::State("no roots".into()));
        }
        let active = state.roots.iter().filter(|r| r.root.active).count();
        if active != 1 {
            return Err(CaError::State(format!(
                "{active} roots are marked active, exactly one must be"
            )));
        }
        for (i, r) in state.roots.iter().enumerate() {
            let at = |msg: &str| CaError::State(format!("roots[{i}] ({}): {msg}", r.root.id));
            let der = CertificateDer::from_pem_slice(r.root.root_cert.as_bytes())
                .map_err(|e| at(&format!("RootCert is not a PEM certificate: {e}")))?;
            if colon_hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref())
                != r.root.id
            {
                return Err(at("ID is not the SHA-1 fingerprint of RootCert"));
            }
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| at(&format!("RootCert does not parse: {e}")))?;
            let uris = uri_sans(&cert);
            if uris != [signing_id.to_string()] {
                return Err(at(&format!(
                    "RootCert URI SANs are {uris:?}, expected [{signing_id}]"
                )));
            }
            if cert.raw_serial() != serial_bytes(r.root.serial_number) {
                return Err(at("SerialNumber does not match RootCert"));
            }
            if r.root.serial_number > state.last_serial {
                return Err(at("SerialNumber is above last_serial"));
            }
            let key = KeyPair::from_pem(r.private_key_pem.expose())
                .map_err(|_| at("private key is not a PKCS#8 PEM key"))?;
            if key.subject_public_key_info() != cert.public_key().raw {
                return Err(at("private key does not match RootCert"));
            }
        }
        let mut state = state;
        state.roots.sort_by_key(|r| !r.root.active);
        Ok(Self {
            state,
            trust_domain,
            signing_id,
        })
    }

    /// The persisted form (holds private keys).
    pub fn state(&self) -> &CaState {
        &self.state
    }

    /// Consumes the CA into its persisted form.
    pub fn into_state(self) -> CaState {
        self.state
    }

    /// `<cluster-id>.consul`.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The settings.
    pub fn config(&self) -> &CaConfig {
        &self.state.config
    }

    /// The roots bundle served by `GET /v1/connect/ca/roots`.
    pub fn roots(&self) -> CaRoots {
        CaRoots {
            active_root_id: self.active_root().id.clone(),
            trust_domain: self.trust_domain.to_string(),
            roots: self.state.roots.iter().map(|r| r.root.clone()).collect(),
        }
    }

    /// The root that signs new leafs.
    pub fn active_root(&self) -> &CaRoot {
        // `from_state` and `generate` guarantee exactly one active root, kept first.
        &self.state.roots[0].root
    }

    /// The service identity of `service` in the default namespace of the CA's datacenter, as
    /// `GET /v1/agent/connect/ca/leaf/:service` issues it.
    pub fn service_id(&self, service: &str) -> Result<ServiceId, CaError> {
        Ok(ServiceId::new(
            self.trust_domain.clone(),
            connect::DEFAULT,
            &self.state.config.datacenter,
            service,
        )?)
    }

    /// Generates an ECDSA P-256 key and a leaf for `id` (a service, agent, mesh gateway or server
    /// identity of this trust domain) signed by the active root.
    pub fn issue_leaf(&mut self, id: &SpiffeId) -> Result<IssuedCert, CaError> {
        self.check_leaf_identity(id)
            .map_err(|e| CaError::Identity(e.to_string()))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let sec1 = der::pkcs8_p256_to_sec1(&key.serialize_der())
            .ok_or_else(|| CaError::Crypto("could not encode the leaf key as SEC1".into()))?;
        let mut issued = self.sign_leaf(id, &key, Vec::new(), Vec::new())?;
        issued.private_key_pem = SecretPem::new(pem::encode("EC PRIVATE KEY", &sec1));
        Ok(issued)
    }

    /// Signs a PEM CSR: verifies its signature and key type, requires exactly one URI SAN that is a
    /// leaf SPIFFE ID of this trust domain and datacenter, asks `policy`, then copies the URI, DNS
    /// and IP SANs into a leaf signed by the active root. The result has no private key.
    pub fn sign_csr(
        &mut self,
        csr_pem: &str,
        policy: SignPolicy<'_>,
    ) -> Result<IssuedCert, CaError> {
        let parsed = csr::parse(csr_pem)?;
        self.check_leaf_identity(&parsed.id)?;
        policy.check(&parsed.id)?;
        let public = SubjectPublicKeyInfo::from_der(&parsed.spki_der)
            .map_err(|e| CsrError::UnsupportedKey(e.to_string()))?;
        self.sign_leaf(&parsed.id, &public, parsed.dns_names, parsed.ips)
    }

    /// Rotates to a new root: generates a key and self-signed root, cross-signs it with the old root
    /// (valid for [`CROSS_SIGN_TTL`], attached as the new root's intermediate so new leafs chain to
    /// the old root too), and marks the old root inactive. Old roots stay trusted until
    /// [`Ca::prune_roots`] finds every leaf they signed expired.
    pub fn rotate(&mut self, index: u64) -> Result<(), CaError> {
        let old = self.active_signer()?;
        let (mut root, key, params) = self.new_root(index)?;

        let now = now_seconds();
        let mut cross = params;
        cross.serial_number = Some(SerialNumber::from_slice(&serial_bytes(self.next_serial()?)));
        cross.not_before = now - CLOCK_DRIFT;
        cross.not_after = now + CROSS_SIGN_TTL;
        let issuer = Issuer::from_ca_cert_der(&old.cert_der, &old.key)?;
        let cross_cert = cross.signed_by(&key, &issuer)?;
        root.root.intermediate_certs = Some(vec![pem::encode("CERTIFICATE", cross_cert.der())]);

        for r in &mut self.state.roots {
            if r.root.active {
                r.root.active = false;
                r.root.modify_index = index;
                r.rotated_out_at = Some(now);
            }
        }
        self.state.roots.insert(0, root);
        Ok(())
    }

    /// Drops inactive roots once every leaf they can have signed has expired (rotated out more than
    /// one leaf TTL plus clock drift before `now`, or past their own NotAfter), and expired
    /// intermediates of the remaining roots. Returns how many roots were dropped.
    pub fn prune_roots(&mut self, now: OffsetDateTime) -> usize {
        let keep_for = self.state.config.leaf_cert_ttl + Duration::from_secs(60);
        let before = self.state.roots.len();
        self.state.roots.retain(|r| {
            if r.root.active {
                return true;
            }
            let leafs_done = r.rotated_out_at.is_some_and(|t| t + keep_for < now);
            !leafs_done && r.root.not_after > now
        });
        for r in &mut self.state.roots {
            if let Some(list) = &mut r.root.intermediate_certs {
                list.retain(|pem| cert_not_after(pem).is_none_or(|t| t > now));
                if list.is_empty() {
                    r.root.intermediate_certs = None;
                }
            }
        }
        before - self.state.roots.len()
    }

    // === internals ===

    fn next_serial(&mut self) -> Result<u64, CaError> {
        let next = self
            .state
            .last_serial
            .checked_add(1)
            .ok_or(CaError::SerialExhausted)?;
        self.state.last_serial = next;
        Ok(next)
    }

    /// Creates (but does not install) a new active root.
    fn new_root(&mut self, index: u64) -> Result<(RootState, KeyPair, CertificateParams), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let key_id = key_id(&key.subject_public_key_info());
        let serial = self.next_serial()?;
        let now = now_seconds();
        let cluster8: String = self.state.cluster_id.chars().take(8).collect();

        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(&serial_bytes(serial)));
        params.not_before = now;
        params.not_after = now + self.state.config.root_cert_ttl;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("pri-{}.consul.ca.{cluster8}.consul", compact_uid()?),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            self.signing_id
                .to_string()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::Crypto(e.to_string()))?,
        )];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
        let cert = params.self_signed(&key)?;

        let root = CaRoot {
            id: colon_hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert.der()).as_ref()),
            name: ROOT_NAME.to_owned(),
            serial_number: serial,
            signing_key_id: colon_hex(&key_id),
            external_trust_domain: self.state.cluster_id.clone(),
            not_before: params.not_before,
            not_after: params.not_after,
            root_cert: pem::encode("CERTIFICATE", cert.der()),
            intermediate_certs: None,
            active: true,
            private_key_type: "ec".to_owned(),
            private_key_bits: 256,
            create_index: index,
            modify_index: index,
        };
        let state = RootState {
            root,
            private_key_pem: SecretPem::new(key.serialize_pem()),
            rotated_out_at: None,
        };
        Ok((state, key, params))
    }

    fn active_signer(&self) -> Result<Signer, CaError> {
        let active = &self.state.roots[0];
        let key = KeyPair::from_pem(active.private_key_pem.expose())
            .map_err(|_| CaError::State("active root key does not parse".into()))?;
        let cert_der = CertificateDer::from_pem_slice(active.root.root_cert.as_bytes())
            .map_err(|e| CaError::State(format!("active root certificate: {e}")))?;
        Ok(Signer {
            key,
            cert_der,
            intermediates: active.root.intermediate_certs.clone().unwrap_or_default(),
        })
    }

    /// Rejects signing IDs and identities of other trust domains or datacenters.
    fn check_leaf_identity(&self, id: &SpiffeId) -> Result<(), CsrError> {
        if !self.signing_id.can_sign(id) {
            return Err(CsrError::WrongTrustDomain {
                uri: id.to_string(),
                expected: self.signing_id.to_string(),
            });
        }
        let dc = match id {
            SpiffeId::Service(s) => s.datacenter(),
            SpiffeId::Agent(a) => a.datacenter(),
            SpiffeId::MeshGateway(g) => g.datacenter(),
            SpiffeId::Server(s) => s.datacenter(),
            SpiffeId::Signing(_) => return Err(CsrError::NotALeafIdentity),
        };
        if dc != self.state.config.datacenter {
            return Err(CsrError::WrongDatacenter {
                found: dc.to_owned(),
                expected: self.state.config.datacenter.clone(),
            });
        }
        Ok(())
    }

    fn sign_leaf(
        &mut self,
        id: &SpiffeId,
        public_key: &impl PublicKeyData,
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    ) -> Result<IssuedCert, CaError> {
        let signer = self.active_signer()?;
        let serial = self.next_serial()?;
        let serial_be = serial_bytes(serial);
        let not_before = now_seconds() - CLOCK_DRIFT;
        let not_after = not_before + self.state.config.leaf_cert_ttl;

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(SerialNumber::from_slice(&serial_be));
        params.not_before = not_before;
        params.not_after = not_after;
        let mut sans =
            vec![SanType::URI(id.to_string().try_into().map_err(
                |e: rcgen::Error| CaError::Identity(e.to_string()),
            )?)];
        for name in dns_names {
            sans.push(SanType::DnsName(name.try_into().map_err(
                |e: rcgen::Error| CaError::Csr(CsrError::Malformed(format!("DNS SAN: {e}"))),
            )?));
        }
        sans.extend(ips.into_iter().map(SanType::IpAddress));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(key_id(&public_key.subject_public_key_info()));

        let issuer = Issuer::from_ca_cert_der(&signer.cert_der, &signer.key)?;
        let cert = params.signed_by(public_key, &issuer)?;
        let mut cert_pem = pem::encode("CERTIFICATE", cert.der());
        for intermediate in &signer.intermediates {
            cert_pem.push_str(intermediate);
            if !intermediate.ends_with('\n') {
                cert_pem.push('\n');
            }
        }

        let uri = id.to_string();
        let mut issued = IssuedCert {
            serial_number: colon_hex(&serial_be),
            cert_pem,
            private_key_pem: SecretPem::default(),
            service: String::new(),
            service_uri: String::new(),
            agent: String::new(),
            agent_uri: String::new(),
            server_uri: String::new(),
            kind: String::new(),
            kind_uri: String::new(),
            valid_after: not_before,
            valid_before: not_after,
            namespace: None,
            partition: None,
            create_index: serial,
            modify_index: serial,
        };
        match id {
            SpiffeId::Service(s) => {
                issued.service = s.service().to_owned();
                issued.service_uri = uri;
            }
            SpiffeId::Agent(a) => {
                issued.agent = a.agent().to_owned();
                issued.agent_uri = uri;
            }
            SpiffeId::MeshGateway(_) => {
                issued.kind = "mesh-gateway".to_owned();
                issued.kind_uri = uri;
            }
            SpiffeId::Server(_) => issued.server_uri = uri,
            SpiffeId::Signing(_) => {}
        }
        Ok(issued)
    }
}

/// Consul's key ID: SHA-256 of the DER SubjectPublicKeyInfo.
fn key_id(spki_der: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, spki_der).as_ref().to_vec()
}

/// Minimal big-endian bytes of a serial (at least one byte), as Consul colon-hexes them.
fn serial_bytes(serial: u64) -> Vec<u8> {
    let bytes = serial.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

/// Eight random base-36 characters for the root's common name.
fn compact_uid() -> Result<String, CaError> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut raw = [0u8; 8];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| CaError::Crypto("no randomness available".into()))?;
    Ok(raw
        .iter()
        .map(|b| char::from(DIGITS[usize::from(*b) % DIGITS.len()]))
        .collect())
}

/// Now, truncated to whole seconds (certificates carry seconds, and the JSON times must match).
fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                out.push((*uri).to_owned());
            }
        }
    }
    out
}

fn cert_not_after(pem: &str) -> Option<OffsetDateTime> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(cert.validity().not_after.to_datetime())
}

#[cfg(test)]
mod tests;
