//! Prometheus metrics, written by hand in the text exposition format.
//!
//! Hot-path counters are plain atomics held per listener ([`ListenerMetrics`]), so a connection
//! never takes a lock; rare events (denials, connect failures) go through small maps. Every family
//! is prefixed `consul_dataplane_`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Fixed handshake failure reasons (the `reason` label).
pub(crate) const HANDSHAKE_REASONS: &[&str] = &[
    "timeout",
    "not_tls",
    "no_client_certificate",
    "expired",
    "not_yet_valid",
    "unknown_ca",
    "wrong_identity",
    "bad_certificate",
    "peer_rejected_unknown_ca",
    "peer_rejected_expired",
    "peer_required_certificate",
    "peer_rejected_certificate",
    "peer_alert",
    "incompatible",
    "peer_closed",
    "io",
    "not_a_service",
    "other",
];

/// Counters of one listener (`public`, or `upstream:<name>`).
#[derive(Debug)]
pub(crate) struct ListenerMetrics {
    pub(crate) name: String,
    pub(crate) opened: AtomicU64,
    pub(crate) closed: AtomicU64,
    /// Bytes read from the downstream (the accepting side).
    pub(crate) bytes_in: AtomicU64,
    /// Bytes written to the downstream.
    pub(crate) bytes_out: AtomicU64,
    handshake_failures: Vec<AtomicU64>,
}

