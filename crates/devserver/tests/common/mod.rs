//! Shared helpers: start the server in-process on port 0 and talk to it over real sockets with a small
//! hyper client.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

pub mod moto;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use devserver::{Config, DevServer};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn index(&self) -> u64 {
        self.header("x-consul-index")
            .expect("X-Consul-Index header")
            .parse()
            .unwrap()
    }
}

pub fn config() -> Config {
    Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        node_name: "dev-node".into(),
        ..Config::default()
    }
}

pub async fn start() -> DevServer {
    DevServer::start(config()).await.unwrap()
}

pub async fn start_with(f: impl FnOnce(&mut Config)) -> DevServer {
    let mut c = config();
    f(&mut c);
    DevServer::start(c).await.unwrap()
}

async fn send<I>(
    io: I,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Resp
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Vec<u8>>) -> Resp {
    let stream = TcpStream::connect(addr).await.unwrap();
    send(stream, method, path, body, &[]).await
}

pub async fn request_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Resp {
    let stream = TcpStream::connect(addr).await.unwrap();
    send(stream, method, path, body, headers).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, None).await
}

pub async fn put(addr: SocketAddr, path: &str, body: impl Into<Vec<u8>>) -> Resp {
    request(addr, "PUT", path, Some(body.into())).await
}

pub async fn put_json(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    put(addr, path, serde_json::to_vec(body).unwrap()).await
}

pub async fn delete(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "DELETE", path, None).await
}

/// Registers and asserts success.
pub async fn register(addr: SocketAddr, body: &Value) {
    let r = put_json(addr, "/v1/catalog/register", body).await;
    assert_eq!(r.status, 200, "register failed: {}", r.text());
    assert_eq!(r.json(), Value::Bool(true));
}

/// A request over TLS with an optional client identity.
pub async fn tls_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Resp, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// The service registration mesh-init sends for a typical service (consul-ecs §3.1), Go zero values
/// included.
pub fn ecs_service_registration() -> Value {
    serde_json::json!({
        "ID": "",
        "Node": "arn:aws:ecs:us-east-1:123456789012:cluster/test",
        "Address": "10.1.2.3",
        "TaggedAddresses": null,
        "NodeMeta": {"synthetic-node": "true"},
        "Datacenter": "",
        "Service": {
            "Kind": "",
            "ID": "web-abcdef",
            "Service": "web",
            "Tags": ["a", "b"],
            "Meta": {"task-id": "abcdef", "task-arn": "arn:aws:ecs:us-east-1:123456789012:task/test/abcdef", "source": "consul-ecs"},
            "Port": 8080,
            "Address": "10.1.2.3",
            "TaggedAddresses": {"virtual": {"Address": "10.1.2.3", "Port": 8080}},
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": false,
            "Locality": {"Region": "us-east-1", "Zone": "us-east-1a"}
        },
        "Check": null,
        "Checks": [
            {
                "Node": "", "CheckID": "web-abcdef-app", "Name": "Consul ECS health check synced",
                "Status": "critical", "Notes": "consul-ecs created and updates this check because the app container has an ECS health check.",
                "Output": "Service web is not ready", "ServiceID": "web-abcdef", "ServiceName": "", "ServiceTags": null,
                "Type": "consul-ecs-health-check", "ExposedPort": 0, "Definition": {"Interval": 0, "Timeout": 0, "DeregisterCriticalServiceAfter": 0},
                "Namespace": "", "CreateIndex": 0, "ModifyIndex": 0
            },
            {
                "CheckID": "web-abcdef-consul-dataplane", "Name": "Consul dataplane readiness",
                "Status": "critical", "Notes": "consul-ecs created and updates this check to indicate consul-dataplane container's readiness",
                "Output": "Service web is not ready", "ServiceID": "web-abcdef", "Type": "consul-ecs-health-check"
            }
        ],
        "SkipNodeUpdate": true
    })
}

