//! mesh-init against our dev server: the exact catalog contents, the writes Consul sees, and the files
//! left on the shared volume, for every registration variant.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use consul_ecs_mesh_init::run;
use serde_json::{Value, json};

fn web_meta() -> Value {
    json!({"task-id": TASK_ID, "task-arn": TASK_ARN, "source": "consul-ecs", "team": "a", "source-x": "y"})
}

#[tokio::test]
async fn a_service_task_registers_its_service_and_sidecar_with_two_writes() {
    let h = Harness::start(task("Web")).await;
    let config = h.config(json!({
        "healthSyncContainers": ["app"],
        "service": {
            "name": "web", "port": 8080, "tags": ["v1", "blue"], "enableTagOverride": true,
            "meta": {"team": "a", "source-x": "y"}, "weights": {"passing": 3, "warning": 2},
        },
        "proxy": {
            "localServiceAddress": "127.0.0.2",
            "publicListenerPort": 21000,
            "config": {"protocol": "http"},
            "meshGateway": {"mode": "local"},
            "upstreams": [
                {"destinationName": "backend", "localBindPort": 1234},
                {"destinationName": "db", "localBindPort": 5432, "destinationType": "service",
                 "destinationNamespace": "ns2", "destinationPartition": "p2", "destinationPeer": "peer1",
                 "datacenter": "dc2", "localBindAddress": "127.0.0.3", "config": {"connect_timeout_ms": 500},
                 "meshGateway": {"mode": "remote"}},
            ],
            "expose": {"checks": true, "paths": [{"listenerPort": 21500, "path": "/health", "localPathPort": 8080, "protocol": "http"}]},
        },
    }));
    let env = h.env();
    run(&config, &env).await.unwrap();

    let services = h.services().await;
    assert_eq!(services.len(), 2, "{services:#?}");
    assert_eq!(
        services["web-abcdef0123"],
        json!({
            "ID": "web-abcdef0123", "Service": "web", "Tags": ["v1", "blue"], "Meta": web_meta(),
            "Port": 8080, "Address": TASK_IP, "Weights": {"Passing": 3, "Warning": 2},
            "EnableTagOverride": true, "Connect": {}, "Proxy": {},
        })
    );
    assert_eq!(
        services["web-abcdef0123-sidecar-proxy"],
        json!({
            "Kind": "connect-proxy", "ID": "web-abcdef0123-sidecar-proxy", "Service": "web-sidecar-proxy",
            "Tags": ["v1", "blue"], "Meta": web_meta(), "Port": 21000, "Address": TASK_IP,
            "Weights": {"Passing": 3, "Warning": 2}, "EnableTagOverride": true, "Connect": {},
            "Proxy": {
                "DestinationServiceName": "web", "DestinationServiceID": "web-abcdef0123",
                "LocalServiceAddress": "127.0.0.2", "LocalServicePort": 8080,
                "Config": {"protocol": "http"},
                "Upstreams": [
                    {"DestinationName": "backend", "LocalBindPort": 1234},
                    {"DestinationType": "service", "DestinationPartition": "p2", "DestinationNamespace": "ns2",
                     "DestinationPeer": "peer1", "DestinationName": "db", "Datacenter": "dc2",
                     "LocalBindAddress": "127.0.0.3", "LocalBindPort": 5432,
                     "Config": {"connect_timeout_ms": 500}, "MeshGateway": {"Mode": "remote"}},
                ],
                "MeshGateway": {"Mode": "local"},
                "Expose": {"Checks": true, "Paths": [{"ListenerPort": 21500, "Path": "/health", "LocalPathPort": 8080, "Protocol": "http"}]},
            },
        })
    );

    let checks = h.checks().await;
    assert_eq!(checks.len(), 3, "{checks:#?}");
    let check = |id: &str,
                 name: &str,
                 service_id: &str,
                 service: &str,
                 notes: &str,
                 output: &str| {
        json!({
            "Node": CLUSTER_ARN, "CheckID": id, "Name": name, "Status": "critical", "Notes": notes,
            "Output": output, "ServiceID": service_id, "ServiceName": service,
            "Type": "consul-ecs-health-check", "Interval": "", "Timeout": "",
        })
    };
    let dataplane_notes = "consul-ecs created and updates this check to indicate consul-dataplane container's readiness";
    assert_eq!(
        strip_tags(&checks["web-abcdef0123-app"]),
        check(
            "web-abcdef0123-app",
            "Consul ECS health check synced",
            "web-abcdef0123",
            "web",
            "consul-ecs created and updates this check because the app container has an ECS health check.",
            "Service web is not ready",
        )
    );
    assert_eq!(
        strip_tags(&checks["web-abcdef0123-consul-dataplane"]),
        check(
            "web-abcdef0123-consul-dataplane",
            "Consul dataplane readiness",
            "web-abcdef0123",
            "web",
            dataplane_notes,
            "Service web is not ready",
        )
    );
    assert_eq!(
        strip_tags(&checks["web-abcdef0123-sidecar-proxy-consul-dataplane"]),
        check(
            "web-abcdef0123-sidecar-proxy-consul-dataplane",
            "Consul dataplane readiness",
            "web-abcdef0123-sidecar-proxy",
            "web-sidecar-proxy",
            dataplane_notes,
            "Service web-sidecar-proxy is not ready",
        )
    );

    // Exactly two writes: the service, then the sidecar; the node is never overwritten.
    let writes = h.proxy.writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.method.as_str(), w.path.as_str()))
            .collect::<Vec<_>>(),
        [
            ("PUT", "/v1/catalog/register"),
            ("PUT", "/v1/catalog/register")
        ]
    );
    let first = writes[0].json();
    assert_eq!(first["Node"], CLUSTER_ARN);
    assert_eq!(first["NodeMeta"], json!({"synthetic-node": "true"}));
    assert_eq!(first["Address"], TASK_IP);
    assert_eq!(first["SkipNodeUpdate"], true);
    assert_eq!(first["Service"]["ID"], "web-abcdef0123");
    assert_eq!(
        writes[1].json()["Service"]["ID"],
        "web-abcdef0123-sidecar-proxy"
    );
    assert!(first["Service"].get("Locality").is_none());
    assert!(writes.iter().all(|w| w.token.is_none()));

    // The shared volume.
    let dir = h.bootstrap();
    assert_eq!(mode(&dir.join("consul-ecs")), 0o755);
    assert_eq!(
        std::fs::read(dir.join("consul-ecs")).unwrap(),
        b"#!/bin/sh\necho consul-ecs\n"
    );
    let dataplane = dir.join("consul-dataplane.json");
    assert_eq!(mode(&dataplane), 0o444);
    assert_eq!(
        std::fs::read_to_string(&dataplane).unwrap(),
        json!({
            "consul": {
                "addresses": "127.0.0.1", "grpcPort": 8503, "serverWatchDisabled": false,
                "tls": {"disabled": true},
                "http": {"port": h.proxy.addr().port(), "https": false},
            },
            "proxy": {"nodeName": CLUSTER_ARN, "id": "web-abcdef0123-sidecar-proxy", "namespace": "", "partition": ""},
            "xdsServer": {"bindAddress": "127.0.0.1"},
            "envoy": {"readyBindAddress": "127.0.0.1", "readyBindPort": 22000},
            "logging": {"logLevel": "INFO"},
        })
        .to_string(),
        "compact JSON with upstream's key order"
    );
    assert!(!dir.join("consul-grpc-ca-cert.pem").exists());
    assert!(!dir.join("consul-https-ca-cert.pem").exists());
}

