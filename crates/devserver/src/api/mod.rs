//! The HTTP API: shared state, the router, and one module per API area.
//!
//! Each area module exposes `routes()`; [`app`] merges them. Handlers take the [`acl::Authorizer`]
//! extractor and ask it before touching data, read through [`query::blocking`], write through
//! [`AppState::write`], and return `Result<Response, ApiError>` where [`error::ApiError`] becomes Consul's
//! status code and plain-text body.

pub(crate) mod acl;
mod acl_api;
mod agent;
mod catalog;
mod config;
mod connect;
mod discovery_chain;
pub(crate) mod error;
mod health;
mod intentions;
mod kv;
pub(crate) mod query;
mod render;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;

use self::error::ApiError;
use crate::state::catalog::RegisterRequest;
use crate::state::types::{HealthCheck, NodeService};
use crate::state::{Plan, Store, Tables};
use crate::{CONSUL_VERSION, Clock, Config, Error};

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    datacenter: String,
    node_name: String,
    node_id: String,
    address: String,
    http_port: u16,
    https_port: Option<u16>,
    max_body_bytes: usize,
    clock: Clock,
    acl: acl::Settings,
    shutdown: CancellationToken,
}

impl AppState {
    /// Opens the state described by `config` and registers this server's own node (with a passing
    /// `serfHealth` check and the `consul` service, as a Consul server does).
    pub fn new(config: &Config) -> Result<AppState, Error> {
        AppState::open(
            config,
            config.http_addr,
            config.https.as_ref().map(|h| h.addr),
        )
    }

