//! Start-up upserts against the dev server with ACLs on: upstream's names, descriptions, rule texts
//! and binding rules; a second start writes nothing; the auth method merge keeps other keys.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use consul_client::acl::{ANONYMOUS_TOKEN_ID, AclAuthMethod, BindingRuleBindType};
use consul_client::{QueryOptions, WriteOptions};
use consul_ecs_controller::setup;
use serde_json::json;

#[tokio::test]
async fn first_start_creates_upstream_objects_and_second_start_writes_nothing() {
    let (server, consul) = consul().await;
    let q = QueryOptions::default();
    let writes = setup(&consul, &setup_input(CLUSTER)).await.unwrap();
    assert!(writes >= 10, "{writes}");

    let acl = consul.acl();
    let api = acl
        .policy_read_by_name("consul-ecs-api-gateway-policy", &q)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(api.description, "API Gateway token Policy");
    assert_eq!(
        api.rules,
        "mesh = \"read\"\n\tnode_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}\n\tservice_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}"
    );
    let mesh = acl
        .policy_read_by_name("consul-ecs-mesh-gateway-policy", &q)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(mesh.description, "Mesh Gateway token Policy");
    assert_eq!(mesh.rules, "mesh = \"write\"\npeering = \"read\"");

    for (name, description, policy) in [
        (
            "consul-ecs-api-gateway-role",
            "API Gateway Role for ECS",
            Some("consul-ecs-api-gateway-policy"),
        ),
        (
            "consul-ecs-mesh-gateway-role",
            "Mesh Gateway Role for ECS",
            Some("consul-ecs-mesh-gateway-policy"),
        ),
        (
            "consul-ecs-terminating-gateway-role",
            "Terminating Gateway Role for ECS",
            None,
        ),
    ] {
        let role = acl
            .role_read_by_name(name, &q)
            .await
            .unwrap()
            .value
            .unwrap();
        assert_eq!(role.description, description);
        let names: Vec<&str> = role.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, policy.into_iter().collect::<Vec<_>>(), "{name}");
    }

    let method = acl
        .auth_method_read("iam-ecs-service-token", &q)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(method.method_type, "aws-iam");
    assert_eq!(
        method.description,
        "AWS IAM auth method for ECS service tokens"
    );
    assert_eq!(
        serde_json::Value::Object(method.config.clone()),
        json!({
            "BoundIAMPrincipalARNs": ["arn:aws:iam::123456789012:role/consul-ecs/*"],
            "EnableIAMEntityDetails": true,
            "IAMEntityTags": [
                "consul.hashicorp.com.gateway-kind",
                "consul.hashicorp.com.namespace",
                "consul.hashicorp.com.service-name"
            ]
        })
    );

    let mut rules: Vec<(String, BindingRuleBindType, String, String)> = acl
        .binding_rule_list(Some("iam-ecs-service-token"), &q)
        .await
        .unwrap()
        .value
        .into_iter()
        .map(|r| (r.description, r.bind_type, r.selector, r.bind_name))
        .collect();
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    let kind = |k: &str| format!("entity_tags[\"consul.hashicorp.com.gateway-kind\"] == \"{k}\"");
    assert_eq!(
        rules,
        vec![
            (
                "Bind a Consul role from IAM role tag for ECS based API gateways".into(),
                BindingRuleBindType::Role,
                kind("api-gateway"),
                "consul-ecs-api-gateway-role".into()
            ),
            (
                "Bind a Consul role from IAM role tag for ECS based Terminating gateways".into(),
                BindingRuleBindType::Role,
                kind("terminating-gateway"),
                "consul-ecs-terminating-gateway-role".into()
            ),
            (
                "Bind a Consul role from IAM role tag for ECS based mesh gateways".into(),
                BindingRuleBindType::Role,
                kind("mesh-gateway"),
                "consul-ecs-mesh-gateway-role".into()
            ),
            (
                "Bind a service identity from IAM role tag for ECS".into(),
                BindingRuleBindType::Service,
                String::new(),
                "${entity_tags.consul.hashicorp.com.service-name}".into()
            ),
        ]
    );

    let anonymous = acl
        .token_read(ANONYMOUS_TOKEN_ID, &q)
        .await
        .unwrap()
        .value
        .unwrap();
    let names: Vec<&str> = anonymous.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["anonymous-token-policy"]);
    let anon_policy = acl
        .policy_read_by_name("anonymous-token-policy", &q)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(anon_policy.description, "Anonymous token Policy");
    assert_eq!(
        anon_policy.rules,
        "\n    node_prefix \"\" {\n      policy = \"read\"\n    }\n    service_prefix \"\" {\n      policy = \"read\"\n    }"
    );

    let node = consul
        .catalog()
        .node(CLUSTER, &q)
        .await
        .unwrap()
        .value
        .unwrap()
        .node
        .unwrap();
    assert_eq!(node.address, "10.0.0.9");
    assert_eq!(
        node.meta.get("synthetic-node").map(String::as_str),
        Some("true")
    );

    // A second start (a restart, or a second replica) finds everything and writes nothing.
    let before = write_index(&consul, CLUSTER).await;
    assert_eq!(setup(&consul, &setup_input(CLUSTER)).await.unwrap(), 0);
    assert_eq!(write_index(&consul, CLUSTER).await, before);
    server.shutdown().await;
}

#[tokio::test]
async fn existing_auth_method_is_merged_keeping_other_config_keys() {
    let (server, consul) = consul().await;
    let mut method = AclAuthMethod {
        name: "iam-ecs-service-token".into(),
        method_type: "aws-iam".into(),
        description: "operator's".into(),
        ..AclAuthMethod::default()
    };
    method.config.insert(
        "BoundIAMPrincipalARNs".into(),
        json!(["arn:aws:iam::123456789012:role/zzz/*"]),
    );
    method
        .config
        .insert("EnableIAMEntityDetails".into(), json!(true));
    method
        .config
        .insert("IAMEntityTags".into(), json!(["team"]));
    method
        .config
        .insert("STSEndpoint".into(), json!("https://sts.example.test"));
    consul
        .acl()
        .auth_method_create(&method, &WriteOptions::default())
        .await
        .unwrap();

    setup(&consul, &setup_input(CLUSTER)).await.unwrap();
    let merged = consul
        .acl()
        .auth_method_read("iam-ecs-service-token", &QueryOptions::default())
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(
        merged.config.get("BoundIAMPrincipalARNs"),
        Some(&json!([
            "arn:aws:iam::123456789012:role/consul-ecs/*",
            "arn:aws:iam::123456789012:role/zzz/*"
        ]))
    );
    assert_eq!(
        merged.config.get("IAMEntityTags"),
        Some(&json!([
            "consul.hashicorp.com.gateway-kind",
            "consul.hashicorp.com.namespace",
            "consul.hashicorp.com.service-name",
            "team"
        ]))
    );
    assert_eq!(
        merged.config.get("STSEndpoint"),
        Some(&json!("https://sts.example.test"))
    );
    server.shutdown().await;
}