/// Consul adds the service's tags to every check it returns; they are not part of what we register.
fn strip_tags(check: &Value) -> Value {
    let mut check = check.clone();
    if let Some(map) = check.as_object_mut() {
        map.remove("ServiceTags");
    }
    check
}

#[tokio::test]
async fn transparent_proxy_tags_virtual_sets_transparent_mode_rewrites_dns_and_runs_the_rules() {
    let h = Harness::start(task("web")).await;
    // Central configuration the rules must honour: the proxy listens on bind_port, and the metrics
    // port stays reachable.
    let entry = serde_json::from_value(json!({
        "Kind": "proxy-defaults", "Name": "global",
        "Config": {"bind_port": 21001, "envoy_prometheus_bind_addr": "0.0.0.0:9102"},
    }))
    .unwrap();
    h.client()
        .config_entries()
        .set(&entry, &Default::default())
        .await
        .unwrap();
    std::fs::write(
        h.dir.path().join("resolv.conf"),
        "nameserver 10.0.0.2\nsearch ec2.internal\n",
    )
    .unwrap();
    let log = h.dir.path().join("iptables.log");
    let script = h.dir.path().join("iptables");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let config = h.config(json!({
        "service": {"port": 8080},
        "transparentProxy": {"enabled": true, "excludeOutboundCIDRs": ["169.254.170.2/32"],
                             "consulDNS": {"enabled": true}},
    }));
    let mut env = h.env();
    env.iptables = script;
    run(&config, &env).await.unwrap();

    let services = h.services().await;
    let virtual_address = json!({"virtual": {"Address": TASK_IP, "Port": 8080}});
    assert_eq!(
        services["web-abcdef0123"]["TaggedAddresses"],
        virtual_address
    );
    let proxy = &services["web-abcdef0123-sidecar-proxy"];
    assert_eq!(
        proxy["TaggedAddresses"], virtual_address,
        "the service's port, as upstream"
    );
    assert_eq!(proxy["Port"], 20000);
    assert_eq!(proxy["Proxy"]["Mode"], "transparent");
    assert_eq!(h.proxy.writes_to("/v1/catalog/register").len(), 2);
    assert_eq!(h.proxy.writes().len(), 2);

    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("resolv.conf")).unwrap(),
        "search ec2.internal\nnameserver 127.0.0.1\nnameserver 10.0.0.2\n"
    );
    let dataplane = read_json(&h.bootstrap().join("consul-dataplane.json"));
    assert_eq!(
        dataplane["dnsServer"],
        json!({"bindAddress": "127.0.0.1", "bindPort": 8600})
    );

    let rules = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        rules.lines().collect::<Vec<_>>(),
        [
            "-t nat -N CONSUL_PROXY_INBOUND",
            "-t nat -N CONSUL_PROXY_IN_REDIRECT",
            "-t nat -N CONSUL_PROXY_OUTPUT",
            "-t nat -N CONSUL_PROXY_REDIRECT",
            "-t nat -N CONSUL_DNS_REDIRECT",
            "-t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15001",
            "-t nat -A CONSUL_DNS_REDIRECT -p udp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600",
            "-t nat -A CONSUL_DNS_REDIRECT -p tcp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600",
            "-t nat -A OUTPUT -p udp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT",
            "-t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT",
            "-t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT",
            "-t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN",
            "-t nat -A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN",
            "-t nat -A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT",
            "-t nat -I CONSUL_PROXY_OUTPUT -d 169.254.170.2/32 -j RETURN",
            "-t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN",
            "-t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 21001",
            "-t nat -A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND",
            "-t nat -A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT",
            "-t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 22000 -j RETURN",
            "-t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 9102 -j RETURN",
            "-t nat --policy POSTROUTING ACCEPT",
        ]
    );
}

