//! Central configuration merged into proxy registrations, as `?merge-central-config` on
//! `/v1/catalog/node-services/:node` and `/v1/health/service/:name` returns them (mesh-init reads the
//! merged sidecar for transparent proxy).
//!
//! Two steps, as in Consul. First the defaults are resolved for the service the proxy fronts:
//! `proxy-defaults/global` (its `Config`, `Mode`, `TransparentProxy`, `MeshGateway`, `Expose`,
//! `AccessLogs`, `EnvoyExtensions`), overlaid by `service-defaults/<service>` (`Protocol` and the
//! inbound limits land in `Config`; `MeshGateway`, `Mode`, `TransparentProxy`, `Expose` replace what is
//! set), plus an opaque config per upstream (protocol, mesh gateway mode, `UpstreamConfig` defaults and
//! overrides). Then they fill in what the registration leaves unset: registered values always win,
//! `Config` keys are only added, `EnvoyExtensions` are replaced by the central ones, and in transparent
//! mode centrally configured upstreams the registration does not name are appended.
//!
//! Only sidecar proxies and gateways are merged; other services come back as registered.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::state::types::{ExposeConfig, NodeService, TransparentProxyConfig, Upstream};
use crate::state::{Tables, Topic};

const PROXY_DEFAULTS: &str = "proxy-defaults";
const SERVICE_DEFAULTS: &str = "service-defaults";
const GLOBAL: &str = "global";
const DEFAULT: &str = "default";

/// The kinds of service the merge applies to.
pub(crate) fn applies(s: &NodeService) -> bool {
    matches!(
        s.kind.as_str(),
        "connect-proxy"
            | "mesh-gateway"
            | "terminating-gateway"
            | "ingress-gateway"
            | "api-gateway"
    )
}

/// The topics a merged reply depends on, besides its own.
pub(crate) fn topics() -> Vec<Topic> {
    vec![
        Topic::ConfigKind(PROXY_DEFAULTS.into()),
        Topic::ConfigKind(SERVICE_DEFAULTS.into()),
    ]
}

/// The index of the central configuration (to fold into the reply's index).
pub(crate) fn index(t: &Tables) -> u64 {
    topics()
        .iter()
        .map(|topic| t.topic_index(topic))
        .max()
        .unwrap_or(1)
}

fn entry<'a>(t: &'a Tables, kind: &str, name: &str) -> Option<&'a Map<String, Value>> {
    t.config
        .get(&(kind.to_owned(), name.to_owned()))
        .map(|e| &e.body)
}

