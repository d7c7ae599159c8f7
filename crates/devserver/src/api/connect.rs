//! The Connect CA and authorization endpoints:
//!
//! - `GET /v1/connect/ca/roots` and `GET /v1/agent/connect/ca/roots` (blocking; `?pem=true` for a PEM
//!   bundle of every trusted root and its intermediates),
//! - `GET`/`PUT /v1/connect/ca/configuration`,
//! - `GET /v1/agent/connect/ca/leaf/:service` (cached per service until its renewal point or a root
//!   change; blocking: `?index=` waits for the next leaf),
//! - `POST /v1/connect/ca/sign` (this server's own: signs a CSR, as Consul's `ConnectCA.Sign` RPC does),
//! - `POST /v1/agent/connect/authorize`.
//!
//! ```text
//! curl -s http://127.0.0.1:8500/v1/agent/connect/ca/leaf/web | jq -r .CertPEM
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connect::SpiffeId;
use connect::intention::{IntentionTarget, authorize_uri};
use connect_ca::SignPolicy;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::acl::{self, Access, Authorizer, Resource};
use super::error::ApiError;
use super::query::{QueryOpts, blocking, deadline, json_reply, query_headers, query_reply};
use crate::state::ca::{self, ConfigUpdate, LeafRecord};
use crate::state::intentions;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/connect/ca/roots", get(roots))
        .route("/v1/agent/connect/ca/roots", get(roots))
        .route(
            "/v1/connect/ca/configuration",
            get(get_config).put(put_config),
        )
        .route("/v1/agent/connect/ca/leaf/{service}", get(leaf))
        .route("/v1/connect/ca/sign", post(sign).put(sign))
        .route(
            "/v1/agent/connect/authorize",
            post(authorize).put(authorize),
        )
}

fn decode_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Request decode failed: {e}"))
}

async fn roots(State(state): State<AppState>, q: QueryOpts) -> Result<Response, ApiError> {
    let pem = q.params.flag("pem")?;
    let topic = ca::roots_topic();
    let (index, bundle) = blocking(&state, &q, vec![topic.clone()], |t| {
        let roots =
            ca::roots(t)?.ok_or_else(|| ApiError::internal("the Connect CA is not initialised"))?;
        Ok((t.topic_index(&topic), roots))
    })
    .await?;
    if pem {
        let mut resp = bundle.pem_bundle().into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pem-certificate-chain"),
        );
        resp.headers_mut().extend(query_headers(&q, index));
        return Ok(resp);
    }
    query_reply(&q, index, &bundle)
}

