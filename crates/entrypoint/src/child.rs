//! The wrapped program: started in its own process group with the wrapper's stdin, stdout and stderr,
//! signalled by PID or by group, and its exit turned into the wrapper's exit code.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Exit code when the child cannot be started or waited for.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// A running child process.
#[derive(Debug)]
pub(crate) struct Child {
    inner: tokio::process::Child,
    /// The child's PID, which is also its process group ID.
    pid: Pid,
}

impl Child {
    /// Starts `command[0]` with `command[1..]` as its arguments, in a new process group of its own.
    pub(crate) fn spawn(command: &[String]) -> std::io::Result<Self> {
        let Some((program, args)) = command.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "command is required",
            ));
        };
        let inner = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let raw = inner
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| std::io::Error::other("the started process has no PID"))?;
        Ok(Self {
            inner,
            pid: Pid::from_raw(raw),
        })
    }

    /// Waits for the child to exit and returns the wrapper's exit code. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> u8 {
        match self.inner.wait().await {
            Ok(status) => {
                let code = exit_code(status);
                tracing::debug!(code, "process exited");
                code
            }
            Err(err) => {
                tracing::error!(error = %err, "waiting for the process");
                EXIT_FAILURE
            }
        }
    }

    /// Sends `signal` to the child itself (not to the rest of its group).
    pub(crate) fn forward(&self, signal: Signal) {
        // Once the child has been reaped its PID may belong to someone else; `id()` is None by then.
        if self.inner.id().is_none() {
            return;
        }
        tracing::debug!(signal = signal.as_str(), "forwarding signal");
        if let Err(err) = kill(self.pid, signal) {
            tracing::warn!(signal = signal.as_str(), err = %err, "forwarding signal");
        }
    }

    /// Sends `SIGTERM` to the child's whole process group.
    pub(crate) fn terminate_group(&self) {
        if self.inner.id().is_none() {
            return;
        }
        if let Err(err) = killpg(self.pid, Signal::SIGTERM) {
            tracing::warn!(error = %err, "error sending sigterm to the process group");
        }
    }
}

/// The exit code a wrapper reports for its child's status: the child's own code, or 128 plus the
/// signal number if a signal killed it (the shell convention).
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(EXIT_FAILURE);
    }
    if let Some(signal) = status.signal() {
        return u8::try_from(128 + signal).unwrap_or(u8::MAX);
    }
    EXIT_FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        // Raw wait statuses: an exit code sits in the second byte, a signal in the low seven bits.
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(255 << 8)), 255);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        // A core dump flag does not change the signal.
        assert_eq!(exit_code(ExitStatus::from_raw(6 | 0x80)), 134);
    }
}
