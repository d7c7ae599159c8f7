//! Typed decode of a schema-valid document into [`Config`], applying upstream's defaults.
//!
//! The schema has already checked shapes and types, so the only failures expected here are numbers
//! the schema calls integers but a typed field cannot hold: `8080.0` or `1e3` (upstream's decoder
//! rejects them too) and values beyond the field's range. Every failure still gets a path, and all of
//! them are collected; nothing here panics on any input.
//!
//! Absent versus `null`: a leaf that is `null` behaves as if absent. For the objects where upstream
//! tells the two apart (`consulLogin`, `controller`, `transparentProxy`, `outlierDetection`) the
//! difference is kept as documented on each field.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use jsonschema::JsonType;
use serde_json::{Map, Value};

use crate::model::*;
use crate::path::{Found, Path};
use crate::schema::type_message;

/// Decodes `document`, returning every decode failure if there is any.
pub(crate) fn decode(document: &Value) -> Result<Config, Vec<Found>> {
    let mut decoder = Decoder {
        violations: Vec::new(),
    };
    let config = decoder.config(document);
    match config {
        Some(config) if decoder.violations.is_empty() => Ok(config),
        _ => Err(decoder.violations),
    }
}

static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// An object of the document and where it is.
#[derive(Clone, Copy)]
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
}

/// A field of an object: its path and its value, `None` when the key is absent.
struct Field<'a> {
    path: Path,
    value: Option<&'a Value>,
}

impl<'a> Obj<'a> {
    fn field(&self, key: &str) -> Field<'a> {
        Field {
            path: self.path.key(key),
            value: self.map.get(key),
        }
    }
}

impl<'a> Field<'a> {
    /// The value unless absent or `null`.
    fn given(&self) -> Option<&'a Value> {
        self.value.filter(|v| !v.is_null())
    }
}

struct Decoder {
    violations: Vec<Found>,
}

impl Decoder {
    fn fail(&mut self, path: &Path, message: String) {
        self.violations.push(Found {
            path: path.clone(),
            message,
        });
    }

    fn wrong_type(&mut self, path: &Path, expected: JsonType, given: &Value) {
        self.fail(path, type_message(&[expected, JsonType::Null], given));
    }

    // === Leaves ===

