//! The effective value of every field when it is absent, `null` or empty, read from
//! [`Config::resolved`]. Each row merges a snippet into a small valid config and reads one value back.

#![allow(clippy::unwrap_used)]

use consul_ecs_config::Config;
use serde_json::{Value, json};

/// The config every row starts from.
fn base() -> Value {
    json!({
        "bootstrapDir": "/consul",
        "consulServers": { "hosts": "10.0.0.1" },
        "service": { "port": 8080 }
    })
}

/// Merges `patch` into `target`: objects merge key by key, anything else (including `null`) replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value);
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Loads `base()` with `given` merged in (and `drop` keys removed from the top level), and checks the
/// value at `pointer` of the resolved config.
fn check(given: Value, drop: &[&str], pointer: &str, expected: Value) {
    let mut document = base();
    merge(&mut document, &given);
    for key in drop {
        document.as_object_mut().unwrap().remove(*key);
    }
    let config = Config::from_json(&document.to_string())
        .unwrap_or_else(|e| panic!("{document} should load: {e}"));
    let resolved = config.resolved();
    let actual = resolved
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} missing from {resolved:#}"));
    assert_eq!(actual, &expected, "{pointer} for {document}");
}

macro_rules! defaults {
    ($($test:ident: $given:tt $(without $drop:literal)? => $pointer:literal == $expected:tt;)*) => {
        $(
            #[test]
            fn $test() {
                check(json!($given), &[$($drop)?], $pointer, json!($expected));
            }
        )*
    };
}

