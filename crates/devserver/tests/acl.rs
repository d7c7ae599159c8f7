//! ACLs over real sockets: bootstrap, tokens, policies, roles, enforcement on every API area, result
//! filtering, expiry, persistence, and login with a JWT auth method. (aws-iam login against moto is in
//! `acl_aws.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const NODE: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";

fn denied(r: &Resp, accessor: &str, perm: &str, name: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    let mut want =
        format!("Permission denied: token with AccessorID '{accessor}' lacks permission '{perm}'");
    if !name.is_empty() {
        want.push_str(&format!(" on \"{name}\""));
    }
    assert_eq!(r.text(), want);
}

#[tokio::test]
async fn acls_are_off_by_default() {
    let server = start().await;
    let addr = server.http_addr();
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!((r.status, r.text().as_str()), (401, "ACL support disabled"));
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("allow"));
    // Any token is accepted and everything is allowed.
    register(addr, &json!({"Node": "n1", "Address": "10.0.0.1"})).await;
    let r = call(addr, "GET", "/v1/catalog/nodes", None, "no-such-token").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-consul-results-filtered-by-acls").is_none());
    let r = get(addr, "/v1/agent/self").await;
    assert_eq!(r.json()["DebugConfig"]["ACLsEnabled"], json!(false));
}

#[tokio::test]
async fn bootstrap_works_once_and_gives_a_management_token() {
    let server = start_with(|c| {
        c.acl.enabled = true;
        c.acl.default_policy = devserver::DefaultPolicy::Deny;
    })
    .await;
    let addr = server.http_addr();
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("deny"));
    let token = r.json();
    assert_eq!(token["Description"], "Bootstrap Token (Global Management)");
    assert_eq!(
        token["Policies"],
        json!([{"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}])
    );
    let mgmt = token["SecretID"].as_str().unwrap();
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .starts_with("Permission denied: ACL bootstrap no longer allowed (reset index: "),
        "{}",
        r.text()
    );
    // The management token may do anything, including ACL management.
    let r = call(addr, "GET", "/v1/agent/self", None, mgmt).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["DebugConfig"]["ACLsEnabled"], json!(true));
    let r = call(addr, "GET", "/v1/acl/policies", None, mgmt).await;
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == "global-management"), "{names:?}");
    assert!(
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("Rules").is_none())
    );
    // The anonymous token exists and, under default deny, may do nothing.
    let r = call(
        addr,
        "GET",
        "/v1/acl/token/00000000-0000-0000-0000-000000000002",
        None,
        mgmt,
    )
    .await;
    assert_eq!(r.json()["Description"], "Anonymous Token");
    let r = get(addr, "/v1/agent/self").await;
    denied(
        &r,
        "00000000-0000-0000-0000-000000000002",
        "agent:read",
        "dev-node",
    );
    let r = call(addr, "GET", "/v1/acl/tokens", None, "").await;
    denied(&r, "00000000-0000-0000-0000-000000000002", "acl:read", "");
}