    /// A string; absent or `null` gives "".
    fn string(&mut self, obj: Obj<'_>, key: &str) -> String {
        let field = obj.field(key);
        match field.given() {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::String, other);
                String::new()
            }
        }
    }

    /// A string that falls back to `default` when empty, absent or `null`.
    fn string_or(&mut self, obj: Obj<'_>, key: &str, default: &str) -> String {
        let s = self.string(obj, key);
        if s.is_empty() { default.to_owned() } else { s }
    }

    fn boolean(&mut self, obj: Obj<'_>, key: &str) -> Option<bool> {
        let field = obj.field(key);
        match field.given() {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::Boolean, other);
                None
            }
        }
    }

    /// An integer within `min..=max`; absent or `null` gives `None`.
    fn integer(&mut self, obj: Obj<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let field = obj.field(key);
        let value = field.given()?;
        self.integer_value(&field.path, value, min, max)
    }

    fn integer_value(&mut self, path: &Path, value: &Value, min: i64, max: i64) -> Option<i64> {
        let Value::Number(number) = value else {
            self.wrong_type(path, JsonType::Integer, value);
            return None;
        };
        let Some(n) = number.as_i64() else {
            let message = if number.is_u64() {
                format!("Must be less than or equal to {max}")
            } else {
                // Upstream's decoder refuses these for integer fields as well.
                format!(
                    "must be a whole number written without a fraction or exponent, not {number}"
                )
            };
            self.fail(path, message);
            return None;
        };
        if n < min {
            self.fail(path, format!("Must be greater than or equal to {min}"));
            None
        } else if n > max {
            self.fail(path, format!("Must be less than or equal to {max}"));
            None
        } else {
            Some(n)
        }
    }

    fn port(&mut self, obj: Obj<'_>, key: &str) -> Option<u16> {
        self.integer(obj, key, 0, u16::MAX.into())
            .and_then(|n| u16::try_from(n).ok())
    }

    /// A port where 0, absent and `null` all mean `default`.
    fn port_or(&mut self, obj: Obj<'_>, key: &str, default: u16) -> u16 {
        match self.port(obj, key) {
            None | Some(0) => default,
            Some(port) => port,
        }
    }

    fn uint32(&mut self, obj: Obj<'_>, key: &str) -> Option<u32> {
        self.integer(obj, key, 0, u32::MAX.into())
            .and_then(|n| u32::try_from(n).ok())
    }

    // === Collections ===

    /// The items of an array; absent or `null` gives none.
    fn items<'a>(&mut self, obj: Obj<'a>, key: &str) -> (Path, &'a [Value]) {
        let field = obj.field(key);
        match field.given() {
            None => (field.path, &[]),
            Some(Value::Array(items)) => (field.path, items.as_slice()),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::Array, other);
                (field.path, &[])
            }
        }
    }

    fn strings(&mut self, obj: Obj<'_>, key: &str) -> Vec<String> {
        let (path, items) = self.items(obj, key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => self.fail(&path.index(i), type_message(&[JsonType::String], other)),
            }
        }
        out
    }

    fn ports(&mut self, obj: Obj<'_>, key: &str) -> Vec<u16> {
        let (path, items) = self.items(obj, key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(port) = self
                .integer_value(&path.index(i), item, 0, u16::MAX.into())
                .and_then(|n| u16::try_from(n).ok())
            {
                out.push(port);
            }
        }
        out
    }

    /// An object of string values; absent or `null` gives an empty map.
    fn string_map(&mut self, obj: Obj<'_>, key: &str) -> BTreeMap<String, String> {
        let field = obj.field(key);
        let mut out = BTreeMap::new();
        match field.given() {
            None => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        other => {
                            self.fail(&field.path.key(k), type_message(&[JsonType::String], other))
                        }
                    }
                }
            }
            Some(other) => self.wrong_type(&field.path, JsonType::Object, other),
        }
        out
    }

    /// An opaque object, kept as JSON; absent or `null` gives `None`.
    fn opaque(&mut self, obj: Obj<'_>, key: &str) -> Option<Map<String, Value>> {
        let field = obj.field(key);
        match field.given() {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::Object, other);
                None
            }
        }
    }

    /// Looks at a nested object: `f` gets it when present, `None` when absent or `null`.
    fn nested<T>(
        &mut self,
        obj: Obj<'_>,
        key: &str,
        f: impl FnOnce(&mut Self, Option<Obj<'_>>) -> T,
    ) -> T {
        let field = obj.field(key);
        match field.given() {
            None => f(self, None),
            Some(Value::Object(map)) => f(
                self,
                Some(Obj {
                    map,
                    path: &field.path,
                }),
            ),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::Object, other);
                f(self, None)
            }
        }
    }

    /// Like [`Decoder::nested`], but `null` is passed on as an empty object, for the objects whose
    /// defaults upstream applies when they are given as `null`. `None` means absent.
    fn nested_null_as_empty<T>(
        &mut self,
        obj: Obj<'_>,
        key: &str,
        f: impl FnOnce(&mut Self, Option<Obj<'_>>) -> T,
    ) -> T {
        let field = obj.field(key);
        match field.value {
            None => f(self, None),
            Some(Value::Null) => f(
                self,
                Some(Obj {
                    map: &EMPTY,
                    path: &field.path,
                }),
            ),
            Some(Value::Object(map)) => f(
                self,
                Some(Obj {
                    map,
                    path: &field.path,
                }),
            ),
            Some(other) => {
                self.wrong_type(&field.path, JsonType::Object, other);
                f(self, None)
            }
        }
    }

    /// Each object item of an array, decoded by `f`.
    fn object_items<T>(
        &mut self,
        obj: Obj<'_>,
        key: &str,
        mut f: impl FnMut(&mut Self, Obj<'_>) -> T,
    ) -> Vec<T> {
        let (path, items) = self.items(obj, key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = path.index(i);
            match item {
                Value::Object(map) => out.push(f(
                    self,
                    Obj {
                        map,
                        path: &item_path,
                    },
                )),
                other => self.fail(&item_path, type_message(&[JsonType::Object], other)),
            }
        }
        out
    }

    fn enumerated<T>(
        &mut self,
        obj: Obj<'_>,
        key: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let field = obj.field(key);
        match field.given() {
            None => None,
            Some(Value::String(s)) => {
                let parsed = parse(s);
                if parsed.is_none() {
                    self.fail(&field.path, format!("unknown value {s:?}"));
                }
                parsed
            }
            Some(other) => {
                self.wrong_type(&field.path, JsonType::String, other);
                None
            }
        }
    }

    /// Records a violation when `key` is missing from `obj` (the schema normally catches this first).
    fn require(&mut self, obj: Obj<'_>, key: &str) {
        if !obj.map.contains_key(key) {
            self.fail(obj.path, format!("{key} is required"));
        }
    }

    // === The document ===

    fn config(&mut self, document: &Value) -> Option<Config> {
        let root_path = Path::root();
        let Value::Object(map) = document else {
            self.fail(&root_path, type_message(&[JsonType::Object], document));
            return None;
        };
        let root = Obj {
            map,
            path: &root_path,
        };

        let log_level = self
            .enumerated(root, "logLevel", LogLevel::parse)
            .unwrap_or(DEFAULT_LOG_LEVEL);
        let bootstrap_dir = self.string(root, "bootstrapDir");
        let consul_login = self.nested_null_as_empty(root, "consulLogin", |d, login| match login {
            None => ConsulLogin::absent(),
            Some(login) => d.consul_login(login),
        });
        // Unlike upstream, an absent `controller` gets the same defaults as `{}` (see the README).
        let controller = self.nested(root, "controller", |d, controller| {
            d.controller(controller.unwrap_or(Obj {
                map: &EMPTY,
                path: &root_path,
            }))
        });
        let consul_servers = self.nested(root, "consulServers", |d, servers| {
            let servers = servers.unwrap_or(Obj {
                map: &EMPTY,
                path: &root_path,
            });
            d.consul_servers(servers)
        });
        let health_sync_containers = self.strings(root, "healthSyncContainers");
        let service = self.nested(root, "service", |d, service| match service {
            None => Service::default(),
            Some(service) => d.service(service),
        });
        let proxy = self.nested(root, "proxy", |d, proxy| match proxy {
            None => Proxy::default(),
            Some(proxy) => d.proxy(proxy),
        });
        let gateway = self.nested(root, "gateway", |d, gateway| {
            gateway.and_then(|g| d.gateway(g))
        });
        let transparent_proxy = self.nested(root, "transparentProxy", |d, tproxy| match tproxy {
            None => TransparentProxy::default(),
            Some(tproxy) => d.transparent_proxy(tproxy),
        });

        Some(Config {
            log_level,
            bootstrap_dir,
            consul_login,
            controller,
            consul_servers,
            health_sync_containers,
            service,
            proxy,
            gateway,
            transparent_proxy,
        })
    }

    fn consul_login(&mut self, login: Obj<'_>) -> ConsulLogin {
        ConsulLogin {
            enabled: self.boolean(login, "enabled").unwrap_or(false),
            method: self.string_or(login, "method", DEFAULT_AUTH_METHOD),
            datacenter: self.string(login, "datacenter"),
            include_entity: self
                .boolean(login, "includeEntity")
                .unwrap_or(DEFAULT_INCLUDE_ENTITY),
            meta: self.string_map(login, "meta"),
            region: self.string(login, "region"),
            sts_endpoint: self.string(login, "stsEndpoint"),
            server_id_header_value: self.string(login, "serverIdHeaderValue"),
        }
    }

    fn controller(&mut self, controller: Obj<'_>) -> Controller {
        Controller {
            iam_role_path: self.string_or(controller, "iamRolePath", DEFAULT_IAM_ROLE_PATH),
            partitions_enabled: self
                .boolean(controller, "partitionsEnabled")
                .unwrap_or(false),
            partition: self.string(controller, "partition"),
        }
    }

    fn consul_servers(&mut self, servers: Obj<'_>) -> ConsulServers {
        let defaults = self.nested(servers, "defaults", |d, defaults| {
            let defaults = defaults.unwrap_or(Obj {
                map: &EMPTY,
                path: servers.path,
            });
            ServerDefaults {
                ca_cert_file: d.string(defaults, "caCertFile"),
                tls: d.boolean(defaults, "tls").unwrap_or(DEFAULT_TLS),
                tls_server_name: d.string(defaults, "tlsServerName"),
            }
        });
        let http = self.nested(servers, "http", |d, http| {
            let http = http.unwrap_or(Obj {
                map: &EMPTY,
                path: servers.path,
            });
            HttpSettings {
                port: d.port(http, "port").unwrap_or(DEFAULT_HTTP_PORT),
                https: d.boolean(http, "https").unwrap_or(DEFAULT_HTTPS),
                tls: d.boolean(http, "tls"),
                ca_cert_file: d.string(http, "caCertFile"),
                tls_server_name: d.string(http, "tlsServerName"),
            }
        });
        let grpc = self.nested(servers, "grpc", |d, grpc| {
            let grpc = grpc.unwrap_or(Obj {
                map: &EMPTY,
                path: servers.path,
            });
            GrpcSettings {
                port: d.port(grpc, "port").unwrap_or(DEFAULT_GRPC_PORT),
                tls: d.boolean(grpc, "tls"),
                ca_cert_file: d.string(grpc, "caCertFile"),
                tls_server_name: d.string(grpc, "tlsServerName"),
            }
        });
        self.require(servers, "hosts");
        let hosts = self.string(servers, "hosts");
        ConsulServers {
            hosts,
            skip_server_watch: self.boolean(servers, "skipServerWatch").unwrap_or(false),
            defaults,
            http,
            grpc,
        }
    }

    fn service(&mut self, service: Obj<'_>) -> Service {
        self.require(service, "port");
        let port = self.port(service, "port").unwrap_or(0);
        Service {
            name: self.string(service, "name"),
            tags: self.strings(service, "tags"),
            port,
            enable_tag_override: self.boolean(service, "enableTagOverride").unwrap_or(false),
            meta: self.string_map(service, "meta"),
            weights: self.nested(service, "weights", |d, weights| {
                let weights = weights?;
                d.require(weights, "passing");
                d.require(weights, "warning");
                let passing = d.integer(weights, "passing", i64::MIN, i64::MAX);
                let warning = d.integer(weights, "warning", i64::MIN, i64::MAX);
                Some(Weights {
                    passing: passing?,
                    warning: warning?,
                })
            }),
            namespace: self.string(service, "namespace"),
            partition: self.string(service, "partition"),
            network_resilience: self.nested(service, "networkResilienceConfig", |d, resilience| {
                let resilience = resilience?;
                Some(NetworkResilience {
                    enabled: d.boolean(resilience, "enabled").unwrap_or(false),
                    outlier_detection: d.nested(resilience, "outlierDetection", |d, od| match od {
                        None => OutlierDetection::default(),
                        Some(od) => d.outlier_detection(od),
                    }),
                })
            }),
        }
    }

    /// An `outlierDetection` object that is given: missing fields are zero or unset, except the two
    /// that upstream always defaults.
    fn outlier_detection(&mut self, od: Obj<'_>) -> OutlierDetection {
        let interval_ns = self.integer(od, "interval", 0, i64::MAX).unwrap_or(0);
        OutlierDetection {
            interval: Duration::from_nanos(interval_ns.unsigned_abs()),
            max_failures: self.uint32(od, "maxFailures").unwrap_or(0),
            enforcing_consecutive_5xx: self.uint32(od, "enforcingConsecutive5xx"),
            consecutive_5xx: self.uint32(od, "consecutive5xx"),
            enforcing_consecutive_gateway_failure: self
                .uint32(od, "enforcingConsecutiveGatewayFailure")
                .unwrap_or(DEFAULT_ENFORCING_CONSECUTIVE_GATEWAY_FAILURE),
            consecutive_gateway_failure: self.uint32(od, "consecutiveGatewayFailure"),
            max_ejection_percent: self
                .uint32(od, "maxEjectionPercent")
                .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT),
        }
    }

    fn mesh_gateway(&mut self, obj: Obj<'_>, key: &str) -> Option<MeshGatewayMode> {
        self.nested(obj, key, |d, gateway| {
            let gateway = gateway?;
            d.require(gateway, "mode");
            d.enumerated(gateway, "mode", MeshGatewayMode::parse)
        })
    }

    fn proxy(&mut self, proxy: Obj<'_>) -> Proxy {
        Proxy {
            config: self.opaque(proxy, "config"),
            local_service_address: self.string(proxy, "localServiceAddress"),
            public_listener_port: self.port_or(
                proxy,
                "publicListenerPort",
                DEFAULT_PUBLIC_LISTENER_PORT,
            ),
            health_check_port: self.port_or(proxy, "healthCheckPort", DEFAULT_HEALTH_CHECK_PORT),
            upstreams: self.object_items(proxy, "upstreams", |d, upstream| d.upstream(upstream)),
            mesh_gateway: self.mesh_gateway(proxy, "meshGateway"),
            expose: self.nested(proxy, "expose", |d, expose| {
                let expose = expose?;
                Some(Expose {
                    checks: d.boolean(expose, "checks").unwrap_or(false),
                    paths: d.object_items(expose, "paths", |d, path| ExposePath {
                        listener_port: d.port(path, "listenerPort").unwrap_or(0),
                        path: d.string(path, "path"),
                        local_path_port: d.port(path, "localPathPort").unwrap_or(0),
                        protocol: d.string(path, "protocol"),
                    }),
                })
            }),
        }
    }

    fn upstream(&mut self, upstream: Obj<'_>) -> Upstream {
        self.require(upstream, "destinationName");
        self.require(upstream, "localBindPort");
        let destination_name = self.string(upstream, "destinationName");
        let local_bind_port = self.port(upstream, "localBindPort").unwrap_or(0);
        Upstream {
            destination_type: self.enumerated(upstream, "destinationType", DestinationType::parse),
            destination_namespace: self.string(upstream, "destinationNamespace"),
            destination_partition: self.string(upstream, "destinationPartition"),
            destination_name,
            destination_peer: self.string(upstream, "destinationPeer"),
            datacenter: self.string(upstream, "datacenter"),
            local_bind_address: self.string(upstream, "localBindAddress"),
            local_bind_port,
            config: self.opaque(upstream, "config"),
            mesh_gateway: self.mesh_gateway(upstream, "meshGateway"),
        }
    }

    fn gateway(&mut self, gateway: Obj<'_>) -> Option<Gateway> {
        self.require(gateway, "kind");
        let kind = self.enumerated(gateway, "kind", GatewayKind::parse);
        let address = |d: &mut Self, address: Option<Obj<'_>>| {
            address.map(|address| GatewayAddress {
                address: d.string(address, "address"),
                port: d.port(address, "port").unwrap_or(0),
            })
        };
        let lan_address = self.nested(gateway, "lanAddress", address);
        let wan_address = self.nested(gateway, "wanAddress", address);
        Some(Gateway {
            kind: kind?,
            lan_address,
            wan_address,
            name: self.string(gateway, "name"),
            tags: self.strings(gateway, "tags"),
            meta: self.string_map(gateway, "meta"),
            namespace: self.string(gateway, "namespace"),
            partition: self.string(gateway, "partition"),
            health_check_port: self.port_or(gateway, "healthCheckPort", DEFAULT_HEALTH_CHECK_PORT),
            proxy: self.nested(gateway, "proxy", |d, proxy| {
                proxy.map(|proxy| GatewayProxy {
                    config: d.opaque(proxy, "config"),
                })
            }),
        })
    }

    fn transparent_proxy(&mut self, tproxy: Obj<'_>) -> TransparentProxy {
        TransparentProxy {
            enabled: self
                .boolean(tproxy, "enabled")
                .unwrap_or(DEFAULT_TRANSPARENT_PROXY_ENABLED),
            exclude_inbound_ports: self.ports(tproxy, "excludeInboundPorts"),
            exclude_outbound_ports: self.ports(tproxy, "excludeOutboundPorts"),
            exclude_outbound_cidrs: self.strings(tproxy, "excludeOutboundCIDRs"),
            exclude_uids: self.strings(tproxy, "excludeUIDs"),
            consul_dns: self.nested(tproxy, "consulDNS", |d, dns| ConsulDns {
                enabled: dns
                    .and_then(|dns| d.boolean(dns, "enabled"))
                    .unwrap_or(DEFAULT_CONSUL_DNS_ENABLED),
            }),
        }
    }
}
