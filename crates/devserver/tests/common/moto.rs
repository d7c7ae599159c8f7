//! A moto server (AWS STS and IAM) on a free loopback port, killed when dropped.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

impl Moto {
    /// Starts `python3 -m moto.server`. The first `unauthenticated` calls pass without signatures;
    /// every later call has its SigV4 signature and IAM policies checked.
    pub fn start(unauthenticated: u32) -> Moto {
        let py = python();
        let probe = Command::new(&py)
            .args(["-c", "import moto.server, boto3"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "moto is missing ({py} cannot import moto.server and boto3: {}); scripts/setup.sh installs it",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("cannot run {py} ({e}); scripts/setup.sh installs moto"),
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("devserver-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", unauthenticated.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        // Readiness, not timing: a generous bound for a slow machine.
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited with {status}:\n{}", moto.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen:\n{}",
                moto.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// moto's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a Python script with `MOTO_URL` set and returns its stdout as JSON.
    pub fn run_script(&self, script: &str) -> serde_json::Value {
        let out = Command::new(python())
            .args(["-c", script])
            .env("MOTO_URL", &self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script failed:\n{}\nmoto log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
