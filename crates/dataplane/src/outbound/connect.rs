//! Connect stage: dial the chosen instance (time-bounded, another instance on refusal), TLS with
//! the target's SNI and our leaf, then splice.

use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::Upstream;
use super::balance::{Lease, pick};
use crate::io::{SpliceEnd, splice};
use crate::proxy::Core;
use crate::tls::handshake_failure_reason;

/// At most this many instances are tried for one connection.
const MAX_ATTEMPTS: usize = 3;

pub(crate) async fn connection(core: &Core, upstream: &Upstream, downstream: TcpStream) {
    let Some(material) = core.tls.current() else {
        tracing::warn!("no certificates yet; closing");
        return;
    };
    let name = &upstream.spec.name;
    let sni = match upstream.spec.expected.service_id(&material) {
        Ok(id) => connect::sni::service_sni(
            id.service(),
            "",
            id.namespace(),
            id.partition(),
            id.datacenter(),
            &material.trust_domain,
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot name the upstream target");
            return;
        }
    };
    let Ok(server_name) = ServerName::try_from(sni.clone()) else {
        tracing::warn!(%sni, "upstream SNI is not a valid DNS name");
        return;
    };
    let mut tried: Vec<String> = Vec::new();
    let (lease, stream) = loop {
        let Some(lease) = pick(upstream, core.settings.balancer, &tried) else {
            core.metrics.connect_failed(name, "no_healthy_endpoint");
            tracing::info!(
                tried = tried.len(),
                "no healthy upstream instance to connect to"
            );
            return;
        };
        match dial(core, name, &lease).await {
            Some(stream) => break (lease, stream),
            None => {
                tried.push(lease.0.target.clone());
                if tried.len() >= MAX_ATTEMPTS {
                    return;
                }
            }
        }
    };
    let connector = tokio_rustls::TlsConnector::from(upstream.client.clone());
    let timeout = core.settings.handshake_timeout;
    let tls = match tokio::time::timeout(timeout, connector.connect(server_name, stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            let reason = handshake_failure_reason(&error);
            upstream.metrics.handshake_failed(reason);
            tracing::warn!(reason, %error, endpoint = %lease.0.target, %sni, "upstream TLS handshake failed");
            return;
        }
        Err(_) => {
            upstream.metrics.handshake_failed("timeout");
            tracing::warn!(endpoint = %lease.0.target, "upstream TLS handshake timed out");
            return;
        }
    };
    let m = &upstream.metrics;
    match splice(
        downstream,
        tls,
        core.settings.idle_timeout,
        &m.bytes_in,
        &m.bytes_out,
    )
    .await
    {
        SpliceEnd::Done => {}
        SpliceEnd::Idle => tracing::debug!("upstream connection idle; closed"),
        SpliceEnd::Error(error) => {
            tracing::debug!(%error, "upstream connection ended with an error")
        }
    }
    drop(lease);
}

async fn dial(core: &Core, name: &str, lease: &Lease) -> Option<TcpStream> {
    let target: Arc<str> = Arc::from(lease.0.target.as_str());
    match tokio::time::timeout(core.settings.connect_timeout, TcpStream::connect(&*target)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        Ok(Err(error)) => {
            core.metrics.connect_failed(name, "refused");
            tracing::info!(%error, endpoint = %target, "upstream instance refused the connection");
            None
        }
        Err(_) => {
            core.metrics.connect_failed(name, "timeout");
            tracing::info!(endpoint = %target, "connecting to the upstream instance timed out");
            None
        }
    }
}