#[tokio::test]
async fn a_configured_bootstrap_token_is_the_initial_management_token() {
    let server = start_with(|c| {
        c.acl.enabled = true;
        c.acl.bootstrap_token = Some("b2d6b9a3-7d8e-4a8f-9d0c-1d2e3f4a5b6c".into());
    })
    .await;
    let addr = server.http_addr();
    let r = call(
        addr,
        "GET",
        "/v1/acl/token/self",
        None,
        "b2d6b9a3-7d8e-4a8f-9d0c-1d2e3f4a5b6c",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Description"], "Initial Management Token");
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!(r.status, 403, "{}", r.text());
}

#[tokio::test]
async fn unknown_tokens_are_acl_not_found_in_every_header_form() {
    let (server, mgmt) = start_acl(false).await;
    let addr = server.http_addr();
    let r = call(addr, "GET", "/v1/catalog/services", None, "nope").await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    let r = request_with_headers(
        addr,
        "GET",
        "/v1/catalog/services",
        None,
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    let r = get(addr, "/v1/catalog/services?token=nope").await;
    assert_eq!(r.status, 403);
    let r = request_with_headers(
        addr,
        "GET",
        "/v1/acl/token/self",
        None,
        &[("authorization", &format!("Bearer {mgmt}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Default allow: the anonymous token may read the catalog, but not manage ACLs.
    let r = get(addr, "/v1/catalog/services").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-consul-default-acl-policy"), Some("allow"));
    let r = get(addr, "/v1/acl/policies").await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn service_tokens_register_their_service_and_nothing_else() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let (acc, web) = create_token(
        addr,
        &mgmt,
        &json!({"ServiceIdentities": [{"ServiceName": "web"}]}),
    )
    .await;
    // The node does not exist yet: registering needs node:write.
    let mut reg = ecs_service_registration();
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&reg), &web).await;
    denied(&r, &acc, "node:write", NODE);
    // The controller (management) registers the node; then SkipNodeUpdate needs no node rights.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&json!({"Node": NODE, "Address": "10.1.2.3", "NodeMeta": {"synthetic-node": "true"}})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&reg), &web).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The sidecar of web is covered by the identity.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&ecs_proxy_registration()),
        &web,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Changing the node needs node:write.
    reg["SkipNodeUpdate"] = json!(false);
    reg["Address"] = json!("10.9.9.9");
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&reg), &web).await;
    denied(&r, &acc, "node:write", NODE);
    // Another service, or a sidecar for another service, is refused.
    let mut db = ecs_service_registration();
    db["Service"]["Service"] = json!("db");
    db["Service"]["ID"] = json!("db-1");
    db["Checks"] = json!([]);
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&db), &web).await;
    denied(&r, &acc, "service:write", "db");
    let mut proxy = ecs_proxy_registration();
    proxy["Service"]["Service"] = json!("web-sidecar-proxy");
    proxy["Service"]["ID"] = json!("db-sidecar");
    proxy["Service"]["Proxy"]["DestinationServiceName"] = json!("db");
    proxy["Checks"] = json!([]);
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&proxy), &web).await;
    denied(&r, &acc, "service:write", "db");
    // A node-level check needs node:write.
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&json!({"Node": NODE, "SkipNodeUpdate": true, "Check": {"CheckID": "node-check", "Status": "passing"}})), &web).await;
    denied(&r, &acc, "node:write", NODE);
    // Deregistering its own instance works; deregistering the node does not.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/deregister",
        Some(&json!({"Node": NODE, "ServiceID": "web-abcdef-sidecar-proxy"})),
        &web,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/deregister",
        Some(&json!({"Node": NODE})),
        &web,
    )
    .await;
    denied(&r, &acc, "node:write", NODE);
    // The service identity reads every service and node: nothing is filtered.
    let r = call(addr, "GET", "/v1/catalog/services", None, &web).await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("web").is_some());
    assert!(r.header("x-consul-results-filtered-by-acls").is_none());
}

#[tokio::test]
async fn default_deny_hides_what_a_token_may_not_read() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    for (node, svc) in [("n1", "web"), ("n2", "db")] {
        let r = call(addr, "PUT", "/v1/catalog/register", Some(&json!({"Node": node, "Address": "10.0.0.1", "Service": {"Service": svc, "Port": 80}})), &mgmt).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let p = create_policy(
        addr,
        &mgmt,
        "web-read",
        "service \"web\" {\n  policy = \"read\"\n}\nnode_prefix \"n\" {\n  policy = \"read\"\n}\n",
    )
    .await;
    let (_, reader) = create_token(addr, &mgmt, &json!({"Policies": [{"ID": p}]})).await;
    let r = call(addr, "GET", "/v1/catalog/services", None, &reader).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"web": []}));
    assert_eq!(r.header("x-consul-results-filtered-by-acls"), Some("true"));
    let r = call(addr, "GET", "/v1/health/service/db", None, &reader).await;
    assert_eq!(r.json(), json!([]));
    let r = call(addr, "GET", "/v1/health/service/web", None, &reader).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert!(r.header("x-consul-results-filtered-by-acls").is_none());
    // The anonymous token sees nothing at all.
    let r = get(addr, "/v1/catalog/nodes").await;
    assert_eq!(r.json(), json!([]));
    assert_eq!(r.header("x-consul-results-filtered-by-acls"), Some("true"));
}

