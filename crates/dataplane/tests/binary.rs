//! The built `consul-dataplane` binary: Go-style flags, exit codes, SIGTERM drain, a second signal,
//! and `-check-proxy-health`.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_consul-dataplane");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit (bounded by patience) and returns its exit code.
fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + patience();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("consul-dataplane did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_config_exits_2_and_names_the_problem() {
    let out = Command::new(BIN).args(["-no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-no-such-flag"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dp.json");
    std::fs::write(&file, r#"{"proxy":{"nodeName":"n","id":"p"}}"#).unwrap();
    let out = Command::new(BIN)
        .args(["-config-file", file.to_str().unwrap()])
        .env_remove("DP_CONSUL_ADDRESSES")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("consul.addresses"));
}

#[tokio::test]
async fn sigterm_drains_and_exits_0_and_a_second_signal_does_not_cut_the_drain() {
    let mut pki = Pki::new(CLUSTER);
    let (app, _t) = echo_app().await;
    let api = pki.leaf("api");
    let mut sidecar = Sidecar::new(pki.write("api", &api), app.port());
    let (ready, admin, public) = (free_port(), free_port(), free_port());
    sidecar.envoy = json!({"readyBindPort": ready, "adminBindPort": admin, "drainTimeSeconds": 2});
    let mut doc = sidecar.json();
    doc["static"]["publicPort"] = json!(public);
    let file = pki.dir.path().join("dp.json");
    std::fs::write(&file, doc.to_string()).unwrap();

    let mut child = Command::new(BIN)
        .args(["-config-file", file.to_str().unwrap(), "-log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready_addr: std::net::SocketAddr = format!("127.0.0.1:{ready}").parse().unwrap();
    eventually("the binary's readiness port opens", || async move {
        tokio::net::TcpStream::connect(ready_addr).await.is_ok()
    })
    .await;
    let health = Command::new(BIN)
        .args([
            "-config-file",
            file.to_str().unwrap(),
            "-check-proxy-health",
        ])
        .status()
        .unwrap();
    assert!(
        health.success(),
        "-check-proxy-health failed on a ready proxy"
    );

    // Hold a connection open so the drain has to wait for its bound.
    let web = pki.leaf("web");
    let public_addr: std::net::SocketAddr = format!("127.0.0.1:{public}").parse().unwrap();
    let (cert, key) = (
        web.cert_pem.clone(),
        web.private_key_pem.expose().to_owned(),
    );
    let held = tokio::spawn(async move {
        // One byte each way, then silence: ends when the proxy cuts it at the drain bound.
        mtls_hold(public_addr, &cert, &key).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = child.id();
    signal(pid, "-TERM");
    eventually(
        "readiness closes at the start of the drain",
        || async move { tokio::net::TcpStream::connect(ready_addr).await.is_err() },
    )
    .await;
    // Second signal: logged, the drain goes on to its bound, exit is still 0.
    signal(pid, "-TERM");
    let code = tokio::task::spawn_blocking(move || wait_exit(&mut child))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        held.await.unwrap(),
        "the held connection never carried traffic"
    );
    let health = Command::new(BIN)
        .args([
            "-config-file",
            file.to_str().unwrap(),
            "-check-proxy-health",
        ])
        .status()
        .unwrap();
    assert!(
        !health.success(),
        "-check-proxy-health passed with no proxy"
    );
}