defaults! {
    // logLevel
    log_level_absent: {} => "/logLevel" == "INFO";
    log_level_null: {"logLevel": null} => "/logLevel" == "INFO";

    // consulLogin: absent differs from null and {} for includeEntity, as upstream.
    login_absent_enabled: {} => "/consulLogin/enabled" == false;
    login_absent_include_entity: {} => "/consulLogin/includeEntity" == false;
    login_absent_method: {} => "/consulLogin/method" == "iam-ecs-service-token";
    login_null_include_entity: {"consulLogin": null} => "/consulLogin/includeEntity" == true;
    login_empty_include_entity: {"consulLogin": {}} => "/consulLogin/includeEntity" == true;
    login_include_entity_null: {"consulLogin": {"includeEntity": null}} => "/consulLogin/includeEntity" == true;
    login_include_entity_false: {"consulLogin": {"includeEntity": false}} => "/consulLogin/includeEntity" == false;
    login_enabled_null: {"consulLogin": {"enabled": null}} => "/consulLogin/enabled" == false;
    login_method_null: {"consulLogin": {"method": null}} => "/consulLogin/method" == "iam-ecs-service-token";
    login_method_empty: {"consulLogin": {"method": ""}} => "/consulLogin/method" == "iam-ecs-service-token";
    login_meta_null: {"consulLogin": {"meta": null}} => "/consulLogin/meta" == {};
    login_datacenter_null: {"consulLogin": {"datacenter": null}} => "/consulLogin/datacenter" == "";
    login_region_null: {"consulLogin": {"region": null}} => "/consulLogin/region" == "";
    login_sts_endpoint_null: {"consulLogin": {"stsEndpoint": null}} => "/consulLogin/stsEndpoint" == "";
    login_server_id_null: {"consulLogin": {"serverIdHeaderValue": null}} => "/consulLogin/serverIdHeaderValue" == "";

    // controller: absent gives the same path as {} (a deliberate fix; upstream gives "").
    controller_absent_role_path: {} => "/controller/iamRolePath" == "/consul-ecs/";
    controller_null_role_path: {"controller": null} => "/controller/iamRolePath" == "/consul-ecs/";
    controller_empty_role_path: {"controller": {}} => "/controller/iamRolePath" == "/consul-ecs/";
    controller_role_path_null: {"controller": {"iamRolePath": null}} => "/controller/iamRolePath" == "/consul-ecs/";
    controller_role_path_empty: {"controller": {"iamRolePath": ""}} => "/controller/iamRolePath" == "/consul-ecs/";
    controller_role_path_set: {"controller": {"iamRolePath": "/x/"}} => "/controller/iamRolePath" == "/x/";
    controller_partitions_null: {"controller": {"partitionsEnabled": null}} => "/controller/partitionsEnabled" == false;
    controller_partition_null: {"controller": {"partition": null}} => "/controller/partition" == "";

    // consulServers
    skip_server_watch_absent: {} => "/consulServers/skipServerWatch" == false;
    skip_server_watch_null: {"consulServers": {"skipServerWatch": null}} => "/consulServers/skipServerWatch" == false;
    defaults_absent_tls: {} => "/consulServers/defaults/tls" == true;
    defaults_null_tls: {"consulServers": {"defaults": null}} => "/consulServers/defaults/tls" == true;
    defaults_empty_tls: {"consulServers": {"defaults": {}}} => "/consulServers/defaults/tls" == true;
    defaults_tls_null: {"consulServers": {"defaults": {"tls": null}}} => "/consulServers/defaults/tls" == true;
    defaults_ca_null: {"consulServers": {"defaults": {"caCertFile": null}}} => "/consulServers/defaults/caCertFile" == "";
    defaults_sni_null: {"consulServers": {"defaults": {"tlsServerName": null}}} => "/consulServers/defaults/tlsServerName" == "";
    http_absent_port: {} => "/consulServers/http/port" == 8501;
    http_absent_https: {} => "/consulServers/http/https" == true;
    http_null_port: {"consulServers": {"http": null}} => "/consulServers/http/port" == 8501;
    http_null_https: {"consulServers": {"http": null}} => "/consulServers/http/https" == true;
    http_empty_port: {"consulServers": {"http": {}}} => "/consulServers/http/port" == 8501;
    http_empty_https: {"consulServers": {"http": {}}} => "/consulServers/http/https" == true;
    http_port_null: {"consulServers": {"http": {"port": null}}} => "/consulServers/http/port" == 8501;
    http_port_zero_is_kept: {"consulServers": {"http": {"port": 0}}} => "/consulServers/http/port" == 0;
    http_https_null: {"consulServers": {"http": {"https": null}}} => "/consulServers/http/https" == true;
    http_tls_absent: {} => "/consulServers/http/tls" == null;
    http_ca_inherits: {"consulServers": {"defaults": {"caCertFile": "/d.pem"}}} => "/consulServers/http/caCertFile" == "/d.pem";
    http_ca_overrides: {"consulServers": {"defaults": {"caCertFile": "/d.pem"}, "http": {"caCertFile": "/h.pem"}}} => "/consulServers/http/caCertFile" == "/h.pem";
    http_sni_inherits: {"consulServers": {"defaults": {"tlsServerName": "d"}, "http": {"tlsServerName": ""}}} => "/consulServers/http/tlsServerName" == "d";
    grpc_absent_port: {} => "/consulServers/grpc/port" == 8503;
    grpc_null_port: {"consulServers": {"grpc": null}} => "/consulServers/grpc/port" == 8503;
    grpc_empty_port: {"consulServers": {"grpc": {}}} => "/consulServers/grpc/port" == 8503;
    grpc_port_null: {"consulServers": {"grpc": {"port": null}}} => "/consulServers/grpc/port" == 8503;
    grpc_tls_absent: {} => "/consulServers/grpc/tls" == true;
    grpc_tls_inherits_off: {"consulServers": {"defaults": {"tls": false}}} => "/consulServers/grpc/tls" == false;
    grpc_tls_null_inherits: {"consulServers": {"defaults": {"tls": false}, "grpc": {"tls": null}}} => "/consulServers/grpc/tls" == false;
    grpc_tls_overrides: {"consulServers": {"defaults": {"tls": false}, "grpc": {"tls": true}}} => "/consulServers/grpc/tls" == true;
    grpc_ca_inherits: {"consulServers": {"defaults": {"caCertFile": "/d.pem"}}} => "/consulServers/grpc/caCertFile" == "/d.pem";
    grpc_sni_inherits: {"consulServers": {"defaults": {"tlsServerName": "d"}}} => "/consulServers/grpc/tlsServerName" == "d";

    // healthSyncContainers
    health_sync_absent: {} => "/healthSyncContainers" == [];
    health_sync_null: {"healthSyncContainers": null} => "/healthSyncContainers" == [];
    health_sync_empty: {"healthSyncContainers": []} => "/healthSyncContainers" == [];

    // service
    service_absent_port: {} without "service" => "/service/port" == 0;
    service_absent_name: {} without "service" => "/service/name" == "";
    service_name_null: {"service": {"name": null}} => "/service/name" == "";
    service_tags_null: {"service": {"tags": null}} => "/service/tags" == [];
    service_tag_override_null: {"service": {"enableTagOverride": null}} => "/service/enableTagOverride" == false;
    service_meta_null: {"service": {"meta": null}} => "/service/meta" == {};
    service_weights_absent: {} => "/service/weights" == null;
    service_weights_null: {"service": {"weights": null}} => "/service/weights" == null;
    service_namespace_null: {"service": {"namespace": null}} => "/service/namespace" == "";
    service_partition_null: {"service": {"partition": null}} => "/service/partition" == "";
    resilience_absent: {} => "/service/networkResilienceConfig" == null;
    resilience_null: {"service": {"networkResilienceConfig": null}} => "/service/networkResilienceConfig" == null;
    outlier_absent:
        {"service": {"networkResilienceConfig": {"enabled": true}}}
        => "/service/networkResilienceConfig/outlierDetection"
        == {"interval": 10_000_000_000_u64, "maxFailures": 5, "enforcingConsecutiveGatewayFailure": 100, "maxEjectionPercent": 50};
    outlier_null:
        {"service": {"networkResilienceConfig": {"enabled": true, "outlierDetection": null}}}
        => "/service/networkResilienceConfig/outlierDetection"
        == {"interval": 10_000_000_000_u64, "maxFailures": 5, "enforcingConsecutiveGatewayFailure": 100, "maxEjectionPercent": 50};
    outlier_empty_keeps_upstream_zeroes:
        {"service": {"networkResilienceConfig": {"enabled": true, "outlierDetection": {}}}}
        => "/service/networkResilienceConfig/outlierDetection"
        == {"interval": 0, "enforcingConsecutiveGatewayFailure": 100, "maxEjectionPercent": 50};
    outlier_partial:
        {"service": {"networkResilienceConfig": {"enabled": true, "outlierDetection": {"maxFailures": 2, "consecutive5xx": 0}}}}
        => "/service/networkResilienceConfig/outlierDetection"
        == {"interval": 0, "maxFailures": 2, "consecutive5xx": 0, "enforcingConsecutiveGatewayFailure": 100, "maxEjectionPercent": 50};

    // proxy: absent and null are treated as {} (a deliberate fix; upstream panics).
    proxy_absent_public_port: {} => "/proxy/publicListenerPort" == 20000;
    proxy_null_public_port: {"proxy": null} => "/proxy/publicListenerPort" == 20000;
    proxy_empty_public_port: {"proxy": {}} => "/proxy/publicListenerPort" == 20000;
    proxy_public_port_null: {"proxy": {"publicListenerPort": null}} => "/proxy/publicListenerPort" == 20000;
    proxy_public_port_zero: {"proxy": {"publicListenerPort": 0}} => "/proxy/publicListenerPort" == 20000;
    proxy_absent_health_port: {} => "/proxy/healthCheckPort" == 22000;
    proxy_null_health_port: {"proxy": null} => "/proxy/healthCheckPort" == 22000;
    proxy_health_port_null: {"proxy": {"healthCheckPort": null}} => "/proxy/healthCheckPort" == 22000;
    proxy_health_port_zero: {"proxy": {"healthCheckPort": 0}} => "/proxy/healthCheckPort" == 22000;
    proxy_config_null: {"proxy": {"config": null}} => "/proxy/config" == null;
    proxy_local_address_null: {"proxy": {"localServiceAddress": null}} => "/proxy/localServiceAddress" == "";
    proxy_upstreams_null: {"proxy": {"upstreams": null}} => "/proxy/upstreams" == [];
    proxy_mesh_gateway_null: {"proxy": {"meshGateway": null}} => "/proxy/meshGateway" == null;
    proxy_expose_absent: {} => "/proxy/expose" == null;
    proxy_expose_empty: {"proxy": {"expose": {}}} => "/proxy/expose" == {"checks": false, "paths": []};
    proxy_expose_paths_null: {"proxy": {"expose": {"checks": true, "paths": null}}} => "/proxy/expose" == {"checks": true, "paths": []};

    // gateway
    gateway_health_port_absent: {"gateway": {"kind": "mesh-gateway"}} => "/gateway/healthCheckPort" == 22000;
    gateway_health_port_null: {"gateway": {"kind": "mesh-gateway", "healthCheckPort": null}} => "/gateway/healthCheckPort" == 22000;
    gateway_health_port_zero: {"gateway": {"kind": "mesh-gateway", "healthCheckPort": 0}} => "/gateway/healthCheckPort" == 22000;
    gateway_lan_absent: {"gateway": {"kind": "mesh-gateway"}} => "/gateway/lanAddress" == null;
    gateway_lan_empty: {"gateway": {"kind": "mesh-gateway", "lanAddress": {}}} => "/gateway/lanAddress" == {"address": "", "port": 0};
    gateway_wan_null: {"gateway": {"kind": "mesh-gateway", "wanAddress": null}} => "/gateway/wanAddress" == null;
    gateway_name_null: {"gateway": {"kind": "api-gateway", "name": null}} => "/gateway/name" == "";
    gateway_tags_null: {"gateway": {"kind": "api-gateway", "tags": null}} => "/gateway/tags" == [];
    gateway_meta_null: {"gateway": {"kind": "api-gateway", "meta": null}} => "/gateway/meta" == {};
    gateway_proxy_null: {"gateway": {"kind": "api-gateway", "proxy": null}} => "/gateway/proxy" == null;
    gateway_proxy_empty: {"gateway": {"kind": "api-gateway", "proxy": {}}} => "/gateway/proxy" == {"config": null};

    // transparentProxy
    tproxy_absent_enabled: {} => "/transparentProxy/enabled" == true;
    tproxy_null_enabled: {"transparentProxy": null} => "/transparentProxy/enabled" == true;
    tproxy_empty_enabled: {"transparentProxy": {}} => "/transparentProxy/enabled" == true;
    tproxy_enabled_null: {"transparentProxy": {"enabled": null}} => "/transparentProxy/enabled" == true;
    tproxy_lists_null:
        {"transparentProxy": {"excludeInboundPorts": null, "excludeOutboundPorts": null, "excludeOutboundCIDRs": null, "excludeUIDs": null}}
        => "/transparentProxy"
        == {"enabled": true, "excludeInboundPorts": [], "excludeOutboundPorts": [], "excludeOutboundCIDRs": [], "excludeUIDs": [], "consulDNS": {"enabled": false}};
    dns_absent: {} => "/transparentProxy/consulDNS/enabled" == false;
    dns_empty: {"transparentProxy": {"consulDNS": {}}} => "/transparentProxy/consulDNS/enabled" == false;
    dns_enabled_null: {"transparentProxy": {"consulDNS": {"enabled": null}}} => "/transparentProxy/consulDNS/enabled" == false;
}
