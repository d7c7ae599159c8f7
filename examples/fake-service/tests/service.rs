//! fake-service over real sockets: its reply, upstream chains, failures, health, and the binary's signals.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn start(name: &str, upstreams: &[String]) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = fake_service::Config {
        name: name.to_owned(),
        listen_addr: addr,
        upstream_uris: upstreams.to_vec(),
        message: "hi".to_owned(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fake_service::serve(listener, config, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn get_async(addr: SocketAddr, path: &'static str) -> (u16, Value) {
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, path))
        .await
        .unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn a_chain_of_services_reports_every_hop() {
    let (c, _c) = start("c", &[]).await;
    let (b, _b) = start("b", &[format!("http://{c}/")]).await;
    let (a, _a) = start("a", &[format!("http://{b}/from-a")]).await;
    let (status, body) = get_async(a, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "a");
    assert_eq!(body["body"], "hi");
    assert_eq!(body["code"], 200);
    let b_call = &body["upstream_calls"][0];
    assert_eq!(b_call["name"], "b");
    assert_eq!(b_call["uri"], format!("http://{b}/from-a"));
    assert_eq!(b_call["code"], 200);
    assert_eq!(b_call["upstream_calls"][0]["name"], "c");
}

#[tokio::test]
async fn an_unreachable_upstream_makes_the_reply_a_500() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, _ok) = start("ok", &[]).await;
    let (a, _a) = start("a", &[format!("http://{ok}/"), format!("http://{closed}/")]).await;
    let (status, body) = get_async(a, "/").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], 500);
    assert_eq!(body["upstream_calls"][0]["code"], 200);
    assert_eq!(body["upstream_calls"][1]["code"], -1);
    assert!(body["upstream_calls"][1]["error"].as_str().unwrap().len() > 3);
}

#[tokio::test]
async fn health_answers_ok() {
    let (a, _a) = start("a", &["http://127.0.0.1:1/".to_owned()]).await;
    let (status, body) = tokio::task::spawn_blocking(move || get(a, "/health"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "OK\n"));
}

#[test]
fn config_from_env_reads_names_and_refuses_bad_values() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let config = fake_service::Config::from_env(env(&[
        ("NAME", "web"),
        ("LISTEN_ADDR", "127.0.0.1:8080"),
        (
            "UPSTREAM_URIS",
            "http://localhost:1234, ,http://10.0.0.1:9090/x",
        ),
    ]))
    .unwrap();
    assert_eq!(config.name, "web");
    assert_eq!(config.listen_addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        config.upstream_uris,
        ["http://localhost:1234", "http://10.0.0.1:9090/x"]
    );
    let defaults = fake_service::Config::from_env(env(&[])).unwrap();
    assert_eq!(defaults.name, fake_service::DEFAULT_NAME);
    assert_eq!(defaults.listen_addr.port(), 9090);
    let err = fake_service::Config::from_env(env(&[("UPSTREAM_URIS", "localhost:1234")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"localhost:1234\""), "{err}");
    let err = fake_service::Config::from_env(env(&[("LISTEN_ADDR", "nowhere")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("LISTEN_ADDR \"nowhere\""), "{err}");
}

#[test]
fn the_binary_serves_and_exits_zero_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-service"))
        .env("NAME", "bin")
        .env("LISTEN_ADDR", addr.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "fake-service did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"bin\""), "{body}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
