//! Query parameters shared by read endpoints, blocking queries, and the reply headers Consul sets.
//!
//! Blocking: with `?index=N` (N > 0) a read waits until the index of what it returns rises above N, or
//! until `?wait` (default 5 minutes, at most 10, plus up to wait/16 of random jitter, as Consul) runs out,
//! or until the server shuts down; then it answers with the current data. If the current index is already
//! above N, or below it (the client's index is from another life of the state; Consul resets it), it
//! answers at once. Each endpoint names the [`Topic`]s its result depends on and computes its index from
//! them, so it wakes only for relevant writes.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::filter::Filter;
use crate::state::{Tables, Topic};

/// Default blocking wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
/// Longest blocking wait.
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// Decoded query string pairs, in order (keys may repeat, e.g. `tag`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Params {
    /// Parses a raw query string.
    pub(crate) fn parse(query: Option<&str>) -> Params {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .collect();
        Params { pairs }
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present (with or without a value).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// A flag such as `?recurse` or `?passing=true`: present and not false.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("") => Ok(true),
            Some(v) => parse_bool(v)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid value for ?{name}: {v:?}"))),
        }
    }

    /// An unsigned integer parameter.
    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("Invalid {name} value: {v:?}")))
            })
            .transpose()
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Options common to read endpoints.
#[derive(Debug, Clone)]
pub(crate) struct QueryOpts {
    /// All parameters.
    pub(crate) params: Params,
    /// `?index`, 0 when absent.
    pub(crate) index: u64,
    /// `?wait`, clamped.
    pub(crate) wait: Duration,
    /// `?filter`, parsed.
    pub(crate) filter: Option<Filter>,
    /// `X-Consul-Effective-Consistency` to report.
    pub(crate) consistency: &'static str,
    /// `?pretty`.
    pub(crate) pretty: bool,
}

impl FromRequestParts<AppState> for QueryOpts {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params = Params::parse(parts.uri.query());
        if let Some(dc) = params.get("dc")
            && !dc.is_empty()
            && dc != state.datacenter()
        {
            return Err(ApiError::no_path_to_dc());
        }
        let stale = params.has("stale");
        let consistent = params.has("consistent");
        if stale && consistent {
            return Err(ApiError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        let index = match params.get("index") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Invalid index"))?,
        };
        let wait = match params.get("wait") {
            None | Some("") => DEFAULT_WAIT,
            Some(v) => crate::duration::parse_go(v)
                .map_err(|_| ApiError::bad_request("Invalid wait time"))?,
        };
        let wait = if wait.is_zero() {
            DEFAULT_WAIT
        } else {
            wait.min(MAX_WAIT)
        };
        let filter = match params.get("filter") {
            None | Some("") => None,
            Some(f) => Some(Filter::parse(f).map_err(|e| {
                ApiError::bad_request(format!(
                    "Failed to create boolean expression evaluator: {e}"
                ))
            })?),
        };
        let consistency = if stale {
            "stale"
        } else if consistent {
            "consistent"
        } else {
            "leader"
        };
        let pretty = params.has("pretty");
        Ok(QueryOpts {
            params,
            index,
            wait,
            filter,
            consistency,
            pretty,
        })
    }
}

impl QueryOpts {
    /// Keeps the JSON items the filter accepts (all of them without a filter).
    pub(crate) fn apply_filter(&self, items: Vec<Value>) -> Vec<Value> {
        match &self.filter {
            None => items,
            Some(f) => items.into_iter().filter(|v| f.matches(v)).collect(),
        }
    }
}

/// Runs a read, blocking as the query asks. `read` returns the result's index and the result.
pub(crate) async fn blocking<T>(
    state: &AppState,
    q: &QueryOpts,
    topics: Vec<Topic>,
    read: impl Fn(&Tables) -> Result<(u64, T), ApiError>,
) -> Result<(u64, T), ApiError> {
    let store = state.store();
    if q.index == 0 {
        return store.read(&read);
    }
    let deadline = deadline(q);
    let mut sub = store.subscribe(&topics);
    let shutdown = state.shutdown_token();
    loop {
        let (index, out) = store.read(&read)?;
        if index != q.index {
            return Ok((index, out));
        }
        tokio::select! {
            () = sub.changed() => {}
            () = tokio::time::sleep_until(deadline) => return Ok((index, out)),
            () = shutdown.cancelled() => return Ok((index, out)),
        }
    }
}

