//! The ordered shutdown: SIGTERM → every check critical (and never back) → wait for the dataplane to
//! stop → deregister → log out → exit.
//!
//! [`Phase`] is the explicit state: the sync loop forces critical checks in every phase after
//! [`Phase::Syncing`], and only [`Phase::Deregistering`] ends the loop. Deregistration is retried with
//! backoff within the retry budget (ECS's SIGKILL at `stopTimeout` is the outer bound); the logout
//! happens only for a token health-sync obtained by logging in.

use consul_client::WriteOptions;
use consul_client::catalog::CatalogDeregistration;
use consul_ecs_mesh_init::connection::Connection;
use consul_ecs_mesh_init::task::TaskIdentity;
use consul_ecs_mesh_init::{Environment, Error as InitError, retry};
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Where health-sync is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Mirroring container health into Consul.
    Syncing,
    /// SIGTERM received: every check is critical and stays so; waiting for the dataplane to stop.
    Draining,
    /// The dataplane stopped: deregister and log out.
    Deregistering,
}

impl Phase {
    /// The phase after a SIGTERM (only the first one matters).
    pub fn on_sigterm(self) -> Phase {
        match self {
            Phase::Syncing => Phase::Draining,
            other => other,
        }
    }

    /// The phase after the dataplane was seen stopped (only while draining).
    pub fn on_dataplane_stopped(self) -> Phase {
        match self {
            Phase::Draining => Phase::Deregistering,
            other => other,
        }
    }

    /// Whether every check must be critical whatever the containers say.
    pub fn forces_critical(self) -> bool {
        self != Phase::Syncing
    }
}

/// Deregisters the service and its sidecar (or the gateway), then logs out a login token. Every step is
/// attempted; the failures are returned together.
pub async fn deregister_and_logout(
    connection: &mut Connection,
    env: &Environment,
    identity: &TaskIdentity,
) -> Result<(), Error> {
    // SIGTERM has been received already; these retries must not stop because of it.
    let mut persistent = env.clone();
    persistent.shutdown = CancellationToken::new();
    let mut errors = Vec::new();
    for service in identity.services() {
        let request = CatalogDeregistration {
            node: identity.node.clone(),
            service_id: service.id.clone(),
            namespace: identity.namespace.clone(),
            partition: identity.partition.clone(),
            ..CatalogDeregistration::default()
        };
        let what = format!("deregistering {}", service.id);
        let client = connection.client();
        let outcome = retry::retry(&persistent, &what, || async {
            client
                .catalog()
                .deregister(&request, &WriteOptions::default())
                .await
                .map_err(|e| InitError::consul(format!("deregistering {}", service.id), e))
        })
        .await;
        match outcome {
            Ok(()) => tracing::info!(service_id = %service.id, "deregistered from Consul"),
            Err(err) => {
                tracing::error!(error = %err, "deregistration failed");
                errors.push(err);
            }
        }
    }
    if connection.logged_in()
        && let Err(err) = connection.logout().await
    {
        tracing::error!(error = %err, "logout failed");
        errors.push(err);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Shutdown(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let p = Phase::Syncing;
        assert!(!p.forces_critical());
        assert_eq!(p.on_dataplane_stopped(), Phase::Syncing);
        let p = p.on_sigterm();
        assert_eq!(p, Phase::Draining);
        assert!(p.forces_critical());
        assert_eq!(p.on_sigterm(), Phase::Draining);
        let p = p.on_dataplane_stopped();
        assert_eq!(p, Phase::Deregistering);
        assert!(p.forces_critical());
        assert_eq!(p.on_sigterm(), Phase::Deregistering);
    }
}