async fn get_config(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
) -> Result<Response, ApiError> {
    authz.require(Resource::Operator, "", Access::Read)?;
    let topic = ca::config_topic();
    let (index, record) = blocking(&state, &q, vec![topic.clone()], |t| {
        let record = ca::config(t)?
            .ok_or_else(|| ApiError::internal("the Connect CA is not initialised"))?;
        Ok((record.modify_index.max(t.topic_index(&topic)), record))
    })
    .await?;
    query_reply(&q, index, &record.to_json())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ConfigBody {
    provider: String,
    config: Map<String, Value>,
    state: Map<String, Value>,
    force_without_cross_signing: bool,
}

async fn put_config(
    State(state): State<AppState>,
    authz: Authorizer,
    _q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    authz.require(Resource::Operator, "", Access::Write)?;
    let raw: Value = serde_json::from_slice(&body).map_err(decode_failed)?;
    // Consul also takes the snake_case spelling of this one flag.
    let snake_force = raw
        .get("force_without_cross_signing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let parsed: ConfigBody = crate::decode::from_value(raw).map_err(decode_failed)?;
    if !parsed.state.is_empty() {
        return Err(ApiError::bad_request(
            "Provider State is read-only. It must be omitted or identical to the current value",
        ));
    }
    let update = ConfigUpdate {
        provider: parsed.provider,
        config: parsed.config,
        force_without_cross_signing: parsed.force_without_cross_signing || snake_force,
    };
    let now = state.clock().now();
    state
        .write(move |t, idx, plan| ca::plan_set_config(t, idx, plan, update, now))
        .await?;
    Ok(axum::http::StatusCode::OK.into_response())
}

/// The cached leaf of `service` if it is still good, else a freshly issued one.
async fn current_leaf(state: &AppState, service: &str) -> Result<LeafRecord, ApiError> {
    let now = state.clock().now();
    if let Some(rec) = state.store().read(|t| ca::usable_leaf(t, service, now))? {
        return Ok(rec);
    }
    let service = service.to_owned();
    let (_, rec) = state
        .write(move |t, idx, plan| ca::plan_leaf(t, idx, plan, &service, now))
        .await?;
    Ok(rec)
}

async fn leaf(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    Path(service): Path<String>,
) -> Result<Response, ApiError> {
    authz.require(Resource::Service, &service, Access::Write)?;
    // Subscribe before the first look so a renewal or rotation in between is not missed.
    let mut sub = state
        .store()
        .subscribe(&[ca::leaf_topic(&service), ca::roots_topic()]);
    let mut moved = state.clock().subscribe();
    let mut rec = current_leaf(&state, &service).await?;
    if q.index == 0 || rec.cert.modify_index != q.index {
        return query_reply(&q, rec.cert.modify_index, &rec.cert);
    }
    let deadline = deadline(&q);
    let shutdown = state.shutdown_token();
    loop {
        let wait_secs = rec.renew_at - state.clock().now().unix_timestamp();
        let renewal = std::time::Duration::from_secs(u64::try_from(wait_secs).unwrap_or(0));
        tokio::select! {
            () = sub.changed() => {}
            Ok(()) = moved.changed() => {}
            () = tokio::time::sleep(renewal) => {}
            () = tokio::time::sleep_until(deadline) => break,
            () = shutdown.cancelled() => break,
        }
        rec = current_leaf(&state, &service).await?;
        if rec.cert.modify_index != q.index {
            break;
        }
    }
    query_reply(&q, rec.cert.modify_index, &rec.cert)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignBody {
    #[serde(rename = "CSR")]
    csr: String,
}

/// Whether the caller may hold `id` (Consul: `service:write` for a service, `node:write` for an agent,
/// `service:write` on `mesh-gateway` for a gateway, `operator:write` for a server).
fn may_hold(authz: &Authorizer, id: &SpiffeId) -> bool {
    match id {
        SpiffeId::Service(s) => authz
            .require(Resource::Service, s.service(), Access::Write)
            .is_ok(),
        SpiffeId::Agent(a) => authz
            .require(Resource::Node, a.agent(), Access::Write)
            .is_ok(),
        SpiffeId::MeshGateway(_) => authz
            .require(Resource::Service, "mesh-gateway", Access::Write)
            .is_ok(),
        SpiffeId::Server(_) => authz.require(Resource::Operator, "", Access::Write).is_ok(),
        SpiffeId::Signing(_) => false,
    }
}

async fn sign(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let parsed: SignBody = crate::decode::from_slice(&body).map_err(decode_failed)?;
    if parsed.csr.trim().is_empty() {
        return Err(ApiError::bad_request("CSR is required"));
    }
    let (_, cert) = state
        .write(move |t, idx, plan| {
            let policy = |id: &SpiffeId| may_hold(&authz, id);
            ca::plan_sign(t, idx, plan, &parsed.csr, SignPolicy::Custom(&policy))
        })
        .await?;
    json_reply(q.pretty, &cert)
}

/// The body of an authorize request. `ClientCertSerial` is accepted and ignored: like Consul, this
/// server keeps no revocation list.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct AuthorizeBody {
    target: String,
    #[serde(rename = "ClientCertURI")]
    client_cert_uri: String,
    namespace: String,
}

async fn authorize(
    State(state): State<AppState>,
    authz: Authorizer,
    q: QueryOpts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: AuthorizeBody = crate::decode::from_slice(&body).map_err(decode_failed)?;
    if req.target.is_empty() {
        return Err(ApiError::bad_request("Target service must be specified"));
    }
    authz.require(Resource::Service, &req.target, Access::Write)?;
    let target = IntentionTarget::service(req.target.clone()).in_namespace(req.namespace.clone());
    let defaults = acl::intention_defaults(&state);
    let decision = state.store().read(|t| {
        let all = intentions::all(t)?;
        authorize_uri(&all, &req.client_cert_uri, &target, &defaults)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    })?;
    json_reply(
        q.pretty,
        &json!({"Authorized": decision.allowed, "Reason": decision.reason}),
    )
}
