//! Server address resolution, as go-netaddrs does it: an IP, a DNS name (A/AAAA), or
//! `exec=<command> <args>` whose standard output lists whitespace-separated IPs.

use std::net::IpAddr;

use crate::Error;

/// Resolves `addresses` to IPs, in the order found.
pub(crate) async fn resolve(addresses: &str) -> Result<Vec<IpAddr>, Error> {
    let addresses = addresses.trim();
    if let Some(command) = addresses.strip_prefix("exec=") {
        return exec(command).await;
    }
    if let Ok(ip) = addresses.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let found = tokio::net::lookup_host((addresses, 0))
        .await
        .map_err(|e| Error::Addresses(format!("DNS lookup of {addresses:?} failed: {e}")))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in found {
        if !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    if ips.is_empty() {
        return Err(Error::Addresses(format!(
            "{addresses:?} resolved to no address"
        )));
    }
    Ok(ips)
}

async fn exec(command: &str) -> Result<Vec<IpAddr>, Error> {
    let mut parts = command.split_whitespace();
    let Some(program) = parts.next() else {
        return Err(Error::Addresses("exec= names no command".into()));
    };
    let output = tokio::process::Command::new(program)
        .args(parts)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Addresses(format!("cannot run {program:?}: {e}")))?;
    if !output.status.success() {
        let code = output
            .status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| c.to_string());
        return Err(Error::Addresses(format!(
            "executable failed with exit code {code}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_ips(&String::from_utf8_lossy(&output.stdout))
}

/// Parses whitespace-separated IPs (surrounding quotes trimmed, an IPv6 `%zone` dropped).
pub(crate) fn parse_ips(text: &str) -> Result<Vec<IpAddr>, Error> {
    let mut ips = Vec::new();
    for word in text.split_whitespace() {
        let word = word.trim_matches('"');
        let bare = word.split('%').next().unwrap_or(word);
        let ip = bare.parse::<IpAddr>().map_err(|_| {
            Error::Addresses(format!(
                "executable returned {word:?}, which is not an IP address"
            ))
        })?;
        ips.push(ip);
    }
    if ips.is_empty() {
        return Err(Error::Addresses(
            "executable returned no output to stdout".into(),
        ));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_exec_output() {
        let ips = parse_ips(" 10.0.0.1\n\"10.0.0.2\" fe80::1%eth0 ").unwrap();
        assert_eq!(ips.len(), 3);
        assert!(parse_ips("").is_err());
        let err = parse_ips("10.0.0.1 consul.local").unwrap_err().to_string();
        assert!(err.contains("consul.local"), "{err}");
    }

    #[tokio::test]
    async fn runs_the_command() {
        let ips = resolve("exec=echo 127.0.0.1 127.0.0.2").await.unwrap();
        assert_eq!(
            ips,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        let err = resolve("exec=false").await.unwrap_err().to_string();
        assert!(err.contains("exit code 1"), "{err}");
        assert_eq!(
            resolve("127.0.0.9").await.unwrap(),
            vec!["127.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert!(!resolve("localhost").await.unwrap().is_empty());
    }
}
