//! Helpers shared by the integration tests: a raw HTTP GET, the diagnostic binary, and moto.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over a fresh connection; returns the status code and body. Independent of the crate's
/// own client, so tests of the server do not depend on the code under test.
pub(crate) async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The crate's diagnostic binary with a clean AWS environment: no credentials, config files or
/// endpoints from the machine running the tests, and no IMDS.
pub(crate) fn tool() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consul-ecs-aws"));
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_IAM",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "ECS_CONTAINER_METADATA_URI_V4",
    ] {
        command.env_remove(var);
    }
    command
        .env("AWS_CONFIG_FILE", "/nonexistent/consul-ecs-aws-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/consul-ecs-aws-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// A free loopback port (bound then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server on a loopback port, killed when dropped.
pub(crate) struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    log: PathBuf,
}

impl Moto {
    /// Starts `python3 -m moto.server` (or `$PYTHON`). With `verified_after = Some(n)`, moto lets
    /// the first `n` calls through unauthenticated and then verifies SigV4 signatures and IAM
    /// policies on every call.
    pub(crate) fn start(verified_after: Option<u32>) -> Self {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let probe = Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "moto is missing ({python} cannot import moto.server and boto3: {}); \
                 scripts/setup.sh installs it",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("cannot run {python} ({e}); scripts/setup.sh installs moto"),
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("consul-ecs-aws-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(&python);
        command
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        if let Some(n) = verified_after {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = command.spawn().unwrap();
        let mut moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        moto.wait_ready(port);
        moto
    }

    fn wait_ready(&mut self, port: u16) {
        // Readiness, not timing: give a slow machine a generous bound before giving up.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen on port {port}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// moto's output so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
