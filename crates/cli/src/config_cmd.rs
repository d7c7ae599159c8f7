//! `consul-ecs config …`: checks a CONSUL_ECS_CONFIG_JSON document before it reaches a task.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Subcommands of `config`.
#[derive(clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validates a config and prints it with every default applied.
    ///
    /// Reads CONSUL_ECS_CONFIG_JSON, or the file given with --file ("-" reads standard input).
    /// Exits 0 and prints "ok" and the resolved config when valid; exits 1 and prints every violation
    /// with its JSON path when not.
    Validate {
        /// Read the config from this file instead of CONSUL_ECS_CONFIG_JSON ("-" for standard input).
        #[arg(long, short = 'f', value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

/// Runs a `config` subcommand.
pub(crate) fn run(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Validate { file } => validate(file),
    }
}

fn validate(file: Option<PathBuf>) -> ExitCode {
    let text = match read_source(file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("invalid config: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match consul_ecs_config::Config::from_json(&text) {
        Ok(config) => match serde_json::to_string_pretty(&config.resolved()) {
            Ok(json) => crate::print_stdout(&format!("ok\n{json}\n")),
            Err(err) => {
                eprintln!("printing the resolved config: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("invalid config: {}", err.to_string().trim_end());
            ExitCode::FAILURE
        }
    }
}

fn read_source(file: Option<PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the config from standard input")?;
            Ok(text)
        }
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading the config file {}", path.display())),
        None => Ok(consul_ecs_config::from_env_var()?),
    }
}
