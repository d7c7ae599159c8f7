//! Turning `consulServers.hosts` into server addresses: an IP literal, a DNS name (every A/AAAA record),
//! or `exec=<command> <args…>`, whose standard output lists the addresses (as go-netaddrs runs it).
//!
//! The command is split on whitespace with no shell and no quoting. On exit 0 its output is split on
//! whitespace, surrounding `"` are trimmed from each entry, and each must be an IP address (an IPv6
//! `%zone` suffix is accepted and dropped).

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

/// The prefix that makes `hosts` a discovery command.
pub const EXEC_PREFIX: &str = "exec=";

/// How long a discovery command may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no server address could be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `consulServers.hosts` is empty.
    #[error("consulServers.hosts is empty")]
    NoHosts,
    /// `exec=` names no command.
    #[error("consulServers.hosts has exec= without a command")]
    NoCommand,
    /// The command could not be started.
    #[error("running {command}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish in time.
    #[error("{command} did not finish within {timeout:?}")]
    Timeout {
        /// The program.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// The command exited with an error.
    #[error("executable failed with exit code {code}: {stderr}")]
    Failed {
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The command printed nothing.
    #[error("executable returned no output to stdout")]
    NoOutput,
    /// The command printed something that is not an IP address.
    #[error("executable returned {entry:?}, which is not an IP address")]
    NotAnAddress {
        /// The entry.
        entry: String,
    },
    /// The DNS lookup failed.
    #[error("looking up {host}: {source}")]
    Lookup {
        /// The name.
        host: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The DNS lookup found no address.
    #[error("{host} has no addresses")]
    NoAddresses {
        /// The name.
        host: String,
    },
}

impl DiscoveryError {
    /// False for mistakes in the config; true for everything that may work on a later attempt.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DiscoveryError::NoHosts | DiscoveryError::NoCommand)
    }
}

/// The server addresses `hosts` stands for, in order and without duplicates.
pub async fn resolve(hosts: &str) -> Result<Vec<IpAddr>, DiscoveryError> {
    let hosts = hosts.trim();
    if hosts.is_empty() {
        return Err(DiscoveryError::NoHosts);
    }
    if let Some(command) = hosts.strip_prefix(EXEC_PREFIX) {
        return run_command(command).await;
    }
    if let Some(ip) = parse_ip(hosts) {
        return Ok(vec![ip]);
    }
    let found = tokio::net::lookup_host((hosts, 0))
        .await
        .map_err(|source| DiscoveryError::Lookup {
            host: hosts.to_owned(),
            source,
        })?;
    let mut addrs = Vec::new();
    for addr in found {
        if !addrs.contains(&addr.ip()) {
            addrs.push(addr.ip());
        }
    }
    if addrs.is_empty() {
        return Err(DiscoveryError::NoAddresses {
            host: hosts.to_owned(),
        });
    }
    Ok(addrs)
}

async fn run_command(command: &str) -> Result<Vec<IpAddr>, DiscoveryError> {
    let mut words = command.split_whitespace();
    let program = words.next().ok_or(DiscoveryError::NoCommand)?;
    let child = tokio::process::Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DiscoveryError::Spawn {
            command: program.to_owned(),
            source,
        })?;
    let output = tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| DiscoveryError::Timeout {
            command: program.to_owned(),
            timeout: EXEC_TIMEOUT,
        })?
        .map_err(|source| DiscoveryError::Spawn {
            command: program.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(DiscoveryError::Failed {
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    parse_command_output(&String::from_utf8_lossy(&output.stdout))
}

/// Reads the addresses a discovery command printed.
pub(crate) fn parse_command_output(stdout: &str) -> Result<Vec<IpAddr>, DiscoveryError> {
    let mut addrs = Vec::new();
    for entry in stdout.split_whitespace() {
        let entry = entry.trim_matches('"');
        let ip = parse_ip(entry).ok_or_else(|| DiscoveryError::NotAnAddress {
            entry: entry.to_owned(),
        })?;
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Err(DiscoveryError::NoOutput);
    }
    Ok(addrs)
}

/// An IP literal, with an optional IPv6 zone (dropped) and optional brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let without_zone = match text.split_once('%') {
        Some((ip, zone)) if !zone.is_empty() && ip.contains(':') => ip,
        Some(_) => return None,
        None => text,
    };
    without_zone.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn command_output_is_split_trimmed_and_checked() {
        let addrs =
            parse_command_output("10.0.0.1 \"10.0.0.2\"\n fe80::1%eth0 10.0.0.1\n").unwrap();
        assert_eq!(
            addrs,
            ["10.0.0.1", "10.0.0.2", "fe80::1"]
                .iter()
                .map(|a| a.parse::<IpAddr>().unwrap())
                .collect::<Vec<_>>()
        );
        assert!(matches!(
            parse_command_output(" \n"),
            Err(DiscoveryError::NoOutput)
        ));
        let err = parse_command_output("10.0.0.1 consul.example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "executable returned \"consul.example\", which is not an IP address"
        );
    }

    #[tokio::test]
    async fn literals_resolve_to_themselves_and_empty_hosts_is_an_error() {
        assert_eq!(
            resolve("10.1.2.3").await.unwrap(),
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            resolve("::1").await.unwrap(),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
        assert!(matches!(resolve("  ").await, Err(DiscoveryError::NoHosts)));
        assert!(matches!(
            resolve("exec=").await,
            Err(DiscoveryError::NoCommand)
        ));
        assert!(!DiscoveryError::NoHosts.is_transient());
    }

    #[tokio::test]
    async fn names_resolve_through_dns() {
        let addrs = resolve("localhost").await.unwrap();
        assert!(addrs.iter().all(IpAddr::is_loopback), "{addrs:?}");
    }

    #[tokio::test]
    async fn exec_runs_the_command_without_a_shell() {
        let addrs = resolve("exec=echo 10.0.0.7 \"10.0.0.8\"").await.unwrap();
        assert_eq!(
            addrs,
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "10.0.0.8".parse::<IpAddr>().unwrap()
            ]
        );
        let err = resolve("exec=sh -c exit").await;
        // `sh -c exit` exits 0 with no output: the words are not re-joined by a shell.
        assert!(matches!(err, Err(DiscoveryError::NoOutput)), "{err:?}");
        let err = resolve("exec=false").await.unwrap_err();
        assert_eq!(err.to_string(), "executable failed with exit code 1: ");
        let err = resolve("exec=/nonexistent/discover -q").await.unwrap_err();
        assert!(matches!(err, DiscoveryError::Spawn { .. }), "{err:?}");
        assert!(err.is_transient());
    }
}
