//! consul-ecs mesh-init: registers a task's service and sidecar (or gateway) in Consul and prepares the
//! shared volume.
//!
//! [`run`] is the entry point. In order, it:
//!
//! 1. reads the task metadata (`ECS_CONTAINER_METADATA_URI_V4`) and derives the cluster ARN, task ID and
//!    names ([`task`]);
//! 2. decides the ACL credentials: `CONSUL_HTTP_TOKEN`, or an AWS IAM login when `consulLogin.enabled`
//!    ([`login`]), then finds a Consul server that answers and logs in ([`connection`]);
//! 3. registers the service and its sidecar proxy, or the gateway, with every check critical
//!    ([`registration`]), each write retried with backoff within [`Environment::retry_budget`];
//! 4. with `networkResilienceConfig.enabled`, adds a passive health check to the service's
//!    `service-defaults` ([`service_defaults`]);
//! 5. copies its own executable to `<bootstrapDir>/consul-ecs` (0755), writes the CA files and
//!    `<bootstrapDir>/consul-dataplane.json` ([`dataplane_config`]);
//! 6. with Consul DNS, rewrites `resolv.conf` ([`dns`]); with transparent proxy, applies the iptables
//!    rules ([`transparent_proxy`]);
//! 7. logs out the token it logged in with, whatever the outcome.
//!
//! SIGTERM (or [`Environment::shutdown`]) interrupts any wait and the run fails with
//! [`Error::Interrupted`]. Consul sees exactly one write per registration when it is up: two for a
//! service task, one for a gateway (plus the login and the service-defaults entry when configured).
//!
//! The modules other than `run` are public because health-sync shares them: it must find its checks
//! under the same names, reach Consul the same way, and can restore the same registrations.

pub mod checks;
pub mod connection;
pub mod dataplane_config;
pub mod discovery;
pub mod dns;
mod environment;
mod error;
pub mod files;
pub mod logging;
pub mod login;
pub mod registration;
pub mod retry;
pub mod service_defaults;
pub mod task;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod transparent_proxy;

use std::path::Path;

use consul_client::WriteOptions;
use consul_ecs_config::Config;

pub use environment::{
    DEFAULT_IPTABLES, DEFAULT_POLL_INTERVAL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RESOLV_CONF,
    DEFAULT_RETRY_BUDGET, DEFAULT_RETRY_INITIAL_BACKOFF, DEFAULT_RETRY_MAX_BACKOFF,
    DEFAULT_VERIFY_INTERVAL, ENV_AWS_REGION, ENV_GRPC_CACERT_PEM, ENV_HTTP_TOKEN,
    ENV_HTTPS_CACERT_PEM, ENV_LOG_FORMAT, ENV_METADATA_URI, Environment, LogFormat, SigtermGuard,
    watch_sigterm,
};
pub use error::Error;

use crate::connection::Connection;
use crate::dataplane_config::{DATAPLANE_CONFIG_FILE, DataplaneFiles};
use crate::login::Credentials;
use crate::task::TaskIdentity;

/// Runs mesh-init: registers the task in Consul and prepares the shared volume (see the crate docs).
///
/// Logging is set up from `config.logLevel` (unless the process already has a subscriber), and a
/// failure is logged at ERROR before it is returned.
pub async fn run(config: &Config, env: &Environment) -> Result<(), Error> {
    logging::init(config.log_level, env.log_format);
    let _sigterm = watch_sigterm(env);
    let result = initialize(config, env).await;
    if let Err(err) = &result {
        tracing::error!(error = %err, "mesh-init failed");
    }
    result
}

async fn initialize(config: &Config, env: &Environment) -> Result<(), Error> {
    let metadata = task::metadata_client(env)?;
    let task_meta = task::read_task(env, &metadata).await?;
    let identity = TaskIdentity::new(config, &task_meta)?;
    let credentials = Credentials::resolve(config, env, &task_meta, &identity).await?;
    let mut connection = Connection::open(config, env, &credentials).await?;

    let outcome = initialize_connected(config, env, &identity, &credentials, &connection).await;
    if let Err(err) = connection.logout().await {
        tracing::warn!(error = %err, "logging out of Consul failed");
    }
    outcome?;
    tracing::info!("successfully initialized the task to operate as part of the mesh");
    Ok(())
}

async fn initialize_connected(
    config: &Config,
    env: &Environment,
    identity: &TaskIdentity,
    credentials: &Credentials,
    connection: &Connection,
) -> Result<(), Error> {
    let client = connection.client();
    for registration in registration::registrations(config, identity, env.aws_region())? {
        let id = registration
            .service
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let what = format!("registering {id}");
        retry::retry(env, &what, || async {
            client
                .catalog()
                .register(&registration, &WriteOptions::default())
                .await
                .map_err(|e| Error::consul(format!("registering {id}"), e))
        })
        .await?;
        tracing::info!(service_id = %id, "registered in Consul");
    }

    if !config.is_gateway()
        && let Some(resilience) = config
            .service
            .network_resilience
            .as_ref()
            .filter(|r| r.enabled)
    {
        service_defaults::upsert(
            client,
            &identity.service.name,
            &identity.namespace,
            &identity.partition,
            &resilience.outlier_detection,
            &env.shutdown,
        )
        .await?;
    }

    let dir = Path::new(&config.bootstrap_dir);
    let executable = files::own_executable(env.executable.as_deref())?;
    let copied = files::copy_executable(&executable, dir)?;
    tracing::info!(path = %copied.display(), "copied the consul-ecs executable");

    let mut written = DataplaneFiles::default();
    if config.consul_servers.grpc_tls().enabled
        && let Some(pem) = env.var(ENV_GRPC_CACERT_PEM)
    {
        let path = dir.join(files::GRPC_CA_FILE);
        files::write_atomic(&path, pem.as_bytes(), files::CA_FILE_MODE)?;
        written.grpc_ca_file = Some(path.display().to_string());
    }
    if config.consul_servers.http.https
        && let Some(pem) = env.var(ENV_HTTPS_CACERT_PEM)
    {
        let path = dir.join(files::HTTPS_CA_FILE);
        files::write_atomic(&path, pem.as_bytes(), files::CA_FILE_MODE)?;
        written.https_ca_file = Some(path.display().to_string());
    }
    let document = dataplane_config::dataplane_config(config, identity, credentials, &written);
    let path = dir.join(DATAPLANE_CONFIG_FILE);
    let holds_secret = matches!(credentials, Credentials::Login(_));
    let mode = dataplane_config::write(&path, &document, holds_secret)?;
    tracing::info!(path = %path.display(), mode = format!("{mode:o}"), "wrote the dataplane config");

    if config.consul_dns_enabled() {
        dns::configure(&env.resolv_conf)?;
        tracing::info!(path = %env.resolv_conf.display(), "configured Consul DNS");
    }
    if config.transparent_proxy_enabled()
        && let Some(sidecar) = &identity.sidecar
    {
        let proxy = retry::retry(env, "reading the proxy registration back", || {
            transparent_proxy::merged_proxy(
                client,
                &identity.node,
                &sidecar.id,
                &identity.service.name,
            )
        })
        .await?;
        let rules = transparent_proxy::RedirectConfig::new(config, &proxy)?.rules();
        transparent_proxy::apply(&env.iptables, &rules).await?;
        tracing::info!(rules = rules.len(), "applied the traffic redirection rules");
    }
    Ok(())
}
