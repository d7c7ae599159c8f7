//! Where the wrappers' signals come from: the operating system, or a channel that tests feed.
//!
//! The state machines read [`Signals`] instead of installing handlers themselves, so the same code runs
//! in the binary (every catchable signal, as upstream's `signal.Notify` with no arguments subscribes to)
//! and in tests that must not signal the test process.

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The signals the binary subscribes to. `SIGKILL` and `SIGSTOP` cannot be caught; the synchronous
/// fault signals (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`) and `SIGABRT` keep their
/// default action so a crash of the wrapper stays a crash. `SIGPIPE` stays ignored (Rust's default): a
/// write of the wrapper's own to a closed pipe raises it, and that must not reach the child. `SIGCHLD`
/// and `SIGURG` are left alone too: their default is to be ignored and the wrappers never forward them.
const SUBSCRIBED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGWINCH,
    Signal::SIGIO,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Signal::SIGPWR,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Signal::SIGSTKFLT,
];

/// True for the signals the wrappers never pass on (`SIGCHLD` and `SIGURG`, which Go's runtime also
/// uses for its own preemption).
pub(crate) fn is_never_forwarded(signal: Signal) -> bool {
    matches!(signal, Signal::SIGCHLD | Signal::SIGURG)
}

/// A stream of received signals.
#[derive(Debug)]
pub struct Signals {
    rx: mpsc::UnboundedReceiver<Signal>,
    listeners: Vec<JoinHandle<()>>,
}

/// Feeds a [`Signals`] made by [`Signals::channel`].
#[derive(Debug, Clone)]
pub struct SignalSender {
    tx: mpsc::UnboundedSender<Signal>,
}

impl SignalSender {
    /// Delivers `signal` as if the process had received it. False once the receiving side is gone.
    pub fn send(&self, signal: Signal) -> bool {
        self.tx.send(signal).is_ok()
    }
}

impl Signals {
    /// Subscribes to every catchable signal of this process. Call it inside a Tokio runtime and before
    /// starting the child, so that no signal is missed in between. The handlers stay installed for the
    /// life of the process (Tokio never uninstalls them).
    pub fn os() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut listeners = Vec::with_capacity(SUBSCRIBED.len());
        for &sig in SUBSCRIBED {
            let mut stream = signal(SignalKind::from_raw(sig as i32))?;
            let tx = tx.clone();
            listeners.push(tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            }));
        }
        Ok(Self { rx, listeners })
    }

    /// A source fed by hand, for tests and embedders.
    pub fn channel() -> (SignalSender, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            SignalSender { tx },
            Self {
                rx,
                listeners: Vec::new(),
            },
        )
    }

    /// The next signal; `None` once no more can arrive.
    pub(crate) async fn recv(&mut self) -> Option<Signal> {
        self.rx.recv().await
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
    }
}
