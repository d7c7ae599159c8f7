//! Transparent proxy: the iptables rules that send the task's TCP traffic through the dataplane.
//!
//! The rules are plain data first ([`RedirectConfig::rules`]), in the order Consul's SDK
//! (`sdk/iptables`) emits them, followed by the ECS-specific `POSTROUTING ACCEPT` policy. They are then
//! run one by one with the `iptables` program; the first failure stops the run.
//!
//! Inputs come from the proxy registration as Consul holds it, with central configuration applied:
//!
//! * inbound port: the proxy's port, or `Proxy.Config.bind_port`;
//! * outbound port: 15001, or `Proxy.TransparentProxy.OutboundListenerPort`;
//! * inbound exclusions: `transparentProxy.excludeInboundPorts`, the dataplane readiness port, the ports
//!   of `envoy_prometheus_bind_addr` and `envoy_stats_bind_addr`, and the exposed paths' listener ports;
//! * outbound exclusions: the configured ports and CIDRs; UIDs: the configured ones, then health-sync's
//!   (5996); the dataplane's own UID (5995) is never redirected;
//! * DNS (with Consul DNS): port 53 to 127.0.0.1 goes to 127.0.0.1:8600.

use std::path::Path;
use std::process::Stdio;

use consul_client::catalog::{AgentService, ExposeConfig, ProxyConfig, TransparentProxyConfig};
use consul_client::config_entry::{
    ConfigEntry, PROXY_DEFAULTS, PROXY_DEFAULTS_NAME, SERVICE_DEFAULTS,
};
use consul_client::{Client, QueryOptions};
use consul_ecs_config::Config;
use serde_json::Value;

use crate::Error;
use crate::dataplane_config::{DNS_PORT, LOCALHOST};

/// UID of the dataplane, whose own traffic is never redirected.
pub const PROXY_UID: &str = "5995";
/// UID of health-sync, excluded so that it reaches Consul directly.
pub const HEALTH_SYNC_UID: &str = "5996";
/// The proxy's outbound listener unless the registration names another.
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;

const INBOUND: &str = "CONSUL_PROXY_INBOUND";
const IN_REDIRECT: &str = "CONSUL_PROXY_IN_REDIRECT";
const OUTPUT: &str = "CONSUL_PROXY_OUTPUT";
const REDIRECT: &str = "CONSUL_PROXY_REDIRECT";
const DNS_REDIRECT: &str = "CONSUL_DNS_REDIRECT";

/// What the redirection rules are made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    /// UID whose traffic is never redirected (the dataplane's).
    pub proxy_uid: String,
    /// Port inbound traffic goes to.
    pub inbound_port: u16,
    /// Port outbound traffic goes to.
    pub outbound_port: u16,
    /// Inbound ports left alone, in order.
    pub exclude_inbound_ports: Vec<String>,
    /// Outbound ports left alone.
    pub exclude_outbound_ports: Vec<String>,
    /// Outbound destinations left alone.
    pub exclude_outbound_cidrs: Vec<String>,
    /// Users whose outbound traffic is left alone.
    pub exclude_uids: Vec<String>,
    /// Consul DNS address and port, when DNS is redirected.
    pub dns: Option<(String, u16)>,
}

impl RedirectConfig {
    /// The settings for `proxy`, the sidecar registration as Consul holds it (central config merged).
    pub fn new(config: &Config, proxy: &AgentService) -> Result<RedirectConfig, Error> {
        let settings = proxy.proxy.clone().unwrap_or_default();
        let opaque = &settings.config;
        let mut inbound_port = proxy.port;
        if let Some(bind_port) = weak_int(opaque.get("bind_port"), "bind_port")?
            && bind_port != 0
        {
            inbound_port = u16::try_from(bind_port)
                .map_err(|_| Error::ProxyConfig(format!("bind_port {bind_port} is not a port")))?;
        }
        if inbound_port == 0 {
            return Err(Error::ProxyConfig(
                "ProxyInboundPort is required to set up traffic redirection".to_owned(),
            ));
        }
        let outbound_port = settings
            .transparent_proxy
            .as_ref()
            .map(|t| t.outbound_listener_port)
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_OUTBOUND_PORT);

