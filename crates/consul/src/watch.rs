//! A blocking-query watcher: repeats a read with the last `X-Consul-Index`, follows Consul's rules
//! for indexes that go backwards or come back as zero, backs off on errors, and hands out a value
//! only when it differs from the last one handed out.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::{Error, QueryOptions, QueryResponse, RetryPolicy, retry::Backoff};

/// Starts a watch.
///
/// `fetch` performs one read with the options it is given (the watcher sets `index`); `options`
/// carries everything else (`wait`, `filter`, tenancy, token). Errors that may go away
/// ([`Error::is_retryable`]) are retried with `retry`'s backoff, forever; others are handed to the
/// caller, who may call [`Watch::next`] again to carry on after a backoff.
///
/// ```no_run
/// # async fn demo(client: consul_client::Client) {
/// use consul_client::{QueryOptions, RetryPolicy, watch};
/// use tokio_util::sync::CancellationToken;
///
/// let cancel = CancellationToken::new();
/// let mut upstreams = watch(
///     QueryOptions::default(),
///     RetryPolicy::default(),
///     cancel.clone(),
///     move |q| {
///         let client = client.clone();
///         async move { client.health().connect("db", &Default::default(), &q).await }
///     },
/// );
/// while let Some(Ok(instances)) = upstreams.next().await {
///     println!("{} healthy instances", instances.len());
/// }
/// # }
/// ```
pub fn watch<T, F, Fut>(
    options: QueryOptions,
    retry: RetryPolicy,
    cancel: CancellationToken,
    fetch: F,
) -> Watch<T, F>
where
    F: FnMut(QueryOptions) -> Fut,
    Fut: Future<Output = Result<QueryResponse<T>, Error>>,
    T: PartialEq + Clone,
{
    Watch {
        fetch,
        options,
        index: 0,
        last: None,
        backoff: retry.backoff(),
        pause: false,
        cancel,
    }
}

/// A running watch; see [`watch`].
pub struct Watch<T, F> {
    fetch: F,
    options: QueryOptions,
    index: u64,
    last: Option<T>,
    backoff: Backoff,
    /// Wait a backoff before the next request (the previous one failed).
    pause: bool,
    cancel: CancellationToken,
}

impl<T, F, Fut> Watch<T, F>
where
    F: FnMut(QueryOptions) -> Fut,
    Fut: Future<Output = Result<QueryResponse<T>, Error>>,
    T: PartialEq + Clone,
{
    /// Waits for the next value that differs from the last one returned (the first read always
    /// returns). `None` once the cancellation token fires; `Some(Err(_))` for an error that
    /// retrying would not fix, such as a 403.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if self.cancel.is_cancelled() {
                return None;
            }
            if self.pause {
                let delay = self.backoff.next_delay();
                tokio::select! {
                    _ = self.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let mut options = self.options.clone();
            options.index = (self.index > 0).then_some(self.index);
            let outcome = tokio::select! {
                _ = self.cancel.cancelled() => return None,
                outcome = (self.fetch)(options) => outcome,
            };
            let response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    self.pause = true;
                    if error.is_retryable() {
                        tracing::warn!(error = %error, "consul watch failed; retrying");
                        continue;
                    }
                    return Some(Err(error));
                }
            };
            self.pause = false;
            self.backoff.reset();
            self.index = next_index(self.index, response.meta.last_index);
            if self.last.as_ref() != Some(&response.value) {
                self.last = Some(response.value.clone());
                return Some(Ok(response.value));
            }
        }
    }

    /// The index the next request will block on (0 before the first read or after a reset).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The last value returned, if any.
    pub fn last(&self) -> Option<&T> {
        self.last.as_ref()
    }
}

/// Consul's rules for the next blocking index: an index that went backwards means the state was
/// reset (snapshot restore, leader change), so start over from 0; an index of 0 is a server bug
/// that would make every query return at once, so use 1.
fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        0
    } else {
        returned.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::next_index;

    #[test]
    fn index_rules() {
        assert_eq!(next_index(0, 10), 10);
        assert_eq!(next_index(10, 10), 10);
        assert_eq!(next_index(10, 12), 12);
        assert_eq!(next_index(10, 4), 0, "backwards resets");
        assert_eq!(next_index(0, 0), 1, "zero becomes one");
    }
}