#[tokio::test]
async fn a_failing_iptables_command_fails_the_run_with_its_output() {
    let h = Harness::start(task("web")).await;
    let config =
        h.config(json!({"service": {"port": 8080}, "transparentProxy": {"enabled": true}}));
    let mut env = h.env();
    env.iptables = "false".into();
    let err = run(&config, &env).await.unwrap_err().to_string();
    assert!(
        err.starts_with("failed to setup traffic redirection rules: failed to run command: false -t nat -N CONSUL_PROXY_INBOUND"),
        "{err}"
    );
}

#[tokio::test]
async fn aws_region_gives_the_service_and_proxy_a_locality() {
    let h = Harness::start(task("web")).await;
    let config = h.config(json!({"service": {"port": 8080}}));
    let mut env = h.env();
    env.set_var(consul_ecs_mesh_init::ENV_AWS_REGION, Some("us-west-2"));
    run(&config, &env).await.unwrap();
    let services = h.services().await;
    let locality = json!({"Region": "us-west-2", "Zone": "us-east-1a"});
    assert_eq!(services["web-abcdef0123"]["Locality"], locality);
    assert_eq!(
        services["web-abcdef0123-sidecar-proxy"]["Locality"],
        locality
    );
}

async fn gateway(gateway: Value) -> (Harness, Value) {
    let h = Harness::start(task("GW")).await;
    let config = h.config(json!({
        "healthSyncContainers": ["app"],
        "transparentProxy": {"enabled": true, "consulDNS": {"enabled": true}},
        "gateway": gateway,
    }));
    let mut env = h.env();
    env.set_var(consul_ecs_mesh_init::ENV_AWS_REGION, Some("us-west-2"));
    run(&config, &env).await.unwrap();
    let services = h.services().await;
    assert_eq!(services.len(), 1, "{services:#?}");
    assert_eq!(h.proxy.writes().len(), 1, "a gateway is one write");
    let service = services.values().next().unwrap().clone();
    let checks = h.checks().await;
    assert_eq!(
        checks.keys().cloned().collect::<Vec<_>>(),
        [format!(
            "{}-consul-dataplane",
            service["ID"].as_str().unwrap()
        )],
        "only the dataplane check, even with healthSyncContainers"
    );
    (h, service)
}

