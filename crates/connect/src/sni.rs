//! TLS server names (SNI) of Connect traffic: how sidecars name their upstream target and how mesh
//! gateways route without terminating TLS.
//!
//! `<td>` is the full trust domain (`<uuid>.consul`). An empty namespace or partition means `default`.
//!
//! | Target | SNI |
//! | --- | --- |
//! | service, default partition | `[<subset>.]<svc>.<ns>.<dc>.internal.<td>` |
//! | service in partition `<ap>` | `[<subset>.]<svc>.<ns>.<ap>.<dc>.internal-v1.<td>` |
//! | prepared query | `<query>.default.<dc>.query.<td>` |
//! | datacenter (gateway route key) | `<dc>.internal.<td>`, or `<ap>.<dc>.internal-v1.<td>` |
//! | peered service | `<svc>.<ns>.<ap>.<peer>.external.<exporter-td>` |
//! | peering control plane | `server.<dc>.peering.<td>` |
//! | WAN-federated servers | `server.<dc>.<domain>`, `<node>.server.<dc>.<domain>` (DNS domain, not td) |
//!
//! Labels come straight from names without escaping, so names must be DNS-label safe. The builders
//! here mirror Consul and do not validate; [`parse_sni`] is strict and never panics.

use std::fmt;

use crate::DEFAULT;
use crate::trust_domain::TrustDomain;

/// Marker label of service and datacenter SNIs in the default partition.
pub const INTERNAL: &str = "internal";
/// Marker label of service and datacenter SNIs in a named partition.
pub const INTERNAL_V1: &str = "internal-v1";
/// Marker label of prepared-query SNIs.
pub const QUERY: &str = "query";
/// Marker label of peered-service SNIs.
pub const EXTERNAL: &str = "external";
/// Marker label of the peering control-plane SNI.
pub const PEERING: &str = "peering";

const MAX_SNI_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// SNI of a service (or one of its subsets) as sidecars send it, also for direct connections.
///
/// `subset` may be empty. Empty `namespace`/`partition` mean `default`; the default partition uses the
/// `internal` form, any other partition the `internal-v1` form.
pub fn service_sni(
    service: &str,
    subset: &str,
    namespace: &str,
    partition: &str,
    datacenter: &str,
    trust_domain: &TrustDomain,
) -> String {
    let namespace = or_default(namespace);
    let partition = or_default(partition);
    let mut labels: Vec<&str> = Vec::with_capacity(7);
    if !subset.is_empty() {
        labels.push(subset);
    }
    labels.push(service);
    labels.push(namespace);
    if partition == DEFAULT {
        labels.extend([datacenter, INTERNAL]);
    } else {
        labels.extend([partition, datacenter, INTERNAL_V1]);
    }
    labels.push(trust_domain.as_str());
    labels.join(".")
}

/// SNI of a prepared-query upstream: `<query>.default.<dc>.query.<td>`.
pub fn query_sni(query: &str, datacenter: &str, trust_domain: &TrustDomain) -> String {
    format!("{query}.{DEFAULT}.{datacenter}.{QUERY}.{trust_domain}")
}

/// Route key of a datacenter on mesh gateways: `<dc>.internal.<td>`.
pub fn datacenter_sni(datacenter: &str, trust_domain: &TrustDomain) -> String {
    format!("{datacenter}.{INTERNAL}.{trust_domain}")
}

/// Route key of a partition in a datacenter: `<ap>.<dc>.internal-v1.<td>`, or the plain
/// [`datacenter_sni`] for the default (or empty) partition.
pub fn partition_datacenter_sni(
    partition: &str,
    datacenter: &str,
    trust_domain: &TrustDomain,
) -> String {
    let partition = or_default(partition);
    if partition == DEFAULT {
        datacenter_sni(datacenter, trust_domain)
    } else {
        format!("{partition}.{datacenter}.{INTERNAL_V1}.{trust_domain}")
    }
}

