//! Shared helpers for the runtime tests: a runtime on a bridge and subnet of its own, task
//! definitions built around `/bin/sh`, plain HTTP, and checks that nothing is left behind.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_ecs_local::{
    ImageEntry, ImageMap, Launcher, NetworkConfig, Runtime, RuntimeConfig, StaticRoleCredentials,
    StaticSecrets, TaskDefinition, TaskRecord,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The runtime's executable.
pub fn program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_consul-ecs-local"))
}

/// How long eventual assertions wait; raise `E2E_PATIENCE_SECS` on a slow machine.
pub fn patience() -> Duration {
    let secs = std::env::var("E2E_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// The bridge and /24 of test number `n` (each test uses its own, so tests may run in parallel).
pub fn network(n: u8) -> NetworkConfig {
    NetworkConfig {
        bridge: format!("ecslt{n}"),
        subnet: format!("198.19.{}.0/24", 100 + u32::from(n))
            .parse()
            .unwrap(),
    }
}

/// The image table of the tests: `sh` is /bin/sh, `fake-service` is the runtime's built-in copy.
pub fn images() -> ImageMap {
    let mut images = ImageMap::empty();
    images.insert("sh", ImageEntry::program("/bin/sh"));
    images.insert(
        "fake-service",
        ImageEntry {
            entry_point: vec!["@self".to_owned(), "fake-service".to_owned()],
            ..ImageEntry::default()
        },
    );
    images
}

/// A runtime for test `n`, with its state in a temporary directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // After a failed assertion the state directory goes before the tasks do; take the test's
        // bridge down so the next run starts clean (the tasks' own guards remove their namespaces).
        if std::thread::panicking() {
            let _ = std::process::Command::new("ip")
                .args([
                    "link",
                    "delete",
                    "dev",
                    &self.runtime.config().network.bridge,
                ])
                .output();
        }
    }
}

impl Harness {
    pub fn new(n: u8) -> Self {
        Self::configured(n, |_| {})
    }

    /// A runtime for test `n`, with changes to the test configuration.
    pub fn configured(n: u8, change: impl FnOnce(&mut RuntimeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let launcher = Launcher {
            program: program(),
            args: Vec::new(),
        };
        let mut config = RuntimeConfig::new(dir.path().join("state"), launcher);
        config.network = network(n);
        config.images = images();
        config.secrets = Arc::new(StaticSecrets::new().with(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ca-AbCdEf",
            "PEM DATA",
        ));
        config.role_credentials = Some(Arc::new(StaticRoleCredentials::new(
            "ASIATESTKEY",
            "test-secret",
            "test-token",
        )));
        config.cluster = "local".to_owned();
        change(&mut config);
        let runtime = Runtime::new(config).unwrap();
        Self { dir, runtime }
    }

    /// A host directory tests can read after the task is gone (use it as a `host` volume).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// The text of a container's log.
    pub fn log(&self, task: &str, container: &str) -> String {
        std::fs::read_to_string(self.runtime.state().log_path(task, container)).unwrap_or_default()
    }
}

/// Reads a task definition.
pub fn def(json: &str) -> TaskDefinition {
    TaskDefinition::from_json(json).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// A container running `script` with /bin/sh.
pub fn sh(name: &str, essential: bool, script: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "image": "sh",
        "essential": essential,
        "command": ["-c", script],
    })
}

/// Polls `condition` until it holds or patience runs out.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience();
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP GET; `None` when the connection fails.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.get(9..12)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// GETs until the server answers 200.
pub async fn http_get_eventually(addr: SocketAddr, path: &str) -> String {
    let deadline = Instant::now() + patience();
    loop {
        if let Some((200, body)) = http_get(addr, path).await {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "http://{addr}{path} did not answer 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ip(args: &[&str]) -> String {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Live processes whose command line or environment mention `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let dir = entry.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        let hay = [cmdline.as_slice(), environ.as_slice()].concat();
        if String::from_utf8_lossy(&hay).contains(needle) {
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Asserts that a stopped task left no namespace, veth, process or mount behind.
pub async fn assert_clean(record: &TaskRecord, state_dir: &Path) {
    let id8 = &record.id[..8];
    eventually("the task's processes to end", || {
        processes_mentioning(id8).is_empty()
    })
    .await;
    let namespaces = ip(&["netns", "list"]);
    assert!(!namespaces.contains(&format!("ecsl-{id8}")), "{namespaces}");
    let links = ip(&["-o", "link"]);
    assert!(!links.contains(&format!("ecslv{id8}")), "{links}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&state_dir.display().to_string()),
        "{mounts}"
    );
    assert!(
        !state_dir
            .join("tasks")
            .join(&record.id)
            .join("rootfs")
            .exists()
    );
}

/// Whether a link exists on the host.
pub fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}
