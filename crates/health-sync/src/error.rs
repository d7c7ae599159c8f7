//! The error type of health-sync.

use consul_ecs_mesh_init::Error as InitError;

/// Everything health-sync can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A start-up step failed (task metadata, login, finding Consul).
    #[error(transparent)]
    Startup(#[from] InitError),

    /// The checks could not be read before the sync loop.
    #[error("unable to fetch checks before the reconciliation loop: {0}")]
    FetchChecks(Box<InitError>),

    /// The sidecar has more than one check, so health-sync cannot tell which is the dataplane's.
    #[error("only one check should be associated with the sidecar proxy service, found {0}")]
    ProxyChecks(usize),

    /// Deregistration or logout failed at shutdown.
    #[error("error running main: {}", list(.0))]
    Shutdown(Vec<InitError>),
}

fn list(errors: &[InitError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
