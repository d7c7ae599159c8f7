//! Opt-in retries: exponential backoff with full jitter, a cap, and either a bounded number of
//! attempts or "until cancelled". Only errors that may go away on their own are retried
//! (see [`Error::is_retryable`]).

use std::future::Future;
use std::time::Duration;

use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// First backoff of [`RetryPolicy::default`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Longest backoff of [`RetryPolicy::default`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to retry a failing call.
///
/// The n-th wait (from 0) is a uniformly random duration between zero and
/// `min(max_backoff, initial_backoff * 2^n)` ("full jitter").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// 250 ms doubling up to 30 s, until cancelled.
    fn default() -> Self {
        Self::new(DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF)
    }
}

impl RetryPolicy {
    /// Backoff starting at `initial` and capped at `max`, retrying until cancelled.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial_backoff: initial,
            max_backoff: max.max(initial),
            max_attempts: None,
        }
    }

    /// Stops after `attempts` attempts in all (the first call included); 0 is read as 1.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// First backoff.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// Cap on a single backoff.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Attempt limit, or `None` for "until cancelled".
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// A fresh backoff sequence for this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            attempt: 0,
        }
    }

    /// Runs `op` until it succeeds, fails with an error that is not retryable, runs out of
    /// attempts (the last error is returned), or `cancel` fires ([`Error::Cancelled`]).
    pub async fn run<T, F, Fut>(&self, cancel: &CancellationToken, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = self.backoff();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                outcome = op() => outcome,
            };
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(error) if !error.is_retryable() => return Err(error),
                Err(error) => error,
            };
            if self.max_attempts.is_some_and(|max| attempt >= max) {
                return Err(error);
            }
            let delay = backoff.next_delay();
            tracing::warn!(attempt, ?delay, error = %error, "consul call failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// A sequence of backoff delays; see [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    /// The next delay, growing with each call until the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if ceiling_nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::rng().random_range(0..=ceiling_nanos))
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.policy
            .initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.policy.max_backoff)
            .min(self.policy.max_backoff)
    }

    /// Starts over from the initial backoff (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_delays_stay_below_it() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut backoff = policy.backoff();
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
        for _ in 0..200 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn attempts_are_at_least_one() {
        assert_eq!(
            RetryPolicy::default().with_max_attempts(0).max_attempts(),
            Some(1)
        );
        assert_eq!(RetryPolicy::default().max_attempts(), None);
    }
}