    pub(crate) fn open(
        config: &Config,
        http: SocketAddr,
        https: Option<SocketAddr>,
    ) -> Result<AppState, Error> {
        if config.datacenter.is_empty() || config.node_name.is_empty() {
            return Err(Error::Config(
                "datacenter and node name must not be empty".into(),
            ));
        }
        let store = Store::open(config.data_dir.as_deref())?;
        let ip = http.ip();
        let address = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            ip.to_string()
        };
        let node_lc = config.node_name.to_lowercase();
        let node_id = store
            .read(|t| t.nodes.get(&node_lc).map(|n| n.id.clone()))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let state = AppState {
            inner: Arc::new(Shared {
                store,
                datacenter: config.datacenter.clone(),
                node_name: config.node_name.clone(),
                node_id,
                address,
                http_port: http.port(),
                https_port: https.map(|a| a.port()),
                max_body_bytes: config.max_body_bytes,
                clock: config.clock.clone(),
                acl: acl::Settings {
                    enabled: config.acl.enabled,
                    default_policy: config.acl.default_policy,
                },
                shutdown: CancellationToken::new(),
            }),
        };
        state.bootstrap_ca()?;
        state.register_self()?;
        if config.acl.enabled {
            state.init_acl(config.acl.bootstrap_token.as_deref())?;
        }
        Ok(state)
    }

    /// Creates the builtin policies, the anonymous token and the initial management token, if missing.
    fn init_acl(&self, bootstrap_token: Option<&str>) -> Result<(), Error> {
        let now = self.inner.clock.now();
        let secret = bootstrap_token.map(str::to_owned);
        self.inner
            .store
            .write(|t, idx, plan| {
                crate::acl::plan_init(t, idx, plan, secret.as_deref(), now);
                Ok::<_, std::convert::Infallible>(())
            })
            .map_err(|e| Error::Storage(format!("cannot set up ACLs: {e}")))?;
        Ok(())
    }

    pub(crate) fn acl_settings(&self) -> acl::Settings {
        self.inner.acl
    }

    /// Removes expired tokens (by the server's clock).
    pub(crate) async fn reap_tokens(&self) -> Result<(), ApiError> {
        if !self.inner.acl.enabled {
            return Ok(());
        }
        let now = self.inner.clock.now();
        self.write(move |t, _idx, plan| {
            Ok::<_, std::convert::Infallible>(crate::acl::plan_reap(t, plan, now))
        })
        .await?;
        Ok(())
    }

    /// Creates the Connect CA on first start (cluster ID, trust domain, root), or checks the stored one.
    fn bootstrap_ca(&self) -> Result<(), Error> {
        let dc = self.inner.datacenter.clone();
        self.inner
            .store
            .write(|t, idx, plan| crate::state::ca::plan_bootstrap(t, idx, plan, &dc))
            .map_err(|e| match e {
                crate::state::WriteError::Rejected(f) => {
                    Error::Storage(format!("cannot set up the Connect CA: {f:?}"))
                }
                crate::state::WriteError::Storage(m) => {
                    Error::Storage(format!("cannot store the Connect CA: {m}"))
                }
            })?;
        Ok(())
    }

    fn register_self(&self) -> Result<(), Error> {
        let s = &self.inner;
        let addr = s.address.clone();
        let tagged = [
            ("lan", &addr),
            ("lan_ipv4", &addr),
            ("wan", &addr),
            ("wan_ipv4", &addr),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
        let req = RegisterRequest {
            datacenter: s.datacenter.clone(),
            id: s.node_id.clone(),
            node: s.node_name.clone(),
            address: addr,
            tagged_addresses: tagged,
            node_meta: [
                ("consul-network-segment".to_owned(), String::new()),
                ("consul-version".to_owned(), CONSUL_VERSION.to_owned()),
            ]
            .into_iter()
            .collect(),
            service: Some(NodeService {
                id: "consul".into(),
                service: "consul".into(),
                port: 8300,
                ..NodeService::default()
            }),
            checks: vec![HealthCheck {
                check_id: "serfHealth".into(),
                name: "Serf Health Status".into(),
                status: "passing".into(),
                output: "Agent alive and reachable".into(),
                ..HealthCheck::default()
            }],
            ..RegisterRequest::default()
        };
        let dc = s.datacenter.clone();
        // Node meta keys with the reserved prefix are allowed for the server itself.
        s.store
            .write(|t, idx, plan| {
                crate::state::catalog::plan_register_trusted(t, idx, plan, req, &dc)
            })
            .map_err(|e| Error::Storage(format!("cannot register the server's own node: {e}")))?;
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn datacenter(&self) -> &str {
        &self.inner.datacenter
    }

    pub(crate) fn node_name(&self) -> &str {
        &self.inner.node_name
    }

    pub(crate) fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub(crate) fn address(&self) -> &str {
        &self.inner.address
    }

    pub(crate) fn http_port(&self) -> u16 {
        self.inner.http_port
    }

    pub(crate) fn https_port(&self) -> Option<u16> {
        self.inner.https_port
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Drops CA roots whose leafs have all expired (by the server's clock). Cheap when there is nothing
    /// to drop: the write is empty and not logged.
    pub(crate) async fn prune_ca_roots(&self) -> Result<(), ApiError> {
        let now = self.inner.clock.now();
        self.write(move |t, _idx, plan| crate::state::ca::plan_prune(t, plan, now))
            .await?;
        Ok(())
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Writes a snapshot and truncates the log.
    pub(crate) fn compact(&self) -> Result<(), Error> {
        self.inner.store.compact()
    }

    /// Runs a write on the blocking pool (it syncs to disk before returning).
    pub(crate) async fn write<R, E>(
        &self,
        f: impl FnOnce(&Tables, u64, &mut Plan) -> Result<R, E> + Send + 'static,
    ) -> Result<(u64, R), ApiError>
    where
        R: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        let r = tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?;
        r.map_err(ApiError::from)
    }
}

impl From<std::convert::Infallible> for ApiError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

/// Builds the router over `state`: every API area, Consul's 404/405 replies, the body limit, common
/// headers, and a last-resort guard that turns a panicking handler into a 500.
pub fn app(state: AppState) -> Router {
    let limit = state.inner.max_body_bytes;
    Router::new()
        .merge(catalog::routes())
        .merge(health::routes())
        .merge(kv::routes())
        .merge(config::routes())
        .merge(agent::routes())
        .merge(connect::routes())
        .merge(intentions::routes())
        .merge(discovery_chain::routes())
        .merge(acl_api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .layer(middleware::from_fn(catch_panic))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("404 page not found")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed"),
    )
}

async fn common_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let filtered = acl::FilteredFlag::default();
    req.extensions_mut().insert(filtered.clone());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        "x-consul-default-acl-policy",
        HeaderValue::from_static(acl::default_policy_header(&state)),
    );
    if filtered.is_set() {
        resp.headers_mut().insert(
            "x-consul-results-filtered-by-acls",
            HeaderValue::from_static("true"),
        );
    }
    resp
}

async fn catch_panic(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::error!(%path, "request handler panicked");
            ApiError::internal("internal server error").into_response()
        }
    }
}