/// Like [`blocking`], but a write to the topics wakes the query only if it changes the result: a write
/// that leaves the result as it was (say, to an intention of another service) keeps it waiting, as
/// Consul's hash-based suppression of spurious wake-ups does. The index returned on time-out is the
/// latest one.
pub(crate) async fn blocking_on_change<T: PartialEq>(
    state: &AppState,
    q: &QueryOpts,
    topics: Vec<Topic>,
    read: impl Fn(&Tables) -> Result<(u64, T), ApiError>,
) -> Result<(u64, T), ApiError> {
    let store = state.store();
    if q.index == 0 {
        return store.read(&read);
    }
    let deadline = deadline(q);
    let mut sub = store.subscribe(&topics);
    let shutdown = state.shutdown_token();
    let (mut index, mut out) = store.read(&read)?;
    if index != q.index {
        return Ok((index, out));
    }
    loop {
        tokio::select! {
            () = sub.changed() => {}
            () = tokio::time::sleep_until(deadline) => return Ok((index, out)),
            () = shutdown.cancelled() => return Ok((index, out)),
        }
        let (new_index, new_out) = store.read(&read)?;
        if new_out != out {
            return Ok((new_index, new_out));
        }
        (index, out) = (new_index, new_out);
    }
}

/// When a blocking query gives up: `?wait` plus up to wait/16 of random jitter, from now.
pub(crate) fn deadline(q: &QueryOpts) -> tokio::time::Instant {
    let jitter_max = q.wait.as_millis() as u64 / 16;
    let jitter = if jitter_max > 0 {
        rand::rng().random_range(0..=jitter_max)
    } else {
        0
    };
    tokio::time::Instant::now() + q.wait + Duration::from_millis(jitter)
}

/// The headers Consul puts on query replies.
pub(crate) fn query_headers(q: &QueryOpts, index: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-consul-index", HeaderValue::from(index));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    h.insert(
        "x-consul-effective-consistency",
        HeaderValue::from_static(q.consistency),
    );
    h.insert(
        "x-consul-query-backend",
        HeaderValue::from_static("blocking-query"),
    );
    h
}

/// Serialises a JSON body (pretty with `?pretty`).
pub(crate) fn json_body<T: Serialize>(pretty: bool, body: &T) -> Result<Vec<u8>, ApiError> {
    let r = if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    };
    r.map_err(|e| ApiError::internal(format!("failed to encode the reply: {e}")))
}

/// A 200 JSON reply.
pub(crate) fn json_reply<T: Serialize>(pretty: bool, body: &T) -> Result<Response, ApiError> {
    let bytes = json_body(pretty, body)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// A 200 JSON reply to a query, with Consul's query headers.
pub(crate) fn query_reply<T: Serialize>(
    q: &QueryOpts,
    index: u64,
    body: &T,
) -> Result<Response, ApiError> {
    let mut resp = json_reply(q.pretty, body)?;
    resp.headers_mut().extend(query_headers(q, index));
    Ok(resp)
}

/// A 404 reply to a query (no body), with Consul's query headers.
pub(crate) fn query_not_found(q: &QueryOpts, index: u64) -> Response {
    let mut resp = StatusCode::NOT_FOUND.into_response();
    resp.headers_mut().extend(query_headers(q, index));
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::{Mutation, Rejected};

    async fn put(state: &AppState, topic: &Topic, value: i64) -> u64 {
        let topic = topic.clone();
        let (index, ()) = state
            .write(move |_, _, plan| {
                plan.push(Mutation::PutExt {
                    table: "test".into(),
                    key: "k".into(),
                    value: value.into(),
                });
                plan.touch(topic);
                Ok::<_, Rejected>(())
            })
            .await
            .unwrap();
        index
    }

    /// Polls `fut` once; true if it completed.
    async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
        tokio::select! {
            biased;
            _ = fut => true,
            () = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_change_that_leaves_the_answer_alone_does_not_wake_the_query() {
        let config = crate::Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            ..crate::Config::default()
        };
        let state = AppState::new(&config).unwrap();
        let topic = Topic::Ext("test".into());
        let index = put(&state, &topic, 1).await;
        let q = QueryOpts {
            params: Params::default(),
            index,
            wait: Duration::from_secs(3600),
            filter: None,
            consistency: "leader",
            pretty: false,
        };
        let read = |t: &Tables| Ok((t.topic_index(&topic), t.ext["test"]["k"].clone()));
        let mut fut = std::pin::pin!(blocking_on_change(&state, &q, vec![topic.clone()], read));
        assert!(!poll_once(&mut fut).await, "nothing changed yet");
        let same = put(&state, &topic, 1).await;
        assert!(same > index, "the write moved the topic's index");
        assert!(
            !poll_once(&mut fut).await,
            "the answer is the same: keep waiting"
        );
        let changed = put(&state, &topic, 2).await;
        let (got_index, got) = fut.await.unwrap();
        assert_eq!((got_index, got), (changed, Value::from(2)));
    }

    #[test]
    fn decodes_query_strings() {
        let p = Params::parse(Some(
            "filter=Service.Meta%5B%22a%20b%22%5D%20%3D%3D%20x&tag=a&tag=b+c&recurse&bad=%zz",
        ));
        assert_eq!(p.get("filter"), Some("Service.Meta[\"a b\"] == x"));
        assert_eq!(p.all("tag").collect::<Vec<_>>(), vec!["a", "b c"]);
        assert!(p.has("recurse"));
        assert_eq!(p.get("bad"), Some("%zz"));
        assert_eq!(Params::parse(Some("x=%4")).get("x"), Some("%4"));
    }
}
