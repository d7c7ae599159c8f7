//! PEM encoding (decoding goes through `rustls-pki-types`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Encodes DER as a PEM block with 64-column lines and a trailing newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn wraps_at_64_columns_and_decodes_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = encode("CERTIFICATE", &der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).expect("decode");
        assert_eq!(back.as_ref(), der.as_slice());
    }
}
