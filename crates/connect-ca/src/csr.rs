//! Parsing and checking certificate signing requests.

use std::net::IpAddr;

use connect::SpiffeId;
use rustls_pki_types::pem::{PemObject, SectionKind};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::error::CsrError;

/// What a CSR's requester may hold, decided by the caller from its token (ACLs).
#[derive(Clone, Copy)]
pub enum SignPolicy<'a> {
    /// Any leaf identity of the CA's trust domain and datacenter (ACLs disabled, or an operator).
    Any,
    /// Only the service identity of this one service (a token with `service:write` on it).
    Service(&'a str),
    /// Ask the caller about each identity (for example `service:write` / `node:write` lookups).
    Custom(&'a dyn Fn(&SpiffeId) -> bool),
}

impl std::fmt::Debug for SignPolicy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignPolicy::Any => f.write_str("Any"),
            SignPolicy::Service(s) => f.debug_tuple("Service").field(s).finish(),
            SignPolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl SignPolicy<'_> {
    pub(crate) fn check(&self, id: &SpiffeId) -> Result<(), CsrError> {
        match self {
            SignPolicy::Any => Ok(()),
            SignPolicy::Service(allowed) => match id {
                SpiffeId::Service(svc) if svc.service() == *allowed => Ok(()),
                _ => Err(CsrError::WrongService {
                    allowed: (*allowed).to_owned(),
                    requested: id.to_string(),
                }),
            },
            SignPolicy::Custom(f) => {
                if f(id) {
                    Ok(())
                } else {
                    Err(CsrError::PermissionDenied {
                        uri: id.to_string(),
                    })
                }
            }
        }
    }
}

/// The parts of a verified CSR the CA copies into the certificate.
pub(crate) struct ParsedCsr {
    /// DER SubjectPublicKeyInfo.
    pub(crate) spki_der: Vec<u8>,
    /// The single URI SAN, parsed.
    pub(crate) id: SpiffeId,
    /// DNS SANs (a `host:port` entry is cut at the colon, as Consul does).
    pub(crate) dns_names: Vec<String>,
    /// IP SANs.
    pub(crate) ips: Vec<IpAddr>,
}

/// Parses a PEM CSR, verifies its signature and key type, and requires exactly one URI SAN that is a
/// Connect SPIFFE ID. Trust domain, datacenter and policy are checked by the caller.
pub(crate) fn parse(pem: &str) -> Result<ParsedCsr, CsrError> {
    let (kind, der) = match <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(section)) => section,
        Some(Err(e)) => return Err(CsrError::Malformed(format!("bad PEM: {e}"))),
        None => return Err(CsrError::NoPem),
    };
    if kind != SectionKind::Csr {
        return Err(CsrError::WrongPemType {
            found: format!("{kind:?}"),
        });
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} trailing bytes after the request",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    match info.subject_pki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let bits = point.key_size();
            if bits != 256 && bits != 384 {
                return Err(CsrError::UnsupportedKey(format!("EC key of {bits} bits")));
            }
        }
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(CsrError::UnsupportedKey(format!(
                    "RSA key of {bits} bits (at least 2048 required)"
                )));
            }
        }
        Ok(other) => {
            return Err(CsrError::UnsupportedKey(match other {
                PublicKey::DSA(_) => "DSA".into(),
                PublicKey::GostR3410(_) | PublicKey::GostR3410_2012(_) => "GOST".into(),
                _ => format!("algorithm {}", info.subject_pki.algorithm.algorithm),
            }));
        }
        Err(e) => return Err(CsrError::UnsupportedKey(e.to_string())),
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    let mut ips = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                        GeneralName::DNSName(dns) => {
                            let host = dns.split(':').next().unwrap_or_default();
                            if !host.is_empty() {
                                dns_names.push(host.to_owned());
                            }
                        }
                        GeneralName::IPAddress(bytes) => match bytes.len() {
                            4 => {
                                let mut a = [0u8; 4];
                                a.copy_from_slice(bytes);
                                ips.push(IpAddr::from(a));
                            }
                            16 => {
                                let mut a = [0u8; 16];
                                a.copy_from_slice(bytes);
                                ips.push(IpAddr::from(a));
                            }
                            n => {
                                return Err(CsrError::Malformed(format!(
                                    "IP address SAN of {n} bytes"
                                )));
                            }
                        },
                        _ => {}
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(CsrError::Malformed(format!(
                    "unparsable requested extension: {error}"
                )));
            }
            _ => {}
        }
    }
    if uris.len() != 1 {
        return Err(CsrError::UriCount(uris.len()));
    }
    let uri = uris.remove(0);
    let id = SpiffeId::parse(&uri).map_err(|reason| CsrError::InvalidUri {
        uri: cut(&uri, 200),
        reason,
    })?;
    Ok(ParsedCsr {
        spki_der: info.subject_pki.raw.to_vec(),
        id,
        dns_names,
        ips,
    })
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
