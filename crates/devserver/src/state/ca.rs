//! The Connect CA's records, kept in two extension tables so they travel through the log and snapshot
//! like every other write:
//!
//! - `connect-ca` / `state`: the [`CaState`]: cluster ID, settings, serial counter and every trusted root
//!   with its private key (PEM). The log and snapshot files are 0600, and nothing here logs it.
//! - `connect-ca` / `config`: the CA configuration as `GET /v1/connect/ca/configuration` shows it.
//! - `connect-leaf` / `<service>`: the last leaf issued for a service, the root that signed it, and the
//!   moment it becomes due for renewal (a random point between 60 % and 90 % of its lifetime, as
//!   Consul's leaf manager picks it).
//!
//! Every write that hands out a certificate also stores the CA state, so the serial counter survives a
//! restart and never repeats. The planning functions here run inside [`super::Store::write`]: they
//! read the tables, do the CA work and push the mutations; an error leaves nothing behind.

use std::time::Duration;

use connect::{SpiffeId, TrustDomain};
use connect_ca::{
    Ca, CaConfig, CaError, CaRoots, CaState, CsrError, DEFAULT_LEAF_CERT_TTL,
    DEFAULT_ROOT_CERT_TTL, IssuedCert, SignPolicy,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{Mutation, Plan, Tables, Topic};

/// The table holding the CA state and configuration.
const TABLE: &str = "connect-ca";
/// The key of the CA state.
const STATE_KEY: &str = "state";
/// The key of the CA configuration.
const CONFIG_KEY: &str = "config";
/// The table holding the cached leaf of each service.
const LEAF_TABLE: &str = "connect-leaf";

/// The only provider this server runs.
pub(crate) const PROVIDER: &str = "consul";
/// Default `IntermediateCertTTL` (8760h, as Consul).
const DEFAULT_INTERMEDIATE_CERT_TTL: Duration = Duration::from_secs(8760 * 3600);
/// Default `RotationPeriod` (2160h, as Consul).
const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(2160 * 3600);
/// Longest leaf TTL Consul accepts.
const MAX_LEAF_CERT_TTL: Duration = Duration::from_secs(8760 * 3600);
/// Shortest leaf TTL Consul accepts.
const MIN_LEAF_CERT_TTL: Duration = Duration::from_secs(3600);
/// Shortest intermediate TTL Consul accepts (three renewal intervals of one hour).
const MIN_INTERMEDIATE_CERT_TTL: Duration = Duration::from_secs(3 * 3600);

/// The topic of the roots bundle.
pub(crate) fn roots_topic() -> Topic {
    Topic::Ext("connect-ca/roots".into())
}

/// The topic of the CA configuration.
pub(crate) fn config_topic() -> Topic {
    Topic::Ext("connect-ca/config".into())
}

/// The topic of one service's cached leaf.
pub(crate) fn leaf_topic(service: &str) -> Topic {
    Topic::Ext(format!("connect-leaf/{service}"))
}

/// Why a CA operation was refused; the API turns it into 400, 403 or 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CaFailure {
    /// The request is wrong (400).
    Invalid(String),
    /// The caller may not hold the identity it asked for (403).
    Denied(String),
    /// The server could not do it (500).
    Internal(String),
}

impl From<CaError> for CaFailure {
    fn from(e: CaError) -> Self {
        match &e {
            CaError::Csr(CsrError::WrongService { .. } | CsrError::PermissionDenied { .. }) => {
                CaFailure::Denied(e.to_string())
            }
            CaError::Csr(_) | CaError::Config(_) | CaError::Identity(_) | CaError::Spiffe(_) => {
                CaFailure::Invalid(e.to_string())
            }
            CaError::ClusterId(_)
            | CaError::SerialExhausted
            | CaError::Crypto(_)
            | CaError::State(_) => CaFailure::Internal(e.to_string()),
        }
    }
}

/// The CA configuration as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConfigRecord {
    /// Always `consul`.
    pub(crate) provider: String,
    /// The provider settings as last written.
    pub(crate) config: Map<String, Value>,
    /// The last `ForceWithoutCrossSigning` sent.
    pub(crate) force_without_cross_signing: bool,
    /// Index of the first configuration.
    pub(crate) create_index: u64,
    /// Index of the last change.
    pub(crate) modify_index: u64,
}

