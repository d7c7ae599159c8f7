//! Log output: `tracing` events on standard error, at the config's `logLevel`, as text or (with
//! `CONSUL_ECS_LOG_FORMAT=json`) one JSON object per line. Tokens are never logged.

use std::io::IsTerminal as _;

use consul_ecs_config::LogLevel;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

/// Installs the global subscriber, unless one is installed already (a second run in the same process,
/// or a test that captures logs).
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Libraries underneath stay quiet below INFO; their debug output is about connection pools and TLS.
    let filter = EnvFilter::new(format!(
        "{level},hyper=info,hyper_util=info,rustls=info,aws_config=info,aws_smithy_runtime=info"
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
