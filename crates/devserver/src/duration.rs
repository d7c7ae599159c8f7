//! Go's `time.Duration` text format (`300ms`, `1m30s`, `1.5h`), which Consul uses in query parameters
//! (`?wait=5m`) and in check definitions.

use std::time::Duration;

/// Parses a Go duration string. Negative durations are rejected (no caller here can use one).
pub(crate) fn parse_go(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration the way Go's `Duration.String` does (`1m30s`, `1.5s`, `300ms`, `0s`).
pub(crate) fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let secs_total = d.as_secs();
    let hours = secs_total / 3600;
    let minutes = (secs_total % 3600) / 60;
    let sub = nanos % 60_000_000_000;
    let secs = trim_fraction(sub, 1_000_000_000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_go("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_go("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_go("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go("0").unwrap(), Duration::ZERO);
        assert!(parse_go("5").is_err());
        assert!(parse_go("abc").is_err());
        assert!(parse_go("5x").is_err());
        assert!(parse_go("-1s").is_err());
        assert!(parse_go("").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(Duration::from_secs(10)), "10s");
        assert_eq!(format_go(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go(Duration::from_millis(300)), "300ms");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }
}
