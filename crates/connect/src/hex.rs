//! Colon-separated lower-case hex, as Consul prints serial numbers, key IDs and fingerprints.

/// Formats bytes as lower-case hex pairs joined by `:` (`[0x0a, 0xff]` → `"0a:ff"`).
///
/// Consul uses this for certificate serial numbers (`ClientCertSerial`, leaf `SerialNumber`), root
/// `SigningKeyID`s and root IDs (SHA-1 fingerprints). An empty slice gives an empty string.
pub fn colon_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len().saturating_mul(3));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses colon-separated hex pairs (either case) back into bytes; `None` if any pair is malformed.
///
/// Each group must be exactly two hex digits; an empty string parses to no bytes.
pub fn parse_colon_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(':')
        .map(|pair| {
            let b = pair.as_bytes();
            if b.len() != 2 {
                return None;
            }
            Some(hex_val(b[0])? << 4 | hex_val(b[1])?)
        })
        .collect()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let cases: &[(&[u8], &str)] = &[
            (&[], ""),
            (&[8], "08"),
            (&[0x04, 0x00, 0x15, 0x4b, 0xff], "04:00:15:4b:ff"),
        ];
        for (bytes, text) in cases {
            assert_eq!(colon_hex(bytes), *text);
            assert_eq!(parse_colon_hex(text).as_deref(), Some(*bytes));
        }
        assert_eq!(parse_colon_hex("0A:Bc"), Some(vec![0x0a, 0xbc]));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["0", "012", "0g", ":", "01:", ":01", "01::02", "é1"] {
            assert_eq!(parse_colon_hex(bad), None, "{bad:?}");
        }
    }
}
