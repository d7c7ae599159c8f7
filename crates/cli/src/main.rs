//! The `consul-ecs` binary: the subcommand table, config loading and exit codes.
//!
//! All behaviour lives in library crates; this file only parses arguments, picks the subcommand and turns
//! its result into an exit code that scripts and ECS health checks can rely on.

mod args;
mod config_cmd;
mod control_plane;
mod net_dial;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for an unknown or missing subcommand, as upstream's CLI framework uses.
const EXIT_UNKNOWN_COMMAND: u8 = 127;

#[derive(Parser)]
#[command(
    name = "consul-ecs",
    about = "Consul service mesh on Amazon ECS",
    disable_version_flag = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Initializes a mesh app: registers the service and its proxy, writes the dataplane config
    MeshInit(control_plane::Args),
    /// Syncs ECS container's health status into Consul
    HealthSync(control_plane::Args),
    /// Runs mesh-init, then health-sync, in one process
    ControlPlane(control_plane::Args),
    /// ECS controller: ACL set-up and clean-up of stopped tasks
    Controller(ControllerArgs),
    /// Entrypoint for running Envoy (the dataplane) in ECS
    EnvoyEntrypoint(consul_ecs_entrypoint::EnvoyEntrypointArgs),
    /// Entrypoint for running a command in ECS
    AppEntrypoint(consul_ecs_entrypoint::AppEntrypointArgs),
    /// Checks for a TCP listener on a host
    NetDial(net_dial::Args),
    /// Runs a single-node Consul-compatible server (the local default and the peer for tests)
    DevServer(Box<devserver::Args>),
    /// Works with CONSUL_ECS_CONFIG_JSON
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Runs ECS task definitions as local processes, one network namespace per task (Linux, root)
    #[command(subcommand)]
    Local(consul_ecs_local::cli::LocalCommand),
    /// Prints the version
    Version(version::Args),
}

/// Arguments of `controller`: none (it reads CONSUL_ECS_CONFIG_JSON and the environment).
#[derive(clap::Args)]
struct ControllerArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Upstream answers a version flag before the subcommand on stderr; scripts grep for it there.
    if let Some(first) = args.get(1)
        && matches!(first.as_str(), "-v" | "-version" | "--version")
    {
        eprintln!("{}", version::human_version());
        return ExitCode::SUCCESS;
    }
    let args = args::normalize(&Cli::command(), args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return parse_failure(err),
    };
    match cli.command {
        Command::NetDial(a) => net_dial::run(&a),
        Command::Config(c) => config_cmd::run(c),
        // The runtime calls this binary back for its hidden `local` commands (container shims).
        Command::Local(c) => consul_ecs_local::cli::run(c, &["local"]),
        Command::DevServer(a) => run_async(devserver::run(*a)),
        Command::Version(_) => print_stdout(&format!("{}\n", version::human_version())),
        Command::EnvoyEntrypoint(a) => {
            ExitCode::from(consul_ecs_entrypoint::run_envoy_entrypoint(a))
        }
        Command::AppEntrypoint(a) => ExitCode::from(consul_ecs_entrypoint::run_app_entrypoint(a)),
        Command::MeshInit(a) => control_plane::run(control_plane::Part::MeshInit, &a),
        Command::HealthSync(a) => control_plane::run(control_plane::Part::HealthSync, &a),
        Command::ControlPlane(a) => control_plane::run(control_plane::Part::ControlPlane, &a),
        Command::Controller(a) => run_controller(&a),
    }
}

/// `controller`: upstream's argument and config errors, then the controller until SIGTERM (exit 0).
fn run_controller(args: &ControllerArgs) -> ExitCode {
    if let Some(arg) = args.rest.first() {
        eprintln!("unexpected argument: {arg}");
        return ExitCode::FAILURE;
    }
    match consul_ecs_config::Config::from_env() {
        Ok(config) => run_async(async move { Ok(consul_ecs_controller::run(&config).await?) }),
        Err(err) => {
            eprintln!("invalid config: {}", err.to_string().trim_end());
            ExitCode::FAILURE
        }
    }
}

/// Writes to standard output; a reader that went away (`| head`) is not an error worth a panic.
pub(crate) fn print_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("writing to standard output: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an async subcommand on a multi-threaded runtime and maps its result to an exit code.
fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Maps a clap failure to upstream's exit codes: help is success, an unknown command is 127.
fn parse_failure(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand => EXIT_UNKNOWN_COMMAND,
        _ => 1,
    };
    // Printing can only fail on a closed stderr, where there is nobody left to tell.
    let _ = err.print();
    ExitCode::from(code)
}
