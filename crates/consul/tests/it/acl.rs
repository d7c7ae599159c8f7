//! ACL: the calls the controller and the login flow make (spec §5, §6.2, §6.3), their paths and
//! bodies, secrets kept out of `Debug`, and "not found" in both of Consul's forms.

use std::collections::BTreeMap;

use consul_client::acl::{
    ANONYMOUS_TOKEN_ID, AclAuthMethod, AclAuthMethodNamespaceRule, AclBindingRule, AclLink,
    AclLoginParams, AclPolicy, AclRole, AclToken, AclTokenFilter, BindingRuleBindType,
};
use consul_client::{QueryOptions, Secret, WriteOptions};
use serde_json::json;

use crate::support::{FakeConsul, Reply};

fn token_json(accessor: &str, secret: &str) -> serde_json::Value {
    json!({
        "AccessorID": accessor, "SecretID": secret,
        "Description": "token created via login: {\"consul.hashicorp.com/task-id\":\"abcdef\"}",
        "Policies": null, "Roles": [{"ID": "r1", "Name": "consul-ecs-mesh-gateway-role"}],
        "ServiceIdentities": [{"ServiceName": "web"}], "Local": true,
        "AuthMethod": "iam-ecs-service-token", "ExpirationTime": "2030-01-01T00:00:00Z",
        "CreateTime": "2025-01-01T00:00:00Z", "Hash": "aGFzaA==", "CreateIndex": 50, "ModifyIndex": 50,
        "AuthMethodNamespace": "", "TemplatedPolicies": null
    })
}

#[tokio::test]
async fn login_and_logout() {
    let consul = FakeConsul::scripted(vec![
        Reply::json(token_json("acc-1", "sec-from-login")),
        Reply::raw(200, ""),
    ])
    .await;
    let client = consul.client();
    let params = AclLoginParams {
        auth_method: "iam-ecs-service-token".into(),
        bearer_token: Secret::new("signed-sts-request"),
        meta: BTreeMap::from([
            (
                "consul.hashicorp.com/task-id".to_string(),
                "abcdef".to_string(),
            ),
            (
                "consul.hashicorp.com/cluster".to_string(),
                "arn:cluster".to_string(),
            ),
        ]),
    };
    let options = WriteOptions {
        partition: Some("p1".into()),
        datacenter: Some("dc1".into()),
        ..Default::default()
    };
    let token = client.acl().login(&params, &options).await.unwrap();
    assert_eq!(token.accessor_id, "acc-1");
    let secret = token.secret_id.clone().unwrap();
    assert_eq!(secret.expose(), "sec-from-login");
    assert_eq!(token.service_identities[0].service_name, "web");
    let shown = format!("{token:?} {params:?}");
    assert!(!shown.contains("sec-from-login"), "{shown}");
    assert!(!shown.contains("signed-sts-request"), "{shown}");

    // Log out with the token the login returned, through a client derived from the first.
    let logged_in = client.with_token(Some(secret));
    logged_in
        .acl()
        .logout(&WriteOptions::default())
        .await
        .unwrap();

    let requests = consul.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/acl/login");
    assert_eq!(requests[0].param("partition"), Some("p1"));
    assert_eq!(requests[0].param("dc"), Some("dc1"));
    assert_eq!(requests[0].token(), None);
    assert_eq!(
        requests[0].json(),
        json!({"AuthMethod": "iam-ecs-service-token", "BearerToken": "signed-sts-request",
               "Meta": {"consul.hashicorp.com/cluster": "arn:cluster",
                        "consul.hashicorp.com/task-id": "abcdef"}})
    );
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path, "/v1/acl/logout");
    assert_eq!(requests[1].token(), Some("sec-from-login"));
}

#[tokio::test]
async fn bootstrap_with_and_without_a_secret() {
    let consul = FakeConsul::always(Reply::json(token_json("boot", "boot-secret"))).await;
    let client = consul.client();
    client.acl().bootstrap(None).await.unwrap();
    let token = client
        .acl()
        .bootstrap(Some(&Secret::new("chosen")))
        .await
        .unwrap();
    assert_eq!(token.accessor_id, "boot");
    let requests = consul.requests();
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/v1/acl/bootstrap");
    assert!(requests[0].body.is_empty());
    assert_eq!(requests[1].json(), json!({"BootstrapSecret": "chosen"}));
}

