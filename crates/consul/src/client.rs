//! The client: a keep-alive connection pool, request building (tenancy, token, blocking-query
//! parameters), and response handling (status, `X-Consul-*` headers, JSON decoding).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as PoolClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{ClientConfig, Scheme, Secret, parse_address};
use crate::transport::{ConnectError, Connector, tls_settings};
use crate::wire::{encode_query, wait_param};
use crate::{Error, acl, agent, catalog, config_entry, connect, health, kv, status};

/// Header that carries the ACL token.
pub const TOKEN_HEADER: &str = "X-Consul-Token";
/// Header that carries the index for blocking queries.
pub const INDEX_HEADER: &str = "X-Consul-Index";

/// Responses larger than this are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Consul's wait when a blocking query names none.
const DEFAULT_BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Longest error text kept from a response body.
const MAX_ERROR_TEXT: usize = 4096;

/// Read consistency mode (Consul's `?stale` and `?consistent`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// The leader answers, without an extra round of confirming leadership.
    #[default]
    Default,
    /// Any server answers, possibly with stale data (`?stale`).
    Stale,
    /// The leader confirms its leadership before answering (`?consistent`).
    Consistent,
}

/// Per-call options for reads. Unset fields fall back to the client's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Datacenter to ask (`?dc=`).
    pub datacenter: Option<String>,
    /// Namespace (`?ns=`, Consul Enterprise).
    pub namespace: Option<String>,
    /// Admin partition (`?partition=`, Consul Enterprise).
    pub partition: Option<String>,
    /// Cluster peer to read from (`?peer=`).
    pub peer: Option<String>,
    /// Consistency mode.
    pub consistency: Consistency,
    /// Blocking query: return once the index passes this value (`?index=`).
    pub index: Option<u64>,
    /// Longest time a blocking query may wait (`?wait=`; Consul's default is 5 minutes, max 10).
    pub wait: Option<Duration>,
    /// Filter expression (`?filter=`).
    pub filter: Option<String>,
    /// Sort by round-trip time from this node (`?near=`).
    pub near: Option<String>,
    /// Ask the agent to answer from its cache (`?cached`).
    pub cached: bool,
    /// Merge proxy-defaults and service-defaults into proxy registrations (`?merge-central-config`),
    /// on the catalog node-services and health service endpoints.
    pub merge_central_config: bool,
    /// Token for this call instead of the client's.
    pub token: Option<Secret>,
}

/// Per-call options for writes. Unset fields fall back to the client's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Datacenter to write to (`?dc=`).
    pub datacenter: Option<String>,
    /// Namespace (`?ns=`, Consul Enterprise).
    pub namespace: Option<String>,
    /// Admin partition (`?partition=`, Consul Enterprise).
    pub partition: Option<String>,
    /// Token for this call instead of the client's.
    pub token: Option<Secret>,
}

/// What Consul says about a read in its response headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Consul-Index`: pass it back as [`QueryOptions::index`] to block for the next change.
    pub last_index: u64,
    /// `X-Consul-LastContact`: time since the answering server last heard from the leader.
    pub last_contact: Duration,
    /// `X-Consul-KnownLeader`: whether the answering server knew of a leader.
    pub known_leader: bool,
    /// `X-Consul-Results-Filtered-By-ACLs`: whether ACLs hid some of the results.
    pub results_filtered_by_acls: bool,
    /// `X-Consul-Default-ACL-Policy`: `allow` or `deny`, when the server says.
    pub default_acl_policy: Option<String>,
    /// `X-Consul-ContentHash`: for hash-based blocking endpoints.
    pub content_hash: Option<String>,
    /// `X-Cache`: whether the agent answered from its cache, when it says.
    pub cache_hit: Option<bool>,
    /// `X-Consul-Query-Backend`: `blocking-query` or `streaming`, when the server says.
    pub query_backend: Option<String>,
    /// How long the request took.
    pub request_time: Duration,
}

