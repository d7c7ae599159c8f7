//! Go's duration syntax (`10s`, `1m30s`, `1.5h`, `-2ms`), as task definitions written for upstream use it.
//!
//! Go's rules: an optional sign, then one or more `<decimal><unit>` pairs with units `ns`, `us` (`µs`,
//! `μs`), `ms`, `s`, `m`, `h`; the bare string `0` is allowed without a unit; the total must fit in a
//! signed 64-bit count of nanoseconds.

use std::fmt;
use std::time::Duration;

/// Why a duration string is not valid Go syntax. The texts follow Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a duration at all (empty, no digits, stray characters, out of range).
    Invalid(String),
    /// A number without a unit, such as `10`.
    MissingUnit(String),
    /// A unit Go does not know, such as `10d`.
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(input) => write!(f, "time: invalid duration {}", go_quote(input)),
            Self::MissingUnit(input) => {
                write!(f, "time: missing unit in duration {}", go_quote(input))
            }
            Self::UnknownUnit { unit, input } => write!(
                f,
                "time: unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(input)
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// A parsed Go duration: a sign and a magnitude, since Go allows negative values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    /// True for a negative duration such as `-1s`.
    pub negative: bool,
    /// The magnitude.
    pub magnitude: Duration,
}

impl GoDuration {
    /// The duration to wait: a negative value waits no time at all, as it does in Go.
    pub fn non_negative(self) -> Duration {
        if self.negative {
            Duration::ZERO
        } else {
            self.magnitude
        }
    }
}

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
const NANOS_PER_MINUTE: u128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MINUTE;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SECOND,
        "m" => NANOS_PER_MINUTE,
        "h" => NANOS_PER_HOUR,
        _ => return None,
    })
}

/// Parses a duration the way Go's `time.ParseDuration` does.
pub fn parse_go_duration(input: &str) -> Result<GoDuration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(GoDuration {
            negative: false,
            magnitude: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Go's limit: |d| <= 2^63 - 1 ns, or 2^63 ns for a negative duration.
    let limit: u128 = if negative { 1 << 63 } else { (1 << 63) - 1 };
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        let whole = parse_digits(int_part).ok_or_else(invalid)?;
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        // The fraction: digits beyond what a nanosecond can hold are dropped, as in Go.
        let mut frac_value: u128 = 0;
        let mut frac_scale: u128 = 1;
        for digit in frac_part.bytes().take(20) {
            frac_value = frac_value * 10 + u128::from(digit - b'0');
            frac_scale *= 10;
        }
        value = value
            .checked_add(frac_value * scale / frac_scale)
            .ok_or_else(invalid)?;
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > limit {
            return Err(invalid());
        }
        rest = after_unit;
    }
    let secs = u64::try_from(total / NANOS_PER_SECOND).map_err(|_| invalid())?;
    let nanos = u32::try_from(total % NANOS_PER_SECOND).map_err(|_| invalid())?;
    Ok(GoDuration {
        negative: negative && total != 0,
        magnitude: Duration::new(secs, nanos),
    })
}

/// Parses a run of ASCII digits, `None` on overflow (an empty run is 0).
fn parse_digits(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
    })
}

