//! A tiny HTTP service for trying the mesh locally, in the spirit of nicholasjackson/fake-service.
//!
//! `GET /health` answers `200 OK`. Any other `GET` answers with a JSON document naming the service and
//! listing the replies of its upstreams, which it calls one after the other on every request:
//!
//! ```json
//! {"name":"web","uri":"/","type":"HTTP","hostname":"ip-198-18-0-2","body":"Hello World",
//!  "upstream_calls":[{"uri":"http://localhost:1234","code":200,"name":"api", "...": "..."}],"code":200}
//! ```
//!
//! An upstream that cannot be reached, or answers with a status other than 200, makes the whole reply
//! a 500, so a chain of services shows where it broke.
//!
//! Configuration comes from the environment ([`Config::from_env`]): `NAME`, `LISTEN_ADDR`,
//! `UPSTREAM_URIS` (comma-separated `http://` URLs) and `MESSAGE`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The name a service reports when `NAME` is unset.
pub const DEFAULT_NAME: &str = "Service";
/// The address the service listens on when `LISTEN_ADDR` is unset.
pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:9090";
/// The body a service reports when `MESSAGE` is unset.
pub const DEFAULT_MESSAGE: &str = "Hello World";
/// How long one upstream call may take before it counts as failed.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the service needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The name it reports (`NAME`).
    pub name: String,
    /// Where it listens (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// The upstreams it calls on every request (`UPSTREAM_URIS`).
    pub upstream_uris: Vec<String>,
    /// The body it reports (`MESSAGE`).
    pub message: String,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `LISTEN_ADDR` is not `ip:port`.
    #[error("LISTEN_ADDR {value:?} is not an ip:port address: {reason}")]
    ListenAddr {
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// An `UPSTREAM_URIS` entry is not an `http://` URL.
    #[error("UPSTREAM_URIS entry {value:?} is not an http:// URL")]
    Upstream {
        /// The entry given.
        value: String,
    },
}

impl Config {
    /// Reads the configuration through `get` (pass `|k| std::env::var(k).ok()` for the environment).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let name = get("NAME")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let listen = get("LISTEN_ADDR")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
        let listen_addr = listen
            .trim()
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::ListenAddr {
                value: listen.clone(),
                reason: e.to_string(),
            })?;
        let mut upstream_uris = Vec::new();
        for entry in get("UPSTREAM_URIS").unwrap_or_default().split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let valid = entry
                .parse::<hyper::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
            if !valid {
                return Err(ConfigError::Upstream {
                    value: entry.to_owned(),
                });
            }
            upstream_uris.push(entry.to_owned());
        }
        let message = get("MESSAGE").unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
        Ok(Self {
            name,
            listen_addr,
            upstream_uris,
            message,
        })
    }
}

struct Service {
    config: Config,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Serves requests on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = Arc::new(Service {
        config,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // A connection that failed before we saw it (reset, out of descriptors for a moment)
                // is no reason to stop serving the others.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.handle(request).await) }
            });
            // A client that hangs up mid-request is not an error worth reporting.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

/// Binds `config.listen_addr` and serves until SIGTERM or SIGINT.
pub async fn run(config: Config) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = TcpListener::bind(config.listen_addr).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    serve(listener, config, shutdown).await
}

impl Service {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
        }
        let path = request.uri().path().to_owned();
        if path == "/health" {
            return text(StatusCode::OK, "OK\n");
        }
        let mut calls = Vec::with_capacity(self.config.upstream_uris.len());
        let mut all_ok = true;
        for uri in &self.config.upstream_uris {
            let call = self.call(uri).await;
            all_ok &= call.get("code").and_then(Value::as_i64) == Some(200);
            calls.push(call);
        }
        let code = if all_ok {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let body = json!({
            "name": self.config.name,
            "uri": path,
            "type": "HTTP",
            "hostname": hostname(),
            "body": self.config.message,
            "upstream_calls": calls,
            "code": code.as_u16(),
        });
        json_response(code, &body)
    }

    /// Calls one upstream; the reply is its JSON document with `uri` and `code` set, or an error entry.
    async fn call(&self, uri: &str) -> Value {
        let failed = |code: i64, error: String| json!({ "uri": uri, "code": code, "error": error });
        let parsed: hyper::Uri = match uri.parse() {
            Ok(parsed) => parsed,
            Err(e) => return failed(-1, e.to_string()),
        };
        let response = match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.get(parsed)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return failed(-1, error_chain(&e)),
            Err(_) => return failed(-1, format!("no answer within {UPSTREAM_TIMEOUT:?}")),
        };
        let status = i64::from(response.status().as_u16());
        let body =
            match tokio::time::timeout(UPSTREAM_TIMEOUT, response.into_body().collect()).await {
                Ok(Ok(body)) => body.to_bytes(),
                Ok(Err(e)) => return failed(status, format!("reading the body: {e}")),
                Err(_) => return failed(status, "the body did not arrive in time".to_owned()),
            };
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(mut map)) => {
                map.insert("uri".to_owned(), Value::from(uri));
                map.insert("code".to_owned(), Value::from(status));
                Value::Object(map)
            }
            _ => json!({
                "uri": uri,
                "code": status,
                "body": String::from_utf8_lossy(&body),
            }),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
