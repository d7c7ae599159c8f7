//! Consul DNS inside the task: `resolv.conf` is rewritten so that the dataplane's DNS server
//! (127.0.0.1, where iptables sends port 53 on to 8600) is asked first.
//!
//! The file is read the way Go's miekg/dns reads it: `nameserver` lines in order, `domain` or `search`
//! (the last wins), and `options ndots:N` (0–15), `timeout:N` (≥ 1), `attempts:N` (≥ 1). Everything else,
//! comments and other options included, is dropped. The rewrite is
//!
//! ```text
//! search <list>              (left out when empty or just ".")
//! nameserver 127.0.0.1
//! nameserver <each original, in order>
//! options <ndots/timeout/attempts that differ from 1/5/2>
//! ```
//!
//! It is written in place (mode 0644), not renamed over: container runtimes bind-mount `resolv.conf`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::Error;

/// The nameserver put first.
pub const CONSUL_DNS_ADDRESS: &str = "127.0.0.1";
/// Mode of the rewritten file.
pub const RESOLV_CONF_MODE: u32 = 0o644;

const DEFAULT_NDOTS: u32 = 1;
const DEFAULT_TIMEOUT: u32 = 5;
const DEFAULT_ATTEMPTS: u32 = 2;

/// What a resolver file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// Name servers, in order.
    pub nameservers: Vec<String>,
    /// Search domains.
    pub search: Vec<String>,
    /// `ndots`.
    pub ndots: u32,
    /// `timeout` in seconds.
    pub timeout: u32,
    /// `attempts`.
    pub attempts: u32,
}

impl ResolvConf {
    /// Reads resolver file text.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["nameserver", server, ..] => conf.nameservers.push((*server).to_owned()),
                ["domain", domain, ..] => conf.search = vec![(*domain).to_owned()],
                ["domain"] => conf.search.clear(),
                ["search", domains @ ..] => {
                    conf.search = domains.iter().map(|d| (*d).to_owned()).collect();
                }
                ["options", options @ ..] => {
                    for option in options {
                        if let Some(n) = option.strip_prefix("ndots:") {
                            conf.ndots = number(n).clamp(0, 15);
                        } else if let Some(n) = option.strip_prefix("timeout:") {
                            conf.timeout = number(n).max(1);
                        } else if let Some(n) = option.strip_prefix("attempts:") {
                            conf.attempts = number(n).max(1);
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The rewritten file: Consul DNS first, the original servers after it.
    pub fn with_consul_dns(&self) -> String {
        let mut out = String::new();
        let search = self.search.join(" ");
        if !search.trim().is_empty() && search.trim() != "." {
            out.push_str(&format!("search {search}\n"));
        }
        for server in
            std::iter::once(CONSUL_DNS_ADDRESS).chain(self.nameservers.iter().map(String::as_str))
        {
            out.push_str(&format!("nameserver {server}\n"));
        }
        let mut options = Vec::new();
        if self.ndots != DEFAULT_NDOTS {
            options.push(format!("ndots:{}", self.ndots));
        }
        if self.timeout != DEFAULT_TIMEOUT {
            options.push(format!("timeout:{}", self.timeout));
        }
        if self.attempts != DEFAULT_ATTEMPTS {
            options.push(format!("attempts:{}", self.attempts));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }
}

/// Go's `strconv.Atoi` with errors read as 0 (as miekg/dns does), and negative values as 0.
fn number(text: &str) -> u32 {
    text.parse::<i64>()
        .ok()
        .map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// Rewrites the resolver file at `path` in place.
pub fn configure(path: &Path) -> Result<(), Error> {
    let io = |what: &'static str| {
        move |source| Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let text = std::fs::read_to_string(path).map_err(io("reading"))?;
    let rewritten = ResolvConf::parse(&text).with_consul_dns();
    std::fs::write(path, rewritten).map_err(io("writing"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(RESOLV_CONF_MODE))
        .map_err(io("setting the mode of"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(text: &str) -> String {
        ResolvConf::parse(text).with_consul_dns()
    }

    #[test]
    fn an_empty_file_gets_just_consul_dns() {
        assert_eq!(rewrite(""), "nameserver 127.0.0.1\n");
    }

    #[test]
    fn servers_keep_their_order_after_consul_dns() {
        assert_eq!(
            rewrite("nameserver 1.1.1.1"),
            "nameserver 127.0.0.1\nnameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn search_and_differing_options_are_kept_and_the_rest_dropped() {
        let text = "# generated\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nsearch foo.bar bar.baz\n\
                    options ndots:5 timeout:6 attempts:3 rotate\nsortlist 10.0.0.0\n";
        assert_eq!(
            rewrite(text),
            "search foo.bar bar.baz\nnameserver 127.0.0.1\nnameserver 1.1.1.1\nnameserver 2.2.2.2\n\
             options ndots:5 timeout:6 attempts:3\n"
        );
    }

    #[test]
    fn defaults_are_not_written_and_values_are_clamped() {
        assert_eq!(
            rewrite("options ndots:1 timeout:5 attempts:2\nnameserver 9.9.9.9"),
            "nameserver 127.0.0.1\nnameserver 9.9.9.9\n"
        );
        assert_eq!(
            rewrite("options ndots:99 timeout:0 attempts:x"),
            "nameserver 127.0.0.1\noptions ndots:15 timeout:1 attempts:1\n"
        );
    }

    #[test]
    fn domain_and_search_override_each_other_and_dot_is_dropped() {
        assert_eq!(
            rewrite("search a b\ndomain c\n"),
            "search c\nnameserver 127.0.0.1\n"
        );
        assert_eq!(rewrite("search .\n"), "nameserver 127.0.0.1\n");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_file_is_rewritten_in_place_with_mode_0644() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 10.0.0.2\n").unwrap();
        configure(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 127.0.0.1\nnameserver 10.0.0.2\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let err = configure(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("reading "), "{err}");
    }
}
