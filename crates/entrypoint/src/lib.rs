//! Process wrappers that order a task's shutdown so the proxy outlives the application:
//! `consul-ecs app-entrypoint` and `consul-ecs envoy-entrypoint`.
//!
//! Both run a command in its own process group with the wrapper's stdin, stdout and stderr, forward
//! signals to it and exit with its exit code (128+N if signal N killed it). They differ in what SIGTERM
//! does: `app-entrypoint` delays it by `--shutdown-delay` and then sends it to the application's process
//! group; `envoy-entrypoint` holds the proxy until every application container of the task has stopped
//! (read from the ECS task metadata endpoint), then sends it SIGTERM.
//!
//! The binary calls [`run_app_entrypoint`] or [`run_envoy_entrypoint`] with the parsed flags. Tests and
//! embedders can drive the state machines directly with [`app_entrypoint`] and [`envoy_entrypoint`]
//! and a hand-fed [`Signals::channel`].
//!
//! Unix only: process groups and signals are what this crate is about.

mod app;
mod child;
pub mod duration;
mod envoy;
pub mod logging;
mod signals;

use std::future::Future;

pub use app::{AppConfig, AppEntrypointArgs, app_entrypoint, run_app_entrypoint};
pub use envoy::{
    DEFAULT_POLL_INTERVAL, EnvoyConfig, EnvoyEntrypointArgs, MESH_CONTAINERS, MetadataEndpoint,
    applications_stopped, envoy_entrypoint, run_envoy_entrypoint,
};
pub use nix::sys::signal::Signal;
pub use signals::{SignalSender, Signals};

/// Runs a state machine on a single-threaded runtime, fed with the process's own signals.
fn block_on_with_signals<F, Fut>(machine: F) -> u8
where
    F: FnOnce(Signals) -> Fut,
    Fut: Future<Output = u8>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("starting the async runtime: {err}");
            return child::EXIT_FAILURE;
        }
    };
    runtime.block_on(async {
        // Subscribe before the child starts, so no signal falls between the two.
        match Signals::os() {
            Ok(signals) => machine(signals).await,
            Err(err) => {
                tracing::error!(error = %err, "subscribing to signals");
                child::EXIT_FAILURE
            }
        }
    })
}
