//! Shared support for the end-to-end scenarios: real processes of the `consul-ecs` binary on real sockets.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `consul-ecs` binary under test.
pub fn consul_ecs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_consul-ecs")
}

/// How long eventual assertions wait; raise `E2E_PATIENCE_SECS` on a slow machine.
pub fn patience() -> Duration {
    let secs = std::env::var("E2E_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// A free loopback port (bound and released; good enough for tests that start one process at a time).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A `consul-ecs dev-server` child process, killed when dropped.
pub struct DevServer {
    child: Child,
    /// The HTTP address it serves.
    pub addr: SocketAddr,
}

impl DevServer {
    /// Starts a dev server on a free port, optionally with a data directory, and waits until it answers.
    pub fn start(data_dir: Option<&Path>) -> DevServer {
        Self::start_on(free_port(), data_dir)
    }

    /// Starts a dev server on the given port.
    pub fn start_on(port: u16, data_dir: Option<&Path>) -> DevServer {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(consul_ecs_bin());
        cmd.args(["dev-server", "-http-addr", &addr.to_string()]);
        if let Some(dir) = data_dir {
            cmd.arg("-data-dir").arg(dir);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = cmd.spawn().expect("spawn consul-ecs dev-server");
        let server = DevServer { child, addr };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + patience();
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.addr, "/v1/status/leader") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dev server on {} did not answer within {:?}",
            self.addr,
            patience()
        );
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs the py-consul compatibility script for one phase against `addr`; panics with its output on failure.
pub fn run_py_consul(addr: SocketAddr, phase: &str) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat/py_consul_compat.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(&script)
        .arg(phase)
        .env("CONSUL_HTTP_ADDR", addr.to_string())
        .output()
        .expect("run python3 (scripts/setup.sh installs py-consul)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "py-consul phase {phase} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
}