impl ConfigRecord {
    /// The body of `GET /v1/connect/ca/configuration`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "Provider": self.provider,
            "Config": self.config,
            "State": null,
            "ForceWithoutCrossSigning": self.force_without_cross_signing,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        })
    }
}

/// A cached leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeafRecord {
    /// The certificate and key, as the leaf endpoint returns them.
    pub(crate) cert: IssuedCert,
    /// `ID` of the root that was active when it was issued.
    pub(crate) root_id: String,
    /// When it becomes due for renewal (Unix seconds).
    pub(crate) renew_at: i64,
}

impl LeafRecord {
    /// Whether the leaf can still be handed out at `now` under the CA state `state` for identity `uri`.
    fn usable(&self, active_root_id: &str, uri: &str, now: OffsetDateTime) -> bool {
        self.root_id == active_root_id
            && self.cert.service_uri == uri
            && now.unix_timestamp() < self.renew_at
    }
}

fn ext<'a>(t: &'a Tables, table: &str, key: &str) -> Option<&'a Value> {
    t.ext.get(table).and_then(|m| m.get(key))
}

fn internal(what: &str, e: impl std::fmt::Display) -> CaFailure {
    CaFailure::Internal(format!("stored {what} is unreadable: {e}"))
}

/// The stored CA state, if the CA was bootstrapped.
pub(crate) fn state(t: &Tables) -> Result<Option<CaState>, CaFailure> {
    ext(t, TABLE, STATE_KEY)
        .map(|v| serde_json::from_value(v.clone()).map_err(|e| internal("CA state", e)))
        .transpose()
}

fn require_state(t: &Tables) -> Result<CaState, CaFailure> {
    state(t)?.ok_or_else(|| CaFailure::Internal("the Connect CA is not initialised".into()))
}

/// The stored CA configuration.
pub(crate) fn config(t: &Tables) -> Result<Option<ConfigRecord>, CaFailure> {
    ext(t, TABLE, CONFIG_KEY)
        .map(|v| serde_json::from_value(v.clone()).map_err(|e| internal("CA configuration", e)))
        .transpose()
}

/// The cached leaf of a service.
pub(crate) fn leaf(t: &Tables, service: &str) -> Result<Option<LeafRecord>, CaFailure> {
    ext(t, LEAF_TABLE, service)
        .map(|v| serde_json::from_value(v.clone()).map_err(|e| internal("leaf", e)))
        .transpose()
}

/// The roots bundle (`GET /v1/connect/ca/roots`), built from the stored state without touching keys.
pub(crate) fn roots(t: &Tables) -> Result<Option<CaRoots>, CaFailure> {
    let Some(st) = state(t)? else {
        return Ok(None);
    };
    let td = TrustDomain::from_cluster_id(&st.cluster_id).map_err(|e| internal("cluster ID", e))?;
    let active = st
        .roots
        .iter()
        .find(|r| r.root.active)
        .ok_or_else(|| CaFailure::Internal("the stored CA state has no active root".into()))?;
    let mut roots: Vec<_> = st.roots.iter().map(|r| r.root.clone()).collect();
    roots.sort_by_key(|r| !r.active);
    Ok(Some(CaRoots {
        active_root_id: active.root.id.clone(),
        trust_domain: td.to_string(),
        roots,
    }))
}

fn save_state(plan: &mut Plan, ca: &Ca) -> Result<(), CaFailure> {
    let value = serde_json::to_value(ca.state())
        .map_err(|e| CaFailure::Internal(format!("cannot encode the CA state: {e}")))?;
    plan.push(Mutation::PutExt {
        table: TABLE.into(),
        key: STATE_KEY.into(),
        value,
    });
    Ok(())
}

fn save_config(plan: &mut Plan, rec: &ConfigRecord) -> Result<(), CaFailure> {
    let value = serde_json::to_value(rec)
        .map_err(|e| CaFailure::Internal(format!("cannot encode the CA configuration: {e}")))?;
    plan.push(Mutation::PutExt {
        table: TABLE.into(),
        key: CONFIG_KEY.into(),
        value,
    });
    plan.touch(config_topic());
    Ok(())
}

/// The configuration a fresh CA starts with, as Consul's built-in provider reports it.
fn default_config_map() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("IntermediateCertTTL".into(), "8760h".into());
    m.insert("LeafCertTTL".into(), "72h".into());
    m.insert("PrivateKeyBits".into(), 256.into());
    m.insert("PrivateKeyType".into(), "ec".into());
    m.insert("RootCertTTL".into(), "87600h".into());
    m.insert("RotationPeriod".into(), "2160h".into());
    m
}