/// SNI of a service imported from a peer: `<svc>.<ns>.<ap>.<peer>.external.<exporter-td>`.
///
/// `peer` is the name the exporting cluster gave the importer, and `exporter_trust_domain` the
/// exporter's trust domain; importers normally receive this string ready-made.
pub fn peered_service_sni(
    service: &str,
    namespace: &str,
    partition: &str,
    peer: &str,
    exporter_trust_domain: &str,
) -> String {
    format!(
        "{service}.{}.{}.{peer}.{EXTERNAL}.{exporter_trust_domain}",
        or_default(namespace),
        or_default(partition)
    )
}

/// SNI of the peering control plane through mesh gateways: `server.<dc>.peering.<td>`.
pub fn peering_server_sni(datacenter: &str, trust_domain: &TrustDomain) -> String {
    format!("server.{datacenter}.{PEERING}.{trust_domain}")
}

/// SNI of any server of a WAN-federated datacenter: `server.<dc>.<domain>` (`domain` is the DNS
/// domain, `consul` by default, not the trust domain).
pub fn server_sni(datacenter: &str, domain: &str) -> String {
    format!("server.{datacenter}.{domain}")
}

/// SNI of one server of a WAN-federated datacenter: `<node>.server.<dc>.<domain>`.
pub fn node_server_sni(node: &str, datacenter: &str, domain: &str) -> String {
    format!("{node}.server.{datacenter}.{domain}")
}

fn or_default(s: &str) -> &str {
    if s.is_empty() { DEFAULT } else { s }
}

/// A service target named by an SNI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceTarget {
    /// Service subset, if the SNI has one.
    pub subset: Option<String>,
    /// Service name.
    pub service: String,
    /// Namespace.
    pub namespace: String,
    /// Partition (`default` for the `internal` form).
    pub partition: String,
    /// Datacenter.
    pub datacenter: String,
}

/// What an SNI under a known trust domain names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sni {
    /// A service (or subset) in a datacenter of this trust domain.
    Service(ServiceTarget),
    /// A datacenter (and partition) as a whole: the key gateways use for remote routes.
    Datacenter {
        /// Partition (`default` for the `internal` form).
        partition: String,
        /// Datacenter.
        datacenter: String,
    },
    /// A prepared query.
    PreparedQuery {
        /// Query name.
        query: String,
        /// Datacenter.
        datacenter: String,
    },
    /// A service exported to a peer (the trust domain is the exporter's).
    PeeredService {
        /// Service name.
        service: String,
        /// Namespace.
        namespace: String,
        /// Partition.
        partition: String,
        /// The peer name the exporter gave the importer.
        peer: String,
    },
    /// The peering control plane of a datacenter.
    PeeringServer {
        /// Datacenter.
        datacenter: String,
    },
}

/// A WAN-federation server name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerSni {
    /// `server.<dc>.<domain>`: any server of the datacenter.
    Any {
        /// Datacenter.
        datacenter: String,
    },
    /// `<node>.server.<dc>.<domain>`: one server.
    Node {
        /// Server node name.
        node: String,
        /// Datacenter.
        datacenter: String,
    },
}

/// Why a server name could not be parsed. Each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniError {
    /// The name was empty.
    #[error("SNI is empty")]
    Empty,
    /// The name is longer than a DNS name may be.
    #[error("SNI is {len} bytes long, the limit is {MAX_SNI_LEN}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("SNI has invalid character {ch:?} at byte {position}")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
    /// A label is empty (two dots in a row, or a leading or trailing dot).
    #[error("SNI label {index} is empty")]
    EmptyLabel {
        /// Zero-based label index.
        index: usize,
    },
    /// A label is longer than 63 bytes.
    #[error("SNI label {index} is longer than 63 bytes")]
    LabelTooLong {
        /// Zero-based label index.
        index: usize,
    },
    /// The name does not end in the expected trust domain or DNS domain.
    #[error("SNI does not end in .{expected}")]
    WrongDomain {
        /// The suffix that was expected.
        expected: String,
    },
    /// The label before the trust domain is not one Consul uses.
    #[error(
        "SNI kind label {found:?} is not one of internal, internal-v1, query, external, peering"
    )]
    UnknownKind {
        /// The label found.
        found: String,
    },
    /// The number of labels before the kind label does not fit that kind.
    #[error("an {kind} SNI needs {expected} labels before {kind:?}, found {found}")]
    LabelCount {
        /// The kind label.
        kind: &'static str,
        /// How many labels were found.
        found: usize,
        /// The allowed counts.
        expected: &'static str,
    },
    /// A fixed label has the wrong value.
    #[error("SNI label {index} is {found:?}, expected {expected:?}")]
    UnexpectedLabel {
        /// Zero-based label index.
        index: usize,
        /// The label found.
        found: String,
        /// The label required.
        expected: &'static str,
    },
}