fn gw_meta() -> Value {
    json!({"task-id": TASK_ID, "task-arn": TASK_ARN, "source": "consul-ecs"})
}

#[tokio::test]
async fn a_mesh_gateway_registers_its_lan_and_wan_addresses() {
    let (h, service) = gateway(json!({
        "kind": "mesh-gateway", "tags": ["edge"],
        "lanAddress": {"address": "10.1.2.3", "port": 9443},
        "wanAddress": {"address": "203.0.113.7"},
        "proxy": {"config": {"envoy_gateway_no_default_bind": true}},
    }))
    .await;
    assert_eq!(
        service,
        json!({
            "Kind": "mesh-gateway", "ID": "gw-abcdef0123", "Service": "gw", "Tags": ["edge"],
            "Meta": gw_meta(), "Port": 9443, "Address": "10.1.2.3",
            "TaggedAddresses": {
                "lan": {"Address": "10.1.2.3", "Port": 9443},
                "wan": {"Address": "203.0.113.7", "Port": 8443},
            },
            "Weights": {"Passing": 1, "Warning": 1}, "Connect": {},
            "Proxy": {"Config": {"envoy_gateway_no_default_bind": true}},
        })
    );
    let dataplane = read_json(&h.bootstrap().join("consul-dataplane.json"));
    assert_eq!(dataplane["proxy"]["id"], "gw-abcdef0123");
    assert!(
        dataplane.get("dnsServer").is_none(),
        "no Consul DNS for gateways"
    );
    let write = &h.proxy.writes()[0].json();
    assert_eq!(write["Address"], TASK_IP, "the node keeps the task address");
    assert!(
        write["Service"].get("Locality").is_none(),
        "gateways get no locality"
    );
}

#[tokio::test]
async fn a_mesh_gateway_without_addresses_uses_the_task_address_and_port_8443() {
    let (_h, service) =
        gateway(json!({"kind": "mesh-gateway", "lanAddress": {"port": 7443}})).await;
    assert_eq!(service["Address"], TASK_IP);
    assert_eq!(service["Port"], 7443);
    assert!(service.get("TaggedAddresses").is_none(), "{service}");
}

#[tokio::test]
async fn terminating_and_api_gateways_ignore_lan_and_wan() {
    let (_h, service) = gateway(json!({
        "kind": "terminating-gateway", "name": "egress",
        "lanAddress": {"address": "10.9.9.9", "port": 1}, "wanAddress": {"address": "1.2.3.4"},
    }))
    .await;
    assert_eq!(
        service,
        json!({
            "Kind": "terminating-gateway", "ID": "egress-abcdef0123", "Service": "egress",
            "Meta": gw_meta(), "Port": 8443, "Address": TASK_IP,
            "Weights": {"Passing": 1, "Warning": 1}, "Connect": {}, "Proxy": {},
        })
    );

    let (h, service) = gateway(json!({"kind": "api-gateway", "healthCheckPort": 23000})).await;
    assert_eq!(service["Kind"], "api-gateway");
    assert_eq!(service["Port"], 8443);
    assert_eq!(service["Address"], TASK_IP);
    let dataplane = read_json(&h.bootstrap().join("consul-dataplane.json"));
    assert_eq!(dataplane["envoy"]["readyBindPort"], 23000);
}