/// Creates the CA on first start (a new cluster ID and root), or brings the stored one in line with the
/// configured datacenter. Returns whether anything changed.
pub(crate) fn plan_bootstrap(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    datacenter: &str,
) -> Result<bool, CaFailure> {
    match state(t)? {
        None => {
            let cluster_id = uuid::Uuid::new_v4().to_string();
            let ca = Ca::generate(&cluster_id, CaConfig::new(datacenter), index)?;
            save_state(plan, &ca)?;
            save_config(
                plan,
                &ConfigRecord {
                    provider: PROVIDER.into(),
                    config: default_config_map(),
                    force_without_cross_signing: false,
                    create_index: index,
                    modify_index: index,
                },
            )?;
            plan.touch(roots_topic());
            Ok(true)
        }
        Some(mut st) if st.config.datacenter != datacenter => {
            // Leafs name the datacenter; the cached ones no longer match and get reissued on demand.
            st.config.datacenter = datacenter.to_owned();
            let ca = Ca::from_state(st)?;
            save_state(plan, &ca)?;
            Ok(true)
        }
        Some(st) => {
            // Refuse to start on a state the CA library would not accept later.
            Ca::from_state(st)?;
            Ok(false)
        }
    }
}

/// Returns the service's cached leaf if it is still good at `now`, or issues, stores and returns a new
/// one (when the old one reached its renewal point, the active root changed, or there is none).
pub(crate) fn plan_leaf(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    service: &str,
    now: OffsetDateTime,
) -> Result<LeafRecord, CaFailure> {
    let mut ca = Ca::from_state(require_state(t)?)?;
    let id = ca.service_id(service)?;
    let uri = id.to_string();
    if let Some(rec) = leaf(t, service)?
        && rec.usable(&ca.active_root().id, &uri, now)
    {
        return Ok(rec);
    }
    let before = ca.state().clone();
    ca.prune_roots(now);
    if *ca.state() != before {
        plan.touch(roots_topic());
    }
    let mut cert = ca.issue_leaf(&SpiffeId::Service(id))?;
    cert.create_index = index;
    cert.modify_index = index;
    let lifetime = cert.valid_before - cert.valid_after;
    let fraction: f64 = rand::rng().random_range(0.6..0.9);
    let rec = LeafRecord {
        renew_at: (cert.valid_after + lifetime * fraction).unix_timestamp(),
        root_id: ca.active_root().id.clone(),
        cert,
    };
    save_state(plan, &ca)?;
    let value = serde_json::to_value(&rec)
        .map_err(|e| CaFailure::Internal(format!("cannot encode the leaf: {e}")))?;
    plan.push(Mutation::PutExt {
        table: LEAF_TABLE.into(),
        key: service.to_owned(),
        value,
    });
    plan.touch(leaf_topic(service));
    Ok(rec)
}

/// What a blocked leaf query needs to decide whether to keep waiting: the cached leaf if it is still
/// usable at `now`.
pub(crate) fn usable_leaf(
    t: &Tables,
    service: &str,
    now: OffsetDateTime,
) -> Result<Option<LeafRecord>, CaFailure> {
    let st = require_state(t)?;
    let Some(rec) = leaf(t, service)? else {
        return Ok(None);
    };
    let Some(active) = st.roots.iter().find(|r| r.root.active) else {
        return Ok(None);
    };
    let td = TrustDomain::from_cluster_id(&st.cluster_id).map_err(|e| internal("cluster ID", e))?;
    let uri = connect::ServiceId::new(td, connect::DEFAULT, &st.config.datacenter, service)
        .map_err(|e| CaFailure::Invalid(format!("invalid identity for a leaf certificate: {e}")))?
        .to_string();
    Ok(rec.usable(&active.root.id, &uri, now).then_some(rec))
}

/// Signs a CSR with the active root after the CA's checks and `policy`.
pub(crate) fn plan_sign(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    csr_pem: &str,
    policy: SignPolicy<'_>,
) -> Result<IssuedCert, CaFailure> {
    let mut ca = Ca::from_state(require_state(t)?)?;
    let mut cert = ca.sign_csr(csr_pem, policy)?;
    cert.create_index = index;
    cert.modify_index = index;
    save_state(plan, &ca)?;
    Ok(cert)
}

