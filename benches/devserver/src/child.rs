//! The servers under test as child processes: free loopback ports, fresh temporary data directories, and
//! a guard that kills the child when dropped. A panic hook kills every child too, since the release
//! profile aborts on panic and would skip the guards.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, anyhow};

/// Every child still running, by guard id.
static CHILDREN: Mutex<BTreeMap<u64, Child>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn children() -> std::sync::MutexGuard<'static, BTreeMap<u64, Child>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes a panic kill every child before the process aborts.
pub(crate) fn kill_children_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        previous(info);
    }));
}

/// Kills and reaps every child still running.
pub(crate) fn kill_all() {
    let mut map = children();
    for (_, mut child) in std::mem::take(&mut *map) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub(crate) fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?)
}

/// A running server: its process, its temporary directory (data and log), and its addresses.
pub(crate) struct Server {
    id: u64,
    pid: u32,
    name: &'static str,
    log: PathBuf,
    // Dropped after the process is killed (field drop follows `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `cmd` with its output sent to a log file in `dir`.
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Server> {
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        children().insert(id, child);
        Ok(Server {
            id,
            pid,
            name,
            log,
            _dir: dir,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub(crate) fn check_alive(&self) -> anyhow::Result<()> {
        let status = match children().get_mut(&self.id) {
            Some(child) => child.try_wait()?,
            None => return Err(anyhow!("{} was already stopped", self.name)),
        };
        match status {
            None => Ok(()),
            Some(status) => Err(anyhow!(
                "{} exited ({status}); end of its log:\n{}",
                self.name,
                log_tail(&self.log)
            )),
        }
    }

    /// The end of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = children().remove(&self.id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh temporary directory for one server, under the system temporary directory.
pub(crate) fn temp_dir(name: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("devserver-bench-{name}-"))
        .tempdir()
        .context("creating a temporary directory")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