fn text<'a>(m: Option<&'a Map<String, Value>>, key: &str) -> &'a str {
    m.and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn mesh_gateway_mode(m: Option<&Map<String, Value>>) -> &str {
    m.and_then(|m| m.get("MeshGateway"))
        .and_then(|g| g.get("Mode"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn positive(m: Option<&Map<String, Value>>, key: &str) -> Option<Value> {
    m.and_then(|m| m.get(key))
        .filter(|v| v.as_f64().is_some_and(|n| n > 0.0))
        .cloned()
}

/// Consul's `UpstreamConfig.MergeInto`: the set fields of an upstream default or override, under the
/// opaque-config keys.
fn merge_upstream_config(cfg: &Map<String, Value>, dst: &mut Map<String, Value>) {
    let set = |v: &Value| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    };
    for (field, key) in [
        ("EnvoyListenerJSON", "envoy_listener_json"),
        ("EnvoyClusterJSON", "envoy_cluster_json"),
        ("Protocol", "protocol"),
        ("ConnectTimeoutMs", "connect_timeout_ms"),
        ("Limits", "limits"),
        ("PassiveHealthCheck", "passive_health_check"),
        ("BalanceOutboundConnections", "balance_outbound_connections"),
    ] {
        if let Some(v) = cfg.get(field).filter(|v| set(v)) {
            dst.insert(key.into(), v.clone());
        }
    }
    if let Some(mode) = cfg
        .get("MeshGateway")
        .and_then(|g| g.get("Mode"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        dst.insert("mesh_gateway".into(), json!({"Mode": mode}));
    }
}

/// An upstream's identity: (name, namespace, partition, peer), defaults filled in.
type UpstreamKey = (String, String, String, String);

fn or_default(s: &str) -> String {
    if s.is_empty() {
        DEFAULT.to_owned()
    } else {
        s.to_owned()
    }
}

fn upstream_key(u: &Upstream) -> UpstreamKey {
    (
        u.destination_name.clone(),
        or_default(&u.destination_namespace),
        or_default(&u.destination_partition),
        u.destination_peer.clone(),
    )
}

fn override_key(o: &Map<String, Value>) -> UpstreamKey {
    let t = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default();
    (
        t("Name").to_owned(),
        or_default(t("Namespace")),
        or_default(t("Partition")),
        t("Peer").to_owned(),
    )
}

fn is_service_upstream(u: &Upstream) -> bool {
    u.destination_type.is_empty() || u.destination_type == "service"
}

/// The service a registration takes its defaults from: a sidecar's destination, else its own name.
fn defaults_name(s: &NodeService) -> &str {
    if s.kind == "connect-proxy" && !s.proxy.destination_service_name.is_empty() {
        &s.proxy.destination_service_name
    } else {
        &s.service
    }
}

/// The registration with central configuration merged in (a copy; the stored one is untouched).
pub(crate) fn merge(t: &Tables, s: &NodeService) -> NodeService {
    let mut ns = s.clone();
    if !applies(s) {
        return ns;
    }
    let pd = entry(t, PROXY_DEFAULTS, GLOBAL);
    let sd = entry(t, SERVICE_DEFAULTS, defaults_name(s));

    // Resolve the defaults.
    let mut proxy_config: Map<String, Value> = pd
        .and_then(|m| m.get("Config"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let global_protocol = proxy_config
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut wildcard = Map::new();
    if let Some(mgw) = proxy_config.get("mesh_gateway") {
        wildcard.insert("mesh_gateway".into(), mgw.clone());
    }
    let mut mode = text(pd, "Mode").to_owned();
    let mut mgw_mode = mesh_gateway_mode(pd).to_owned();
    if !mgw_mode.is_empty() {
        wildcard.insert("mesh_gateway".into(), json!({"Mode": mgw_mode}));
    }
    let decode = |m: Option<&Map<String, Value>>, key: &str| {
        m.and_then(|m| m.get(key)).cloned().unwrap_or(Value::Null)
    };
    let mut tproxy: TransparentProxyConfig =
        serde_json::from_value(decode(pd, "TransparentProxy")).unwrap_or_default();
    let mut expose: ExposeConfig = serde_json::from_value(decode(pd, "Expose")).unwrap_or_default();
    let access_logs: Map<String, Value> = pd
        .and_then(|m| m.get("AccessLogs"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut extensions: Vec<Value> = pd
        .and_then(|m| m.get("EnvoyExtensions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(sd) = sd {
        let sd_expose: ExposeConfig =
            serde_json::from_value(decode(Some(sd), "Expose")).unwrap_or_default();
        if sd_expose.checks {
            expose.checks = true;
        }
        if !sd_expose.paths.is_empty() {
            expose.paths = sd_expose.paths;
        }
        let sd_mgw = mesh_gateway_mode(Some(sd));
        if !sd_mgw.is_empty() {
            mgw_mode = sd_mgw.to_owned();
            wildcard.insert("mesh_gateway".into(), json!({"Mode": sd_mgw}));
        }
        let sd_tproxy: TransparentProxyConfig =
            serde_json::from_value(decode(Some(sd), "TransparentProxy")).unwrap_or_default();
        if sd_tproxy.outbound_listener_port != 0 {
            tproxy.outbound_listener_port = sd_tproxy.outbound_listener_port;
        }
        if sd_tproxy.dialed_directly {
            tproxy.dialed_directly = true;
        }
        if !text(Some(sd), "Mode").is_empty() {
            mode = text(Some(sd), "Mode").to_owned();
        }
        if !text(Some(sd), "Protocol").is_empty() {
            proxy_config.insert("protocol".into(), text(Some(sd), "Protocol").into());
        }
        if !text(Some(sd), "BalanceInboundConnections").is_empty() {
            proxy_config.insert(
                "balance_inbound_connections".into(),
                text(Some(sd), "BalanceInboundConnections").into(),
            );
        }
        for (field, key) in [
            ("MaxInboundConnections", "max_inbound_connections"),
            ("LocalConnectTimeoutMs", "local_connect_timeout_ms"),
            ("LocalRequestTimeoutMs", "local_request_timeout_ms"),
        ] {
            if let Some(v) = positive(Some(sd), field) {
                proxy_config.insert(key.into(), v);
            }
        }
        if let Some(list) = sd.get("EnvoyExtensions").and_then(Value::as_array) {
            extensions.extend(list.iter().cloned());
        }
    }

    // Upstream configs, keyed by upstream identity.
    let tproxy_mode = ns.proxy.mode == "transparent" || mode == "transparent";
    let upstream_cfg = sd.and_then(|m| m.get("UpstreamConfig"));
    let overrides: BTreeMap<UpstreamKey, &Map<String, Value>> = upstream_cfg
        .and_then(|u| u.get("Overrides"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|o| {
            o.get("Name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        })
        .map(|o| (override_key(o), o))
        .collect();
    let up_defaults = upstream_cfg
        .and_then(|u| u.get("Defaults"))
        .and_then(Value::as_object);
    let mut resolved: BTreeMap<UpstreamKey, Map<String, Value>> = BTreeMap::new();
    let local: Vec<UpstreamKey> = ns
        .proxy
        .upstreams
        .iter()
        .filter(|u| is_service_upstream(u))
        .map(upstream_key)
        .collect();
    if !local.is_empty() || tproxy_mode {
        if let Some(d) = up_defaults {
            let mut d = d.clone();
            if mesh_gateway_mode(Some(&d)).is_empty() && !mgw_mode.is_empty() {
                d.insert("MeshGateway".into(), json!({"Mode": mgw_mode}));
            }
            merge_upstream_config(&d, &mut wildcard);
        }
        if !ns.proxy.mesh_gateway.mode.is_empty() {
            wildcard.insert(
                "mesh_gateway".into(),
                json!({"Mode": ns.proxy.mesh_gateway.mode}),
            );
        }
        if !wildcard.is_empty() || up_defaults.is_some() {
            let key = (
                "*".to_owned(),
                DEFAULT.to_owned(),
                DEFAULT.to_owned(),
                String::new(),
            );
            resolved.insert(key, wildcard.clone());
        }
        let mut seen: Vec<UpstreamKey> = local.clone();
        seen.extend(overrides.keys().cloned());
        for key in seen {
            let mut cfg = Map::new();
            if !global_protocol.is_empty() {
                cfg.insert("protocol".into(), global_protocol.clone().into());
            }
            for (k, v) in &wildcard {
                cfg.insert(k.clone(), v.clone());
            }
            let svc_protocol = text(entry(t, SERVICE_DEFAULTS, &key.0), "Protocol");
            if !svc_protocol.is_empty() {
                cfg.insert("protocol".into(), svc_protocol.into());
            }
            if !mgw_mode.is_empty() {
                cfg.insert("mesh_gateway".into(), json!({"Mode": mgw_mode}));
            }
            if let Some(d) = up_defaults {
                merge_upstream_config(d, &mut cfg);
            }
            if !ns.proxy.mesh_gateway.mode.is_empty() {
                cfg.insert(
                    "mesh_gateway".into(),
                    json!({"Mode": ns.proxy.mesh_gateway.mode}),
                );
            }
            let peerless = (key.0.clone(), key.1.clone(), key.2.clone(), String::new());
            if let Some(o) = overrides.get(&peerless) {
                merge_upstream_config(o, &mut cfg);
            }
            if let Some(o) = overrides.get(&key) {
                merge_upstream_config(o, &mut cfg);
            }
            if !cfg.is_empty() {
                resolved.insert(key, cfg);
            }
        }
    }

    // Fill in what the registration leaves unset.
    for (k, v) in proxy_config {
        ns.proxy.config.entry(k).or_insert(v);
    }
    if !ns.proxy.expose.checks {
        ns.proxy.expose.checks = expose.checks;
    }
    if ns.proxy.expose.paths.is_empty() {
        ns.proxy.expose.paths = expose.paths;
    }
    for (k, v) in access_logs {
        ns.proxy.access_logs.entry(k).or_insert(v);
    }
    ns.proxy.envoy_extensions = extensions
        .into_iter()
        .map(|e| {
            let mut out = Map::new();
            for key in ["Name", "Required", "Arguments"] {
                if let Some(v) = e.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
            Value::Object(out)
        })
        .collect();
    if ns.proxy.mesh_gateway.mode.is_empty() {
        ns.proxy.mesh_gateway.mode = mgw_mode;
    }
    if ns.proxy.mode.is_empty() {
        ns.proxy.mode = mode;
    }
    if ns.proxy.transparent_proxy.outbound_listener_port == 0 {
        ns.proxy.transparent_proxy.outbound_listener_port = tproxy.outbound_listener_port;
    }
    if !ns.proxy.transparent_proxy.dialed_directly {
        ns.proxy.transparent_proxy.dialed_directly = tproxy.dialed_directly;
    }
    for us in ns
        .proxy
        .upstreams
        .iter_mut()
        .filter(|u| is_service_upstream(u))
    {
        let Some(remote) = resolved.get(&upstream_key(us)) else {
            continue;
        };
        if us.mesh_gateway.mode.is_empty()
            && let Some(mode) = remote
                .get("mesh_gateway")
                .and_then(|g| g.get("Mode"))
                .and_then(Value::as_str)
        {
            us.mesh_gateway.mode = mode.to_owned();
        }
        let had_protocol = us.config.get("protocol").cloned();
        for (k, v) in remote {
            us.config.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !us.destination_peer.is_empty() {
            match had_protocol {
                Some(p) => {
                    us.config.insert("protocol".into(), p);
                }
                None => {
                    us.config.remove("protocol");
                }
            }
        }
        us.config.remove("mesh_gateway");
    }
    if ns.proxy.mode == "transparent" {
        for (key, cfg) in resolved {
            if local.contains(&key) {
                continue;
            }
            let mesh_gateway = cfg
                .get("mesh_gateway")
                .and_then(|g| g.get("Mode"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let (name, namespace, partition, peer) = key;
            ns.proxy.upstreams.push(Upstream {
                destination_namespace: namespace,
                destination_partition: partition,
                destination_name: name,
                destination_peer: peer,
                config: cfg,
                mesh_gateway: crate::state::types::MeshGatewayConfig { mode: mesh_gateway },
                centrally_configured: true,
                ..Upstream::default()
            });
        }
    }
    ns
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::config_entries::ConfigEntry;

    fn put(t: &mut Tables, kind: &str, name: &str, body: Value) {
        let Value::Object(body) = body else { panic!() };
        t.config.insert(
            (kind.into(), name.into()),
            ConfigEntry {
                kind: kind.into(),
                name: name.into(),
                body,
                create_index: 1,
                modify_index: 1,
            },
        );
    }

    fn sidecar() -> NodeService {
        serde_json::from_value(json!({
            "Kind": "connect-proxy", "ID": "web-sidecar", "Service": "web-sidecar-proxy", "Port": 20000,
            "Proxy": {
                "DestinationServiceName": "web",
                "Config": {"bind_port": 21000},
                "Upstreams": [{"DestinationName": "db", "LocalBindPort": 5432}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn registration_wins_and_defaults_fill_the_rest() {
        let mut t = Tables::default();
        put(
            &mut t,
            PROXY_DEFAULTS,
            GLOBAL,
            json!({"Config": {"protocol": "tcp", "bind_port": 1, "envoy_prometheus_bind_addr": "0.0.0.0:9102"},
                   "MeshGateway": {"Mode": "local"}, "Mode": "transparent"}),
        );
        put(
            &mut t,
            SERVICE_DEFAULTS,
            "web",
            json!({"Protocol": "http", "TransparentProxy": {"OutboundListenerPort": 15002},
                   "Expose": {"Paths": [{"Path": "/health", "ListenerPort": 21500, "LocalPathPort": 8080}]},
                   "UpstreamConfig": {"Overrides": [{"Name": "db", "ConnectTimeoutMs": 2500}]}}),
        );
        put(&mut t, SERVICE_DEFAULTS, "db", json!({"Protocol": "grpc"}));
        let merged = merge(&t, &sidecar());
        let cfg = &merged.proxy.config;
        assert_eq!(cfg["bind_port"], 21000, "the registration wins");
        assert_eq!(cfg["protocol"], "http");
        assert_eq!(cfg["envoy_prometheus_bind_addr"], "0.0.0.0:9102");
        assert_eq!(merged.proxy.mode, "transparent");
        assert_eq!(merged.proxy.mesh_gateway.mode, "local");
        assert_eq!(merged.proxy.transparent_proxy.outbound_listener_port, 15002);
        assert_eq!(merged.proxy.expose.paths[0].listener_port, 21500);
        let db = &merged.proxy.upstreams[0];
        assert_eq!(db.config["protocol"], "grpc");
        assert_eq!(db.config["connect_timeout_ms"], 2500);
        assert_eq!(db.mesh_gateway.mode, "local");
        assert!(!db.config.contains_key("mesh_gateway"));
        // Transparent mode adds the wildcard upstream carrying the mesh gateway default.
        let wildcard = merged
            .proxy
            .upstreams
            .iter()
            .find(|u| u.destination_name == "*")
            .unwrap();
        assert!(wildcard.centrally_configured);
    }

    #[test]
    fn plain_services_are_untouched() {
        let mut t = Tables::default();
        put(
            &mut t,
            PROXY_DEFAULTS,
            GLOBAL,
            json!({"Config": {"protocol": "http"}}),
        );
        let plain: NodeService =
            serde_json::from_value(json!({"ID": "web", "Service": "web"})).unwrap();
        assert_eq!(merge(&t, &plain), plain);
    }
}
