//! The server's idea of "now" for Connect CA decisions: when a cached leaf is due for renewal and when a
//! rotated-out root may leave the bundle.
//!
//! It is the system clock plus an offset that only moves forward. Tests and demos move it with
//! [`Clock::advance`] to make a leaf reach its renewal point without waiting; blocked leaf queries notice
//! the jump at once. Certificate validity itself always follows the real clock.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

/// The clock the CA decisions follow. Cheap to clone; clones share one offset.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    offset: Mutex<Duration>,
    moved: watch::Sender<()>,
}

impl Clock {
    /// The system clock, with no offset.
    pub fn system() -> Clock {
        let (moved, _) = watch::channel(());
        Clock {
            inner: Arc::new(Inner {
                offset: Mutex::new(Duration::ZERO),
                moved,
            }),
        }
    }

    /// The current time: the system time plus the offset, in whole seconds.
    pub fn now(&self) -> OffsetDateTime {
        let offset = *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
        let now = OffsetDateTime::now_utc() + offset;
        now.replace_nanosecond(0).unwrap_or(now)
    }

    /// Moves this clock (and its clones) forward by `by` and wakes everything waiting for a point in
    /// time. Meant for tests and demos; the server never calls it.
    pub fn advance(&self, by: Duration) {
        {
            let mut offset = self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
            *offset = offset.saturating_add(by);
        }
        self.inner.moved.send_replace(());
    }

    /// A receiver that changes whenever the clock is advanced.
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.inner.moved.subscribe()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Clock").field("offset", &offset).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone_and_notifies() {
        let clock = Clock::system();
        let copy = clock.clone();
        let rx = copy.subscribe();
        let before = copy.now();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.now() - before >= time::Duration::seconds(3600));
        assert!(rx.has_changed().unwrap_or(false));
    }
}