/// Drops roots whose leafs have all expired by `now`. Leaves the plan empty when nothing changes.
pub(crate) fn plan_prune(
    t: &Tables,
    plan: &mut Plan,
    now: OffsetDateTime,
) -> Result<(), CaFailure> {
    let Some(st) = state(t)? else {
        return Ok(());
    };
    let mut ca = Ca::from_state(st)?;
    let before = ca.state().clone();
    ca.prune_roots(now);
    if *ca.state() != before {
        save_state(plan, &ca)?;
        plan.touch(roots_topic());
    }
    Ok(())
}

/// A `PUT /v1/connect/ca/configuration` request.
#[derive(Debug, Clone)]
pub(crate) struct ConfigUpdate {
    /// `Provider`.
    pub(crate) provider: String,
    /// `Config`.
    pub(crate) config: Map<String, Value>,
    /// `ForceWithoutCrossSigning`.
    pub(crate) force_without_cross_signing: bool,
}

/// The settings a configuration map stands for, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    leaf_cert_ttl: Duration,
    root_cert_ttl: Duration,
    intermediate_cert_ttl: Duration,
    private_key_type: String,
    private_key_bits: i64,
    imported_key: bool,
    skip_validate: bool,
}

/// Looks a key up the way Consul's weakly-typed decoder does: case-insensitively, `snake_case` too.
fn lookup<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let squash = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let want = squash(name);
    m.iter().find(|(k, _)| squash(k) == want).map(|(_, v)| v)
}

fn duration_setting(
    m: &Map<String, Value>,
    name: &str,
    default: Duration,
) -> Result<Duration, CaFailure> {
    let bad = |why: String| CaFailure::Invalid(format!("error decoding config: {name}: {why}"));
    match lookup(m, name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) if s.is_empty() => Ok(default),
        Some(Value::String(s)) => crate::duration::parse_go(s).map_err(bad),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(default),
            Some(nanos) => Ok(Duration::from_nanos(nanos)),
            None => Err(bad(format!("{n} is not a duration"))),
        },
        Some(other) => Err(bad(format!("{other} is not a duration"))),
    }
}

fn settings(m: &Map<String, Value>) -> Result<Settings, CaFailure> {
    let private_key_type = match lookup(m, "PrivateKeyType") {
        None | Some(Value::Null) => "ec".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "ec".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(CaFailure::Invalid(format!(
                "error decoding config: PrivateKeyType: {other} is not a string"
            )));
        }
    };
    let private_key_bits = match lookup(m, "PrivateKeyBits") {
        None | Some(Value::Null) => 256,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            CaFailure::Invalid(format!(
                "error decoding config: PrivateKeyBits: {n} is not an integer"
            ))
        })?,
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| {
            CaFailure::Invalid(format!(
                "error decoding config: PrivateKeyBits: {s:?} is not an integer"
            ))
        })?,
        Some(other) => {
            return Err(CaFailure::Invalid(format!(
                "error decoding config: PrivateKeyBits: {other} is not an integer"
            )));
        }
    };
    let private_key_bits = if private_key_bits == 0 {
        256
    } else {
        private_key_bits
    };
    let non_empty = |name: &str| {
        lookup(m, name).is_some_and(|v| match v {
            Value::String(s) => !s.trim().is_empty(),
            Value::Null => false,
            _ => true,
        })
    };
    Ok(Settings {
        leaf_cert_ttl: duration_setting(m, "LeafCertTTL", DEFAULT_LEAF_CERT_TTL)?,
        root_cert_ttl: duration_setting(m, "RootCertTTL", DEFAULT_ROOT_CERT_TTL)?,
        intermediate_cert_ttl: duration_setting(
            m,
            "IntermediateCertTTL",
            DEFAULT_INTERMEDIATE_CERT_TTL,
        )?,
        private_key_type,
        private_key_bits,
        imported_key: non_empty("PrivateKey") || non_empty("RootCert"),
        skip_validate: matches!(lookup(m, "SkipValidate"), Some(Value::Bool(true))),
    })
    .and_then(|s| {
        // Parsed only to refuse a malformed value, as Consul does.
        duration_setting(m, "RotationPeriod", DEFAULT_ROTATION_PERIOD)?;
        Ok(s)
    })
}

fn fmt_go(d: Duration) -> String {
    crate::duration::format_go(d)
}

