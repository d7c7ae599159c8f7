//! The transparent proxy rules applied by the real `iptables` in a throwaway network namespace.
//!
//! This needs root, `ip netns` and `iptables`; on a machine without them the test says so and checks
//! nothing more (the rule list itself is checked exactly by the unit tests and the registration tests).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use consul_client::catalog::{AgentService, ExposeConfig, ExposePath, ProxyConfig};
use consul_ecs_config::Config;
use consul_ecs_mesh_init::transparent_proxy::{RedirectConfig, apply};

struct Namespace(String);

impl Namespace {
    fn create() -> Option<Namespace> {
        let name = format!("mesh-init-test-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Namespace(name))
    }

    fn iptables(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "iptables"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_rules_apply_in_a_real_network_namespace() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(is_root && have("ip") && have("iptables")) {
        eprintln!("not checked here: needs root, `ip netns` and `iptables`");
        return;
    }
    let Some(ns) = Namespace::create() else {
        eprintln!("not checked here: cannot create a network namespace");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("iptables");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec ip netns exec {} iptables \"$@\"\n", ns.0),
    )
    .unwrap();
    set_executable(&wrapper);

    let config = Config::from_json(
        r#"{"bootstrapDir": "/consul", "consulServers": {"hosts": "h"}, "service": {"port": 8080},
            "transparentProxy": {"excludeInboundPorts": [9000], "excludeOutboundPorts": [443],
                                 "excludeOutboundCIDRs": ["10.0.0.0/8"], "excludeUIDs": ["1234"],
                                 "consulDNS": {"enabled": true}}}"#,
    )
    .unwrap();
    let proxy = AgentService {
        port: 20000,
        proxy: Some(ProxyConfig {
            expose: ExposeConfig {
                checks: false,
                paths: vec![ExposePath {
                    listener_port: 21500,
                    ..ExposePath::default()
                }],
            },
            ..ProxyConfig::default()
        }),
        ..AgentService::default()
    };
    let rules = RedirectConfig::new(&config, &proxy).unwrap().rules();
    apply(&wrapper, &rules).await.unwrap();

    let listed = ns.iptables(&["-t", "nat", "-S"]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let lines: Vec<&str> = listed.lines().collect();
    let position = |rule: &str| {
        lines
            .iter()
            .position(|l| *l == rule)
            .unwrap_or_else(|| panic!("{rule:?} not in\n{listed}"))
    };
    for chain in [
        "CONSUL_PROXY_INBOUND",
        "CONSUL_PROXY_IN_REDIRECT",
        "CONSUL_PROXY_OUTPUT",
        "CONSUL_PROXY_REDIRECT",
        "CONSUL_DNS_REDIRECT",
    ] {
        position(&format!("-N {chain}"));
    }
    position("-P POSTROUTING ACCEPT");
    position("-A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND");
    position("-A OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 53 -j CONSUL_DNS_REDIRECT");
    position(
        "-A CONSUL_DNS_REDIRECT -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.1:8600",
    );
    position("-A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 15001");
    position("-A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 20000");
    // Inserted exclusions come before the catch-all jumps of their chain.
    let catch_in = position("-A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT");
    for port in ["9000", "22000", "21500"] {
        let rule = format!("-A CONSUL_PROXY_INBOUND -p tcp -m tcp --dport {port} -j RETURN");
        assert!(position(&rule) < catch_in, "{rule} after the redirect");
    }
    let catch_out = position("-A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT");
    for rule in [
        "-A CONSUL_PROXY_OUTPUT -p tcp -m tcp --dport 443 -j RETURN",
        "-A CONSUL_PROXY_OUTPUT -d 10.0.0.0/8 -j RETURN",
        "-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 1234 -j RETURN",
        "-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN",
        "-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN",
    ] {
        assert!(position(rule) < catch_out, "{rule} after the redirect");
    }

    // As upstream, the rules are not idempotent: a second run stops at the first chain it creates.
    let err = apply(&wrapper, &rules).await.unwrap_err().to_string();
    assert!(err.contains("-N CONSUL_PROXY_INBOUND"), "{err}");
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