impl ListenerMetrics {
    fn new(name: String) -> Self {
        Self {
            name,
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            handshake_failures: HANDSHAKE_REASONS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    pub(crate) fn handshake_failed(&self, reason: &str) {
        let index = HANDSHAKE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HANDSHAKE_REASONS.len() - 1);
        if let Some(c) = self.handshake_failures.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an opened connection and returns a guard that counts it closed when dropped.
    pub(crate) fn open(self: &Arc<Self>) -> OpenGuard {
        self.opened.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self.clone())
    }
}

/// Counts a connection as closed when dropped, whatever path ended it.
pub(crate) struct OpenGuard(Arc<ListenerMetrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every metric of the process.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    listeners: Mutex<Vec<Arc<ListenerMetrics>>>,
    denials: Mutex<BTreeMap<String, u64>>,
    connect_failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    upstream_healthy: Mutex<BTreeMap<String, i64>>,
    pub(crate) leaf_not_after: AtomicI64,
    pub(crate) roots: AtomicI64,
    pub(crate) ready: AtomicI64,
    pub(crate) draining: AtomicI64,
    pub(crate) consul_errors: AtomicU64,
    pub(crate) certificate_updates: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Metrics {
    /// The counters of listener `name`, created on first use (kept across listener restarts).
    pub(crate) fn listener(&self, name: &str) -> Arc<ListenerMetrics> {
        let mut list = lock(&self.listeners);
        if let Some(m) = list.iter().find(|m| m.name == name) {
            return m.clone();
        }
        let m = Arc::new(ListenerMetrics::new(name.to_owned()));
        list.push(m.clone());
        m
    }

    pub(crate) fn intention_denied(&self, source: &str) {
        *lock(&self.denials).entry(source.to_owned()).or_default() += 1;
    }

    pub(crate) fn connect_failed(&self, upstream: &str, reason: &'static str) {
        *lock(&self.connect_failures)
            .entry((upstream.to_owned(), reason))
            .or_default() += 1;
    }

    pub(crate) fn set_upstream_healthy(&self, upstream: &str, count: usize) {
        lock(&self.upstream_healthy).insert(upstream.to_owned(), count as i64);
    }

    pub(crate) fn remove_upstream(&self, upstream: &str) {
        lock(&self.upstream_healthy).remove(upstream);
    }

    /// The text exposition of every family.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let listeners = lock(&self.listeners).clone();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP consul_dataplane_{name} {help}");
            let _ = writeln!(out, "# TYPE consul_dataplane_{name} {kind}");
        };
        type Pick = fn(&ListenerMetrics) -> u64;
        let per_listener: [(&str, &str, Pick); 4] = [
            (
                "connections_opened_total",
                "Connections accepted, per listener.",
                |m| m.opened.load(Ordering::Relaxed),
            ),
            (
                "connections_closed_total",
                "Connections ended, per listener.",
                |m| m.closed.load(Ordering::Relaxed),
            ),
            (
                "received_bytes_total",
                "Bytes read from downstream clients, per listener.",
                |m| m.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "sent_bytes_total",
                "Bytes written to downstream clients, per listener.",
                |m| m.bytes_out.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, pick) in per_listener {
            family(&mut out, name, "counter", help);
            for m in &listeners {
                let _ = writeln!(
                    out,
                    "consul_dataplane_{name}{{listener=\"{}\"}} {}",
                    escape(&m.name),
                    pick(m)
                );
            }
        }
        family(
            &mut out,
            "connections_active",
            "gauge",
            "Connections open now, per listener.",
        );
        for m in &listeners {
            let active = m
                .opened
                .load(Ordering::Relaxed)
                .saturating_sub(m.closed.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "consul_dataplane_connections_active{{listener=\"{}\"}} {active}",
                escape(&m.name)
            );
        }
        family(
            &mut out,
            "tls_handshake_failures_total",
            "counter",
            "Failed TLS handshakes, per listener and reason.",
        );
        for m in &listeners {
            for (reason, count) in HANDSHAKE_REASONS.iter().zip(&m.handshake_failures) {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "consul_dataplane_tls_handshake_failures_total{{listener=\"{}\",reason=\"{reason}\"}} {n}",
                        escape(&m.name)
                    );
                }
            }
        }
        family(
            &mut out,
            "intention_denials_total",
            "counter",
            "Inbound connections closed because intentions deny the source, per source service.",
        );
        for (source, n) in lock(&self.denials).iter() {
            let _ = writeln!(
                out,
                "consul_dataplane_intention_denials_total{{source=\"{}\"}} {n}",
                escape(source)
            );
        }
        family(
            &mut out,
            "upstream_connect_failures_total",
            "counter",
            "Failed attempts to reach an upstream instance, per upstream and reason.",
        );
        for ((upstream, reason), n) in lock(&self.connect_failures).iter() {
            let _ = writeln!(
                out,
                "consul_dataplane_upstream_connect_failures_total{{upstream=\"{}\",reason=\"{reason}\"}} {n}",
                escape(upstream)
            );
        }
        family(
            &mut out,
            "upstream_endpoints_healthy",
            "gauge",
            "Healthy instances known for each upstream.",
        );
        for (upstream, n) in lock(&self.upstream_healthy).iter() {
            let _ = writeln!(
                out,
                "consul_dataplane_upstream_endpoints_healthy{{upstream=\"{}\"}} {n}",
                escape(upstream)
            );
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "leaf_cert_expiry_timestamp_seconds",
                "NotAfter of the current leaf certificate, Unix seconds.",
                self.leaf_not_after.load(Ordering::Relaxed),
            ),
            (
                "ca_roots",
                "CA roots currently trusted.",
                self.roots.load(Ordering::Relaxed),
            ),
            (
                "ready",
                "1 once certificates, intentions and upstream endpoints are loaded.",
                self.ready.load(Ordering::Relaxed),
            ),
            (
                "draining",
                "1 while a shutdown drain is in progress.",
                self.draining.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "consul_dataplane_{name} {value}");
        }
        family(
            &mut out,
            "certificate_updates_total",
            "counter",
            "Times new certificate material (leaf or roots) was installed.",
        );
        let _ = writeln!(
            out,
            "consul_dataplane_certificate_updates_total {}",
            self.certificate_updates.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "consul_errors_total",
            "counter",
            "Failed calls to Consul's HTTP API.",
        );
        let _ = writeln!(
            out,
            "consul_dataplane_consul_errors_total {}",
            self.consul_errors.load(Ordering::Relaxed)
        );
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