/// Parses an SNI under `trust_domain` back into its parts (ASCII case-insensitive; the result is
/// lower-case). Never panics.
pub fn parse_sni(sni: &str, trust_domain: &TrustDomain) -> Result<Sni, SniError> {
    let lower = check_name(sni)?;
    let prefix = strip_domain(&lower, trust_domain.as_str())?;
    let mut labels: Vec<&str> = prefix.split('.').collect();
    let Some(kind) = labels.pop() else {
        return Err(SniError::Empty);
    };
    let owned = |s: &str| s.to_owned();
    match (kind, labels.as_slice()) {
        (INTERNAL, [dc]) => Ok(Sni::Datacenter {
            partition: DEFAULT.to_owned(),
            datacenter: owned(dc),
        }),
        (INTERNAL, [svc, ns, dc]) => Ok(service(None, svc, ns, DEFAULT, dc)),
        (INTERNAL, [subset, svc, ns, dc]) => Ok(service(Some(subset), svc, ns, DEFAULT, dc)),
        (INTERNAL, _) => Err(SniError::LabelCount {
            kind: INTERNAL,
            found: labels.len(),
            expected: "1, 3 or 4",
        }),
        (INTERNAL_V1, [ap, dc]) => Ok(Sni::Datacenter {
            partition: owned(ap),
            datacenter: owned(dc),
        }),
        (INTERNAL_V1, [svc, ns, ap, dc]) => Ok(service(None, svc, ns, ap, dc)),
        (INTERNAL_V1, [subset, svc, ns, ap, dc]) => Ok(service(Some(subset), svc, ns, ap, dc)),
        (INTERNAL_V1, _) => Err(SniError::LabelCount {
            kind: INTERNAL_V1,
            found: labels.len(),
            expected: "2, 4 or 5",
        }),
        (QUERY, [query, ns, dc]) => {
            if *ns != DEFAULT {
                return Err(SniError::UnexpectedLabel {
                    index: 1,
                    found: owned(ns),
                    expected: DEFAULT,
                });
            }
            Ok(Sni::PreparedQuery {
                query: owned(query),
                datacenter: owned(dc),
            })
        }
        (QUERY, _) => Err(SniError::LabelCount {
            kind: QUERY,
            found: labels.len(),
            expected: "3",
        }),
        (EXTERNAL, [svc, ns, ap, peer]) => Ok(Sni::PeeredService {
            service: owned(svc),
            namespace: owned(ns),
            partition: owned(ap),
            peer: owned(peer),
        }),
        (EXTERNAL, _) => Err(SniError::LabelCount {
            kind: EXTERNAL,
            found: labels.len(),
            expected: "4",
        }),
        (PEERING, [server, dc]) => {
            if *server != "server" {
                return Err(SniError::UnexpectedLabel {
                    index: 0,
                    found: owned(server),
                    expected: "server",
                });
            }
            Ok(Sni::PeeringServer {
                datacenter: owned(dc),
            })
        }
        (PEERING, _) => Err(SniError::LabelCount {
            kind: PEERING,
            found: labels.len(),
            expected: "2",
        }),
        (other, _) => Err(SniError::UnknownKind {
            found: owned(other),
        }),
    }
}