/// Consul's checks of the common provider settings, in its order and words.
fn validate_settings(s: &Settings) -> Result<(), CaFailure> {
    let invalid = |m: String| Err(CaFailure::Invalid(m));
    if !s.skip_validate {
        if s.root_cert_ttl < s.intermediate_cert_ttl {
            return invalid(format!(
                "root cert TTL is set and is not greater than intermediate cert ttl. root cert ttl: {}, intermediate cert ttl: {}",
                fmt_go(s.root_cert_ttl),
                fmt_go(s.intermediate_cert_ttl)
            ));
        }
        if s.leaf_cert_ttl < MIN_LEAF_CERT_TTL {
            return invalid(format!(
                "leaf cert TTL must be greater or equal than {}",
                fmt_go(MIN_LEAF_CERT_TTL)
            ));
        }
        if s.leaf_cert_ttl > MAX_LEAF_CERT_TTL {
            return invalid(format!(
                "leaf cert TTL must be less than {}",
                fmt_go(MAX_LEAF_CERT_TTL)
            ));
        }
        if s.intermediate_cert_ttl < MIN_INTERMEDIATE_CERT_TTL {
            return invalid("Intermediate Cert TTL must be greater or equal than 3h".into());
        }
        if s.intermediate_cert_ttl < s.leaf_cert_ttl * 3 {
            return invalid(format!(
                "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>={}).",
                fmt_go(s.leaf_cert_ttl * 3)
            ));
        }
        match s.private_key_type.as_str() {
            "ec" => {
                if ![224, 256, 384, 521].contains(&s.private_key_bits) {
                    return invalid(
                        "EC key length must be one of (224, 256, 384, 521) bits".into(),
                    );
                }
            }
            "rsa" => {
                if ![2048, 4096].contains(&s.private_key_bits) {
                    return invalid("RSA key length must be 2048 or 4096 bits".into());
                }
            }
            _ => return invalid("private key type must be either 'ec' or 'rsa'".into()),
        }
    }
    // What this server's CA can do.
    if s.imported_key {
        return invalid(
            "this dev server cannot import a CA key: PrivateKey and RootCert are not supported; it generates its own EC P-256 roots".into(),
        );
    }
    if s.private_key_type != "ec" || s.private_key_bits != 256 {
        return invalid(format!(
            "this dev server generates only EC P-256 CA keys (PrivateKeyType \"ec\", PrivateKeyBits 256), not {:?} {}",
            s.private_key_type, s.private_key_bits
        ));
    }
    if s.leaf_cert_ttl >= MAX_LEAF_CERT_TTL || s.root_cert_ttl <= s.leaf_cert_ttl {
        // The CA library's own bounds (it refuses exactly 8760h and roots not outliving leafs).
        CaConfig {
            datacenter: "dc".into(),
            leaf_cert_ttl: s.leaf_cert_ttl,
            root_cert_ttl: s.root_cert_ttl,
        }
        .validate()?;
    }
    Ok(())
}

