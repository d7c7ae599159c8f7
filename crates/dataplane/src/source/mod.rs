//! Sources feed the proxy core: [`consul`] watches Consul's HTTP API, [`static_`] reads files and
//! the config's `static` section.

pub(crate) mod addresses;
pub(crate) mod consul;
pub(crate) mod static_;

use std::net::{IpAddr, SocketAddr};

/// ALPN protocols the public listener offers for a service protocol (tcp: none).
pub(crate) fn alpn_for(protocol: &str) -> Vec<Vec<u8>> {
    match protocol {
        "http" => vec![b"http/1.1".to_vec()],
        "http2" | "grpc" => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        _ => Vec::new(),
    }
}

/// `host:port`, bracketing IPv6 literals.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}