#[tokio::test]
async fn policy_rules_follow_consuls_precedence_and_datacenters() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let rules = r#"
key_prefix "" {
  policy = "read"
}
key_prefix "app/" {
  policy = "write"
}
key "app/locked" {
  policy = "read"
}
key_prefix "app/secret/" {
  policy = "deny"
}
"#;
    let p = create_policy(addr, &mgmt, "kv", rules).await;
    let other_dc = call(
        addr,
        "PUT",
        "/v1/acl/policy",
        Some(
            &json!({"Name": "elsewhere", "Rules": "operator = \"write\"", "Datacenters": ["dc9"]}),
        ),
        &mgmt,
    )
    .await;
    assert_eq!(other_dc.status, 200, "{}", other_dc.text());
    let other_id = other_dc.json()["ID"].as_str().unwrap().to_owned();
    let (acc, t) = create_token(
        addr,
        &mgmt,
        &json!({"Policies": [{"ID": p}, {"Name": "elsewhere"}]}),
    )
    .await;
    let put_kv = |key: &'static str| {
        let t = t.clone();
        async move {
            request_with_headers(
                addr,
                "PUT",
                &format!("/v1/kv/{key}"),
                Some(b"v".to_vec()),
                &[("x-consul-token", &t)],
            )
            .await
        }
    };
    assert_eq!(put_kv("app/x").await.status, 200);
    denied(&put_kv("app/locked").await, &acc, "key:write", "app/locked");
    denied(&put_kv("other").await, &acc, "key:write", "other");
    denied(
        &put_kv("app/secret/pw").await,
        &acc,
        "key:write",
        "app/secret/pw",
    );
    let r = call(addr, "PUT", "/v1/kv/app/secret/pw", None, &mgmt).await;
    assert_eq!(r.status, 200);
    let r = call(addr, "GET", "/v1/kv/app/secret/pw", None, &t).await;
    denied(&r, &acc, "key:read", "app/secret/pw");
    // A recursive read shows only what may be read.
    let r = call(addr, "GET", "/v1/kv/app/?recurse", None, &t).await;
    let keys: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, vec!["app/x"]);
    assert_eq!(r.header("x-consul-results-filtered-by-acls"), Some("true"));
    // A recursive delete needs write on everything below the prefix.
    let r = call(addr, "DELETE", "/v1/kv/app/?recurse", None, &t).await;
    denied(&r, &acc, "key:write", "app/");
    // The policy scoped to another datacenter grants nothing here.
    let r = call(addr, "GET", "/v1/connect/ca/configuration", None, &t).await;
    denied(&r, &acc, "operator:read", "");
    let r = call(
        addr,
        "PUT",
        &format!("/v1/acl/policy/{other_id}"),
        Some(&json!({"Name": "elsewhere", "Rules": "operator = \"write\""})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(addr, "GET", "/v1/connect/ca/configuration", None, &t).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn malformed_policies_are_400_naming_the_line() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let bad = [
        (
            "service \"web\" {\n  policy = \"write\"\n}\nnode \"n\" {\n  policy = \"sometimes\"\n}",
            "line 5",
        ),
        (
            "operator = \"read\"\n\nservice \"web\" {\n  policy = \n}",
            "line 4",
        ),
        ("acl = \"write\"\nbogus = \"read\"", "line 2"),
        (
            "key \"a\" {\n  policy = \"list\"\n}\nservice \"b\" {\n  policy = \"list\"\n}",
            "line 5",
        ),
    ];
    for (rules, line) in bad {
        let r = call(
            addr,
            "PUT",
            "/v1/acl/policy",
            Some(&json!({"Name": "bad", "Rules": rules})),
            &mgmt,
        )
        .await;
        assert_eq!(r.status, 400, "{rules}: {}", r.text());
        assert!(
            r.text().starts_with("Failed to parse ACL rules: "),
            "{}",
            r.text()
        );
        assert!(r.text().contains(line), "{rules}: {}", r.text());
    }
    let r = call(
        addr,
        "PUT",
        "/v1/acl/policy",
        Some(&json!({"Name": "has space", "Rules": ""})),
        &mgmt,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Invalid Policy: invalid Name")
    );
    create_policy(addr, &mgmt, "dup", "").await;
    let r = call(
        addr,
        "PUT",
        "/v1/acl/policy",
        Some(&json!({"Name": "dup", "Rules": ""})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("already exists"), "{}", r.text());
    // Builtins are protected.
    let r = call(
        addr,
        "DELETE",
        "/v1/acl/policy/00000000-0000-0000-0000-000000000001",
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        addr,
        "PUT",
        "/v1/acl/policy/00000000-0000-0000-0000-000000000001",
        Some(&json!({"Name": "global-management", "Rules": "acl = \"read\""})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("global-management"), "{}", r.text());
}

#[tokio::test]
async fn tokens_roles_and_their_listings() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let read_p = create_policy(addr, &mgmt, "acl-read", "acl = \"read\"").await;
    let svc_p = create_policy(
        addr,
        &mgmt,
        "svc",
        "service_prefix \"\" {\n  policy = \"write\"\n}",
    )
    .await;
    let r = call(addr, "PUT", "/v1/acl/role", Some(&json!({"Name": "ops", "Policies": [{"Name": "svc"}], "NodeIdentities": [{"NodeName": "n1", "Datacenter": "dc1"}]})), &mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let role_id = r.json()["ID"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["Policies"], json!([{"ID": svc_p, "Name": "svc"}]));
    let (reader_acc, reader) = create_token(
        addr,
        &mgmt,
        &json!({"Description": "reader", "Policies": [{"ID": read_p}]}),
    )
    .await;
    let (ops_acc, ops) = create_token(
        addr,
        &mgmt,
        &json!({"Description": "ops", "Roles": [{"Name": "ops"}]}),
    )
    .await;
    let (_, web) = create_token(
        addr,
        &mgmt,
        &json!({"Description": "web", "ServiceIdentities": [{"ServiceName": "web"}]}),
    )
    .await;
    let (_, tmpl) = create_token(addr, &mgmt, &json!({"TemplatedPolicies": [{"TemplateName": "builtin/service", "TemplateVariables": {"Name": "api"}}]})).await;
    // Role grants: its policy and its node identity.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "anything"}})),
        &ops,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&json!({"Node": "n2", "Address": "10.0.0.2"})),
        &ops,
    )
    .await;
    denied(&r, &ops_acc, "node:write", "n2");
    // Templated policy builtin/service acts as a service identity.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&json!({"Node": "n1", "SkipNodeUpdate": true, "Service": {"Service": "api"}})),
        &tmpl,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Listing: secrets hidden from acl:read, filters by policy, role, service name and ?filter.
    let r = call(addr, "GET", "/v1/acl/tokens", None, &reader).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let all = r.json();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|t| t["SecretID"] == "<hidden>"),
        "{all}"
    );
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/tokens?policy={read_p}"),
        None,
        &mgmt,
    )
    .await;
    let got: Vec<Value> = r.json().as_array().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["AccessorID"], reader_acc.as_str());
    assert_eq!(got[0]["SecretID"], reader.as_str());
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/tokens?role={role_id}"),
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(
        r.json()[0]["Roles"],
        json!([{"ID": role_id, "Name": "ops"}])
    );
    let r = call(addr, "GET", "/v1/acl/tokens?servicename=web", None, &mgmt).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["Description"], "web");
    let r = call(
        addr,
        "GET",
        "/v1/acl/tokens?filter=Description%20%3D%3D%20ops",
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    // The reader may not write ACLs; reading a token shows its secret only to acl:write.
    let r = call(addr, "PUT", "/v1/acl/token", Some(&json!({})), &reader).await;
    denied(&r, &reader_acc, "acl:write", "");
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/token/{ops_acc}"),
        None,
        &reader,
    )
    .await;
    assert_eq!(r.json()["SecretID"], "<hidden>");
    // token/self needs no ACL rights and shows the secret.
    let r = call(addr, "GET", "/v1/acl/token/self", None, &web).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["SecretID"], web.as_str());
    assert_eq!(
        r.json()["ServiceIdentities"],
        json!([{"ServiceName": "web"}])
    );
    // Clone, update, delete.
    let r = call(
        addr,
        "PUT",
        &format!("/v1/acl/token/{ops_acc}/clone"),
        Some(&json!({"Description": "ops 2"})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let clone = r.json();
    assert_eq!(clone["Description"], "ops 2");
    assert_eq!(clone["Roles"], json!([{"ID": role_id, "Name": "ops"}]));
    assert_ne!(clone["SecretID"], ops.as_str());
    let r = call(
        addr,
        "PUT",
        &format!("/v1/acl/token/{ops_acc}"),
        Some(&json!({"Description": "ops, now reading", "Policies": [{"ID": read_p}]})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["SecretID"], ops.as_str());
    let r = call(addr, "GET", "/v1/acl/tokens", None, &ops).await;
    assert_eq!(r.status, 200);
    let r = call(
        addr,
        "PUT",
        &format!("/v1/acl/token/{ops_acc}"),
        Some(&json!({"SecretID": "5d3d3b4e-3f9b-4b8e-9d55-0a3a2c1e7f10"})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        addr,
        "DELETE",
        &format!("/v1/acl/token/{ops_acc}"),
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(addr, "GET", "/v1/acl/token/self", None, &ops).await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/token/{ops_acc}"),
        None,
        &mgmt,
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    // Bad links and identities are refused.
    let r = call(
        addr,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"Policies": [{"Name": "nope"}]})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("No such ACL policy with name \"nope\""),
        "{}",
        r.text()
    );
    let r = call(
        addr,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"ServiceIdentities": [{"ServiceName": "Bad Name"}]})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        addr,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"TemplatedPolicies": [{"TemplateName": "builtin/nope"}]})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    // Roles by name, 404 when absent.
    let r = call(addr, "GET", "/v1/acl/role/name/ops", None, &mgmt).await;
    assert_eq!(r.json()["ID"], role_id.as_str());
    let r = call(addr, "GET", "/v1/acl/role/name/nope", None, &mgmt).await;
    assert_eq!(r.status, 404);
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/roles?policy={svc_p}"),
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = call(addr, "GET", "/v1/acl/policy/name/svc", None, &mgmt).await;
    assert_eq!(r.json()["ID"], svc_p.as_str());
}

