//! Small pieces shared by the wire types: Go durations, string enums, null handling and URL escaping.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way Go's `time.Duration.String()` writes it (`"10s"`, `"1m30s"`, `"1.5ms"`).
///
/// Consul sends these for check definitions, token TTLs and auth method TTLs. On input, a bare
/// integer is also accepted and read as nanoseconds, as Consul's own decoder does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// A duration written as an integer number of nanoseconds (Go's `time.Duration` without a custom
/// encoder), as in `PassiveHealthCheck.Interval`. On input, a Go duration string is also accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NanosDuration(pub Duration);

// === impl GoDuration ===

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_go_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor).map(GoDuration)
    }
}

// === impl NanosDuration ===

impl From<Duration> for NanosDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl Serialize for NanosDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Go's time.Duration is an i64; anything longer cannot be represented there either.
        let nanos = u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX);
        s.serialize_u64(nanos)
    }
}

impl<'de> Deserialize<'de> for NanosDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor).map(NanosDuration)
    }
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Go duration string such as \"10s\" or an integer number of nanoseconds")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_nanos)
            .map_err(|_| E::custom(format!("negative duration {v}")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
        if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
            Ok(Duration::from_nanos(v as u64))
        } else {
            Err(E::custom(format!("duration {v} out of range")))
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_go_duration(v).map_err(E::custom)
    }
}

/// Formats a duration as Go's `time.Duration.String()` does.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(secs * 1_000_000_000 + sub, 1_000_000_000));
    out.push('s');
    out
}

/// Writes `value / unit` with the fractional part trimmed of trailing zeros.
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses a Go duration string (`"1h30m"`, `"1.5s"`, `"250ms"`, `"0"`). Negative values are rejected.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    let mut s = text;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if let Some(rest) = s.strip_prefix('-') {
        // Go accepts "-0s"; any other negative value has no meaning for a timeout or TTL.
        return match parse_go_duration(rest) {
            Ok(d) if d.is_zero() => Ok(Duration::ZERO),
            Ok(_) => Err(format!("negative duration {text:?}")),
            Err(_) => Err(bad()),
        };
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(after) => {
                let len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                after.split_at(len)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "" => return Err(format!("missing unit in duration {text:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(bad)?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut place = scale;
        for digit in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value = value
                .checked_add(u128::from(digit - b'0') * place)
                .ok_or_else(bad)?;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        s = rest;
    }
    let nanos = u64::try_from(total).map_err(|_| format!("duration {text:?} out of range"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Reads a JSON `null` as the type's default; Go encodes empty slices and maps as `null`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads an optional string enum, taking `""` (how Go writes "unset") as `None`.
pub(crate) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: for<'a> From<&'a str>,
{
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(text.filter(|t| !t.is_empty()).map(|t| T::from(t.as_ref())))
}

/// True when a value equals its default, used to leave zero-valued fields out of request bodies.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Declares an enum for a Consul string field: known values by name, anything else kept verbatim.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know by name, kept as sent.
            Other(String),
        }

        impl $name {
            /// The text Consul uses for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok(Self::from(text.as_ref()))
            }
        }
    };
}
pub(crate) use string_enum;

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters.
///
/// Names such as ECS cluster ARNs contain `/`, which must not split the path.
pub(crate) fn encode_segment(text: &str) -> String {
    encode(text, false)
}

/// Percent-encodes a path that may hold `/` separators (KV keys), keeping the separators.
pub(crate) fn encode_path(text: &str) -> String {
    encode(text, true)
}

/// Percent-encodes a query-string key or value.
pub(crate) fn encode_query(text: &str) -> String {
    encode(text, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && byte == b'/');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Formats a duration as Consul's `wait` query parameter (milliseconds, at least 1 ms when non-zero).
pub(crate) fn wait_param(d: Duration) -> String {
    let ms = d.as_millis();
    let ms = if ms == 0 && !d.is_zero() { 1 } else { ms };
    format!("{ms}ms")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_secs(72 * 3600), "72h0m0s"),
        ];
        for (d, text) in cases {
            assert_eq!(format_go_duration(d), text);
            assert_eq!(parse_go_duration(text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn go_duration_parses_every_unit_and_rejects_garbage() {
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(parse_go_duration("2μs").unwrap(), Duration::from_micros(2));
        assert_eq!(
            parse_go_duration(".5s").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-0s").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "1x", "-5s", "1..5s", "99999999999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_accept_both_wire_forms() {
        let a: GoDuration = serde_json::from_str("\"1m\"").unwrap();
        let b: GoDuration = serde_json::from_str("60000000000").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"1m0s\"");
        let n: NanosDuration = serde_json::from_str("\"10s\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "10000000000");
        assert!(serde_json::from_str::<GoDuration>("-1").is_err());
    }

    #[test]
    fn segments_escape_slashes_and_paths_keep_them() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:cluster/my cluster";
        assert_eq!(
            encode_segment(arn),
            "arn%3Aaws%3Aecs%3Aus-east-1%3A123456789012%3Acluster%2Fmy%20cluster"
        );
        assert_eq!(encode_path("a/b c/d"), "a/b%20c/d");
        assert_eq!(
            encode_query("ServiceID == `x`"),
            "ServiceID%20%3D%3D%20%60x%60"
        );
    }

    #[test]
    fn wait_is_sent_in_milliseconds() {
        assert_eq!(wait_param(Duration::from_secs(5)), "5000ms");
        assert_eq!(wait_param(Duration::from_micros(10)), "1ms");
        assert_eq!(wait_param(Duration::ZERO), "0ms");
    }
}