#[tokio::test]
async fn anonymous_token_gets_a_policy_appended() {
    let anonymous = json!({
        "AccessorID": ANONYMOUS_TOKEN_ID, "SecretID": "anonymous",
        "Description": "Anonymous Token", "Policies": [{"ID": "p0", "Name": "existing"}],
        "Local": false, "CreateTime": "2025-01-01T00:00:00Z", "Hash": "aA==",
        "CreateIndex": 5, "ModifyIndex": 5, "SomeFutureField": {"x": 1}
    });
    let consul = FakeConsul::start(move |request| match request.method.as_str() {
        "GET" => Reply::json(anonymous.clone()).index(5),
        _ => Reply::json(request.json()),
    })
    .await;
    let client = consul.client_with(|c| c.token = Some(Secret::new("management")));
    let tenancy = QueryOptions {
        namespace: Some("default".into()),
        partition: Some("default".into()),
        ..Default::default()
    };
    let mut token = client
        .acl()
        .token_read(ANONYMOUS_TOKEN_ID, &tenancy)
        .await
        .unwrap()
        .value
        .unwrap();
    token
        .policies
        .push(AclLink::by_name("anonymous-token-policy"));
    let updated = client
        .acl()
        .token_update(&token, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(updated.policies.len(), 2);

    let requests = consul.requests();
    assert_eq!(
        requests[0].path,
        "/v1/acl/token/00000000-0000-0000-0000-000000000002"
    );
    assert_eq!(requests[0].param("ns"), Some("default"));
    assert_eq!(requests[0].token(), Some("management"));
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path, requests[0].path);
    let body = requests[1].json();
    assert_eq!(
        body["Policies"],
        json!([{"ID": "p0", "Name": "existing"}, {"Name": "anonymous-token-policy"}])
    );
    assert_eq!(
        body["SomeFutureField"],
        json!({"x": 1}),
        "unknown fields survive"
    );
    assert_eq!(body["SecretID"], "anonymous");
}