#[tokio::test]
async fn expired_tokens_stop_working_and_are_reaped() {
    let clock = devserver::Clock::system();
    let c2 = clock.clone();
    let server = start_with(move |c| {
        c.acl.enabled = true;
        c.acl.default_policy = devserver::DefaultPolicy::Deny;
        c.clock = c2;
    })
    .await;
    let addr = server.http_addr();
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    let mgmt = r.json()["SecretID"].as_str().unwrap().to_owned();
    let r = call(
        addr,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"ExpirationTTL": "5s"})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(
        addr,
        "PUT",
        "/v1/acl/token",
        Some(&json!({"ExpirationTTL": "10m", "ServiceIdentities": [{"ServiceName": "web"}]})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let acc = r.json()["AccessorID"].as_str().unwrap().to_owned();
    let secret = r.json()["SecretID"].as_str().unwrap().to_owned();
    assert!(r.json()["ExpirationTime"].is_string());
    assert_eq!(
        call(addr, "GET", "/v1/acl/token/self", None, &secret)
            .await
            .status,
        200
    );
    clock.advance(Duration::from_secs(11 * 60));
    let r = call(addr, "GET", "/v1/catalog/services", None, &secret).await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    // The reaper runs when the clock moves; poll the listing until the record is gone.
    let mut gone = false;
    for _ in 0..100 {
        let r = call(addr, "GET", "/v1/acl/tokens", None, &mgmt).await;
        let raw_has = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["AccessorID"] == acc.as_str());
        assert!(!raw_has, "listings never show expired tokens");
        let ext = call(addr, "GET", &format!("/v1/acl/token/{acc}"), None, &mgmt).await;
        if ext.status == 403 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone);
}