        let tproxy = &config.transparent_proxy;
        let mut exclude_inbound_ports: Vec<String> = tproxy
            .exclude_inbound_ports
            .iter()
            .map(u16::to_string)
            .collect();
        exclude_inbound_ports.push(config.proxy.health_check_port.to_string());
        for key in ["envoy_prometheus_bind_addr", "envoy_stats_bind_addr"] {
            if let Some(addr) = weak_string(opaque.get(key)).filter(|a| !a.is_empty()) {
                let port = split_port(&addr).map_err(|e| {
                    Error::ProxyConfig(format!("failed parsing host and port from {key}: {e}"))
                })?;
                exclude_inbound_ports.push(port);
            }
        }
        exclude_inbound_ports.extend(
            settings
                .expose
                .paths
                .iter()
                .filter(|p| p.listener_port != 0)
                .map(|p| p.listener_port.to_string()),
        );
        let mut exclude_uids = tproxy.exclude_uids.clone();
        exclude_uids.push(HEALTH_SYNC_UID.to_owned());
        Ok(RedirectConfig {
            proxy_uid: PROXY_UID.to_owned(),
            inbound_port,
            outbound_port,
            exclude_inbound_ports,
            exclude_outbound_ports: tproxy
                .exclude_outbound_ports
                .iter()
                .map(u16::to_string)
                .collect(),
            exclude_outbound_cidrs: tproxy.exclude_outbound_cidrs.clone(),
            exclude_uids,
            dns: config
                .consul_dns_enabled()
                .then(|| (LOCALHOST.to_owned(), DNS_PORT)),
        })
    }

    /// The `iptables` argument lists, in the order they run.
    pub fn rules(&self) -> Vec<Vec<String>> {
        let mut rules: Vec<Vec<String>> = Vec::new();
        let mut rule = |args: &[&str]| {
            rules.push(
                ["-t", "nat"]
                    .iter()
                    .chain(args)
                    .map(|a| (*a).to_owned())
                    .collect(),
            );
        };
        for chain in [INBOUND, IN_REDIRECT, OUTPUT, REDIRECT, DNS_REDIRECT] {
            rule(&["-N", chain]);
        }
        let outbound = self.outbound_port.to_string();
        rule(&[
            "-A",
            REDIRECT,
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-port",
            &outbound,
        ]);
        if let Some((ip, port)) = &self.dns {
            let target = format!("{ip}:{port}");
            for proto in ["udp", "tcp"] {
                rule(&[
                    "-A",
                    DNS_REDIRECT,
                    "-p",
                    proto,
                    "-d",
                    ip,
                    "--dport",
                    "53",
                    "-j",
                    "DNAT",
                    "--to-destination",
                    &target,
                ]);
            }
            for proto in ["udp", "tcp"] {
                rule(&[
                    "-A",
                    "OUTPUT",
                    "-p",
                    proto,
                    "-d",
                    ip,
                    "--dport",
                    "53",
                    "-j",
                    DNS_REDIRECT,
                ]);
            }
        }
        rule(&["-A", "OUTPUT", "-p", "tcp", "-j", OUTPUT]);
        rule(&[
            "-A",
            OUTPUT,
            "-m",
            "owner",
            "--uid-owner",
            &self.proxy_uid,
            "-j",
            "RETURN",
        ]);
        rule(&["-A", OUTPUT, "-d", "127.0.0.1/32", "-j", "RETURN"]);
        rule(&["-A", OUTPUT, "-j", REDIRECT]);
        for port in &self.exclude_outbound_ports {
            rule(&["-I", OUTPUT, "-p", "tcp", "--dport", port, "-j", "RETURN"]);
        }
        for cidr in &self.exclude_outbound_cidrs {
            rule(&["-I", OUTPUT, "-d", cidr, "-j", "RETURN"]);
        }
        for uid in &self.exclude_uids {
            rule(&[
                "-I",
                OUTPUT,
                "-m",
                "owner",
                "--uid-owner",
                uid,
                "-j",
                "RETURN",
            ]);
        }
        let inbound = self.inbound_port.to_string();
        rule(&[
            "-A",
            IN_REDIRECT,
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-port",
            &inbound,
        ]);
        rule(&["-A", "PREROUTING", "-p", "tcp", "-j", INBOUND]);
        rule(&["-A", INBOUND, "-p", "tcp", "-j", IN_REDIRECT]);
        for port in &self.exclude_inbound_ports {
            rule(&["-I", INBOUND, "-p", "tcp", "--dport", port, "-j", "RETURN"]);
        }
        // ECS: outgoing packets must leave whatever the task's default POSTROUTING policy is.
        rule(&["--policy", "POSTROUTING", "ACCEPT"]);
        rules
    }
}