/// The sidecar proxy registration (consul-ecs §3.2) with upstreams and free-form config.
pub fn ecs_proxy_registration() -> Value {
    serde_json::json!({
        "Node": "arn:aws:ecs:us-east-1:123456789012:cluster/test",
        "NodeMeta": {"synthetic-node": "true"},
        "Address": "10.1.2.3",
        "SkipNodeUpdate": true,
        "Service": {
            "Kind": "connect-proxy",
            "ID": "web-abcdef-sidecar-proxy",
            "Service": "web-sidecar-proxy",
            "Address": "10.1.2.3",
            "Port": 20000,
            "Tags": ["a", "b"],
            "Meta": {"task-id": "abcdef", "source": "consul-ecs"},
            "Weights": {"Passing": 1, "Warning": 1},
            "Proxy": {
                "DestinationServiceName": "web",
                "DestinationServiceID": "web-abcdef",
                "LocalServicePort": 8080,
                "Mode": "",
                "Config": {"protocol": "http", "envoy_prometheus_bind_addr": "0.0.0.0:9102", "nested": {"list": [1, "two", {"three": null}]}},
                "Upstreams": [
                    {
                        "DestinationType": "service", "DestinationName": "db", "Datacenter": "dc2",
                        "LocalBindAddress": "127.0.0.1", "LocalBindPort": 5432,
                        "Config": {"connect_timeout_ms": 5000, "limits": {"max_connections": 10}},
                        "MeshGateway": {"Mode": "local"}
                    },
                    {"DestinationType": "service", "DestinationNamespace": "ns1", "DestinationPartition": "p1", "DestinationName": "cache", "Datacenter": "", "LocalBindPort": 6379, "MeshGateway": {}}
                ],
                "MeshGateway": {"Mode": "local"},
                "Expose": {"Checks": true, "Paths": [{"ListenerPort": 21500, "Path": "/health", "LocalPathPort": 8080, "Protocol": "http"}]}
            }
        },
        "Checks": [{
            "CheckID": "web-abcdef-sidecar-proxy-consul-dataplane", "Name": "Consul dataplane readiness", "Status": "critical",
            "Output": "Service web-sidecar-proxy is not ready", "ServiceID": "web-abcdef-sidecar-proxy", "Type": "consul-ecs-health-check"
        }]
    })
}

/// A mesh gateway registration (consul-ecs §3.3) with lan and wan tagged addresses.
pub fn ecs_mesh_gateway_registration() -> Value {
    serde_json::json!({
        "Node": "arn:aws:ecs:us-east-1:123456789012:cluster/test",
        "NodeMeta": {"synthetic-node": "true"},
        "Address": "10.1.2.9",
        "SkipNodeUpdate": true,
        "Service": {
            "Kind": "mesh-gateway",
            "ID": "mgw-123456",
            "Service": "mgw",
            "Tags": [],
            "Meta": {"task-id": "123456", "source": "consul-ecs"},
            "Address": "10.1.2.9",
            "Port": 8443,
            "TaggedAddresses": {
                "lan": {"Address": "10.1.2.9", "Port": 8443},
                "wan": {"Address": "203.0.113.7", "Port": 443}
            },
            "Proxy": {"Config": {"envoy_gateway_no_default_bind": true}}
        },
        "Checks": [{
            "CheckID": "mgw-123456-consul-dataplane", "Name": "Consul dataplane readiness", "Status": "critical",
            "ServiceID": "mgw-123456", "Type": "consul-ecs-health-check"
        }]
    })
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    request(addr, "POST", path, Some(serde_json::to_vec(body).unwrap())).await
}

/// The DER of every certificate in a PEM text, in order.
pub fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| {
            let p = p.unwrap();
            assert_eq!(p.label, "CERTIFICATE");
            p.contents
        })
        .collect()
}

/// The trust domain the server's CA uses.
pub async fn trust_domain(addr: SocketAddr) -> String {
    let r = get(addr, "/v1/connect/ca/roots").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["TrustDomain"].as_str().unwrap().to_owned()
}

/// A request carrying `X-Consul-Token` (none when `token` is empty).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> Resp {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    if token.is_empty() {
        request(addr, method, path, body).await
    } else {
        request_with_headers(addr, method, path, body, &[("x-consul-token", token)]).await
    }
}

/// Starts a server with ACLs on and the given default, bootstraps it, and returns the management
/// secret.
pub async fn start_acl(default_deny: bool) -> (DevServer, String) {
    let server = start_with(|c| {
        c.acl.enabled = true;
        c.acl.default_policy = if default_deny {
            devserver::DefaultPolicy::Deny
        } else {
            devserver::DefaultPolicy::Allow
        };
    })
    .await;
    let r = call(server.http_addr(), "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let secret = r.json()["SecretID"].as_str().unwrap().to_owned();
    (server, secret)
}

/// Creates a policy and returns its ID.
pub async fn create_policy(addr: SocketAddr, mgmt: &str, name: &str, rules: &str) -> String {
    let r = call(
        addr,
        "PUT",
        "/v1/acl/policy",
        Some(&serde_json::json!({"Name": name, "Rules": rules})),
        mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["ID"].as_str().unwrap().to_owned()
}

/// Creates a token from a JSON body and returns (accessor, secret).
pub async fn create_token(addr: SocketAddr, mgmt: &str, body: &Value) -> (String, String) {
    let r = call(addr, "PUT", "/v1/acl/token", Some(body), mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (
        v["AccessorID"].as_str().unwrap().to_owned(),
        v["SecretID"].as_str().unwrap().to_owned(),
    )
}