/// A decoded read together with its [`QueryMeta`].
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResponse<T> {
    /// The decoded body.
    pub value: T,
    /// What the response headers said.
    pub meta: QueryMeta,
}

impl<T> QueryResponse<T> {
    /// Drops the metadata.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Transforms the value, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> QueryResponse<U> {
        QueryResponse {
            value: f(self.value),
            meta: self.meta,
        }
    }
}

/// A Consul HTTP API client. Cheap to clone; clones share one keep-alive connection pool.
///
/// Obtain a handle per API area with [`Client::catalog`], [`Client::health`], [`Client::kv`],
/// [`Client::agent`], [`Client::connect`], [`Client::config_entries`], [`Client::acl`] and
/// [`Client::status`].
#[derive(Clone)]
pub struct Client {
    pool: PoolClient<Connector, Full<Bytes>>,
    settings: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    scheme: Scheme,
    authority: http::uri::Authority,
    path_prefix: String,
    token: Option<Secret>,
    basic_auth: Option<Secret>,
    namespace: Option<String>,
    partition: Option<String>,
    datacenter: Option<String>,
    request_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("Client")
            .field("scheme", &s.scheme)
            .field("address", &s.authority.as_str())
            .field("path_prefix", &s.path_prefix)
            .field("token", &s.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &s.namespace)
            .field("partition", &s.partition)
            .field("datacenter", &s.datacenter)
            .field("request_timeout", &s.request_timeout)
            .finish_non_exhaustive()
    }
}

/// A request under construction.
pub(crate) struct Call<'a> {
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    multi: Vec<(String, String)>,
    body: Option<(Bytes, &'static str)>,
    query: Option<&'a QueryOptions>,
    write: Option<&'a WriteOptions>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            params: Vec::new(),
            multi: Vec::new(),
            body: None,
            query: None,
            write: None,
        }
    }

    /// Sets a query parameter, replacing an earlier value of the same name.
    pub(crate) fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        set_param(&mut self.params, key, value.into());
        self
    }

    /// Adds a query parameter that may repeat (like `tag`).
    pub(crate) fn param_multi(mut self, key: &str, value: impl Into<String>) -> Self {
        self.multi.push((key.to_string(), value.into()));
        self
    }

    pub(crate) fn query_options(mut self, options: &'a QueryOptions) -> Self {
        self.query = Some(options);
        self
    }

    pub(crate) fn write_options(mut self, options: &'a WriteOptions) -> Self {
        self.write = Some(options);
        self
    }

    /// Sets a JSON body.
    pub(crate) fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Encode {
            method: self.method.to_string(),
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        self.body = Some((Bytes::from(bytes), "application/json"));
        Ok(self)
    }

    /// Sets a raw body (KV values).
    pub(crate) fn raw(mut self, body: Bytes) -> Self {
        self.body = Some((body, "application/octet-stream"));
        self
    }
}

fn set_param(params: &mut Vec<(String, String)>, key: &str, value: String) {
    params.retain(|(k, _)| k != key);
    params.push((key.to_string(), value));
}

/// A response whose status was 200.
pub(crate) struct Raw {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) elapsed: Duration,
}