/// Runs each rule with `program`; stops at the first failure.
pub async fn apply(program: &Path, rules: &[Vec<String>]) -> Result<(), Error> {
    for args in rules {
        let command = format!("{} {}", program.display(), args.join(" "));
        let output = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Iptables {
                command: command.clone(),
                message: e.to_string(),
                output: String::new(),
            })?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(Error::Iptables {
                command,
                message: output.status.to_string(),
                output: text.trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// The sidecar registration as Consul holds it, with the central configuration that affects the rules
/// applied: `proxy-defaults` and `service-defaults` fill `Config` keys the registration leaves unset,
/// and supply `TransparentProxy` and `Expose` when the registration has none.
pub async fn merged_proxy(
    client: &Client,
    node: &str,
    proxy_id: &str,
    service_name: &str,
) -> Result<AgentService, Error> {
    let options = QueryOptions {
        filter: Some(format!("ID == \"{proxy_id}\"")),
        ..QueryOptions::default()
    };
    let found = client
        .catalog()
        .node_services(node, &options)
        .await
        .map_err(|e| Error::consul("reading the proxy registration back", e))?
        .value
        .map(|list| list.services)
        .unwrap_or_default();
    let mut service = match found.as_slice() {
        [] => {
            return Err(Error::ProxyLookup(format!(
                "proxy service with ID {proxy_id} not found"
            )));
        }
        [one] => one.clone(),
        _ => {
            return Err(Error::ProxyLookup(format!(
                "expected to find only one proxy service with ID {proxy_id}, but more were found"
            )));
        }
    };
    let Some(settings) = service.proxy.as_mut() else {
        return Err(Error::ProxyLookup(format!(
            "service {proxy_id} is not a proxy"
        )));
    };
    let read = |kind: &'static str, name: String| async move {
        client
            .config_entries()
            .get(kind, &name, &QueryOptions::default())
            .await
            .map(|r| r.value)
            .map_err(|e| Error::consul(format!("reading {kind}/{name}"), e))
    };
    let service_defaults = read(SERVICE_DEFAULTS, service_name.to_owned()).await?;
    let proxy_defaults = read(PROXY_DEFAULTS, PROXY_DEFAULTS_NAME.to_owned()).await?;
    let mut central = Central::default();
    if let Some(ConfigEntry::ServiceDefaults(sd)) = service_defaults {
        central.add(None, sd.transparent_proxy, sd.expose);
    }
    if let Some(ConfigEntry::ProxyDefaults(pd)) = proxy_defaults {
        central.add(Some(pd.config), pd.transparent_proxy, pd.expose);
    }
    central.apply(settings);
    Ok(service)
}

/// Central settings, most specific first.
#[derive(Default)]
struct Central {
    config: serde_json::Map<String, Value>,
    transparent_proxy: Option<TransparentProxyConfig>,
    expose: Option<ExposeConfig>,
}

impl Central {
    fn add(
        &mut self,
        config: Option<serde_json::Map<String, Value>>,
        tproxy: Option<TransparentProxyConfig>,
        expose: ExposeConfig,
    ) {
        for (k, v) in config.unwrap_or_default() {
            self.config.entry(k).or_insert(v);
        }
        if self.transparent_proxy.is_none() {
            self.transparent_proxy = tproxy.filter(|t| *t != TransparentProxyConfig::default());
        }
        if self.expose.is_none() && expose != ExposeConfig::default() {
            self.expose = Some(expose);
        }
    }

    fn apply(self, proxy: &mut ProxyConfig) {
        for (k, v) in self.config {
            proxy.config.entry(k).or_insert(v);
        }
        if proxy.transparent_proxy.is_none() {
            proxy.transparent_proxy = self.transparent_proxy;
        }
        if proxy.expose == ExposeConfig::default()
            && let Some(expose) = self.expose
        {
            proxy.expose = expose;
        }
    }
}

/// An integer read the way Go's mapstructure `WeakDecode` reads one: numbers (truncated), numeric
/// strings (empty is 0), booleans as 0/1.
fn weak_int(value: Option<&Value>, key: &str) -> Result<Option<i64>, Error> {
    let bad = || Error::ProxyConfig(format!("'{key}' expected an integer, got {value:?}"));
    Ok(match value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                // Truncation is what the weak decoder does with a float.
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(bad)?,
        ),
        Some(Value::Bool(b)) => Some(i64::from(*b)),
        Some(Value::String(s)) if s.trim().is_empty() => Some(0),
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| bad())?),
        Some(_) => return Err(bad()),
    })
}

