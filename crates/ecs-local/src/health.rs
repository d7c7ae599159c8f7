//! Container health checks with Docker's rules, run inside the container's namespaces and root.
//!
//! The first check runs one `interval` after the container starts, then one every `interval`. A
//! check passes when its command exits 0 within `timeout`. One pass makes the container `HEALTHY`;
//! `retries` failures in a row make it `UNHEALTHY`; failures during `startPeriod` are not counted.
//! Until the first verdict the status is `UNKNOWN` (Docker's "starting").

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::Launcher;
use crate::state::Health;
use crate::sys::shim::{JoinSpec, ProcessSpec};
use crate::taskdef::{HealthCheck, HealthCommand};

/// The most output kept from one check.
const MAX_OUTPUT: usize = 4096;

/// A change of a container's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthReport {
    pub(crate) index: usize,
    pub(crate) status: Health,
    /// The output of the check that decided it (trimmed, at most 4 KiB).
    pub(crate) output: String,
}

/// What a container's checks need.
pub(crate) struct Probe {
    pub(crate) index: usize,
    pub(crate) launcher: Launcher,
    pub(crate) label: String,
    pub(crate) check: HealthCheck,
    /// The container's environment, working directory and user (the argv is the check's).
    pub(crate) process: ProcessSpec,
    /// A process inside the container (its shim).
    pub(crate) pid: i32,
}

/// Runs checks until the task drops the returned future (the container has stopped).
pub(crate) async fn run(probe: Probe, reports: UnboundedSender<HealthReport>) {
    let started = Instant::now();
    let mut status = Health::Unknown;
    let mut failures = 0u32;
    let mut process = probe.process.clone();
    process.argv = match &probe.check.command {
        HealthCommand::Exec(argv) => argv.clone(),
        HealthCommand::Shell(script) => vec!["/bin/sh".to_owned(), "-c".to_owned(), script.clone()],
    };
    let spec = JoinSpec {
        pid: probe.pid,
        process,
    };
    let input = serde_json::to_string(&spec).unwrap_or_default();
    loop {
        tokio::time::sleep(probe.check.interval).await;
        let (passed, output) = check_once(&probe, &input).await;
        let next = if passed {
            failures = 0;
            Health::Healthy
        } else if started.elapsed() < probe.check.start_period {
            status
        } else {
            failures = failures.saturating_add(1);
            if failures >= probe.check.retries {
                Health::Unhealthy
            } else {
                status
            }
        };
        if next != status {
            status = next;
            let report = HealthReport {
                index: probe.index,
                status,
                output,
            };
            if reports.send(report).is_err() {
                return;
            }
        }
    }
}

/// Runs the check once: whether it passed, and its output.
async fn check_once(probe: &Probe, input: &str) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(&probe.launcher.program);
    command
        .args(&probe.launcher.args)
        .arg("shim-join")
        .arg(&probe.label)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return (false, format!("cannot start the health check: {e}")),
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(MAX_OUTPUT as u64 * 4).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(MAX_OUTPUT as u64 * 4).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        out.extend_from_slice(&err);
        (status, out)
    };
    match tokio::time::timeout(probe.check.timeout, collect).await {
        Ok((Ok(status), output)) => (status.success(), trim_output(&output)),
        Ok((Err(e), _)) => (false, format!("waiting for the health check: {e}")),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            (
                false,
                format!("health check timed out after {:?}", probe.check.timeout),
            )
        }
    }
}

fn trim_output(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.len() <= MAX_OUTPUT {
        return text.to_owned();
    }
    let mut end = MAX_OUTPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// How long to wait between polls of something that is about to happen.
pub(crate) const POLL: Duration = Duration::from_millis(100);