#[tokio::test]
async fn acl_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let conf = |c: &mut devserver::Config| {
        c.acl.enabled = true;
        c.acl.default_policy = devserver::DefaultPolicy::Deny;
        c.data_dir = Some(path.clone());
    };
    let server = start_with(conf).await;
    let addr = server.http_addr();
    let mgmt = call(addr, "PUT", "/v1/acl/bootstrap", None, "")
        .await
        .json()["SecretID"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = create_policy(
        addr,
        &mgmt,
        "p",
        "node_prefix \"\" {\n  policy = \"read\"\n}",
    )
    .await;
    let (_, t) = create_token(addr, &mgmt, &json!({"Policies": [{"ID": p}]})).await;
    server.shutdown().await;
    let log = std::fs::read(dir.path().join("state.snapshot")).unwrap_or_default();
    assert!(!log.is_empty());
    let server = start_with(conf).await;
    let addr = server.http_addr();
    assert_eq!(
        call(addr, "GET", "/v1/catalog/nodes", None, &t)
            .await
            .status,
        200
    );
    assert_eq!(
        call(addr, "GET", "/v1/acl/policy/name/p", None, &mgmt)
            .await
            .status,
        200
    );
    let r = call(addr, "PUT", "/v1/acl/bootstrap", None, "").await;
    assert_eq!(r.status, 403, "bootstrap stays done across restarts");
}