/// A string read weakly: strings as they are, numbers and booleans formatted.
fn weak_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    }
}

/// The port of `host:port` as Go's `net.SplitHostPort` splits it.
fn split_port(addr: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {addr}: missing ']' in address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("address {addr}: missing port in address"))?;
        (host, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("address {addr}: missing port in address"))?;
        if host.contains(':') {
            return Err(format!("address {addr}: too many colons in address"));
        }
        (host, port)
    };
    let _ = host;
    Ok(port.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use consul_client::catalog::ExposePath;
    use serde_json::json;

    fn config(tproxy: &str) -> Config {
        Config::from_json(&format!(
            r#"{{"bootstrapDir": "/consul", "consulServers": {{"hosts": "h"}},
                "service": {{"port": 8080}}, "transparentProxy": {tproxy}}}"#
        ))
        .unwrap()
    }

    fn proxy(port: u16, opaque: serde_json::Value) -> AgentService {
        AgentService {
            port,
            proxy: Some(ProxyConfig {
                config: opaque.as_object().cloned().unwrap_or_default(),
                ..ProxyConfig::default()
            }),
            ..AgentService::default()
        }
    }

    fn lines(rules: &[Vec<String>]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("iptables {}", r.join(" ")))
            .collect()
    }

    #[test]
    fn the_default_rule_list_matches_consuls_sdk() {
        let redirect = RedirectConfig::new(&config("{}"), &proxy(20000, json!({}))).unwrap();
        assert_eq!(
            lines(&redirect.rules()),
            [
                "iptables -t nat -N CONSUL_PROXY_INBOUND",
                "iptables -t nat -N CONSUL_PROXY_IN_REDIRECT",
                "iptables -t nat -N CONSUL_PROXY_OUTPUT",
                "iptables -t nat -N CONSUL_PROXY_REDIRECT",
                "iptables -t nat -N CONSUL_DNS_REDIRECT",
                "iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15001",
                "iptables -t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT",
                "iptables -t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN",
                "iptables -t nat -A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN",
                "iptables -t nat -A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT",
                "iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN",
                "iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 20000",
                "iptables -t nat -A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND",
                "iptables -t nat -A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT",
                "iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 22000 -j RETURN",
                "iptables -t nat --policy POSTROUTING ACCEPT",
            ]
        );
    }

    #[test]
    fn overrides_exclusions_and_dns_shape_the_rules() {
        let config = config(
            r#"{"excludeInboundPorts": [8080, 9090], "excludeOutboundPorts": [443],
                "excludeOutboundCIDRs": ["10.0.0.0/8"], "excludeUIDs": ["1000"],
                "consulDNS": {"enabled": true}}"#,
        );
        let mut sidecar = proxy(
            20000,
            json!({"bind_port": "21000", "envoy_prometheus_bind_addr": "0.0.0.0:9102",
                   "envoy_stats_bind_addr": "[::]:9103"}),
        );
        let settings = sidecar.proxy.as_mut().unwrap();
        settings.transparent_proxy = Some(TransparentProxyConfig {
            outbound_listener_port: 15002,
            dialed_directly: false,
        });
        settings.expose.paths = vec![
            ExposePath {
                listener_port: 21500,
                ..ExposePath::default()
            },
            ExposePath::default(),
        ];
        let redirect = RedirectConfig::new(&config, &sidecar).unwrap();
        assert_eq!(redirect.inbound_port, 21000);
        assert_eq!(redirect.outbound_port, 15002);
        assert_eq!(
            redirect.exclude_inbound_ports,
            ["8080", "9090", "22000", "9102", "9103", "21500"]
        );
        assert_eq!(redirect.exclude_uids, ["1000", "5996"]);
        let rules = lines(&redirect.rules());
        assert_eq!(
            rules[5..12],
            [
                "iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15002",
                "iptables -t nat -A CONSUL_DNS_REDIRECT -p udp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600",
                "iptables -t nat -A CONSUL_DNS_REDIRECT -p tcp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600",
                "iptables -t nat -A OUTPUT -p udp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT",
                "iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT",
                "iptables -t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT",
                "iptables -t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN",
            ]
        );
        assert!(rules.contains(
            &"iptables -t nat -I CONSUL_PROXY_OUTPUT -p tcp --dport 443 -j RETURN".to_owned()
        ));
        assert!(rules.contains(
            &"iptables -t nat -I CONSUL_PROXY_OUTPUT -d 10.0.0.0/8 -j RETURN".to_owned()
        ));
        assert!(
            rules.contains(
                &"iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 21000"
                    .to_owned()
            )
        );
        assert_eq!(
            rules.last().map(String::as_str),
            Some("iptables -t nat --policy POSTROUTING ACCEPT")
        );
    }

    #[test]
    fn bad_proxy_config_values_are_errors_that_name_them() {
        let config = config("{}");
        let err = RedirectConfig::new(&config, &proxy(20000, json!({"bind_port": "x"})))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("failed parsing proxy service's Proxy.Config: 'bind_port'"),
            "{err}"
        );
        let err = RedirectConfig::new(
            &config,
            &proxy(20000, json!({"envoy_stats_bind_addr": "9102"})),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("envoy_stats_bind_addr"), "{err}");
        assert!(err.contains("missing port in address"), "{err}");
        assert!(RedirectConfig::new(&config, &proxy(0, json!({}))).is_err());
        // Weak decoding: booleans, floats and empty strings are numbers too.
        assert_eq!(
            RedirectConfig::new(&config, &proxy(20000, json!({"bind_port": 21000.9})))
                .unwrap()
                .inbound_port,
            21000
        );
        assert_eq!(
            RedirectConfig::new(&config, &proxy(20000, json!({"bind_port": ""})))
                .unwrap()
                .inbound_port,
            20000
        );
    }

    #[tokio::test]
    async fn apply_stops_at_the_first_failing_command() {
        let rules = vec![
            vec!["-c".to_owned(), "exit 0".to_owned()],
            vec!["-c".to_owned(), "echo no such chain >&2; exit 3".to_owned()],
            vec!["-c".to_owned(), "exit 0".to_owned()],
        ];
        let err = apply(Path::new("sh"), &rules)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "failed to setup traffic redirection rules: failed to run command: sh -c echo no such chain >&2; exit 3, \
             err: exit status: 3, output: no such chain"
        );
        apply(Path::new("true"), &rules).await.unwrap();
    }
}
