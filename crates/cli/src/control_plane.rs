//! `consul-ecs mesh-init`, `health-sync` and `control-plane`: the per-task control plane.
//!
//! The subcommands take no arguments (upstream prints `unexpected argument: <arg>` and exits 1), read
//! `CONSUL_ECS_CONFIG_JSON` (a bad config prints `invalid config: …` and exits 1), and run on one
//! current-thread runtime. `control-plane` runs mesh-init and then health-sync in one process, with one
//! SIGTERM handler across both. A failure is logged by the library and exits 1.

use std::process::ExitCode;

use consul_ecs_config::Config;
use consul_ecs_mesh_init::Environment;

/// Arguments of the three subcommands: none, but they are collected to be refused with upstream's text.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Which part of the control plane to run.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    /// Register and prepare the task, then exit.
    MeshInit,
    /// Sync health until SIGTERM and the dataplane stop.
    HealthSync,
    /// Both, one after the other.
    ControlPlane,
}

/// Runs a part of the control plane and maps the outcome to an exit code.
pub(crate) fn run(part: Part, args: &Args) -> ExitCode {
    if let Some(arg) = args.rest.first() {
        eprintln!("unexpected argument: {arg}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("invalid config: {}", err.to_string().trim_end());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut env = Environment::from_process();
    let ok = runtime.block_on(async {
        match part {
            Part::MeshInit => consul_ecs_mesh_init::run(&config, &env).await.is_ok(),
            Part::HealthSync => consul_ecs_health_sync::run(&config, &env).await.is_ok(),
            Part::ControlPlane => {
                // One handler for both halves, so that no SIGTERM falls between them.
                let _sigterm = consul_ecs_mesh_init::watch_sigterm(&env);
                env.handle_sigterm = false;
                consul_ecs_mesh_init::run(&config, &env).await.is_ok()
                    && consul_ecs_health_sync::run(&config, &env).await.is_ok()
            }
        }
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
