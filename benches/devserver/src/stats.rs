//! Latency samples and their percentiles.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 to 100) of samples sorted in ascending order; `None` when empty.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(last)])
}

/// The median, the 99th percentile and the largest of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// How many samples.
    pub(crate) count: usize,
    /// Median.
    pub(crate) p50: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// Largest sample.
    pub(crate) max: Duration,
}

impl Summary {
    /// Summarises `samples` (any order); `None` when there are none.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Option<Summary> {
        samples.sort_unstable();
        Some(Summary {
            count: samples.len(),
            p50: percentile(&samples, 50.0)?,
            p99: percentile(&samples, 99.0)?,
            max: *samples.last()?,
        })
    }
}

/// A duration in milliseconds, as a float for printing.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn millis(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = millis(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 0.0), Some(Duration::from_millis(1)));
        // Out-of-range requests are clamped rather than indexing past the end.
        assert_eq!(percentile(&s, 250.0), Some(Duration::from_millis(100)));
        let s = millis(&[7]);
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
        // With few samples p99 is the largest one.
        let s = millis(&[1, 2, 3, 4, 10]);
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(3)));
    }

    #[test]
    fn summary_sorts_its_input() {
        let s = Summary::of(millis(&[9, 1, 5, 3, 7])).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, Duration::from_millis(5));
        assert_eq!(s.p99, Duration::from_millis(9));
        assert_eq!(s.max, Duration::from_millis(9));
        assert!(Summary::of(Vec::new()).is_none());
    }
}
