//! Task networking with the `ip` command (iproute2): a host bridge, and per task a network namespace
//! joined to it by a veth pair.
//!
//! ```text
//!  host                                   task namespace ecsl-<id8>
//!  ecsl0 (bridge, 198.18.0.1/15) ── ecslv<id8> ══ eth0 198.18.0.N/15, default via 198.18.0.1
//!                                                 lo   127.0.0.1, 169.254.170.2 (task metadata)
//! ```
//!
//! Tasks reach each other across the bridge, and the host (where a dev server or moto would listen)
//! at the bridge address. Nothing is routed beyond the host: ecs-local changes no sysctl and adds no
//! NAT rule.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;

/// The default bridge name.
pub const DEFAULT_BRIDGE: &str = "ecsl0";
/// The default address range: 198.18.0.0/15, reserved for benchmarking (RFC 2544), so it will not
/// collide with a real network.
pub const DEFAULT_SUBNET: &str = "198.18.0.0/15";
/// The task metadata address inside every task namespace, as on ECS.
pub const METADATA_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The prefix of every link and namespace name ecs-local creates.
pub const NAME_PREFIX: &str = "ecsl";

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The network address (host bits cleared).
    pub network: Ipv4Addr,
    /// The prefix length (8 to 30).
    pub prefix: u8,
}

/// A range that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address range {value:?}: {reason}")]
pub struct CidrError {
    /// The text given.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| CidrError {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (addr, prefix) = value
            .split_once('/')
            .ok_or_else(|| error("expected a.b.c.d/prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| error("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| error("the prefix is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(error("the prefix must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Self {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Ipv4Cidr {
    /// The first host address, given to the bridge: tasks use it as their gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The task addresses, in order (the gateway and the broadcast address excluded).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let size = 1u32 << (32 - u32::from(self.prefix));
        let last = u32::from(self.network) + size - 2;
        (first..=last).map(Ipv4Addr::from)
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(addr) & mask == u32::from(self.network)
    }
}

/// The bridge and address range tasks are networked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The host bridge (created on first use, removed with the last task of the state directory
    /// that created it).
    pub bridge: String,
    /// The address range; the bridge takes the first address.
    pub subnet: Ipv4Cidr,
}

impl NetworkConfig {
    /// `ecsl0` on 198.18.0.0/15.
    pub fn default_config() -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnet: Ipv4Cidr {
                network: Ipv4Addr::new(198, 18, 0, 0),
                prefix: 15,
            },
        }
    }

    /// The bridge's address: what tasks reach the host at.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }
}

/// An `ip` command that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`ip {args}` failed: {reason}")]
pub struct NetError {
    /// The arguments given to `ip`.
    pub args: String,
    /// Its error output, or why it could not run.
    pub reason: String,
}

/// Runs `ip` with `args`.
pub(crate) fn ip(args: &[&str]) -> Result<String, NetError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError {
            args: args.join(" "),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "the ip command (iproute2) is not installed".to_owned()
            } else {
                e.to_string()
            },
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError {
            args: args.join(" "),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether a link with this name exists on the host.
pub(crate) fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// Whether a named network namespace exists.
pub(crate) fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Creates the bridge if it is missing and makes sure it has the gateway address and is up.
/// Returns true when the caller may consider the bridge its own: this call created it, or it
/// existed with no port attached (left behind by a runtime that was killed).
pub(crate) fn ensure_bridge(config: &NetworkConfig) -> Result<bool, NetError> {
    let owned = if link_exists(&config.bridge) {
        let ports = ip(&["-o", "link", "show", "master", &config.bridge])?;
        ports.trim().is_empty()
    } else {
        ip(&["link", "add", "name", &config.bridge, "type", "bridge"])?;
        true
    };
    let gateway = format!("{}/{}", config.gateway(), config.subnet.prefix);
    let addresses = ip(&["-o", "-4", "addr", "show", "dev", &config.bridge])?;
    if !addresses.contains(&format!(" {gateway} ")) {
        ip(&["addr", "add", &gateway, "dev", &config.bridge])?;
    }
    ip(&["link", "set", "dev", &config.bridge, "up"])?;
    Ok(owned)
}

/// Deletes the bridge (best effort).
pub(crate) fn delete_bridge(name: &str) {
    if link_exists(name) {
        let _ = ip(&["link", "delete", "dev", name]);
    }
}

/// The names of a task's namespace and host-side veth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskLinks {
    pub(crate) netns: String,
    pub(crate) veth: String,
}

impl TaskLinks {
    pub(crate) fn for_task(task_id: &str) -> Self {
        let short: String = task_id.chars().take(8).collect();
        Self {
            netns: format!("{NAME_PREFIX}-{short}"),
            veth: format!("{NAME_PREFIX}v{short}"),
        }
    }

    /// The namespace file processes join.
    pub(crate) fn netns_path(&self) -> std::path::PathBuf {
        std::path::Path::new("/run/netns").join(&self.netns)
    }
}

/// Creates the task's namespace, veth pair, addresses and routes. On failure, whatever was created
/// is removed again.
pub(crate) fn setup_task(
    config: &NetworkConfig,
    links: &TaskLinks,
    addr: Ipv4Addr,
) -> Result<(), NetError> {
    let result = setup_task_steps(config, links, addr);
    if result.is_err() {
        teardown_task(links);
    }
    result
}

fn setup_task_steps(
    config: &NetworkConfig,
    links: &TaskLinks,
    addr: Ipv4Addr,
) -> Result<(), NetError> {
    let ns = links.netns.as_str();
    let veth = links.veth.as_str();
    let cidr = format!("{addr}/{}", config.subnet.prefix);
    let gateway = config.gateway().to_string();
    let metadata = format!("{METADATA_ADDR}/32");
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", "name", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["link", "set", "dev", veth, "master", &config.bridge])?;
    ip(&["link", "set", "dev", veth, "up"])?;
    ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
    ip(&["-n", ns, "addr", "add", &metadata, "dev", "lo"])?;
    ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "dev", "eth0", "up"])?;
    ip(&["-n", ns, "route", "add", "default", "via", &gateway])?;
    Ok(())
}

/// Removes the task's namespace and veth (best effort; both may already be gone).
pub(crate) fn teardown_task(links: &TaskLinks) {
    if netns_exists(&links.netns) {
        let _ = ip(&["netns", "delete", &links.netns]);
    }
    // Deleting the namespace removes eth0 and with it the peer; this catches a half-made pair.
    if link_exists(&links.veth) {
        let _ = ip(&["link", "delete", "dev", &links.veth]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_clears_host_bits_and_refuses_nonsense() {
        let cidr: Ipv4Cidr = "198.18.7.9/15".parse().unwrap();
        assert_eq!(cidr.to_string(), "198.18.0.0/15");
        assert_eq!(cidr.gateway(), Ipv4Addr::new(198, 18, 0, 1));
        assert!(cidr.contains(Ipv4Addr::new(198, 19, 255, 254)));
        assert!(!cidr.contains(Ipv4Addr::new(198, 20, 0, 1)));
        let small: Ipv4Cidr = "10.1.2.0/30".parse().unwrap();
        assert_eq!(
            small.hosts().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 1, 2, 2)]
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/31",
            "10.0.0/24",
            "10.0.0.0/x",
            "10.0.0.0/4",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        let links = TaskLinks::for_task("0123456789abcdef0123456789abcdef");
        assert_eq!(links.netns, "ecsl-01234567");
        assert_eq!(links.veth, "ecslv01234567");
        assert!(links.veth.len() <= 15);
    }
}