/// Formats a duration as Go's `Duration.String` does: `0s`, `500ms`, `1.5µs`, `1m30s`, `1h0m0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_MICRO {
        return format!("{nanos}ns");
    }
    if nanos < NANOS_PER_MILLI {
        return format!("{}µs", decimal(nanos, NANOS_PER_MICRO));
    }
    if nanos < NANOS_PER_SECOND {
        return format!("{}ms", decimal(nanos, NANOS_PER_MILLI));
    }
    let hours = nanos / NANOS_PER_HOUR;
    let minutes = (nanos % NANOS_PER_HOUR) / NANOS_PER_MINUTE;
    let seconds = decimal(nanos % NANOS_PER_MINUTE, NANOS_PER_SECOND);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` as a decimal without trailing zeros in the fraction.
fn decimal(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Quotes a string the way Go's `%q` does for the printable ASCII we expect in flags.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(input: &str, secs: u64, nanos: u32, negative: bool) {
        assert_eq!(
            parse_go_duration(input),
            Ok(GoDuration {
                negative,
                magnitude: Duration::new(secs, nanos)
            }),
            "{input}"
        );
    }

    #[test]
    fn parses_what_go_parses() {
        ok("0", 0, 0, false);
        ok("-0", 0, 0, false);
        ok("+0", 0, 0, false);
        ok("0s", 0, 0, false);
        ok("10s", 10, 0, false);
        ok("1m30s", 90, 0, false);
        ok("500ms", 0, 500_000_000, false);
        ok("1.5h", 5400, 0, false);
        ok(".5s", 0, 500_000_000, false);
        ok("1.s", 1, 0, false);
        ok("2h45m", 9900, 0, false);
        ok("1us", 0, 1_000, false);
        ok("1µs", 0, 1_000, false);
        ok("1μs", 0, 1_000, false);
        ok("3ns", 0, 3, false);
        ok("-1s", 1, 0, true);
        ok("+1s", 1, 0, false);
        ok("1s500ms", 1, 500_000_000, false);
        ok("1.0000000001s", 1, 0, false);
        // Go's largest duration.
        ok("9223372036854775807ns", 9_223_372_036, 854_775_807, false);
        ok("-9223372036854775808ns", 9_223_372_036, 854_775_808, true);
    }

    #[test]
    fn rejects_what_go_rejects_with_go_messages() {
        let err = |s: &str| parse_go_duration(s).unwrap_err().to_string();
        assert_eq!(err("asdf"), "time: invalid duration \"asdf\"");
        assert_eq!(err(""), "time: invalid duration \"\"");
        assert_eq!(err("-"), "time: invalid duration \"-\"");
        assert_eq!(err("."), "time: invalid duration \".\"");
        assert_eq!(err(".s"), "time: invalid duration \".s\"");
        assert_eq!(err("s"), "time: invalid duration \"s\"");
        assert_eq!(err("10"), "time: missing unit in duration \"10\"");
        assert_eq!(err("1s2"), "time: missing unit in duration \"1s2\"");
        assert_eq!(err("10d"), "time: unknown unit \"d\" in duration \"10d\"");
        assert_eq!(err("1 s"), "time: unknown unit \" s\" in duration \"1 s\"");
        assert_eq!(
            err("9223372036854775808ns"),
            "time: invalid duration \"9223372036854775808ns\""
        );
        assert_eq!(
            err("99999999999999999999999999999999999999999h"),
            "time: invalid duration \"99999999999999999999999999999999999999999h\""
        );
        assert_eq!(err("3000000h"), "time: invalid duration \"3000000h\"");
    }

    #[test]
    fn negative_durations_wait_no_time() {
        assert_eq!(
            parse_go_duration("-5s").unwrap().non_negative(),
            Duration::ZERO
        );
        assert_eq!(
            parse_go_duration("5s").unwrap().non_negative(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn formats_like_go() {
        let f = |s: &str| format_go_duration(parse_go_duration(s).unwrap().magnitude);
        assert_eq!(f("0"), "0s");
        assert_eq!(f("10s"), "10s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("500ms"), "500ms");
        assert_eq!(f("1500us"), "1.5ms");
        assert_eq!(f("1500ns"), "1.5µs");
        assert_eq!(f("7ns"), "7ns");
        assert_eq!(f("1h2m3.04s"), "1h2m3.04s");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [
            "\u{0}",
            "1\u{00b5}",
            "1é",
            "--1s",
            "1..5s",
            "1.5.5s",
            "+",
            "0.",
            "0x1s",
            "١s",
            "1h-1s",
        ] {
            let _ = parse_go_duration(input);
        }
        assert!(parse_go_duration("1..5s").is_err());
        assert!(parse_go_duration("1h-1s").is_err());
        assert!(parse_go_duration("0.").is_err());
    }
}