impl Client {
    /// Builds a client. Reads TLS material (CA, client certificate) now, so a bad file fails here.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let address = parse_address(&config.address, config.scheme)?;
        let tls = match address.scheme {
            Scheme::Https => Some(tls_settings(&config.tls)?),
            Scheme::Http => None,
        };
        let connector = Connector::new(tls, config.connect_timeout);
        let pool = PoolClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let basic_auth = config.basic_auth.as_ref().map(|auth| {
            use base64::Engine as _;
            let pair = format!("{}:{}", auth.username, auth.password.expose());
            Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        });
        Ok(Self {
            pool,
            settings: Arc::new(Settings {
                scheme: address.scheme,
                authority: address.authority,
                path_prefix: address.path_prefix,
                token: config.token.filter(|t| !t.is_empty()),
                basic_auth,
                namespace: config.namespace.filter(|v| !v.is_empty()),
                partition: config.partition.filter(|v| !v.is_empty()),
                datacenter: config.datacenter.filter(|v| !v.is_empty()),
                request_timeout: config.request_timeout,
            }),
        })
    }

    /// A client that shares this one's connection pool but sends `token` (for example the token
    /// a login returned). `None` sends no token.
    pub fn with_token(&self, token: Option<Secret>) -> Self {
        let mut settings = (*self.settings).clone();
        settings.token = token.filter(|t| !t.is_empty());
        Self {
            pool: self.pool.clone(),
            settings: Arc::new(settings),
        }
    }

    /// True when the client sends a default token.
    pub fn has_token(&self) -> bool {
        self.settings.token.is_some()
    }

    /// `host:port` this client talks to.
    pub fn address(&self) -> &str {
        self.settings.authority.as_str()
    }

    /// Catalog endpoints (`/v1/catalog`).
    pub fn catalog(&self) -> catalog::Catalog<'_> {
        catalog::Catalog::new(self)
    }

    /// Health endpoints (`/v1/health`).
    pub fn health(&self) -> health::Health<'_> {
        health::Health::new(self)
    }

    /// Key/value store endpoints (`/v1/kv`).
    pub fn kv(&self) -> kv::Kv<'_> {
        kv::Kv::new(self)
    }

    /// Agent endpoints (`/v1/agent`).
    pub fn agent(&self) -> agent::Agent<'_> {
        agent::Agent::new(self)
    }

    /// Connect endpoints: CA and intentions (`/v1/connect`).
    pub fn connect(&self) -> connect::Connect<'_> {
        connect::Connect::new(self)
    }

    /// Config entry endpoints (`/v1/config`).
    pub fn config_entries(&self) -> config_entry::ConfigEntries<'_> {
        config_entry::ConfigEntries::new(self)
    }

    /// ACL endpoints (`/v1/acl`).
    pub fn acl(&self) -> acl::Acl<'_> {
        acl::Acl::new(self)
    }

    /// Status endpoints (`/v1/status`).
    pub fn status(&self) -> status::Status<'_> {
        status::Status::new(self)
    }

    // === request plumbing ===

    /// Sends a call and returns the response if its status is 200, or `Error::Status`.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Raw, Error> {
        let raw = self.send_any(call).await?;
        if raw.status == StatusCode::OK {
            Ok(raw)
        } else {
            Err(status_error(raw))
        }
    }

    /// Sends a call and returns the response whatever its status.
    pub(crate) async fn send_any(&self, call: Call<'_>) -> Result<Raw, Error> {
        let s = &self.settings;
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in [
            ("dc", &s.datacenter),
            ("ns", &s.namespace),
            ("partition", &s.partition),
        ] {
            if let Some(value) = value {
                set_param(&mut params, key, value.clone());
            }
        }
        let mut token = s.token.as_ref();
        let mut timeout = s.request_timeout;
        if let Some(q) = call.query {
            apply_tenancy(&mut params, &q.datacenter, &q.namespace, &q.partition);
            if let Some(peer) = &q.peer {
                set_param(&mut params, "peer", peer.clone());
            }
            match q.consistency {
                Consistency::Default => {}
                Consistency::Stale => set_param(&mut params, "stale", String::new()),
                Consistency::Consistent => set_param(&mut params, "consistent", String::new()),
            }
            if let Some(index) = q.index.filter(|i| *i > 0) {
                set_param(&mut params, "index", index.to_string());
                // Consul adds up to wait/16 of jitter to a blocking query.
                let wait = q.wait.unwrap_or(DEFAULT_BLOCKING_WAIT);
                timeout += wait + wait / 16;
            }
            if let Some(wait) = q.wait {
                set_param(&mut params, "wait", wait_param(wait));
            }
            if let Some(filter) = &q.filter {
                set_param(&mut params, "filter", filter.clone());
            }
            if let Some(near) = &q.near {
                set_param(&mut params, "near", near.clone());
            }
            if q.cached && q.consistency != Consistency::Consistent {
                set_param(&mut params, "cached", String::new());
            }
            if q.merge_central_config {
                set_param(&mut params, "merge-central-config", String::new());
            }
            if let Some(t) = &q.token {
                token = Some(t);
            }
        }
        if let Some(w) = call.write {
            apply_tenancy(&mut params, &w.datacenter, &w.namespace, &w.partition);
            if let Some(t) = &w.token {
                token = Some(t);
            }
        }
        for (key, value) in call.params {
            set_param(&mut params, &key, value);
        }
        params.extend(call.multi);
        // Sorted by key (stable for repeated keys), as Go's url.Values.Encode does.
        params.sort_by(|a, b| a.0.cmp(&b.0));

        let path = format!("{}{}", s.path_prefix, call.path);
        let mut uri = format!("{}://{}{}", s.scheme.as_str(), s.authority, path);
        if !params.is_empty() {
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
                .collect();
            uri.push('?');
            uri.push_str(&query.join("&"));
        }

        let method = call.method;
        let invalid = |message: String| Error::InvalidArgument(message);
        let mut builder = Request::builder().method(method.clone()).uri(&uri);
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                invalid("the ACL token holds characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            builder = builder.header(TOKEN_HEADER, value);
        }
        if let Some(auth) = &s.basic_auth {
            let mut value = HeaderValue::from_str(auth.expose()).map_err(|_| {
                invalid("the basic auth credentials hold characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let body = match call.body {
            Some((bytes, content_type)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| invalid(format!("cannot build request {method} {path}: {e}")))?;

        tracing::debug!(%method, %path, "consul request");
        let started = Instant::now();
        let exchange = async {
            let response = self.pool.request(request).await?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes.to_bytes()))
        };
        let outcome = tokio::time::timeout(timeout, exchange).await;
        let (parts, body) = match outcome {
            Err(_) => {
                return Err(Error::Timeout {
                    method: method.to_string(),
                    path,
                    timeout,
                });
            }
            Ok(Err(source)) => return Err(self.transport_error(&method, path, source)),
            Ok(Ok(done)) => done,
        };
        Ok(Raw {
            method,
            path,
            status: parts.status,
            headers: parts.headers,
            body,
            elapsed: started.elapsed(),
        })
    }

    fn transport_error(
        &self,
        method: &Method,
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        let address = self.settings.authority.to_string();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(err) = cause {
            if let Some(ConnectError::Tls(tls)) = err.downcast_ref::<ConnectError>() {
                return Error::Tls {
                    address,
                    method: method.to_string(),
                    path,
                    message: tls.to_string(),
                };
            }
            cause = err.source();
        }
        Error::Transport {
            address,
            method: method.to_string(),
            path,
            source,
        }
    }

    /// GET that decodes a JSON body along with the query metadata.
    pub(crate) async fn query<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<QueryResponse<T>, Error> {
        let raw = self.send(call).await?;
        let meta = query_meta(&raw)?;
        let value = decode(&raw)?;
        Ok(QueryResponse { value, meta })
    }

    /// GET where 404 means "absent" rather than an error.
    pub(crate) async fn query_optional<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<QueryResponse<Option<T>>, Error> {
        let raw = self.send_any(call).await?;
        match raw.status {
            StatusCode::OK => {
                let meta = query_meta(&raw)?;
                let value = decode(&raw)?;
                Ok(QueryResponse { value, meta })
            }
            StatusCode::NOT_FOUND => {
                let meta = query_meta(&raw)?;
                Ok(QueryResponse { value: None, meta })
            }
            _ => Err(status_error(raw)),
        }
    }

    /// A call whose JSON answer is decoded (writes that return the stored object).
    pub(crate) async fn call_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let raw = self.send(call).await?;
        decode(&raw)
    }

    /// A call whose answer is ignored beyond its status.
    pub(crate) async fn call_unit(&self, call: Call<'_>) -> Result<(), Error> {
        self.send(call).await.map(|_| ())
    }

    /// A call whose answer is Consul's bare `true`/`false`.
    pub(crate) async fn call_bool(&self, call: Call<'_>) -> Result<bool, Error> {
        let raw = self.send(call).await?;
        decode_bool(&raw)
    }
}

