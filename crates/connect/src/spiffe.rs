//! SPIFFE IDs of Connect certificates: parse strictly, format exactly as Consul does.
//!
//! Shapes (the host is the trust domain; `/ap/<partition>` appears only for non-default partitions):
//!
//! | Identity | Path |
//! | --- | --- |
//! | service | `[/ap/<ap>]/ns/<ns>/dc/<dc>/svc/<service>` |
//! | client agent | `[/ap/<ap>]/agent/client/dc/<dc>/id/<node-id>` |
//! | server | `/agent/server/dc/<dc>` |
//! | mesh gateway | `[/ap/<ap>]/gateway/mesh/dc/<dc>` |
//! | signing CA | empty path |
//!
//! Segments are matched on the raw (still percent-escaped) path, then unescaped, as Consul does.

use std::fmt;
use std::str::FromStr;

use crate::DEFAULT;
use crate::trust_domain::{TrustDomain, TrustDomainError};

/// The URI scheme of every Connect identity.
pub const SPIFFE_SCHEME: &str = "spiffe";

/// Any Connect identity that can appear as the URI SAN of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpiffeId {
    /// A service instance (sidecar or Connect-native app).
    Service(ServiceId),
    /// A client agent.
    Agent(AgentId),
    /// A mesh gateway.
    MeshGateway(MeshGatewayId),
    /// A Consul server.
    Server(ServerId),
    /// A CA certificate (root or intermediate): the bare trust domain.
    Signing(SigningId),
}

/// The identity of a service: `spiffe://<td>[/ap/<ap>]/ns/<ns>/dc/<dc>/svc/<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceId {
    trust_domain: TrustDomain,
    partition: String,
    namespace: String,
    datacenter: String,
    service: String,
}

/// The identity of a client agent: `spiffe://<td>[/ap/<ap>]/agent/client/dc/<dc>/id/<node-id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentId {
    trust_domain: TrustDomain,
    partition: String,
    datacenter: String,
    agent: String,
}

/// The identity of a mesh gateway: `spiffe://<td>[/ap/<ap>]/gateway/mesh/dc/<dc>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeshGatewayId {
    trust_domain: TrustDomain,
    partition: String,
    datacenter: String,
}

/// The identity of a Consul server: `spiffe://<td>/agent/server/dc/<dc>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerId {
    trust_domain: TrustDomain,
    datacenter: String,
}

/// The identity of a CA certificate: `spiffe://<td>` with no path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SigningId {
    trust_domain: TrustDomain,
}

/// Why a string is not a Connect SPIFFE ID. Each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The URI does not start with `spiffe://`.
    #[error("SPIFFE ID must start with \"spiffe://\", got scheme {found:?}")]
    Scheme {
        /// What stood where the scheme should be (cut to 32 bytes).
        found: String,
    },
    /// The URI carries user information before the host.
    #[error("SPIFFE ID must not contain user information before the trust domain")]
    UserInfo,
    /// The host is not a valid trust domain (this includes a `:port`).
    #[error("SPIFFE ID trust domain is invalid: {0}")]
    TrustDomain(#[source] TrustDomainError),
    /// The URI has a `?query` or `#fragment`.
    #[error("SPIFFE ID must not have a query or fragment")]
    QueryOrFragment,
    /// A signing ID's trust domain must contain a dot.
    #[error("signing SPIFFE ID trust domain {0:?} must contain a dot")]
    UndottedSigningDomain(String),
    /// The path ends before a required segment.
    #[error("SPIFFE ID path ends before the {expected:?} segment")]
    MissingSegment {
        /// The segment that was expected next.
        expected: &'static str,
    },
    /// A keyword segment is not the one the shape requires.
    #[error(
        "unexpected segment {found:?} at position {position} of the SPIFFE ID path, expected {expected}"
    )]
    UnexpectedSegment {
        /// Zero-based index of the segment in the path.
        position: usize,
        /// The segment found (cut to 64 bytes).
        found: String,
        /// What was allowed there.
        expected: &'static str,
    },
    /// Segments follow a complete identity.
    #[error("SPIFFE ID path has {count} unexpected trailing segment(s) after {shape}")]
    TrailingSegments {
        /// How many extra segments.
        count: usize,
        /// The identity shape that was already complete.
        shape: &'static str,
    },
    /// A value segment is empty.
    #[error("the {segment} segment of the SPIFFE ID is empty")]
    EmptySegment {
        /// Which segment (`ap`, `ns`, `dc`, `svc`, `id`).
        segment: &'static str,
    },
    /// A value segment has a malformed `%xx` escape or does not decode to UTF-8.
    #[error("the {segment} segment {value:?} of the SPIFFE ID has an invalid percent-escape")]
    BadEscape {
        /// Which segment.
        segment: &'static str,
        /// The raw segment (cut to 64 bytes).
        value: String,
    },
    /// A value contains a control character.
    #[error("the {segment} segment {value:?} of the SPIFFE ID contains a control character")]
    ControlChar {
        /// Which segment.
        segment: &'static str,
        /// The decoded value (cut to 64 bytes).
        value: String,
    },
    /// Server IDs are never partitioned.
    #[error("server SPIFFE IDs cannot carry a partition")]
    PartitionedServer,
}

