//! `<bootstrapDir>/consul-dataplane.json`: how the data plane finds Consul, logs in, and which proxy it
//! is. Upstream's keys, in upstream's order, plus ours under `consul.http` (our data plane speaks
//! Consul's HTTP API rather than gRPC): `port`, `https`, `caCertsPath`, `serverName`.
//!
//! File mode: upstream writes 0444. When the file holds a login bearer token (a replayable signed STS
//! request, valid about 15 minutes) we narrow that: if mesh-init may give the file to the dataplane's
//! user (UID 5995, as the task definitions run it; mesh-init runs as root whenever transparent proxy is
//! on), the file is owned by that user with mode 0400, so the application containers sharing the volume
//! cannot read it. Otherwise it stays 0444 as upstream, since the dataplane runs as another user and
//! must be able to read it. Without a secret inside it is always 0444.

use std::path::Path;

use consul_ecs_config::Config;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::files;
use crate::login::Credentials;
use crate::task::TaskIdentity;

/// Name of the dataplane config on the shared volume.
pub const DATAPLANE_CONFIG_FILE: &str = "consul-dataplane.json";
/// UID the dataplane container runs as.
pub const DATAPLANE_UID: u32 = 5995;
/// Mode of a config without secrets (upstream's).
pub const PUBLIC_MODE: u32 = 0o444;
/// Mode of a config holding a bearer token, owned by [`DATAPLANE_UID`].
pub const PRIVATE_MODE: u32 = 0o400;
/// Where the dataplane serves xDS and readiness.
pub const LOCALHOST: &str = "127.0.0.1";
/// Port of the dataplane's DNS server.
pub const DNS_PORT: u16 = 8600;

/// Inputs beyond the config and the task identity.
#[derive(Clone, Debug, Default)]
pub struct DataplaneFiles {
    /// The gRPC CA file written from `CONSUL_GRPC_CACERT_PEM`, if any.
    pub grpc_ca_file: Option<String>,
    /// The HTTPS CA file written from `CONSUL_HTTPS_CACERT_PEM`, if any.
    pub https_ca_file: Option<String>,
}

/// The dataplane config document.
pub fn dataplane_config(
    config: &Config,
    identity: &TaskIdentity,
    credentials: &Credentials,
    files: &DataplaneFiles,
) -> Value {
    let servers = &config.consul_servers;
    let grpc = servers.grpc_tls();
    let tls = if grpc.enabled {
        let mut tls = Map::new();
        tls.insert("disabled".into(), json!(false));
        if let Some(path) = files.grpc_ca_file.clone().or(grpc.ca_cert_file.clone()) {
            tls.insert("caCertsPath".into(), json!(path));
        }
        if let Some(name) = grpc.server_name.clone() {
            tls.insert("tlsServerName".into(), json!(name));
        }
        Value::Object(tls)
    } else {
        json!({"disabled": true})
    };

    let mut consul = Map::new();
    consul.insert("addresses".into(), json!(servers.hosts));
    consul.insert("grpcPort".into(), json!(servers.grpc.port));
    consul.insert(
        "serverWatchDisabled".into(),
        json!(servers.skip_server_watch),
    );
    consul.insert("tls".into(), tls);
    // Only a login is passed on. Upstream writes an empty login when a static token is also set; the
    // dataplane then gets its token from its own environment, so we leave the section out.
    if let Credentials::Login(login) = credentials {
        let mut body = Map::new();
        body.insert("authMethod".into(), json!(login.auth_method));
        // The login is in the default namespace (upstream passes an empty one), so no `namespace`.
        if !login.partition.is_empty() {
            body.insert("partition".into(), json!(login.partition));
        }
        body.insert("datacenter".into(), json!(login.datacenter));
        body.insert("bearerToken".into(), json!(login.bearer_token.expose()));
        body.insert("meta".into(), json!(login.meta));
        consul.insert(
            "credentials".into(),
            json!({"type": "login", "login": Value::Object(body)}),
        );
    }
    let http_tls = servers.http_tls();
    let mut http = Map::new();
    http.insert("port".into(), json!(servers.http.port));
    http.insert("https".into(), json!(servers.http.https));
    if servers.http.https {
        if let Some(path) = files
            .https_ca_file
            .clone()
            .or(http_tls.ca_cert_file.clone())
        {
            http.insert("caCertsPath".into(), json!(path));
        }
        if let Some(name) = servers.server_name(&http_tls) {
            http.insert("serverName".into(), json!(name));
        }
    }
    consul.insert("http".into(), Value::Object(http));

    let proxy_id = identity
        .sidecar
        .as_ref()
        .map_or(&identity.service.id, |s| &s.id);
    let mut doc = Map::new();
    doc.insert("consul".into(), Value::Object(consul));
    doc.insert(
        "proxy".into(),
        json!({
            "nodeName": identity.node,
            "id": proxy_id,
            "namespace": identity.namespace,
            "partition": identity.partition,
        }),
    );
    doc.insert("xdsServer".into(), json!({"bindAddress": LOCALHOST}));
    doc.insert(
        "envoy".into(),
        json!({"readyBindAddress": LOCALHOST, "readyBindPort": config.health_check_port()}),
    );
    doc.insert(
        "logging".into(),
        json!({"logLevel": config.log_level.as_str()}),
    );
    if config.consul_dns_enabled() {
        doc.insert(
            "dnsServer".into(),
            json!({"bindAddress": LOCALHOST, "bindPort": DNS_PORT}),
        );
    }
    Value::Object(doc)
}

/// Writes the document (compact JSON) and returns the mode it got (see the module docs).
pub fn write(path: &Path, document: &Value, holds_secret: bool) -> Result<u32, Error> {
    let text = document.to_string();
    if holds_secret {
        match files::write_atomic_owned(path, text.as_bytes(), PRIVATE_MODE, DATAPLANE_UID) {
            Ok(()) => return Ok(PRIVATE_MODE),
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                tracing::info!(
                    "cannot give the dataplane config to the dataplane's user; writing it readable by all"
                );
            }
            Err(err) => return Err(err),
        }
    }
    files::write_atomic(path, text.as_bytes(), PUBLIC_MODE)?;
    Ok(PUBLIC_MODE)
}
