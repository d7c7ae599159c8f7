//! Just enough DER to turn ring's PKCS#8 P-256 keys into the SEC1 `EC PRIVATE KEY` form Consul
//! hands out (RFC 5915, with the curve named in `[0]` so OpenSSL and Go accept it alone).

/// OID 1.2.840.10045.3.1.7 (prime256v1 / P-256), DER-encoded with its tag.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;

/// Reads one TLV; returns (tag, contents, rest). `None` on anything malformed.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn write_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(contents);
}

/// Converts a PKCS#8 P-256 private key (as ring and rcgen produce it) to SEC1 DER.
pub(crate) fn pkcs8_p256_to_sec1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = read_tlv(pkcs8)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, _version, body) = read_tlv(body)?;
    if tag != INTEGER {
        return None;
    }
    let (tag, algorithm, body) = read_tlv(body)?;
    if tag != SEQUENCE || !algorithm.ends_with(P256_OID) {
        return None;
    }
    let (tag, inner, _) = read_tlv(body)?;
    if tag != OCTET_STRING {
        return None;
    }
    // ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING,
    //                             parameters [0] OPTIONAL, publicKey [1] OPTIONAL }
    let (tag, ec, _) = read_tlv(inner)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, version, rest) = read_tlv(ec)?;
    if tag != INTEGER || version != [1] {
        return None;
    }
    let (tag, private, mut rest) = read_tlv(rest)?;
    if tag != OCTET_STRING || private.len() != 32 {
        return None;
    }
    let mut public = None;
    while !rest.is_empty() {
        let (tag, contents, next) = read_tlv(rest)?;
        if tag == CONTEXT_1 {
            public = Some(contents);
        }
        rest = next;
    }
    let public = public?;

    let mut body = Vec::with_capacity(121);
    write_tlv(&mut body, INTEGER, &[1]);
    write_tlv(&mut body, OCTET_STRING, private);
    write_tlv(&mut body, CONTEXT_0, P256_OID);
    write_tlv(&mut body, CONTEXT_1, public);
    let mut out = Vec::with_capacity(body.len() + 3);
    write_tlv(&mut out, SEQUENCE, &body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_truncated_and_foreign_input_without_panicking() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let der = key.serialize_der();
        assert!(pkcs8_p256_to_sec1(&der).is_some());
        for cut in 0..der.len() {
            assert_eq!(pkcs8_p256_to_sec1(&der[..cut]), None, "cut at {cut}");
        }
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("keygen");
        assert_eq!(pkcs8_p256_to_sec1(&p384.serialize_der()), None);
        assert_eq!(pkcs8_p256_to_sec1(&[0x30, 0x84, 0, 0, 0, 1, 0]), None);
    }
}