impl SpiffeId {
    /// Parses a URI SAN strictly. Never panics; every error names the part at fault.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        parse(input)
    }

    /// The trust domain (host part) of any identity.
    pub fn trust_domain(&self) -> &TrustDomain {
        match self {
            SpiffeId::Service(id) => &id.trust_domain,
            SpiffeId::Agent(id) => &id.trust_domain,
            SpiffeId::MeshGateway(id) => &id.trust_domain,
            SpiffeId::Server(id) => &id.trust_domain,
            SpiffeId::Signing(id) => &id.trust_domain,
        }
    }

    /// The service identity, if this is one.
    pub fn as_service(&self) -> Option<&ServiceId> {
        match self {
            SpiffeId::Service(id) => Some(id),
            _ => None,
        }
    }

    /// The URI string (same as `to_string()`).
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeId::Service(id) => id.fmt(f),
            SpiffeId::Agent(id) => id.fmt(f),
            SpiffeId::MeshGateway(id) => id.fmt(f),
            SpiffeId::Server(id) => id.fmt(f),
            SpiffeId::Signing(id) => id.fmt(f),
        }
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

// === impl ServiceId ===

impl ServiceId {
    /// A service identity in the default partition. `namespace` is usually `default`.
    pub fn new(
        trust_domain: TrustDomain,
        namespace: &str,
        datacenter: &str,
        service: &str,
    ) -> Result<Self, SpiffeIdError> {
        Ok(Self {
            trust_domain,
            partition: DEFAULT.to_owned(),
            namespace: check_value("ns", namespace)?,
            datacenter: check_value("dc", datacenter)?,
            service: check_value("svc", service)?,
        })
    }

    /// The same identity in `partition` (lower-cased, as Consul writes it; empty means `default`).
    pub fn with_partition(mut self, partition: &str) -> Result<Self, SpiffeIdError> {
        self.partition = normalize_partition(partition)?;
        Ok(self)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The admin partition (`default` when the URI has no `/ap/` prefix).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The namespace (`default` in Consul CE).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The datacenter the instance is registered in.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Compares everything but the trust domain, ASCII case-insensitively (how Consul's Go client
    /// checks a server's URI against the one it expected).
    pub fn eq_ignoring_trust_domain(&self, other: &ServiceId) -> bool {
        self.partition.eq_ignore_ascii_case(&other.partition)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.datacenter.eq_ignore_ascii_case(&other.datacenter)
            && self.service.eq_ignore_ascii_case(&other.service)
    }

    /// The URI string.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SPIFFE_SCHEME}://{}", self.trust_domain)?;
        write_partition(f, &self.partition)?;
        write!(
            f,
            "/ns/{}/dc/{}/svc/{}",
            Escaped(&self.namespace),
            Escaped(&self.datacenter),
            Escaped(&self.service)
        )
    }
}

// === impl AgentId ===

impl AgentId {
    /// A client agent identity in the default partition.
    pub fn new(
        trust_domain: TrustDomain,
        datacenter: &str,
        agent: &str,
    ) -> Result<Self, SpiffeIdError> {
        Ok(Self {
            trust_domain,
            partition: DEFAULT.to_owned(),
            datacenter: check_value("dc", datacenter)?,
            agent: check_value("id", agent)?,
        })
    }

    /// The same identity in `partition` (lower-cased; empty means `default`).
    pub fn with_partition(mut self, partition: &str) -> Result<Self, SpiffeIdError> {
        self.partition = normalize_partition(partition)?;
        Ok(self)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The admin partition.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The datacenter.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }

