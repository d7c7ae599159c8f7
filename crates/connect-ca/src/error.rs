//! Errors of the CA. Messages are short, lower-case where Consul has no wording of its own, and
//! never contain key material.

use connect::{SpiffeIdError, TrustDomainError};

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The configuration is out of bounds (message in Consul's wording where it has one).
    #[error("{0}")]
    Config(String),
    /// The cluster ID does not make a trust domain.
    #[error("invalid cluster ID: {0}")]
    ClusterId(#[source] TrustDomainError),
    /// The identity to issue for is not a valid leaf identity of this CA.
    #[error("invalid identity for a leaf certificate: {0}")]
    Identity(String),
    /// A SPIFFE ID could not be built.
    #[error("invalid identity for a leaf certificate: {0}")]
    Spiffe(#[from] SpiffeIdError),
    /// The CSR was rejected.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The 64-bit serial counter is exhausted.
    #[error("certificate serial numbers are exhausted")]
    SerialExhausted,
    /// Key generation or certificate encoding failed inside rcgen/ring.
    #[error("certificate generation failed: {0}")]
    Crypto(String),
    /// Persisted state does not describe a usable CA; the message names the root and field.
    #[error("invalid CA state: {0}")]
    State(String),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Crypto(e.to_string())
    }
}

/// Why a certificate signing request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// The input holds no PEM block.
    #[error("no PEM-encoded data found")]
    NoPem,
    /// The first PEM block is not a certificate request.
    #[error("first PEM-block should be CERTIFICATE REQUEST type, found {found}")]
    WrongPemType {
        /// The kind of block found.
        found: String,
    },
    /// The DER does not parse as a PKCS#10 request.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The request's self-signature does not verify.
    #[error("CSR signature is invalid")]
    BadSignature,
    /// The request's public key is neither ECDSA (P-256/P-384) nor RSA of at least 2048 bits.
    #[error("unsupported CSR public key: {0}")]
    UnsupportedKey(String),
    /// The subject alternative names do not hold exactly one URI.
    #[error("CSR SAN contains an invalid number of URIs: {0}")]
    UriCount(usize),
    /// The URI SAN is not a Connect SPIFFE ID.
    #[error("CSR URI SAN {uri:?} is not a valid SPIFFE ID: {reason}")]
    InvalidUri {
        /// The URI (cut to 200 bytes).
        uri: String,
        /// Why it does not parse.
        reason: SpiffeIdError,
    },
    /// The SPIFFE ID is a CA (signing) identity.
    #[error("SPIFFE ID in CSR must be a service, mesh-gateway, server or agent ID")]
    NotALeafIdentity,
    /// The SPIFFE ID belongs to another trust domain.
    #[error("SPIFFE ID in CSR from a different trust domain: {uri}, expected: {expected}")]
    WrongTrustDomain {
        /// The requested URI.
        uri: String,
        /// Our signing URI.
        expected: String,
    },
    /// The SPIFFE ID names another datacenter.
    #[error("SPIFFE ID in CSR from a different datacenter: {found}, expected: {expected}")]
    WrongDatacenter {
        /// The datacenter in the CSR.
        found: String,
        /// The CA's datacenter.
        expected: String,
    },
    /// The caller may sign only for one service and asked for another.
    #[error(
        "Permission denied: may only request certificates for service {allowed:?}, not {requested}"
    )]
    WrongService {
        /// The service the caller may hold.
        allowed: String,
        /// The identity requested.
        requested: String,
    },
    /// The caller's policy refused the identity.
    #[error("Permission denied: not allowed to request a certificate for {uri}")]
    PermissionDenied {
        /// The identity requested.
        uri: String,
    },
}
