//! What a process costs, read from `/proc/<pid>/status` and `/proc/<pid>/stat`.

use anyhow::{Context as _, anyhow, bail};

/// A value in kB from a `Key:   123 kB` line of `/proc/<pid>/status`.
pub(crate) fn status_kib(status: &str, key: &str) -> anyhow::Result<u64> {
    status_field(status, key)?
        .strip_suffix("kB")
        .map(str::trim)
        .ok_or_else(|| anyhow!("{key} in /proc status is not in kB"))?
        .parse()
        .with_context(|| format!("{key} in /proc status is not a number"))
}

/// A plain number from a `Key:   12` line of `/proc/<pid>/status` (such as `Threads`).
pub(crate) fn status_count(status: &str, key: &str) -> anyhow::Result<u64> {
    status_field(status, key)?
        .parse()
        .with_context(|| format!("{key} in /proc status is not a number"))
}

fn status_field<'a>(status: &'a str, key: &str) -> anyhow::Result<&'a str> {
    status
        .lines()
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k == key).then_some(v.trim())
        })
        .ok_or_else(|| anyhow!("no {key} line in /proc status"))
}

/// User plus system CPU time, in clock ticks, from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`: after it come state (field 3) ... utime (field 14) and stime (field 15).
pub(crate) fn stat_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("/proc stat has no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize, name: &str| -> anyhow::Result<u64> {
        let Some(v) = fields.get(n - 3) else {
            bail!("/proc stat has no field {n} ({name})");
        };
        v.parse()
            .with_context(|| format!("/proc stat field {n} ({name}) is not a number: {v:?}"))
    };
    Ok(field(14, "utime")? + field(15, "stime")?)
}

/// One reading of a running process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Resident set size, KiB.
    pub(crate) rss_kib: u64,
    /// Threads.
    pub(crate) threads: u64,
    /// User plus system CPU time so far, clock ticks.
    pub(crate) cpu_ticks: u64,
}

/// Reads the process `pid` now.
pub(crate) fn sample(pid: u32) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(Sample {
        rss_kib: status_kib(&status, "VmRSS")?,
        threads: status_count(&status, "Threads")?,
        cpu_ticks: stat_cpu_ticks(&stat)?,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 if that fails, which is what
/// Linux uses on every common architecture).
pub(crate) fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tetcd\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 11826520 kB\n\
VmRSS:\t   41236 kB\nRssAnon:\t   20000 kB\nThreads:\t11\nSigQ:\t0/95431\n";

    #[test]
    fn status_lines() {
        assert_eq!(status_kib(STATUS, "VmRSS").unwrap(), 41236);
        assert_eq!(status_kib(STATUS, "RssAnon").unwrap(), 20000);
        assert_eq!(status_count(STATUS, "Threads").unwrap(), 11);
        // A key that is only a prefix of another must not match it.
        assert!(status_kib(STATUS, "VmRS").is_err());
        assert!(status_kib(STATUS, "Threads").is_err());
        assert!(status_count("Threads:\tmany\n", "Threads").is_err());
    }

    #[test]
    fn stat_with_awkward_command_name() {
        // Fields 1..=15 with utime = 250 and stime = 31; the name holds ") (" and spaces.
        let stat = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 8 0 1234";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), 281);
        let real = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(stat_cpu_ticks(&real).is_ok());
        assert!(stat_cpu_ticks("4242 (short) S 1 2").is_err());
        assert!(stat_cpu_ticks("no parenthesis here").is_err());
        assert!(stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 31").is_err());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
        assert!(clock_ticks_per_sec() > 0);
    }
}
