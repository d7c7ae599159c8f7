//! Helpers for the entrypoint tests: child scripts that report the signals they get, and patient waits.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

/// How long "eventually" waits; raise `E2E_PATIENCE_SECS` on a slow machine.
pub(crate) fn patience() -> Duration {
    let secs = std::env::var("E2E_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// A child script in a temporary directory. It appends the name of each signal it traps to `log`, and
/// exits 42 on SIGINT and 55 on SIGTERM. It writes `ready` once its traps are in place.
pub(crate) struct Script {
    pub(crate) dir: TempDir,
}

const TRAPPING: &str = r#"
log="$1"
trap 'echo INT >> "$log"; exit 42' INT
trap 'echo TERM >> "$log"; exit 55' TERM
trap 'echo USR1 >> "$log"' USR1
trap 'echo URG >> "$log"' URG
trap 'echo HUP >> "$log"' HUP
# A second process in the group that also reports SIGTERM: proves signals reach the whole group. It
# ends by itself once the script is gone.
sh -c 'trap "echo GROUP-TERM >> \"$1\"; exit 0" TERM; : > "$1.group"; while kill -0 "$2" 2>/dev/null; do sleep 0.1; done' grandchild "$log" "$$" &
while [ ! -e "$log.group" ]; do sleep 0.05; done
echo ready > "$log.ready"
# Ends by itself if its parent goes away, so a failed test leaves nothing behind.
parent=$PPID
while kill -0 "$parent" 2>/dev/null; do
  if [ -e "$log.exit" ]; then exit "$(cat "$log.exit")"; fi
  sleep 0.1
done
"#;

impl Script {
    /// The trapping script.
    pub(crate) fn trapping() -> Script {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("child.sh"), TRAPPING).unwrap();
        Script { dir }
    }

    /// The command line that runs the script.
    pub(crate) fn command(&self) -> Vec<String> {
        vec![
            "/bin/sh".to_owned(),
            self.path("child.sh").display().to_string(),
            self.log().display().to_string(),
        ]
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> PathBuf {
        self.path("signals")
    }

    /// The signals the script has reported so far, in order.
    pub(crate) fn signals(&self) -> Vec<String> {
        read_lines(&self.log())
    }

    /// Waits until the script's traps are installed.
    pub(crate) async fn wait_ready(&self) {
        let ready = self.path("signals.ready");
        eventually("the child script to start", || ready.exists()).await;
    }

    /// Waits until the script has reported `signal`.
    pub(crate) async fn wait_for_signal(&self, signal: &str) {
        eventually(&format!("the child to report {signal}"), || {
            self.signals().iter().any(|s| s == signal)
        })
        .await;
    }

    /// Asks the script to exit with `code` on its own.
    pub(crate) fn ask_to_exit(&self, code: u8) {
        std::fs::write(self.path("signals.exit"), code.to_string()).unwrap();
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls `check` until it holds, failing the test after [`patience`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + patience();
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
