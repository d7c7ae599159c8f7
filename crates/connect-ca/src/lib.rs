//! Built-in Connect CA: root generation and rotation, leaf issuance, CSR signing, roots bundle.
//!
//! This is the CA the dev server runs in place of Consul's built-in `consul` provider. It is a pure
//! library: it owns key material in memory and hands out PEM, and the caller persists [`CaState`]
//! (which holds private keys, so write it 0600) and serves the JSON shapes.
//!
//! - [`Ca::generate`] creates an ECDSA P-256 root for a cluster ID; [`Ca::from_state`] restores one.
//! - [`Ca::roots`] is the `GET /v1/connect/ca/roots` body ([`CaRoots`], PascalCase JSON).
//! - [`Ca::issue_leaf`] generates a key and a leaf for a service identity, as
//!   `GET /v1/agent/connect/ca/leaf/:service` returns it ([`IssuedCert`]).
//! - [`Ca::sign_csr`] signs a CSR after checking its signature, its single SPIFFE URI SAN and a
//!   caller-supplied [`SignPolicy`].
//! - [`Ca::rotate`] makes a new active root, cross-signed by the old one; [`Ca::prune_roots`] drops
//!   old roots once no leaf they signed can still be valid.
//!
//! Certificates follow Consul's shapes: roots carry `CN=pri-<uid>.consul.ca.<cluster8>.consul`, the
//! `spiffe://<td>` URI SAN and a SHA-256 key ID; leafs have an empty subject, a critical SAN with the
//! SPIFFE ID, server+client auth, a serial from one monotonic counter, and are valid from one minute
//! ago for the leaf TTL (72 h by default).
//!
//! Invariant: no function here logs, and `Debug` output never contains private key material.

mod ca;
mod csr;
mod der;
mod error;
mod model;
mod pem;

pub use ca::{
    CROSS_SIGN_TTL, Ca, CaConfig, CaState, DEFAULT_LEAF_CERT_TTL, DEFAULT_ROOT_CERT_TTL,
    MAX_LEAF_CERT_TTL, MIN_LEAF_CERT_TTL, RootState,
};
pub use csr::SignPolicy;
pub use error::{CaError, CsrError};
pub use model::{CaRoot, CaRoots, IssuedCert, ROOT_NAME, SecretPem};
