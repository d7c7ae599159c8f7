//! Retrying a step with exponential backoff, bounded by the environment's retry budget and cancelled by
//! SIGTERM.
//!
//! Upstream retries its registrations every second, forever, whatever the error. We retry only failures
//! that can pass ([`Error::is_transient`]); an answer such as "400 invalid service" fails at once with
//! Consul's text. Each failed attempt is logged with the wait before the next one.

use std::future::Future;
use std::time::{Duration, Instant};

use consul_client::RetryPolicy;

use crate::{Environment, Error};

/// Runs `op` until it succeeds, fails for good, the budget runs out or a stop is requested.
pub async fn retry<T, F, Fut>(env: &Environment, what: &str, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let started = Instant::now();
    let mut backoff = RetryPolicy::new(env.retry_initial_backoff, env.retry_max_backoff).backoff();
    let mut attempts: u32 = 0;
    loop {
        attempts = attempts.saturating_add(1);
        let outcome = tokio::select! {
            biased;
            _ = env.shutdown.cancelled() => return Err(Error::Interrupted(what.to_owned())),
            outcome = op() => outcome,
        };
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => error,
        };
        // Never wait less than a few milliseconds, even when the jitter says zero.
        let delay = backoff.next_delay().max(Duration::from_millis(20));
        let elapsed = started.elapsed();
        if elapsed + delay > env.retry_budget {
            return Err(Error::GaveUp {
                what: what.to_owned(),
                attempts,
                elapsed,
                last: Box::new(error),
            });
        }
        tracing::error!(
            step = what,
            attempt = attempts,
            retry_in = ?delay,
            error = %error,
            "step failed; retrying"
        );
        tokio::select! {
            biased;
            _ = env.shutdown.cancelled() => return Err(Error::Interrupted(what.to_owned())),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
