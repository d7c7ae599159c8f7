//! `consul-ecs-local`: the local ECS runtime on its own (`run`, `ps`, `logs`, `stop`), the same
//! commands as `consul-ecs local`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "consul-ecs-local",
    about = "Runs ECS task definitions as local processes",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: consul_ecs_local::cli::LocalCommand,
}

fn main() -> ExitCode {
    consul_ecs_local::cli::run(Cli::parse().command, &[])
}