/// Parses a WAN-federation server name under the DNS `domain` (usually `consul`). Never panics.
pub fn parse_server_sni(sni: &str, domain: &str) -> Result<ServerSni, SniError> {
    let lower = check_name(sni)?;
    let prefix = strip_domain(&lower, &domain.to_ascii_lowercase())?;
    let labels: Vec<&str> = prefix.split('.').collect();
    match labels.as_slice() {
        ["server", dc] => Ok(ServerSni::Any {
            datacenter: (*dc).to_owned(),
        }),
        [node, "server", dc] => Ok(ServerSni::Node {
            node: (*node).to_owned(),
            datacenter: (*dc).to_owned(),
        }),
        [first, _] => Err(SniError::UnexpectedLabel {
            index: 0,
            found: (*first).to_owned(),
            expected: "server",
        }),
        [_, second, _] => Err(SniError::UnexpectedLabel {
            index: 1,
            found: (*second).to_owned(),
            expected: "server",
        }),
        _ => Err(SniError::LabelCount {
            kind: "server",
            found: labels.len(),
            expected: "2 or 3",
        }),
    }
}

fn service(subset: Option<&str>, svc: &str, ns: &str, ap: &str, dc: &str) -> Sni {
    Sni::Service(ServiceTarget {
        subset: subset.map(str::to_owned),
        service: svc.to_owned(),
        namespace: ns.to_owned(),
        partition: ap.to_owned(),
        datacenter: dc.to_owned(),
    })
}

/// Checks length, characters and labels; returns the lower-cased name.
fn check_name(sni: &str) -> Result<String, SniError> {
    if sni.is_empty() {
        return Err(SniError::Empty);
    }
    if sni.len() > MAX_SNI_LEN {
        return Err(SniError::TooLong { len: sni.len() });
    }
    if let Some((position, ch)) = sni
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(SniError::InvalidChar { ch, position });
    }
    for (index, label) in sni.split('.').enumerate() {
        if label.is_empty() {
            return Err(SniError::EmptyLabel { index });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(SniError::LabelTooLong { index });
        }
    }
    Ok(sni.to_ascii_lowercase())
}

fn strip_domain<'a>(name: &'a str, domain: &str) -> Result<&'a str, SniError> {
    name.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .filter(|rest| !rest.is_empty())
        .ok_or_else(|| SniError::WrongDomain {
            expected: domain.to_owned(),
        })
}

impl Sni {
    /// Formats the SNI again under `trust_domain` (inverse of [`parse_sni`]).
    pub fn to_sni(&self, trust_domain: &TrustDomain) -> String {
        match self {
            Sni::Service(t) => service_sni(
                &t.service,
                t.subset.as_deref().unwrap_or_default(),
                &t.namespace,
                &t.partition,
                &t.datacenter,
                trust_domain,
            ),
            Sni::Datacenter {
                partition,
                datacenter,
            } => partition_datacenter_sni(partition, datacenter, trust_domain),
            Sni::PreparedQuery { query, datacenter } => query_sni(query, datacenter, trust_domain),
            Sni::PeeredService {
                service,
                namespace,
                partition,
                peer,
            } => peered_service_sni(service, namespace, partition, peer, trust_domain.as_str()),
            Sni::PeeringServer { datacenter } => peering_server_sni(datacenter, trust_domain),
        }
    }

    /// The `(partition, datacenter)` a mesh gateway routes this name to, when it names one.
    pub fn route_key(&self) -> Option<(&str, &str)> {
        match self {
            Sni::Service(t) => Some((&t.partition, &t.datacenter)),
            Sni::Datacenter {
                partition,
                datacenter,
            } => Some((partition, datacenter)),
            Sni::PreparedQuery { datacenter, .. } | Sni::PeeringServer { datacenter } => {
                Some((DEFAULT, datacenter))
            }
            Sni::PeeredService { .. } => None,
        }
    }
}

impl fmt::Display for ServiceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(subset) = &self.subset {
            write!(f, "{subset}.")?;
        }
        write!(
            f,
            "{}.{}.{}.{}",
            self.service, self.namespace, self.partition, self.datacenter
        )
    }
}

#[cfg(test)]
mod tests;
