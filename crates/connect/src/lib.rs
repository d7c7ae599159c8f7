//! Consul Connect conventions: trust domains, SPIFFE IDs, SNI names, intention precedence.
//!
//! This crate is pure: it does no I/O and holds no key material, so both the sidecar data plane and the
//! dev server can link it. Everything here is a fact about the wire (how Consul spells an identity, an
//! SNI name, the order intentions are evaluated in); the CA itself lives in `connect-ca`.
//!
//! - [`TrustDomain`]: `<cluster-id>.consul`, compared case-insensitively.
//! - [`SpiffeId`] and its variants: parse and format the URI SANs of Connect certificates.
//! - [`sni`]: build and parse the TLS server names sidecars send and mesh gateways route on.
//! - [`intention`]: `service-intentions` entries, validation, precedence, matching and authorization.
//! - [`colon_hex`]: the `aa:bb:cc` spelling Consul uses for serial numbers and key IDs.

mod hex;
pub mod intention;
pub mod sni;
mod spiffe;
mod trust_domain;

pub use hex::{colon_hex, parse_colon_hex};
pub use spiffe::{
    AgentId, MeshGatewayId, SPIFFE_SCHEME, ServerId, ServiceId, SigningId, SpiffeId, SpiffeIdError,
};
pub use trust_domain::{TRUST_DOMAIN_SUFFIX, TrustDomain, TrustDomainError};

/// The namespace and partition name Consul uses when none is given.
pub const DEFAULT: &str = "default";