/// Applies a new CA configuration: new TTLs take effect for the next certificates;
/// `ForceWithoutCrossSigning` makes a new root (this server always cross-signs it with the old one, and
/// the old root stays in the bundle until its leafs expire).
pub(crate) fn plan_set_config(
    t: &Tables,
    index: u64,
    plan: &mut Plan,
    update: ConfigUpdate,
    now: OffsetDateTime,
) -> Result<(), CaFailure> {
    if update.provider.is_empty() {
        return Err(CaFailure::Invalid("CA Provider must be set".into()));
    }
    if update.provider != PROVIDER {
        return Err(CaFailure::Invalid(format!(
            "this dev server runs only the {PROVIDER:?} CA provider, not {:?}",
            update.provider
        )));
    }
    let s = settings(&update.config)?;
    validate_settings(&s)?;
    let mut st = require_state(t)?;
    st.config.leaf_cert_ttl = s.leaf_cert_ttl;
    st.config.root_cert_ttl = s.root_cert_ttl;
    let mut ca = Ca::from_state(st)?;
    let before_roots = ca.roots();
    if update.force_without_cross_signing {
        ca.rotate(index)?;
    }
    ca.prune_roots(now);
    if ca.roots() != before_roots {
        plan.touch(roots_topic());
    }
    save_state(plan, &ca)?;
    let create_index = config(t)?.map_or(index, |c| c.create_index);
    save_config(
        plan,
        &ConfigRecord {
            provider: update.provider,
            config: update.config,
            force_without_cross_signing: update.force_without_cross_signing,
            create_index,
            modify_index: index,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn apply(t: &mut Tables, index: u64, plan: Plan) {
        let mut muts = plan.muts;
        muts.extend(plan.topics.into_iter().map(Mutation::Touch));
        let mut touched = std::collections::BTreeSet::new();
        t.apply(index, &muts, &mut touched);
    }

    fn bootstrapped() -> Tables {
        let mut t = Tables::default();
        let mut plan = Plan::default();
        assert!(plan_bootstrap(&t, 1, &mut plan, "dc1").unwrap());
        apply(&mut t, 1, plan);
        t
    }

    #[test]
    fn bootstrap_once_then_keep() {
        let t = bootstrapped();
        let roots = roots(&t).unwrap().unwrap();
        assert_eq!(roots.roots.len(), 1);
        assert!(roots.trust_domain.ends_with(".consul"));
        let mut plan = Plan::default();
        assert!(!plan_bootstrap(&t, 2, &mut plan, "dc1").unwrap());
        assert!(plan.is_empty());
        let mut plan = Plan::default();
        assert!(plan_bootstrap(&t, 2, &mut plan, "east").unwrap());
    }

    #[test]
    fn leafs_are_cached_until_due() {
        let mut t = bootstrapped();
        let now = OffsetDateTime::now_utc();
        let mut plan = Plan::default();
        let first = plan_leaf(&t, 2, &mut plan, "web", now).unwrap();
        apply(&mut t, 2, plan);
        let mut plan = Plan::default();
        let again = plan_leaf(&t, 3, &mut plan, "web", now).unwrap();
        assert!(plan.is_empty());
        assert_eq!(again, first);
        let later = now + time::Duration::hours(72);
        assert!(usable_leaf(&t, "web", later).unwrap().is_none());
        let mut plan = Plan::default();
        let renewed = plan_leaf(&t, 3, &mut plan, "web", later).unwrap();
        assert_ne!(renewed.cert.serial_number, first.cert.serial_number);
        assert_eq!(renewed.cert.modify_index, 3);
    }

    #[test]
    fn settings_follow_consul_rules() {
        let check = |cfg: Value| {
            let Value::Object(m) = cfg else { panic!() };
            settings(&m).and_then(|s| validate_settings(&s))
        };
        assert!(check(json!({})).is_ok());
        assert!(check(json!({"leaf_cert_ttl": "2h", "RotationPeriod": "1h"})).is_ok());
        let msg = |r: Result<(), CaFailure>| match r {
            Err(CaFailure::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(check(json!({"LeafCertTTL": "30m"}))),
            "leaf cert TTL must be greater or equal than 1h0m0s"
        );
        assert_eq!(
            msg(check(json!({"LeafCertTTL": "9000h"}))),
            "leaf cert TTL must be less than 8760h0m0s"
        );
        assert_eq!(
            msg(check(json!({"LeafCertTTL": "4000h"}))),
            "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=12000h0m0s)."
        );
        assert_eq!(
            msg(check(json!({"PrivateKeyType": "dsa"}))),
            "private key type must be either 'ec' or 'rsa'"
        );
        assert_eq!(
            msg(check(
                json!({"PrivateKeyType": "rsa", "PrivateKeyBits": 1024})
            )),
            "RSA key length must be 2048 or 4096 bits"
        );
        assert!(
            msg(check(
                json!({"PrivateKeyType": "rsa", "PrivateKeyBits": 2048})
            ))
            .contains("EC P-256")
        );
        assert!(
            msg(check(json!({"LeafCertTTL": "soon"})))
                .starts_with("error decoding config: LeafCertTTL")
        );
        assert!(msg(check(json!({"PrivateKey": "-----BEGIN"}))).contains("PrivateKey"));
    }

    #[test]
    fn ca_errors_map_to_statuses() {
        let denied: CaFailure = CaError::Csr(CsrError::PermissionDenied {
            uri: "spiffe://x".into(),
        })
        .into();
        assert!(matches!(denied, CaFailure::Denied(_)));
        let bad: CaFailure = CaError::Csr(CsrError::UriCount(2)).into();
        assert_eq!(
            bad,
            CaFailure::Invalid("CSR SAN contains an invalid number of URIs: 2".into())
        );
        assert!(matches!(
            CaFailure::from(CaError::SerialExhausted),
            CaFailure::Internal(_)
        ));
    }
}
