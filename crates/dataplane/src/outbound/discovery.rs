//! Where an upstream's instances come from: the destination's own sidecars (`/v1/health/connect`),
//! or mesh gateways (`/v1/health/service/<gateway>`) when the destination is in another datacenter
//! and the mesh gateway mode says so. The TLS session is the same in every case: SNI = the target's
//! name, the target's SPIFFE ID verified; gateways only route on the SNI.

use consul_client::catalog::MeshGatewayMode;
use consul_client::health::ServiceEntry;

/// What to query for an upstream's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Discovery {
    /// The destination's sidecars: `/v1/health/connect/<service>?passing[&dc=<dc>]`, dialled at
    /// their (LAN) address.
    Direct {
        /// `None`: the local datacenter.
        datacenter: Option<String>,
    },
    /// Mesh gateways: `/v1/health/service/<gateway>?passing[&dc=<dc>]`.
    Gateway {
        /// `None`: the local datacenter's gateways (mode `local`); `Some(dc)`: the remote ones
        /// (mode `remote`).
        datacenter: Option<String>,
        /// Dial the gateways' WAN address (remote gateways) rather than their LAN address.
        wan: bool,
    },
}

/// The effective gateway mode: the upstream's own, else the proxy's, else `none`.
pub(crate) fn effective_mode(
    upstream: &MeshGatewayMode,
    proxy: &MeshGatewayMode,
) -> MeshGatewayMode {
    match (upstream, proxy) {
        (MeshGatewayMode::Default, MeshGatewayMode::Default) => MeshGatewayMode::None,
        (MeshGatewayMode::Default, p) => p.clone(),
        (u, _) => u.clone(),
    }
}

/// Decides how to find an upstream in `target_dc` (empty = ours) from `local_dc`.
pub(crate) fn discovery(target_dc: &str, local_dc: &str, mode: &MeshGatewayMode) -> Discovery {
    if target_dc.is_empty() || target_dc == local_dc {
        // Gateways only carry cross-datacenter traffic.
        return Discovery::Direct { datacenter: None };
    }
    match mode {
        MeshGatewayMode::Local => Discovery::Gateway {
            datacenter: None,
            wan: false,
        },
        MeshGatewayMode::Remote => Discovery::Gateway {
            datacenter: Some(target_dc.to_owned()),
            wan: true,
        },
        _ => Discovery::Direct {
            datacenter: Some(target_dc.to_owned()),
        },
    }
}

/// `host:port` to dial for one health entry: for sidecars, `Service.Address` (else the node's) and
/// `Service.Port`; for gateways, the `lan` or `wan` tagged address first.
pub(crate) fn target(entry: &ServiceEntry, wan_gateway: bool, gateway: bool) -> Option<String> {
    let service = &entry.service;
    let tagged = if gateway {
        let key = if wan_gateway { "wan" } else { "lan" };
        service
            .tagged_addresses
            .get(key)
            .filter(|a| !a.address.is_empty() && a.port != 0)
            .map(|a| (a.address.clone(), a.port))
            .or_else(|| {
                // A remote gateway without a WAN service address: the node's WAN address.
                wan_gateway
                    .then(|| entry.node.tagged_addresses.get("wan"))
                    .flatten()
                    .filter(|a| !a.is_empty())
                    .map(|a| (a.clone(), service.port))
            })
    } else {
        None
    };
    let (host, port) = tagged.unwrap_or_else(|| {
        let host = if service.address.is_empty() {
            entry.node.address.clone()
        } else {
            service.address.clone()
        };
        (host, service.port)
    });
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_datacenter_is_always_direct() {
        for mode in [
            MeshGatewayMode::None,
            MeshGatewayMode::Local,
            MeshGatewayMode::Remote,
        ] {
            assert_eq!(
                discovery("", "dc1", &mode),
                Discovery::Direct { datacenter: None }
            );
            assert_eq!(
                discovery("dc1", "dc1", &mode),
                Discovery::Direct { datacenter: None }
            );
        }
    }

    #[test]
    fn other_datacenter_follows_the_mode() {
        assert_eq!(
            discovery("dc2", "dc1", &MeshGatewayMode::None),
            Discovery::Direct {
                datacenter: Some("dc2".into())
            }
        );
        assert_eq!(
            discovery("dc2", "dc1", &MeshGatewayMode::Local),
            Discovery::Gateway {
                datacenter: None,
                wan: false
            }
        );
        assert_eq!(
            discovery("dc2", "dc1", &MeshGatewayMode::Remote),
            Discovery::Gateway {
                datacenter: Some("dc2".into()),
                wan: true
            }
        );
    }

    #[test]
    fn upstream_mode_wins_over_proxy_mode() {
        use MeshGatewayMode as M;
        assert_eq!(effective_mode(&M::Default, &M::Default), M::None);
        assert_eq!(effective_mode(&M::Default, &M::Local), M::Local);
        assert_eq!(effective_mode(&M::Remote, &M::Local), M::Remote);
    }

    #[test]
    fn targets_prefer_service_then_node_address() {
        let mut e = ServiceEntry::default();
        e.node.address = "10.0.0.1".into();
        e.service.port = 20000;
        assert_eq!(target(&e, false, false).as_deref(), Some("10.0.0.1:20000"));
        e.service.address = "10.0.0.2".into();
        assert_eq!(target(&e, false, false).as_deref(), Some("10.0.0.2:20000"));
        e.service.address = "::1".into();
        assert_eq!(target(&e, false, false).as_deref(), Some("[::1]:20000"));
        e.service.port = 0;
        assert_eq!(target(&e, false, false), None);
    }

    #[test]
    fn gateway_targets_use_tagged_addresses() {
        use consul_client::catalog::ServiceAddress;
        let mut e = ServiceEntry::default();
        e.node.address = "10.0.0.1".into();
        e.service.port = 8443;
        e.service.tagged_addresses.insert(
            "lan".into(),
            ServiceAddress {
                address: "10.0.0.9".into(),
                port: 8443,
            },
        );
        e.service.tagged_addresses.insert(
            "wan".into(),
            ServiceAddress {
                address: "203.0.113.5".into(),
                port: 443,
            },
        );
        assert_eq!(target(&e, false, true).as_deref(), Some("10.0.0.9:8443"));
        assert_eq!(target(&e, true, true).as_deref(), Some("203.0.113.5:443"));
        e.service.tagged_addresses.clear();
        e.node
            .tagged_addresses
            .insert("wan".into(), "198.51.100.7".into());
        assert_eq!(target(&e, true, true).as_deref(), Some("198.51.100.7:8443"));
        assert_eq!(target(&e, false, true).as_deref(), Some("10.0.0.1:8443"));
    }
}
