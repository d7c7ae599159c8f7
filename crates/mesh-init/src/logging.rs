//! Log output: `tracing` events on standard error, at the config's `logLevel`, as text or (with
//! `CONSUL_ECS_LOG_FORMAT=json`) one JSON object per line. Tokens are never logged.

use std::io::IsTerminal as _;

use consul_ecs_config::LogLevel;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::LogFormat;

/// Installs the global subscriber, unless one is installed already (a second run in the same process,
/// or a test that captures logs).
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Trace => Level::TRACE,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    };
    // Libraries underneath stay quiet below INFO; their debug output is about connection pools and
    // TLS. A static target list needs no regular expressions, unlike an `EnvFilter`.
    let quiet = level.min(Level::INFO);
    let filter = Targets::new().with_default(level).with_targets(
        [
            "hyper",
            "hyper_util",
            "rustls",
            "aws_config",
            "aws_smithy_runtime",
        ]
        .map(|target| (target, quiet)),
    );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
}
