//! Worker threads sized from the container's CPU quota (cgroup v2 `cpu.max`, v1
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`), not the host's cores: on ECS a task sees every core
//! of the instance but may use only its share.

use std::path::Path;

/// Worker threads for `concurrency` (the `envoy.concurrency` override) or, when `None`, the CPU
/// quota of the cgroup under `root` (normally `/sys/fs/cgroup`), capped by the cores available;
/// at least 1.
pub fn worker_threads(concurrency: Option<usize>, root: &Path) -> usize {
    if let Some(n) = concurrency {
        return n.max(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cgroup_quota(root) {
        Some(quota) => (quota.ceil() as usize).clamp(1, cores),
        None => cores.max(1),
    }
}

/// The CPU quota in cores, if one is set.
pub fn cgroup_quota(root: &Path) -> Option<f64> {
    if let Ok(text) = std::fs::read_to_string(root.join("cpu.max")) {
        return parse_cpu_max(&text);
    }
    let quota = std::fs::read_to_string(root.join("cpu/cpu.cfs_quota_us"))
        .or_else(|_| std::fs::read_to_string(root.join("cpu,cpuacct/cpu.cfs_quota_us")))
        .ok()?;
    let period = std::fs::read_to_string(root.join("cpu/cpu.cfs_period_us"))
        .or_else(|_| std::fs::read_to_string(root.join("cpu,cpuacct/cpu.cfs_period_us")))
        .ok()?;
    parse_v1(&quota, &period)
}

/// `cpu.max`: `<quota> <period>` or `max <period>`.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period: f64 = parts.next().unwrap_or("100000").parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let quota: f64 = quota.parse().ok()?;
    (quota > 0.0).then_some(quota / period)
}

fn parse_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn v2_quota() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn v1_quota() {
        assert_eq!(parse_v1("-1", "100000"), None);
        assert_eq!(parse_v1("150000\n", "100000\n"), Some(1.5));
    }

    #[test]
    fn sizes_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.max"), "50000 100000\n").unwrap();
        assert_eq!(worker_threads(None, dir.path()), 1);
        assert_eq!(worker_threads(Some(3), dir.path()), 3);
        let v1 = tempfile::tempdir().unwrap();
        std::fs::create_dir(v1.path().join("cpu")).unwrap();
        std::fs::write(v1.path().join("cpu/cpu.cfs_quota_us"), "100000").unwrap();
        std::fs::write(v1.path().join("cpu/cpu.cfs_period_us"), "100000").unwrap();
        assert_eq!(worker_threads(None, v1.path()), 1);
        let none = tempfile::tempdir().unwrap();
        assert!(worker_threads(None, none.path()) >= 1);
    }
}
