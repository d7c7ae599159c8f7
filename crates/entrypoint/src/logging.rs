//! Log lines in upstream's shape, on standard error, from a logger named `consul-ecs`:
//! `2024-05-01T12:00:00.123Z [INFO]  consul-ecs: message: key=value`.
//!
//! Upstream logs through hclog; operators' log filters match its level tags and logger name, so we keep
//! that layout. Timestamps are UTC (ECS containers run in UTC unless told otherwise).

use std::fmt;

use time::OffsetDateTime;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The logger name upstream's entrypoints use.
pub const LOGGER_NAME: &str = "consul-ecs";

/// Parses a `-log-level` value as hclog does: case-insensitive `trace`, `debug`, `info`, `warn`
/// (or `warning`), `error`, `off`, with surrounding spaces ignored. `None` for anything else.
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    Some(match value.trim().to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        _ => return None,
    })
}

/// Installs the process-wide logger at `level` unless one is installed already. An unknown level falls
/// back to `info`, as upstream does, with a warning saying so.
pub fn init(level: &str) {
    let parsed = parse_level(level);
    let filter = parsed.unwrap_or(LevelFilter::INFO);
    // Our own crates log at the chosen level; libraries only at warn and above, so `debug` stays readable.
    let libraries = if filter > LevelFilter::WARN {
        LevelFilter::WARN
    } else {
        filter
    };
    let targets = Targets::new()
        .with_target("consul_ecs_entrypoint", filter)
        .with_target("consul_ecs_aws", filter)
        .with_default(libraries);
    let installed = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(HclogFormat)
                .with_writer(std::io::stderr),
        )
        .with(targets)
        .try_init()
        .is_ok();
    if installed && parsed.is_none() {
        tracing::warn!(level, "unknown log level, using info");
    }
}

/// Formats events as hclog's default text format.
#[derive(Debug, Clone, Copy, Default)]
pub struct HclogFormat;

impl<S, N> FormatEvent<S, N> for HclogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(
            writer,
            "{}",
            format_line(
                OffsetDateTime::now_utc(),
                *event.metadata().level(),
                &fields.message,
                &fields.pairs,
            )
        )
    }
}

/// One log line without its newline.
fn format_line(
    at: OffsetDateTime,
    level: Level,
    message: &str,
    pairs: &[(String, String)],
) -> String {
    let stamp = at
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    let tag = match level {
        Level::TRACE => "[TRACE]",
        Level::DEBUG => "[DEBUG]",
        Level::INFO => "[INFO] ",
        Level::WARN => "[WARN] ",
        Level::ERROR => "[ERROR]",
    };
    let mut line = format!("{stamp} {tag} {LOGGER_NAME}: {message}");
    if !pairs.is_empty() {
        line.push(':');
        for (key, value) in pairs {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&quote_if_needed(value));
        }
    }
    line
}

/// hclog quotes values that would otherwise be ambiguous in a `k=v` list.
fn quote_if_needed(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((field.name().to_owned(), text));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_case_insensitive() {
        assert_eq!(parse_level("INFO"), Some(LevelFilter::INFO));
        assert_eq!(parse_level(" Debug "), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level("trace"), Some(LevelFilter::TRACE));
        assert_eq!(parse_level("WARN"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("Error"), Some(LevelFilter::ERROR));
        assert_eq!(parse_level("off"), Some(LevelFilter::OFF));
        assert_eq!(parse_level("verbose"), None);
        assert_eq!(parse_level(""), None);
    }

    #[test]
    fn lines_look_like_hclog() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_714_564_800_123_456_789).unwrap();
        assert_eq!(
            format_line(at, Level::INFO, "terminating Envoy with sigterm", &[]),
            "2024-05-01T12:00:00.123Z [INFO]  consul-ecs: terminating Envoy with sigterm"
        );
        assert_eq!(
            format_line(
                at,
                Level::ERROR,
                "starting process",
                &[
                    ("error".into(), "no such file".into()),
                    ("code".into(), "1".into())
                ]
            ),
            "2024-05-01T12:00:00.123Z [ERROR] consul-ecs: starting process: error=\"no such file\" code=1"
        );
        assert_eq!(
            format_line(at, Level::DEBUG, "m", &[("k".into(), String::new())]),
            "2024-05-01T12:00:00.123Z [DEBUG] consul-ecs: m: k=\"\""
        );
    }
}
