//! The static source: identity from PEM files, listeners, endpoints and intentions from the
//! config's `static` section. Nothing is watched; what is loaded at start stays.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use connect::intention::{AclDefault, DefaultPolicy, IntentionAction};

use crate::Error;
use crate::config::StaticConfig;
use crate::proxy::{Core, IntentionSet, PublicSpec, UpstreamSpec};
use crate::tls::{ExpectedIdentity, Material};

fn read(what: &'static str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Loads everything and starts the listeners.
pub(crate) async fn start(core: &Arc<Core>, config: &StaticConfig) -> Result<(), Error> {
    let cert = read("static.certFile", &config.cert_file)?;
    let key = read("static.keyFile", &config.key_file)?;
    let ca = read("static.caFile", &config.ca_file)?;
    let roots: Vec<String> = split_pem(&ca);
    let material =
        Material::from_pem(core.tls.provider(), &cert, &key, &roots, "").map_err(Error::Tls)?;
    core.set_material(material);
    core.set_intentions(IntentionSet {
        intentions: config.intentions.clone(),
        defaults: DefaultPolicy {
            default_intention_policy: Some(if config.default_allow.unwrap_or(true) {
                IntentionAction::Allow
            } else {
                IntentionAction::Deny
            }),
            acl: AclDefault::Disabled,
        },
    });
    let local = config
        .local_service_address
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    core.start_public(PublicSpec {
        bind: SocketAddr::new(core.settings.public_bind_ip, config.public_port),
        local_app: super::host_port(&local, config.local_service_port),
        alpn: super::alpn_for(config.protocol.as_deref().unwrap_or("tcp")),
    })
    .await?;
    let mut specs = Vec::new();
    for u in &config.upstreams {
        let ip: IpAddr = match u.local_bind_address.as_deref().filter(|a| !a.is_empty()) {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(a) => a.parse().map_err(|_| {
                Error::Invalid(format!(
                    "static upstream {}: localBindAddress {a:?} is not an IP",
                    u.destination_name
                ))
            })?,
        };
        specs.push(UpstreamSpec {
            name: u.destination_name.clone(),
            bind: SocketAddr::new(ip, u.local_bind_port),
            expected: ExpectedIdentity {
                service: u.destination_name.clone(),
                namespace: u.destination_namespace.clone(),
                partition: u.destination_partition.clone(),
                datacenter: Some(u.datacenter.clone()).filter(|d| !d.is_empty()),
            },
        });
    }
    core.set_upstreams(specs).await?;
    for u in &config.upstreams {
        core.set_endpoints(&u.destination_name, u.endpoints.clone());
    }
    Ok(())
}

/// Splits a PEM bundle into one PEM string per certificate.
pub(crate) fn split_pem(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        if line.starts_with("-----BEGIN ") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}