    /// The agent's node name or ID.
    pub fn agent(&self) -> &str {
        &self.agent
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SPIFFE_SCHEME}://{}", self.trust_domain)?;
        write_partition(f, &self.partition)?;
        write!(
            f,
            "/agent/client/dc/{}/id/{}",
            Escaped(&self.datacenter),
            Escaped(&self.agent)
        )
    }
}

// === impl MeshGatewayId ===

impl MeshGatewayId {
    /// A mesh gateway identity in the default partition.
    pub fn new(trust_domain: TrustDomain, datacenter: &str) -> Result<Self, SpiffeIdError> {
        Ok(Self {
            trust_domain,
            partition: DEFAULT.to_owned(),
            datacenter: check_value("dc", datacenter)?,
        })
    }

    /// The same identity in `partition` (lower-cased; empty means `default`).
    pub fn with_partition(mut self, partition: &str) -> Result<Self, SpiffeIdError> {
        self.partition = normalize_partition(partition)?;
        Ok(self)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The admin partition.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The datacenter.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }
}

impl fmt::Display for MeshGatewayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SPIFFE_SCHEME}://{}", self.trust_domain)?;
        write_partition(f, &self.partition)?;
        write!(f, "/gateway/mesh/dc/{}", Escaped(&self.datacenter))
    }
}

// === impl ServerId ===

impl ServerId {
    /// A server identity.
    pub fn new(trust_domain: TrustDomain, datacenter: &str) -> Result<Self, SpiffeIdError> {
        Ok(Self {
            trust_domain,
            datacenter: check_value("dc", datacenter)?,
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The datacenter.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SPIFFE_SCHEME}://{}/agent/server/dc/{}",
            self.trust_domain,
            Escaped(&self.datacenter)
        )
    }
}

// === impl SigningId ===

impl SigningId {
    /// The signing identity of a trust domain (the URI SAN of its CA certificates).
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self { trust_domain }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Whether a CA with this identity may sign a certificate for `id`: any identity of the same trust
    /// domain (trust domains compare case-insensitively and are stored lower-cased).
    pub fn can_sign(&self, id: &SpiffeId) -> bool {
        id.trust_domain() == &self.trust_domain
    }
}

impl fmt::Display for SigningId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SPIFFE_SCHEME}://{}", self.trust_domain)
    }
}

// === parsing ===