#[tokio::test]
async fn config_entries_intentions_and_connect_follow_consuls_rules() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let (acc, web) = create_token(
        addr,
        &mgmt,
        &json!({"ServiceIdentities": [{"ServiceName": "web"}]}),
    )
    .await;
    let sd = |name: &str| json!({"Kind": "service-defaults", "Name": name, "Protocol": "http"});
    assert_eq!(
        call(addr, "PUT", "/v1/config", Some(&sd("web")), &web)
            .await
            .status,
        200
    );
    denied(
        &call(addr, "PUT", "/v1/config", Some(&sd("db")), &web).await,
        &acc,
        "service:write",
        "db",
    );
    let pd = json!({"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}});
    denied(
        &call(addr, "PUT", "/v1/config", Some(&pd), &web).await,
        &acc,
        "mesh:write",
        "global",
    );
    assert_eq!(
        call(addr, "PUT", "/v1/config", Some(&pd), &mgmt)
            .await
            .status,
        200
    );
    // proxy-defaults are readable by anyone; service-defaults need service:read.
    assert_eq!(
        call(addr, "GET", "/v1/config/proxy-defaults/global", None, "")
            .await
            .status,
        200
    );
    denied(
        &call(addr, "GET", "/v1/config/service-defaults/web", None, "").await,
        "00000000-0000-0000-0000-000000000002",
        "service:read",
        "web",
    );
    // Intentions: write needs intentions write on the destination; the identity only reads them.
    let r = call(
        addr,
        "PUT",
        "/v1/connect/intentions/exact?source=api&destination=web",
        Some(&json!({"Action": "allow"})),
        &web,
    )
    .await;
    denied(&r, &acc, "intention:write", "web");
    let r = call(
        addr,
        "PUT",
        "/v1/connect/intentions/exact?source=api&destination=web",
        Some(&json!({"Action": "allow"})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        addr,
        "GET",
        "/v1/connect/intentions/match?by=destination&name=web",
        None,
        &web,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        addr,
        "GET",
        "/v1/connect/intentions/match?by=destination&name=web",
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        addr,
        "GET",
        "/v1/connect/intentions/check?source=api&destination=web",
        None,
        &web,
    )
    .await;
    assert_eq!(r.json(), json!({"Allowed": true}));
    // Default deny decides connections no intention covers.
    let r = call(
        addr,
        "GET",
        "/v1/connect/intentions/check?source=db&destination=web",
        None,
        &web,
    )
    .await;
    assert_eq!(r.json(), json!({"Allowed": false}));
    // Leaf certificates need service:write on the service.
    assert_eq!(
        call(addr, "GET", "/v1/agent/connect/ca/leaf/web", None, &web)
            .await
            .status,
        200
    );
    denied(
        &call(addr, "GET", "/v1/agent/connect/ca/leaf/db", None, &web).await,
        &acc,
        "service:write",
        "db",
    );
    // CSR signing checks the SPIFFE ID against service:write.
    let td = trust_domain(addr).await;
    for (svc, ok) in [("web", true), ("db", false)] {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            format!("spiffe://{td}/ns/default/dc/dc1/svc/{svc}")
                .try_into()
                .unwrap(),
        )];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let r = call(
            addr,
            "POST",
            "/v1/connect/ca/sign",
            Some(&json!({"CSR": csr})),
            &web,
        )
        .await;
        assert_eq!(r.status == 200, ok, "{svc}: {} {}", r.status, r.text());
        if !ok {
            assert_eq!(r.status, 403);
            assert!(r.text().starts_with("Permission denied"), "{}", r.text());
        }
    }
}