#[tokio::test]
async fn token_list_self_create_and_delete() {
    let consul =
        FakeConsul::start(
            |request| match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/v1/acl/tokens") => {
                    Reply::json(json!([token_json("a1", "s1"), token_json("a2", "s2")])).index(60)
                }
                ("GET", "/v1/acl/token/self") => Reply::json(token_json("me", "my-secret")),
                ("PUT", "/v1/acl/token") => Reply::json(token_json("new", "new-secret")),
                ("DELETE", _) => Reply::json(json!(true)),
                _ => Reply::raw(404, "no"),
            },
        )
        .await;
    let client = consul.client();
    let filter = AclTokenFilter {
        auth_method: Some("iam-ecs-service-token".into()),
        ..Default::default()
    };
    let options = QueryOptions {
        partition: Some("p1".into()),
        namespace: Some("ns1".into()),
        filter: Some("Local == true".into()),
        ..Default::default()
    };
    let tokens = client.acl().token_list(&filter, &options).await.unwrap();
    assert_eq!(tokens.value.len(), 2);
    assert!(
        tokens.value[0]
            .description
            .starts_with("token created via login:")
    );
    let me = client
        .acl()
        .token_read_self(&QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(me.accessor_id, "me");
    let created = client
        .acl()
        .token_create(
            &AclToken {
                description: "ci".into(),
                service_identities: vec![consul_client::acl::AclServiceIdentity {
                    service_name: "web".into(),
                    datacenters: vec![],
                }],
                expiration_ttl: Some(std::time::Duration::from_secs(3600).into()),
                ..Default::default()
            },
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(created.accessor_id, "new");
    client
        .acl()
        .token_delete(
            "a1",
            &WriteOptions {
                namespace: Some("ns1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let requests = consul.requests();
    assert_eq!(
        requests[0].param("authmethod"),
        Some("iam-ecs-service-token")
    );
    assert_eq!(requests[0].param("filter"), Some("Local == true"));
    assert_eq!(requests[0].param("partition"), Some("p1"));
    assert_eq!(
        requests[2].json(),
        json!({"Description": "ci", "ServiceIdentities": [{"ServiceName": "web"}],
               "ExpirationTTL": 3_600_000_000_000u64})
    );
    assert_eq!(requests[3].path, "/v1/acl/token/a1");
    assert_eq!(requests[3].param("ns"), Some("ns1"));
}

#[tokio::test]
async fn policies_and_roles_as_the_controller_upserts_them() {
    let consul =
        FakeConsul::start(
            |request| match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/v1/acl/policy/name/consul-ecs-mesh-gateway-policy") => {
                    Reply::raw(404, "ACL not found")
                }
                ("PUT", "/v1/acl/policy") => {
                    let mut body = request.json();
                    body["ID"] = json!("pol-1");
                    Reply::json(body)
                }
                ("GET", "/v1/acl/role/name/consul-ecs-mesh-gateway-role") => Reply::json(json!({
                    "ID": "role-1", "Name": "consul-ecs-mesh-gateway-role",
                    "Description": "Mesh Gateway Role for ECS", "Policies": null, "Hash": "x",
                    "CreateIndex": 3, "ModifyIndex": 3
                })),
                ("PUT", "/v1/acl/role/role-1")
                | ("PUT", "/v1/acl/role")
                | ("PUT", "/v1/acl/policy/pol-1") => Reply::json(request.json()),
                ("GET", "/v1/acl/policies") => {
                    Reply::json(json!([{"ID": "pol-1", "Name": "n", "Description": "",
            "Datacenters": null, "Hash": "h", "CreateIndex": 1, "ModifyIndex": 1}]))
                }
                ("GET", "/v1/acl/roles") => Reply::json(json!([])),
                ("GET", "/v1/acl/policy/pol-1") | ("GET", "/v1/acl/role/role-1") => {
                    Reply::raw(404, "")
                }
                _ => Reply::raw(500, "unexpected"),
            },
        )
        .await;
    let client = consul.client();
    let acl = client.acl();
    let none = QueryOptions::default();
    let write = WriteOptions::default();

    let missing = acl
        .policy_read_by_name("consul-ecs-mesh-gateway-policy", &none)
        .await
        .unwrap();
    assert!(missing.value.is_none());
    let policy = acl
        .policy_create(
            &AclPolicy {
                name: "consul-ecs-mesh-gateway-policy".into(),
                description: "Mesh Gateway token Policy".into(),
                rules: "mesh = \"write\"\npeering = \"read\"".into(),
                ..Default::default()
            },
            &write,
        )
        .await
        .unwrap();
    assert_eq!(policy.id, "pol-1");
    let mut role = acl
        .role_read_by_name("consul-ecs-mesh-gateway-role", &none)
        .await
        .unwrap()
        .value
        .unwrap();
    assert!(role.policies.is_empty());
    role.policies = vec![AclLink::by_name("consul-ecs-mesh-gateway-policy")];
    acl.role_update(&role, &write).await.unwrap();
    acl.role_create(
        &AclRole {
            name: "consul-ecs-terminating-gateway-role".into(),
            description: "Terminating Gateway Role for ECS".into(),
            ..Default::default()
        },
        &write,
    )
    .await
    .unwrap();
    acl.policy_update(&policy, &write).await.unwrap();
    assert_eq!(acl.policy_list(&none).await.unwrap().value[0].id, "pol-1");
    assert!(
        acl.role_list(Some("pol-1"), &none)
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert!(
        acl.policy_read("pol-1", &none)
            .await
            .unwrap()
            .value
            .is_none()
    );
    assert!(
        acl.role_read("role-1", &none)
            .await
            .unwrap()
            .value
            .is_none()
    );
    let refused = acl.policy_create(&policy, &write).await.unwrap_err();
    assert!(
        matches!(refused, consul_client::Error::InvalidArgument(_)),
        "a new policy has no ID"
    );

    let requests = consul.requests();
    assert_eq!(
        requests[1].json(),
        json!({"Name": "consul-ecs-mesh-gateway-policy", "Description": "Mesh Gateway token Policy",
               "Rules": "mesh = \"write\"\npeering = \"read\""})
    );
    assert_eq!(requests[3].path, "/v1/acl/role/role-1");
    assert_eq!(
        requests[3].json(),
        json!({"ID": "role-1", "Name": "consul-ecs-mesh-gateway-role",
               "Description": "Mesh Gateway Role for ECS",
               "Policies": [{"Name": "consul-ecs-mesh-gateway-policy"}], "Hash": "x",
               "CreateIndex": 3, "ModifyIndex": 3})
    );
    assert_eq!(
        requests[4].json(),
        json!({"Name": "consul-ecs-terminating-gateway-role",
               "Description": "Terminating Gateway Role for ECS"})
    );
    assert_eq!(requests[7].param("policy"), Some("pol-1"));
}

#[tokio::test]
async fn auth_method_and_binding_rules() {
    let consul = FakeConsul::start(|request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/v1/acl/auth-method/iam-ecs-service-token") => Reply::json(json!({
            "Name": "iam-ecs-service-token", "Type": "aws-iam",
            "Description": "AWS IAM auth method for ECS service tokens", "MaxTokenTTL": "0s",
            "Config": {"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/*"], "EnableIAMEntityDetails": true,
                       "IAMEntityTags": ["consul.hashicorp.com.service-name"], "STSEndpoint": "https://sts"},
            "CreateIndex": 7, "ModifyIndex": 7
        })),
        ("GET", "/v1/acl/binding-rules") => Reply::json(json!([{
            "ID": "br-1", "Description": "Bind a service identity from IAM role tag for ECS",
            "AuthMethod": "iam-ecs-service-token", "Selector": "", "BindType": "service",
            "BindName": "${entity_tags.consul.hashicorp.com.service-name}", "CreateIndex": 8, "ModifyIndex": 8
        }])),
        ("PUT", _) => Reply::json(request.json()),
        _ => Reply::raw(404, "no"),
    })
    .await;
    let client = consul.client();
    let acl = client.acl();
    let none = QueryOptions::default();
    let write = WriteOptions::default();
    let method = acl
        .auth_method_read("iam-ecs-service-token", &none)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(method.method_type, "aws-iam");
    assert_eq!(method.max_token_ttl.unwrap().0, std::time::Duration::ZERO);
    assert_eq!(method.config["STSEndpoint"], "https://sts");

    let ours = AclAuthMethod {
        name: "iam-ecs-service-token".into(),
        method_type: "aws-iam".into(),
        description: "AWS IAM auth method for ECS service tokens".into(),
        config: json!({"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/*"], "EnableIAMEntityDetails": true,
                       "IAMEntityTags": ["consul.hashicorp.com.gateway-kind",
                                         "consul.hashicorp.com.namespace",
                                         "consul.hashicorp.com.service-name"]})
        .as_object()
        .cloned()
        .unwrap(),
        namespace_rules: vec![AclAuthMethodNamespaceRule {
            selector: "entity_tags[\"consul.hashicorp.com.namespace\"] != \"\"".into(),
            bind_namespace: "${entity_tags.consul.hashicorp.com.namespace}".into(),
        }],
        ..Default::default()
    };
    acl.auth_method_create(&ours, &write).await.unwrap();
    acl.auth_method_update(&ours, &write).await.unwrap();

    let rules = acl
        .binding_rule_list(Some("iam-ecs-service-token"), &none)
        .await
        .unwrap()
        .value;
    assert_eq!(rules[0].bind_type, BindingRuleBindType::Service);
    let mut rule = rules[0].clone();
    rule.bind_name = "${entity_tags.consul.hashicorp.com.service-name}".into();
    acl.binding_rule_update(&rule, &write).await.unwrap();
    acl.binding_rule_create(
        &AclBindingRule {
            description: "Bind a Consul role from IAM role tag for ECS based mesh gateways".into(),
            auth_method: "iam-ecs-service-token".into(),
            selector: "entity_tags[\"consul.hashicorp.com.gateway-kind\"] == \"mesh-gateway\""
                .into(),
            bind_type: BindingRuleBindType::Role,
            bind_name: "consul-ecs-mesh-gateway-role".into(),
            ..Default::default()
        },
        &write,
    )
    .await
    .unwrap();

    let requests = consul.requests();
    assert_eq!(requests[1].path, "/v1/acl/auth-method");
    assert_eq!(
        requests[1].json(),
        json!({"Name": "iam-ecs-service-token", "Type": "aws-iam",
               "Description": "AWS IAM auth method for ECS service tokens",
               "Config": {"BoundIAMPrincipalARNs": ["arn:aws:iam::1:role/*"],
                          "EnableIAMEntityDetails": true,
                          "IAMEntityTags": ["consul.hashicorp.com.gateway-kind",
                                            "consul.hashicorp.com.namespace",
                                            "consul.hashicorp.com.service-name"]},
               "NamespaceRules": [{"Selector": "entity_tags[\"consul.hashicorp.com.namespace\"] != \"\"",
                                   "BindNamespace": "${entity_tags.consul.hashicorp.com.namespace}"}]})
    );
    assert_eq!(
        requests[2].path,
        "/v1/acl/auth-method/iam-ecs-service-token"
    );
    assert_eq!(
        requests[3].param("authmethod"),
        Some("iam-ecs-service-token")
    );
    assert_eq!(requests[4].path, "/v1/acl/binding-rule/br-1");
    assert_eq!(requests[5].path, "/v1/acl/binding-rule");
    assert_eq!(
        requests[5].json(),
        json!({"Description": "Bind a Consul role from IAM role tag for ECS based mesh gateways",
               "AuthMethod": "iam-ecs-service-token",
               "Selector": "entity_tags[\"consul.hashicorp.com.gateway-kind\"] == \"mesh-gateway\"",
               "BindType": "role", "BindName": "consul-ecs-mesh-gateway-role"})
    );
}

#[tokio::test]
async fn acl_errors_are_classified() {
    let consul = FakeConsul::scripted(vec![
        Reply::raw(403, "ACL not found"),
        Reply::raw(
            403,
            "Permission denied: token with AccessorID 'x' lacks permission 'acl:write'",
        ),
    ])
    .await;
    let client = consul.client();
    let err = client
        .acl()
        .token_read_self(&QueryOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_acl_not_found(), "{err}");
    assert!(!err.is_permission_denied());
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(403));
    let err = client
        .acl()
        .policy_delete("p", &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert!(!err.is_acl_not_found());

    // An update without an AccessorID is refused before anything is sent.
    let err = client
        .acl()
        .token_update(&AclToken::default(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, consul_client::Error::InvalidArgument(_)));
    assert_eq!(consul.requests().len(), 2);
}