fn parse(input: &str) -> Result<SpiffeId, SpiffeIdError> {
    let Some((scheme, rest)) = input.split_once("://") else {
        return Err(SpiffeIdError::Scheme {
            found: cut(input.split(':').next().unwrap_or_default(), 32),
        });
    };
    if !scheme.eq_ignore_ascii_case(SPIFFE_SCHEME) {
        return Err(SpiffeIdError::Scheme {
            found: cut(scheme, 32),
        });
    }
    if rest.contains(['?', '#']) {
        return Err(SpiffeIdError::QueryOrFragment);
    }
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    let trust_domain = TrustDomain::new(host).map_err(SpiffeIdError::TrustDomain)?;
    if path.is_empty() {
        if !trust_domain.as_str().contains('.') {
            return Err(SpiffeIdError::UndottedSigningDomain(
                trust_domain.as_str().to_owned(),
            ));
        }
        return Ok(SpiffeId::Signing(SigningId { trust_domain }));
    }
    // `path` starts with '/'; segment 0 is what follows it.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut cursor = Cursor {
        segments: &segments,
        pos: 0,
    };

    let partition = if cursor.peek() == Some("ap") {
        cursor.pos += 1;
        let raw = cursor.value("ap")?;
        Some(normalize_partition(&raw)?)
    } else {
        None
    };

    let id = match cursor.peek() {
        Some("ns") => {
            cursor.pos += 1;
            let namespace = cursor.value("ns")?;
            cursor.keyword("dc", "\"dc\"")?;
            let datacenter = cursor.value("dc")?;
            cursor.keyword("svc", "\"svc\"")?;
            let service = cursor.value("svc")?;
            cursor.finish("a service identity")?;
            SpiffeId::Service(ServiceId {
                trust_domain,
                partition: partition.unwrap_or_else(|| DEFAULT.to_owned()),
                namespace,
                datacenter,
                service,
            })
        }
        Some("agent") => {
            cursor.pos += 1;
            match cursor.peek() {
                Some("client") => {
                    cursor.pos += 1;
                    cursor.keyword("dc", "\"dc\"")?;
                    let datacenter = cursor.value("dc")?;
                    cursor.keyword("id", "\"id\"")?;
                    let agent = cursor.value("id")?;
                    cursor.finish("a client agent identity")?;
                    SpiffeId::Agent(AgentId {
                        trust_domain,
                        partition: partition.unwrap_or_else(|| DEFAULT.to_owned()),
                        datacenter,
                        agent,
                    })
                }
                Some("server") => {
                    if partition.is_some() {
                        return Err(SpiffeIdError::PartitionedServer);
                    }
                    cursor.pos += 1;
                    cursor.keyword("dc", "\"dc\"")?;
                    let datacenter = cursor.value("dc")?;
                    cursor.finish("a server identity")?;
                    SpiffeId::Server(ServerId {
                        trust_domain,
                        datacenter,
                    })
                }
                _ => return Err(cursor.unexpected("\"client\" or \"server\"", "client")),
            }
        }
        Some("gateway") => {
            cursor.pos += 1;
            cursor.keyword("mesh", "\"mesh\"")?;
            cursor.keyword("dc", "\"dc\"")?;
            let datacenter = cursor.value("dc")?;
            cursor.finish("a mesh gateway identity")?;
            SpiffeId::MeshGateway(MeshGatewayId {
                trust_domain,
                partition: partition.unwrap_or_else(|| DEFAULT.to_owned()),
                datacenter,
            })
        }
        _ => {
            let expected = if partition.is_some() {
                "\"ns\", \"agent\" or \"gateway\""
            } else {
                "\"ap\", \"ns\", \"agent\" or \"gateway\""
            };
            return Err(cursor.unexpected(expected, "ns"));
        }
    };
    Ok(id)
}

struct Cursor<'a> {
    segments: &'a [&'a str],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.segments.get(self.pos).copied()
    }

    fn unexpected(&self, expected: &'static str, missing: &'static str) -> SpiffeIdError {
        match self.peek() {
            Some(found) => SpiffeIdError::UnexpectedSegment {
                position: self.pos,
                found: cut(found, 64),
                expected,
            },
            None => SpiffeIdError::MissingSegment { expected: missing },
        }
    }

    fn keyword(&mut self, word: &'static str, expected: &'static str) -> Result<(), SpiffeIdError> {
        if self.peek() == Some(word) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected, word))
        }
    }

    fn value(&mut self, segment: &'static str) -> Result<String, SpiffeIdError> {
        let Some(raw) = self.peek() else {
            return Err(SpiffeIdError::MissingSegment { expected: segment });
        };
        self.pos += 1;
        let decoded = unescape(segment, raw)?;
        check_value(segment, &decoded)
    }

    fn finish(&self, shape: &'static str) -> Result<(), SpiffeIdError> {
        let count = self.segments.len().saturating_sub(self.pos);
        if count == 0 {
            Ok(())
        } else {
            Err(SpiffeIdError::TrailingSegments { count, shape })
        }
    }
}

fn check_value(segment: &'static str, value: &str) -> Result<String, SpiffeIdError> {
    if value.is_empty() {
        return Err(SpiffeIdError::EmptySegment { segment });
    }
    if value.chars().any(char::is_control) {
        return Err(SpiffeIdError::ControlChar {
            segment,
            value: cut(value, 64),
        });
    }
    Ok(value.to_owned())
}

fn normalize_partition(partition: &str) -> Result<String, SpiffeIdError> {
    if partition.is_empty() {
        return Ok(DEFAULT.to_owned());
    }
    check_value("ap", &partition.to_lowercase())
}

fn write_partition(f: &mut fmt::Formatter<'_>, partition: &str) -> fmt::Result {
    if partition.is_empty() || partition == DEFAULT {
        Ok(())
    } else {
        write!(f, "/ap/{}", Escaped(partition))
    }
}

fn unescape(segment: &'static str, raw: &str) -> Result<String, SpiffeIdError> {
    let bad = || SpiffeIdError::BadEscape {
        segment,
        value: cut(raw, 64),
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(bad()),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-escapes everything but RFC 3986 unreserved characters.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, for error messages.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