fn sign_jwt(key: &rcgen::KeyPair, claims: &Value) -> String {
    let k = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        claims,
        &k,
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_logins_bind_by_selector_and_refuse_bad_tokens_and_methods() {
    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut method = json!({"Name": "jwt", "Type": "jwt", "MaxTokenTTL": "1h", "Config": {
        "JWTValidationPubKeys": [key.public_key_pem()], "JWTSupportedAlgs": ["ES256"],
        "BoundAudiences": ["consul"], "ClaimMappings": {"/svc/name": "service", "node": "node"},
        "ListClaimMappings": {"groups": "groups"}}});
    // Bad configurations are refused with the reason.
    let mut bad = method.clone();
    bad["Config"]["JWTValidationPubKeys"] = json!(["not a key"]);
    let r = call(addr, "PUT", "/v1/acl/auth-method", Some(&bad), &mgmt).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("JWTValidationPubKeys[0]"), "{}", r.text());
    bad = method.clone();
    bad["Config"]["JWKSURL"] = json!("https://example.invalid/jwks");
    assert_eq!(
        call(addr, "PUT", "/v1/acl/auth-method", Some(&bad), &mgmt)
            .await
            .status,
        400
    );
    bad = method.clone();
    bad["Type"] = json!("kubernetes");
    assert_eq!(
        call(addr, "PUT", "/v1/acl/auth-method", Some(&bad), &mgmt)
            .await
            .status,
        400
    );
    let r = call(addr, "PUT", "/v1/acl/auth-method", Some(&method), &mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    method["Description"] = json!("changed");
    let r = call(addr, "PUT", "/v1/acl/auth-method/jwt", Some(&method), &mgmt).await;
    assert_eq!(r.json()["Description"], "changed");
    let r = call(addr, "GET", "/v1/acl/auth-methods", None, &mgmt).await;
    assert!(r.json()[0].get("Config").is_none());
    // Binding rules: unknown variables and bind types are refused.
    let rule = |bind_type: &str, name: &str, selector: &str| json!({"AuthMethod": "jwt", "BindType": bind_type, "BindName": name, "Selector": selector});
    let r = call(
        addr,
        "PUT",
        "/v1/acl/binding-rule",
        Some(&rule("service", "${value.nope}", "")),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("value.nope"), "{}", r.text());
    let r = call(
        addr,
        "PUT",
        "/v1/acl/binding-rule",
        Some(&rule("group", "x", "")),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        addr,
        "PUT",
        "/v1/acl/binding-rule",
        Some(&rule("service", "${value.service}", "ops in")),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 400);
    for r in [
        rule("service", "${value.service}", "ops in list.groups"),
        rule("node", "${value.node}", "value.node != \"\""),
        rule("templated-policy", "builtin/dns", ""),
    ] {
        let resp = call(addr, "PUT", "/v1/acl/binding-rule", Some(&r), &mgmt).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let login = |claims: Value| {
        let token = sign_jwt(&key, &claims);
        async move {
            call(
                addr,
                "POST",
                "/v1/acl/login",
                Some(&json!({"AuthMethod": "jwt", "BearerToken": token})),
                "",
            )
            .await
        }
    };
    let r = login(json!({"aud": "consul", "exp": now + 60, "svc": {"name": "api"}, "node": "n7", "groups": ["ops"]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(t["ServiceIdentities"], json!([{"ServiceName": "api"}]));
    assert_eq!(
        t["NodeIdentities"],
        json!([{"NodeName": "n7", "Datacenter": "dc1"}])
    );
    assert_eq!(t["TemplatedPolicies"][0]["TemplateName"], "builtin/dns");
    assert_eq!(t["Description"], "token created via login");
    assert!(t["ExpirationTime"].is_string());
    // Not in "ops" and no node: only the DNS template binds.
    let r = login(json!({"aud": "consul", "svc": {"name": "api"}, "groups": ["dev"]})).await;
    assert_eq!(r.json()["ServiceIdentities"], Value::Null);
    // A bound name that is not a valid service name fails the login.
    let r = login(json!({"aud": "consul", "svc": {"name": "Not Valid"}, "groups": ["ops"]})).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("is invalid"), "{}", r.text());
    // Wrong audience.
    let r = login(json!({"aud": "other", "svc": {"name": "api"}})).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("audience"), "{}", r.text());
    // Not a JWT at all.
    let r = call(
        addr,
        "POST",
        "/v1/acl/login",
        Some(&json!({"AuthMethod": "jwt", "BearerToken": "abc"})),
        "",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // With the DNS rule gone, a token no rule binds is refused.
    let rules = call(
        addr,
        "GET",
        "/v1/acl/binding-rules?authmethod=jwt",
        None,
        &mgmt,
    )
    .await
    .json();
    let dns = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["BindType"] == "templated-policy")
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(
            addr,
            "DELETE",
            &format!("/v1/acl/binding-rule/{dns}"),
            None,
            &mgmt
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            addr,
            "GET",
            &format!("/v1/acl/binding-rule/{dns}"),
            None,
            &mgmt
        )
        .await
        .status,
        404
    );
    let r = login(json!({"aud": "consul", "groups": ["dev"]})).await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
}