fn apply_tenancy(
    params: &mut Vec<(String, String)>,
    datacenter: &Option<String>,
    namespace: &Option<String>,
    partition: &Option<String>,
) {
    for (key, value) in [
        ("dc", datacenter),
        ("ns", namespace),
        ("partition", partition),
    ] {
        if let Some(value) = value {
            set_param(params, key, value.clone());
        }
    }
}

fn status_error(raw: Raw) -> Error {
    let text = String::from_utf8_lossy(&raw.body);
    let mut message = text.trim().to_string();
    if message.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    if message.is_empty() {
        message = raw
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    Error::Status {
        status: raw.status.as_u16(),
        message,
        method: raw.method.to_string(),
        path: raw.path,
    }
}

/// Decodes a JSON body, naming the JSON path of the value at fault on failure.
pub(crate) fn decode<T: DeserializeOwned>(raw: &Raw) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(&raw.body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Decode {
        method: raw.method.to_string(),
        path: raw.path.clone(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    de.end().map_err(|e| Error::Decode {
        method: raw.method.to_string(),
        path: raw.path.clone(),
        field: ".".to_string(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Decodes Consul's bare `true`/`false` answer; also accepts `{"Deleted": bool}`.
pub(crate) fn decode_bool(raw: &Raw) -> Result<bool, Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Bare(bool),
        Deleted {
            #[serde(rename = "Deleted")]
            deleted: bool,
        },
    }
    match serde_json::from_slice::<Answer>(&raw.body) {
        Ok(Answer::Bare(b)) | Ok(Answer::Deleted { deleted: b }) => Ok(b),
        Err(_) => Err(Error::Decode {
            method: raw.method.to_string(),
            path: raw.path.clone(),
            field: ".".to_string(),
            message: format!(
                "expected true or false, got {:?}",
                String::from_utf8_lossy(&raw.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        }),
    }
}

fn query_meta(raw: &Raw) -> Result<QueryMeta, Error> {
    let header = |name: &str| raw.headers.get(name).and_then(|v| v.to_str().ok());
    let last_index = match raw.headers.get(INDEX_HEADER) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::Decode {
                method: raw.method.to_string(),
                path: raw.path.clone(),
                field: INDEX_HEADER.to_string(),
                message: format!("expected an unsigned integer, got {value:?}"),
            })?,
    };
    let last_contact = header("X-Consul-LastContact")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    Ok(QueryMeta {
        last_index,
        last_contact,
        known_leader: header("X-Consul-KnownLeader") == Some("true"),
        results_filtered_by_acls: header("X-Consul-Results-Filtered-By-ACLs") == Some("true"),
        default_acl_policy: header("X-Consul-Default-ACL-Policy")
            .filter(|v| matches!(*v, "allow" | "deny"))
            .map(str::to_string),
        content_hash: header("X-Consul-ContentHash").map(str::to_string),
        cache_hit: header("X-Cache").map(|v| v.eq_ignore_ascii_case("HIT")),
        query_backend: header("X-Consul-Query-Backend").map(str::to_string),
        request_time: raw.elapsed,
    })
}

/// Refuses an empty path segment, which would silently turn a read or update into another call.
pub(crate) fn require(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        Err(Error::InvalidArgument(format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}
