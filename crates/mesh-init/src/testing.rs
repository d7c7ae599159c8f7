//! Test support (feature `test-util`): an HTTP proxy in front of a Consul-compatible server that records
//! every request (so tests can count writes), can drop off the network and come back on the same port,
//! and can play Consul's login and logout endpoints (our dev server has no ACL system yet).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query string (empty when none).
    pub query: String,
    /// `X-Consul-Token`, if sent.
    pub token: Option<String>,
    /// The request body.
    pub body: Bytes,
}

impl Seen {
    /// Whether the request changes state (anything but GET and HEAD).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET && self.method != Method::HEAD
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    fake_acl: bool,
    logins: u32,
}

type State = Arc<Mutex<Shared>>;

fn lock(state: &State) -> std::sync::MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A recording HTTP proxy in front of a Consul server.
pub struct ConsulProxy {
    addr: SocketAddr,
    target: SocketAddr,
    state: State,
    tasks: Option<JoinSet<()>>,
}

/// The secret the fake login hands out for the n-th login (from 1).
pub fn fake_secret(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

impl ConsulProxy {
    /// Starts a proxy on a free loopback port forwarding to `target` (plain HTTP).
    pub async fn start(target: SocketAddr) -> std::io::Result<ConsulProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut proxy = ConsulProxy {
            addr,
            target,
            state: State::default(),
            tasks: None,
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer `POST /v1/acl/login` and `/v1/acl/logout` here instead of forwarding them.
    pub fn fake_acl(&self) {
        lock(&self.state).fake_acl = true;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// The writes seen so far.
    pub fn writes(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_write).collect()
    }

    /// The writes to `path` seen so far.
    pub fn writes_to(&self, path: &str) -> Vec<Seen> {
        self.writes()
            .into_iter()
            .filter(|s| s.path == path)
            .collect()
    }

    /// Forgets what was seen.
    pub fn clear(&self) {
        lock(&self.state).seen.clear();
    }

    /// Closes the listener and every open connection: clients now get "connection refused".
    pub async fn go_down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&mut self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let state = self.state.clone();
        let target = self.target;
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = connections.clone();
        tasks.spawn(async move {
            let client: HttpClient<HttpConnector, Full<Bytes>> =
                HttpClient::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let client = client.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    let client = client.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(handle(req, state, client, target).await)
                    }
                });
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
            }
        });
        // Aborting the accept loop drops it; the connection tasks go with this guard.
        tasks.spawn(async move {
            let _guard = ConnectionsGuard(connections);
            std::future::pending::<()>().await;
        });
        self.tasks = Some(tasks);
    }
}

struct ConnectionsGuard(Arc<Mutex<JoinSet<()>>>);

impl Drop for ConnectionsGuard {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
    }
}

async fn handle(
    req: Request<Incoming>,
    state: State,
    client: HttpClient<HttpConnector, Full<Bytes>>,
    target: SocketAddr,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        token: parts
            .headers
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    };
    let fake = {
        let mut shared = lock(&state);
        shared.seen.push(seen.clone());
        if shared.fake_acl && seen.method == Method::POST && seen.path == "/v1/acl/login" {
            shared.logins += 1;
            Some(fake_login(&seen, shared.logins))
        } else if shared.fake_acl && seen.method == Method::POST && seen.path == "/v1/acl/logout" {
            Some(reply(StatusCode::OK, "true".into()))
        } else {
            None
        }
    };
    if let Some(response) = fake {
        return response;
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let mut forward = Request::builder()
        .method(parts.method)
        .uri(format!("http://{target}{path_and_query}"));
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            forward = forward.header(name, value);
        }
    }
    let Ok(forward) = forward.body(Full::new(body)) else {
        return reply(StatusCode::BAD_GATEWAY, "bad request".into());
    };
    match client.request(forward).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(err) => reply(StatusCode::BAD_GATEWAY, err.to_string().into()),
    }
}

fn fake_login(seen: &Seen, n: u32) -> Response<Full<Bytes>> {
    let body = seen.json();
    if body
        .get("BearerToken")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .is_empty()
    {
        return reply(StatusCode::BAD_REQUEST, "missing bearer token".into());
    }
    let token = serde_json::json!({
        "AccessorID": format!("10000000-0000-4000-8000-{n:012}"),
        "SecretID": fake_secret(n),
        "Description": "token created via login",
        "AuthMethod": body.get("AuthMethod").cloned().unwrap_or_default(),
    });
    reply(StatusCode::OK, token.to_string().into())
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}
