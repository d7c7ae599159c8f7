//! The Consul source: everything the proxy needs, over Consul's HTTP API through `consul-client`.
//!
//! Start-up: resolve the server addresses, log in (static token or `POST /v1/acl/login`), find the
//! proxy registration in `/v1/catalog/node-services/<node>`, then run blocking-query watches for
//! the registration (upstream set), the leaf (`/v1/agent/connect/ca/leaf/<service>`, plus a renewal
//! timer at 60–90 % of its lifetime), the roots (`/v1/agent/connect/ca/roots`), the intentions
//! (`/v1/connect/intentions/match?by=destination`) and each upstream's healthy instances. A 403
//! "ACL not found" triggers a re-login, as does a timer before a login token expires. On stop the
//! login token is logged out.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect::intention::{AclDefault, DefaultPolicy, IntentionAction, IntentionPermission};
use consul_client::acl::AclLoginParams;
use consul_client::agent::LeafCert;
use consul_client::catalog::{AgentService, MeshGatewayMode, UpstreamDestinationType};
use consul_client::connect::{CaRootList, IntentionMatchBy};
use consul_client::health::ServiceHealthOptions;
use consul_client::{
    CaSource, Client, ClientCertificate, ClientConfig, PemSource, QueryOptions, RetryPolicy,
    Scheme, Secret, TlsConfig, WriteOptions, watch,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::config::{ConsulSettings, Credentials};
use crate::outbound::discovery::{self, Discovery};
use crate::proxy::{Core, IntentionSet, PublicSpec, UpstreamSpec};
use crate::tls::{ExpectedIdentity, Material};

/// Longest wait of a blocking query.
const BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Pause after a login, so the new token has replicated before it is used (as consul-dataplane).
const LOGIN_SETTLE: Duration = Duration::from_millis(100);
/// Time allowed for the logout at exit.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

fn retry() -> RetryPolicy {
    RetryPolicy::new(Duration::from_millis(500), Duration::from_secs(30))
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

// === credentials ===

/// The token in use and what follows from it.
struct Current {
    client: Client,
    /// Bumped at every login.
    generation: u64,
    /// When to log in again before the login token expires (login tokens with an expiry only).
    renew_at: Option<tokio::time::Instant>,
}

/// The client in use, with the token of the moment.
struct Auth {
    base: Client,
    credentials: Credentials,
    current: Mutex<Current>,
    /// Secret of a token obtained by login (to log out).
    login_secret: Mutex<Option<Secret>>,
    /// Announces each new generation (the renewal timer re-reads `renew_at`).
    changed: tokio::sync::watch::Sender<u64>,
    relogin: tokio::sync::Mutex<()>,
}

/// Fraction of a login token's lifetime after which it is replaced.
const RENEW_FRACTION: f64 = 0.8;

/// How long after the login to log in again: [`RENEW_FRACTION`] of the token's lifetime. The
/// lifetime is `ExpirationTime - CreateTime` (both the server's clock, so a skew between our clock
/// and the server's does not matter); without a parsable `CreateTime`, the time left by our clock.
fn renew_after(
    create: Option<&str>,
    expires: Option<&str>,
    now: OffsetDateTime,
) -> Option<Duration> {
    let expires = OffsetDateTime::parse(expires?, &Rfc3339).ok()?;
    let lifetime = create
        .and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        .map(|created| expires - created)
        .filter(|d| d.is_positive())
        .unwrap_or(expires - now)
        .max(time::Duration::ZERO);
    Some(Duration::try_from(lifetime * RENEW_FRACTION).unwrap_or_default())
}

/// Whether Consul turned the login down for good (a bad bearer token, an unknown auth method, an
/// identity no binding rule accepts, ACLs disabled): any 4xx but 408 and 429. Transport failures,
/// 5xx, 408 and 429 may pass.
fn login_refused(error: &consul_client::Error) -> bool {
    error
        .status()
        .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
}

impl Auth {
    fn new(base: Client, credentials: Credentials) -> Self {
        let client = match &credentials {
            Credentials::Static(token) => base.with_token(Some(Secret::new(token.clone()))),
            _ => base.clone(),
        };
        Self {
            base,
            credentials,
            current: Mutex::new(Current {
                client,
                generation: 0,
                renew_at: None,
            }),
            login_secret: Mutex::new(None),
            changed: tokio::sync::watch::Sender::new(0),
            relogin: tokio::sync::Mutex::new(()),
        }
    }

    fn client(&self) -> Client {
        locked(&self.current).client.clone()
    }

    fn generation(&self) -> u64 {
        locked(&self.current).generation
    }

    fn auth_method(&self) -> String {
        match &self.credentials {
            Credentials::Login(login) => login.auth_method.clone(),
            _ => String::new(),
        }
    }

    /// Logs in (when the credentials say so). Safe to call concurrently: a caller that saw
    /// generation `seen` does nothing if another caller already replaced that token.
    async fn login(&self, seen: Option<u64>) -> Result<(), consul_client::Error> {
        let Credentials::Login(login) = &self.credentials else {
            return Ok(());
        };
        let _one_at_a_time = self.relogin.lock().await;
        if let Some(seen) = seen
            && self.generation() != seen
        {
            return Ok(());
        }
        let bearer = match &login.bearer_token_path {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| consul_client::Error::Config {
                    field: "consul.credentials.login.bearerTokenPath".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                })?
                .trim()
                .to_owned(),
            None => login.bearer_token.clone().unwrap_or_default(),
        };
        let params = AclLoginParams {
            auth_method: login.auth_method.clone(),
            bearer_token: Secret::new(bearer),
            meta: login.meta.clone(),
        };
        let options = WriteOptions {
            datacenter: Some(login.datacenter.clone()).filter(|v| !v.is_empty()),
            namespace: Some(login.namespace.clone()).filter(|v| !v.is_empty()),
            partition: Some(login.partition.clone()).filter(|v| !v.is_empty()),
            token: None,
        };
        let token = self.base.acl().login(&params, &options).await?;
        let Some(secret) = token.secret_id.clone().filter(|s| !s.is_empty()) else {
            return Err(consul_client::Error::InvalidArgument(
                "login answered without a SecretID".into(),
            ));
        };
        let renew = renew_after(
            token.create_time.as_deref(),
            token.expiration_time.as_deref(),
            OffsetDateTime::now_utc(),
        );
        tracing::info!(
            accessor = %token.accessor_id,
            auth_method = %login.auth_method,
            expires = token.expiration_time.as_deref().unwrap_or("never"),
            "logged in to consul"
        );
        // The new token may not have reached every server yet: wait before using it (as
        // consul-dataplane does), while the old one, if any, still serves.
        tokio::time::sleep(LOGIN_SETTLE).await;
        let old = locked(&self.login_secret).replace(secret.clone());
        let generation = {
            let mut current = locked(&self.current);
            current.client = self.base.with_token(Some(secret));
            current.generation += 1;
            current.renew_at = renew.and_then(|d| tokio::time::Instant::now().checked_add(d));
            current.generation
        };
        self.changed.send_replace(generation);
        if let Some(old) = old {
            // The replaced token may already be gone; a failure here changes nothing. Blocking
            // queries still waiting with it are unaffected: Consul checked the token when they
            // started, and their next round uses the new one.
            let _ = self.logout_token(old).await;
        }
        Ok(())
    }

    async fn logout_token(&self, secret: Secret) -> Result<(), consul_client::Error> {
        let options = WriteOptions {
            token: Some(secret),
            ..WriteOptions::default()
        };
        match tokio::time::timeout(LOGOUT_TIMEOUT, self.base.acl().logout(&options)).await {
            Ok(r) => r,
            Err(_) => Err(consul_client::Error::Cancelled),
        }
    }

    async fn logout(&self) {
        let secret = locked(&self.login_secret).take();
        if let Some(secret) = secret {
            match self.logout_token(secret).await {
                Ok(()) => tracing::info!("logged out of consul"),
                Err(error) => tracing::warn!(%error, "logout failed"),
            }
        }
    }

    /// Handles an error from a watch: re-login after "ACL not found".
    async fn on_error(&self, core: &Core, what: &str, error: &consul_client::Error, seen: u64) {
        core.metrics
            .consul_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(%error, what, "consul call failed");
        if error.is_acl_not_found() && matches!(self.credentials, Credentials::Login(_)) {
            tracing::info!("token not found; logging in again");
            if let Err(error) = self.login(Some(seen)).await {
                tracing::warn!(%error, "re-login failed");
            }
        }
    }
}

// === start-up ===

fn client_config(settings: &ConsulSettings, ip: IpAddr) -> ClientConfig {
    let mut config = ClientConfig::new(SocketAddr::new(ip, settings.http_port).to_string());
    config.scheme = Some(if settings.https {
        Scheme::Https
    } else {
        Scheme::Http
    });
    config.tls = TlsConfig {
        ca: settings.ca_certs_path.as_ref().map(|p| {
            if p.is_dir() {
                CaSource::Directory(p.clone())
            } else {
                CaSource::File(p.clone())
            }
        }),
        server_name: settings.server_name.clone(),
        client_cert: settings
            .client_cert
            .as_ref()
            .map(|(c, k)| ClientCertificate {
                cert: PemSource::File(c.clone()),
                key: PemSource::File(k.clone()),
            }),
        insecure_skip_verify: settings.insecure_skip_verify,
    };
    config
}

/// Finds a server that answers, retrying with backoff until `cancel`.
async fn connect(settings: &ConsulSettings, cancel: &CancellationToken) -> Option<Client> {
    let mut backoff = retry().backoff();
    loop {
        match super::addresses::resolve(&settings.addresses).await {
            Ok(ips) => {
                for ip in ips {
                    match Client::new(client_config(settings, ip)) {
                        Ok(client) => match client.status().leader().await {
                            Ok(_) => {
                                tracing::info!(server = %client.address(), "connected to consul");
                                return Some(client);
                            }
                            Err(error) => {
                                tracing::warn!(%error, %ip, "consul server did not answer")
                            }
                        },
                        Err(error) => tracing::error!(%error, "consul client configuration"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot resolve consul server addresses"),
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Runs the Consul source until `cancel`; returns an error only for what retrying cannot fix
/// (a listener that cannot bind).
pub(crate) async fn run(
    core: Arc<Core>,
    settings: ConsulSettings,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let Some(base) = connect(&settings, &cancel).await else {
        return Ok(());
    };
    let auth = Arc::new(Auth::new(base, settings.credentials.clone()));
    let mut backoff = retry().backoff();
    loop {
        let Err(error) = auth.login(None).await else {
            break;
        };
        core.metrics
            .consul_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if login_refused(&error) {
            // Retrying the same credentials cannot help; stopping lets the orchestrator see the
            // failure (and, on ECS, start a task with a fresh bearer token).
            return Err(Error::Login {
                auth_method: auth.auth_method(),
                source: Box::new(error),
            });
        }
        tracing::warn!(%error, "login failed; retrying");
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    let tasks = TaskTracker::new();
    let result = supervise(&core, &settings, &auth, &cancel, &tasks).await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    auth.logout().await;
    result
}

async fn supervise(
    core: &Arc<Core>,
    settings: &ConsulSettings,
    auth: &Arc<Auth>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(), Error> {
    tasks.spawn(token_renewal(auth.clone(), cancel.clone()));

    let node = settings.node_name.clone();
    let proxy_id = settings.proxy_id.clone();
    let fetch_auth = auth.clone();
    let mut registrations = watch(
        QueryOptions {
            wait: Some(BLOCKING_WAIT),
            ..QueryOptions::default()
        },
        retry(),
        cancel.clone(),
        move |q| {
            let client = fetch_auth.client();
            let node = node.clone();
            let proxy_id = proxy_id.clone();
            async move {
                let r = client.catalog().node_services(&node, &q).await?;
                Ok(r.map(|list| {
                    list.and_then(|l| l.services.into_iter().find(|s| s.id == proxy_id))
                }))
            }
        },
    );
    let mut started = false;
    let mut watchers: BTreeMap<String, (UpstreamWatch, CancellationToken)> = BTreeMap::new();
    loop {
        let seen = auth.generation();
        let registration = match registrations.next().await {
            None => return Ok(()),
            Some(Err(error)) => {
                auth.on_error(core, "proxy registration", &error, seen)
                    .await;
                continue;
            }
            Some(Ok(None)) => {
                tracing::warn!(
                    node = %settings.node_name,
                    proxy_id = %settings.proxy_id,
                    "proxy registration not found in the catalog; waiting for it"
                );
                continue;
            }
            Some(Ok(Some(service))) => service,
        };
        let plan = match Plan::from_registration(&registration, core.settings.public_bind_ip) {
            Ok(plan) => plan,
            Err(message) => {
                tracing::error!(%message, "proxy registration is unusable; waiting for a change");
                continue;
            }
        };
        if !started {
            started = true;
            tracing::info!(service = %plan.service, proxy_id = %settings.proxy_id, "found the proxy registration");
            tasks.spawn(certificates(
                core.clone(),
                auth.clone(),
                plan.service.clone(),
                cancel.clone(),
            ));
            tasks.spawn(intentions(
                core.clone(),
                auth.clone(),
                plan.service.clone(),
                cancel.clone(),
            ));
            core.start_public(plan.public.clone()).await?;
        }
        core.set_upstreams(plan.upstreams.iter().map(|u| u.spec.clone()).collect())
            .await?;
        // Restart watches whose target changed; stop those of removed upstreams.
        watchers.retain(|name, (w, stop)| {
            let keep = plan
                .upstreams
                .iter()
                .any(|u| &u.spec.name == name && u.watch == *w);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for u in &plan.upstreams {
            if watchers.contains_key(&u.spec.name) {
                continue;
            }
            let stop = cancel.child_token();
            tasks.spawn(endpoints(
                core.clone(),
                auth.clone(),
                u.spec.name.clone(),
                u.watch.clone(),
                settings.mesh_gateway_service.clone(),
                stop.clone(),
            ));
            watchers.insert(u.spec.name.clone(), (u.watch.clone(), stop));
        }
    }
}

/// Logs in again when the login token nears its expiry (see [`renew_after`]); a token replaced in
/// the meantime (after a 403 "ACL not found") restarts the count.
async fn token_renewal(auth: Arc<Auth>, cancel: CancellationToken) {
    let mut changes = auth.changed.subscribe();
    let mut backoff = retry().backoff();
    loop {
        changes.borrow_and_update();
        let (seen, due) = {
            let current = locked(&auth.current);
            (current.generation, current.renew_at)
        };
        let timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                // Static tokens and tokens without expiry: only a new login may set a time.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = timer => {}
        }
        tracing::info!("login token nears its expiry; logging in again");
        match auth.login(Some(seen)).await {
            Ok(()) => backoff.reset(),
            Err(error) => {
                tracing::warn!(%error, "re-login before expiry failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

// === the plan drawn from the registration ===

/// How an upstream's instances are found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UpstreamWatch {
    service: String,
    namespace: String,
    partition: String,
    datacenter: String,
    mode: MeshGatewayMode,
}

struct PlannedUpstream {
    spec: UpstreamSpec,
    watch: UpstreamWatch,
}

struct Plan {
    service: String,
    public: PublicSpec,
    upstreams: Vec<PlannedUpstream>,
}

impl Plan {
    fn from_registration(service: &AgentService, public_ip: IpAddr) -> Result<Plan, String> {
        let proxy = service
            .proxy
            .as_ref()
            .ok_or_else(|| format!("service {:?} has no Proxy block", service.id))?;
        if proxy.destination_service_name.is_empty() {
            return Err(format!(
                "service {:?} has no Proxy.DestinationServiceName",
                service.id
            ));
        }
        let port = if service.port == 0 {
            crate::config::DEFAULT_PUBLIC_PORT
        } else {
            service.port
        };
        let local_host = if proxy.local_service_address.is_empty() {
            "127.0.0.1"
        } else {
            &proxy.local_service_address
        };
        if proxy.local_service_port == 0 {
            return Err("Proxy.LocalServicePort is not set".into());
        }
        let protocol = proxy
            .config
            .get("protocol")
            .and_then(|v| v.as_str())
            .unwrap_or("tcp");
        let public = PublicSpec {
            bind: SocketAddr::new(public_ip, port),
            local_app: super::host_port(local_host, proxy.local_service_port),
            alpn: super::alpn_for(protocol),
        };
        let mut upstreams = Vec::new();
        for u in &proxy.upstreams {
            if matches!(u.destination_type, UpstreamDestinationType::PreparedQuery) {
                tracing::warn!(name = %u.destination_name, "prepared-query upstreams are not supported; skipped");
                continue;
            }
            if !u.destination_peer.is_empty() {
                tracing::warn!(name = %u.destination_name, "peered upstreams are not supported; skipped");
                continue;
            }
            if u.local_bind_port == 0 {
                tracing::warn!(name = %u.destination_name, "upstream without LocalBindPort; skipped");
                continue;
            }
            let ip: IpAddr = if u.local_bind_address.is_empty() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                u.local_bind_address.parse().map_err(|_| {
                    format!(
                        "upstream {:?}: LocalBindAddress {:?} is not an IP",
                        u.destination_name, u.local_bind_address
                    )
                })?
            };
            let name = if u.datacenter.is_empty() {
                u.destination_name.clone()
            } else {
                format!("{}.{}", u.destination_name, u.datacenter)
            };
            upstreams.push(PlannedUpstream {
                spec: UpstreamSpec {
                    name,
                    bind: SocketAddr::new(ip, u.local_bind_port),
                    expected: ExpectedIdentity {
                        service: u.destination_name.clone(),
                        namespace: u.destination_namespace.clone(),
                        partition: u.destination_partition.clone(),
                        datacenter: Some(u.datacenter.clone()).filter(|d| !d.is_empty()),
                    },
                },
                watch: UpstreamWatch {
                    service: u.destination_name.clone(),
                    namespace: u.destination_namespace.clone(),
                    partition: u.destination_partition.clone(),
                    datacenter: u.datacenter.clone(),
                    mode: discovery::effective_mode(&u.mesh_gateway.mode, &proxy.mesh_gateway.mode),
                },
            });
        }
        Ok(Plan {
            service: proxy.destination_service_name.clone(),
            public,
            upstreams,
        })
    }
}

// === certificates ===

#[derive(Default)]
struct Certs {
    leaf: Option<LeafCert>,
    roots: Option<CaRootList>,
}

fn install(core: &Core, certs: &Certs) {
    let (Some(leaf), Some(roots)) = (&certs.leaf, &certs.roots) else {
        return;
    };
    let pems: Vec<String> = roots.roots.iter().map(|r| r.root_cert.clone()).collect();
    match Material::from_pem(
        core.tls.provider(),
        &leaf.cert_pem,
        &leaf.private_key_pem,
        &pems,
        &roots.trust_domain,
    ) {
        Ok(material) => core.set_material(material),
        Err(error) => tracing::warn!(%error, "certificate material unusable; keeping the previous"),
    }
}

async fn certificates(
    core: Arc<Core>,
    auth: Arc<Auth>,
    service: String,
    cancel: CancellationToken,
) {
    let certs = Arc::new(Mutex::new(Certs::default()));
    let roots = roots_watch(core.clone(), auth.clone(), certs.clone(), cancel.clone());
    let leaf = leaf_loop(core, auth, service, certs, cancel);
    tokio::join!(roots, leaf);
}

async fn roots_watch(
    core: Arc<Core>,
    auth: Arc<Auth>,
    certs: Arc<Mutex<Certs>>,
    cancel: CancellationToken,
) {
    let fetch_auth = auth.clone();
    let mut w = watch(
        QueryOptions {
            wait: Some(BLOCKING_WAIT),
            ..QueryOptions::default()
        },
        retry(),
        cancel,
        move |q| {
            let client = fetch_auth.client();
            async move {
                match client.agent().ca_roots(&q).await {
                    // Servers without the agent endpoint: the server one has the same shape.
                    Err(e) if e.is_not_found() => client.connect().ca_roots(&q).await,
                    other => other,
                }
            }
        },
    );
    loop {
        let seen = auth.generation();
        match w.next().await {
            None => return,
            Some(Err(error)) => auth.on_error(&core, "CA roots", &error, seen).await,
            Some(Ok(list)) => {
                tracing::info!(roots = list.roots.len(), active = %list.active_root_id, "CA roots changed");
                let mut guard = locked(&certs);
                guard.roots = Some(list);
                install(&core, &guard);
            }
        }
    }
}

/// When to renew a leaf valid from `after` to `before`: a random point between 60 % and 90 % of its
/// lifetime (now, if that is past).
fn renew_at(after: OffsetDateTime, before: OffsetDateTime) -> Duration {
    let lifetime = before - after;
    let fraction = 0.6 + rand::random::<f64>() * 0.3;
    let at = after + lifetime * fraction;
    Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or_default()
}

async fn leaf_loop(
    core: Arc<Core>,
    auth: Arc<Auth>,
    service: String,
    certs: Arc<Mutex<Certs>>,
    cancel: CancellationToken,
) {
    let mut index: u64 = 0;
    let mut backoff = retry().backoff();
    let mut renew: Option<Duration> = None;
    loop {
        let client = auth.client();
        let seen = auth.generation();
        let q = QueryOptions {
            index: Some(index).filter(|i| *i > 0),
            wait: Some(BLOCKING_WAIT),
            ..QueryOptions::default()
        };
        let timer = async {
            match renew {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            r = client.agent().leaf_cert(&service, &q) => Some(r),
            () = timer => None,
        };
        let response = match outcome {
            // Renewal time came before the server's answer: ask afresh, not blocking.
            None => {
                tracing::info!("leaf certificate due for renewal; fetching");
                index = 0;
                renew = None;
                continue;
            }
            Some(Err(error)) => {
                auth.on_error(&core, "leaf certificate", &error, seen).await;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
            Some(Ok(r)) => r,
        };
        backoff.reset();
        let new_index = response.meta.last_index;
        index = if new_index < index {
            0
        } else {
            new_index.max(1)
        };
        let leaf = response.value;
        let changed = locked(&certs).leaf.as_ref().is_none_or(|old| {
            old.serial_number != leaf.serial_number || old.cert_pem != leaf.cert_pem
        });
        let (after, before) = (
            OffsetDateTime::parse(&leaf.valid_after, &Rfc3339),
            OffsetDateTime::parse(&leaf.valid_before, &Rfc3339),
        );
        renew = match (after, before) {
            (Ok(a), Ok(b)) => Some(renew_at(a, b).max(Duration::from_secs(1))),
            _ => Some(Duration::from_secs(60)),
        };
        if changed {
            tracing::info!(serial = %leaf.serial_number, valid_before = %leaf.valid_before, "leaf certificate received");
            let mut guard = locked(&certs);
            guard.leaf = Some(leaf);
            install(&core, &guard);
        }
    }
}

// === intentions ===

fn convert(i: &consul_client::connect::Intention) -> connect::intention::Intention {
    let action = match &i.action {
        Some(consul_client::config_entry::IntentionAction::Allow) => Some(IntentionAction::Allow),
        Some(consul_client::config_entry::IntentionAction::Deny) => Some(IntentionAction::Deny),
        // An action we do not know cannot allow anything.
        Some(consul_client::config_entry::IntentionAction::Other(_)) => Some(IntentionAction::Deny),
        None => None,
    };
    connect::intention::Intention {
        id: i.id.clone(),
        description: i.description.clone(),
        source_peer: i.source_peer.clone(),
        source_sameness_group: i.source_sameness_group.clone(),
        source_partition: i.source_partition.clone(),
        source_ns: i.source_ns.clone(),
        source_name: i.source_name.clone(),
        destination_partition: i.destination_partition.clone(),
        destination_ns: i.destination_ns.clone(),
        destination_name: i.destination_name.clone(),
        source_type: Default::default(),
        action,
        // Only the number matters here: an L7 intention denies L4 traffic.
        permissions: i
            .permissions
            .iter()
            .map(|_| IntentionPermission {
                action: IntentionAction::Deny,
                http: None,
                jwt: None,
            })
            .collect(),
        jwt: None,
        meta: i.meta.clone(),
        precedence: i.precedence,
        create_index: i.create_index,
        modify_index: i.modify_index,
    }
}

/// The default decision from `X-Consul-Default-ACL-Policy`.
pub(crate) fn defaults_from_header(policy: Option<&str>) -> DefaultPolicy {
    DefaultPolicy {
        default_intention_policy: None,
        acl: match policy {
            Some("deny") => AclDefault::Deny,
            Some("allow") => AclDefault::Allow,
            _ => AclDefault::Disabled,
        },
    }
}

async fn intentions(core: Arc<Core>, auth: Arc<Auth>, service: String, cancel: CancellationToken) {
    let fetch_auth = auth.clone();
    let mut w = watch(
        QueryOptions {
            wait: Some(BLOCKING_WAIT),
            ..QueryOptions::default()
        },
        retry(),
        cancel,
        move |q| {
            let client = fetch_auth.client();
            let service = service.clone();
            async move {
                let r = client
                    .connect()
                    .intention_match(IntentionMatchBy::Destination, &[service.as_str()], &q)
                    .await?;
                let policy = r.meta.default_acl_policy.clone();
                Ok(r.map(|mut by_name| (by_name.remove(&service).unwrap_or_default(), policy)))
            }
        },
    );
    loop {
        let seen = auth.generation();
        match w.next().await {
            None => return,
            Some(Err(error)) => auth.on_error(&core, "intentions", &error, seen).await,
            Some(Ok((list, policy))) => core.set_intentions(IntentionSet {
                intentions: list.iter().map(convert).collect(),
                defaults: defaults_from_header(policy.as_deref()),
            }),
        }
    }
}

// === upstream instances ===

async fn endpoints(
    core: Arc<Core>,
    auth: Arc<Auth>,
    name: String,
    target: UpstreamWatch,
    gateway_service: String,
    cancel: CancellationToken,
) {
    // The local datacenter comes from our own leaf.
    let local_dc = loop {
        if let Some(m) = core.tls.current() {
            break m.id.datacenter().to_owned();
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let how = discovery::discovery(&target.datacenter, &local_dc, &target.mode);
    tracing::info!(upstream = %name, discovery = ?how, "watching upstream instances");
    let fetch_auth = auth.clone();
    let mut w = watch(
        QueryOptions {
            wait: Some(BLOCKING_WAIT),
            ..QueryOptions::default()
        },
        retry(),
        cancel,
        move |mut q| {
            let client = fetch_auth.client();
            let target = target.clone();
            let how = how.clone();
            let gateway_service = gateway_service.clone();
            async move {
                let passing = ServiceHealthOptions {
                    passing_only: true,
                    tags: Vec::new(),
                };
                let (entries, wan, gateway) = match &how {
                    Discovery::Direct { datacenter } => {
                        q.datacenter = datacenter.clone();
                        q.namespace = Some(target.namespace.clone()).filter(|v| !v.is_empty());
                        q.partition = Some(target.partition.clone()).filter(|v| !v.is_empty());
                        (
                            client
                                .health()
                                .connect(&target.service, &passing, &q)
                                .await?,
                            false,
                            false,
                        )
                    }
                    Discovery::Gateway { datacenter, wan } => {
                        q.datacenter = datacenter.clone();
                        (
                            client
                                .health()
                                .service(&gateway_service, &passing, &q)
                                .await?,
                            *wan,
                            true,
                        )
                    }
                };
                Ok(entries.map(|list| {
                    let mut targets: Vec<String> = list
                        .iter()
                        .filter_map(|e| discovery::target(e, wan, gateway))
                        .collect();
                    targets.sort();
                    targets.dedup();
                    targets
                }))
            }
        },
    );
    loop {
        let seen = auth.generation();
        match w.next().await {
            None => return,
            Some(Err(error)) => {
                auth.on_error(&core, "upstream instances", &error, seen)
                    .await
            }
            Some(Ok(targets)) => {
                tracing::info!(upstream = %name, healthy = targets.len(), "upstream instances changed");
                core.set_endpoints(&name, targets);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn renewal_comes_at_80_percent_of_the_servers_lifetime_whatever_our_clock_says() {
        let create = "2030-01-01T00:00:00Z";
        let expires = "2030-01-01T00:01:00Z";
        // Our clock an hour behind or ahead of the server's changes nothing.
        for now in ["2029-12-31T23:00:00Z", "2030-01-01T01:00:00Z"] {
            assert_eq!(
                renew_after(Some(create), Some(expires), at(now)),
                Some(Duration::from_secs(48))
            );
        }
        // Without a creation time: 80 % of what is left by our clock, never negative.
        assert_eq!(
            renew_after(None, Some(expires), at("2030-01-01T00:00:10Z")),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            renew_after(Some("garbage"), Some(expires), at("2030-01-01T00:02:00Z")),
            Some(Duration::ZERO)
        );
        // A creation time after the expiry is ignored.
        assert_eq!(
            renew_after(
                Some("2030-01-01T00:05:00Z"),
                Some(expires),
                at("2030-01-01T00:00:50Z")
            ),
            Some(Duration::from_secs(8))
        );
        assert_eq!(renew_after(Some(create), None, at(create)), None);
        assert_eq!(renew_after(Some(create), Some("soon"), at(create)), None);
    }

    #[test]
    fn only_a_clear_refusal_stops_the_login_retries() {
        let status = |status: u16| consul_client::Error::Status {
            status,
            message: "x".into(),
            method: "POST".into(),
            path: "/v1/acl/login".into(),
        };
        for s in [400, 401, 403, 404] {
            assert!(login_refused(&status(s)), "{s}");
        }
        for s in [408, 429, 500, 503] {
            assert!(!login_refused(&status(s)), "{s}");
        }
        assert!(!login_refused(&consul_client::Error::Cancelled));
    }
}
