//! `app-entrypoint`: runs the application and delays its SIGTERM, so the proxy beside it (which stops
//! only after the application) keeps serving the application's outbound calls while it drains.
//!
//! States: **running** (signals other than SIGTERM are forwarded to the child); on the first SIGTERM
//! either **terminating** at once (no delay: SIGTERM to the child's process group) or **delaying**
//! (every signal, including a further SIGTERM, is forwarded; when the delay ends SIGTERM goes to the
//! process group); then **terminating** (signals forwarded until the child exits). The child's exit
//! ends every state and gives the exit code. `SIGCHLD` and `SIGURG` are never forwarded.

use std::future::pending;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::{Instant, sleep_until};

use crate::child::{Child, EXIT_FAILURE};
use crate::duration::{format_go_duration, go_quote, parse_go_duration};
use crate::signals::{Signals, is_never_forwarded};

/// Flags of `consul-ecs app-entrypoint [flags] [--] <command> [args…]`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Runs <command> in its own process group. On SIGTERM it waits -shutdown-delay, \
                  then sends SIGTERM to the command's process group. Other signals are forwarded \
                  to the command. The exit code is the command's (128+N if signal N killed it)."
)]
pub struct AppEntrypointArgs {
    /// How long to wait after SIGTERM before terminating the application (Go duration: 10s, 1m30s)
    #[arg(
        long = "shutdown-delay",
        value_name = "DURATION",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub shutdown_delay: String,
    /// Log level: trace, debug, info, warn, error (case-insensitive)
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// The command to run and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// What `app-entrypoint` runs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// How long to wait after the first SIGTERM before sending SIGTERM to the child's process group.
    pub shutdown_delay: Duration,
}

impl AppEntrypointArgs {
    /// Checks the flags: the delay must be a Go duration and a command must be given. The error is the
    /// text to print, in upstream's words.
    pub fn to_config(&self) -> Result<AppConfig, String> {
        let delay = parse_go_duration(&self.shutdown_delay).map_err(|err| {
            format!(
                "invalid value {} for flag -shutdown-delay: parse error ({err})",
                go_quote(&self.shutdown_delay)
            )
        })?;
        if self.command.is_empty() {
            return Err("command is required".to_owned());
        }
        Ok(AppConfig {
            command: self.command.clone(),
            shutdown_delay: delay.non_negative(),
        })
    }
}

/// Runs `app-entrypoint`: checks the flags, sets up logging, subscribes to signals, runs the command and
/// returns the exit code for the process (the command's, 128+N if signal N killed it, 1 on a usage
/// error or if the command could not be started).
pub fn run_app_entrypoint(args: AppEntrypointArgs) -> u8 {
    let config = match args.to_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return EXIT_FAILURE;
        }
    };
    crate::logging::init(&args.log_level);
    crate::block_on_with_signals(|signals| app_entrypoint(config, signals))
}

/// The `app-entrypoint` state machine over a given signal source: starts the child and returns the
/// exit code once it has exited.
pub async fn app_entrypoint(config: AppConfig, mut signals: Signals) -> u8 {
    let mut child = match Child::spawn(&config.command) {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(command = ?config.command, error = %err, "starting process");
            return EXIT_FAILURE;
        }
    };
    let mut state = State::Running;
    let mut signals_open = true;
    loop {
        let deadline = match state {
            State::Delaying(deadline) => Some(deadline),
            State::Running | State::Terminating => None,
        };
        tokio::select! {
            code = child.wait() => return code,
            received = signals.recv(), if signals_open => {
                let Some(signal) = received else {
                    signals_open = false;
                    continue;
                };
                state = on_signal(state, signal, &child, config.shutdown_delay);
            }
            () = wait_until(deadline) => {
                tracing::info!("terminating application with sigterm");
                child.terminate_group();
                state = State::Terminating;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No SIGTERM yet.
    Running,
    /// SIGTERM received; the group gets SIGTERM at this instant.
    Delaying(Instant),
    /// The group has been sent SIGTERM; waiting for the child to exit.
    Terminating,
}

fn on_signal(state: State, signal: Signal, child: &Child, delay: Duration) -> State {
    if is_never_forwarded(signal) {
        return state;
    }
    match state {
        State::Running if signal == Signal::SIGTERM => {
            if delay.is_zero() {
                tracing::info!("received sigterm. terminating application.");
                child.terminate_group();
                State::Terminating
            } else {
                tracing::info!(
                    "received sigterm. waiting {} before terminating application.",
                    format_go_duration(delay)
                );
                State::Delaying(Instant::now() + delay)
            }
        }
        other => {
            child.forward(signal);
            other
        }
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(delay: &str, command: &[&str]) -> AppEntrypointArgs {
        AppEntrypointArgs {
            shutdown_delay: delay.to_owned(),
            log_level: "info".to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn flags_are_checked_with_upstream_messages() {
        assert_eq!(
            args("asdf", &["/bin/true"]).to_config().unwrap_err(),
            "invalid value \"asdf\" for flag -shutdown-delay: parse error (time: invalid duration \"asdf\")"
        );
        assert_eq!(
            args("10", &["/bin/true"]).to_config().unwrap_err(),
            "invalid value \"10\" for flag -shutdown-delay: parse error (time: missing unit in duration \"10\")"
        );
        assert_eq!(
            args("10s", &[]).to_config().unwrap_err(),
            "command is required"
        );
        let config = args("1m30s", &["/bin/app", "-x"]).to_config().unwrap();
        assert_eq!(config.shutdown_delay, Duration::from_secs(90));
        assert_eq!(config.command, ["/bin/app", "-x"]);
        let config = args("-5s", &["/bin/app"]).to_config().unwrap();
        assert_eq!(config.shutdown_delay, Duration::ZERO);
    }
}
