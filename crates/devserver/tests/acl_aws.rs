//! Login with the `aws-iam` auth method against moto's STS and IAM, with SigV4 verification on: the
//! server replays the signed requests in real bearer tokens, binds a service identity from the role's
//! tag, and refuses forged tokens, a wrong server ID and roles outside the bound ARNs.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::moto::Moto;
use common::*;
use consul_ecs_aws::iam_login::{Credentials, LoginOptions, bearer_token_with_credentials};
use serde_json::{Value, json};

const SETUP: &str = include_str!("moto_setup_acl.py");
const NODE: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/test";
const TAG: &str = "consul.hashicorp.com.service-name";

fn creds(v: &Value) -> Credentials {
    let f = |k: &str| v[k].as_str().unwrap().to_owned();
    Credentials::new(
        f("AccessKeyId"),
        f("SecretAccessKey"),
        Some(f("SessionToken")),
        None,
        "moto",
    )
}

async fn bearer(moto: &Moto, c: &Credentials, server_id: &str) -> String {
    let mut o = LoginOptions::new("us-east-1");
    o.sts_endpoint = Some(moto.url.clone());
    o.iam_endpoint = Some(moto.url.clone());
    o.server_id_header_value = Some(server_id.to_owned());
    bearer_token_with_credentials(&o, c)
        .await
        .unwrap()
        .into_inner()
}

async fn login(addr: std::net::SocketAddr, token: &str) -> Resp {
    let body = json!({
        "AuthMethod": "iam-ecs-service-token",
        "BearerToken": token,
        "Meta": {"consul.hashicorp.com/task-id": "0123", "consul.hashicorp.com/cluster": NODE},
    });
    call(addr, "POST", "/v1/acl/login", Some(&body), "").await
}

/// Rewrites one header of the STS request inside a bearer token (keeping everything else).
fn forge(token: &str, header: &str, f: impl Fn(&str) -> String) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut t: Value = serde_json::from_str(token).unwrap();
    let raw = b64
        .decode(t["iam_request_headers"].as_str().unwrap())
        .unwrap();
    let mut headers: Value = serde_json::from_slice(&raw).unwrap();
    let v = headers[header][0].as_str().unwrap().to_owned();
    headers[header] = json!([f(&v)]);
    t["iam_request_headers"] = json!(b64.encode(serde_json::to_vec(&headers).unwrap()));
    t.to_string()
}

#[tokio::test]
async fn iam_login_binds_the_role_tag_and_refuses_forgeries() {
    let moto = Moto::start(4);
    let roles = moto.run_script(SETUP);
    let web_creds = creds(&roles["web-task"]);
    let stray_creds = creds(&roles["stray-task"]);

    let (server, mgmt) = start_acl(true).await;
    let addr = server.http_addr();
    let method = json!({
        "Name": "iam-ecs-service-token",
        "Type": "aws-iam",
        "Description": "AWS IAM auth method for ECS service tokens",
        "Config": {
            "BoundIAMPrincipalARNs": ["arn:aws:iam::123456789012:role/consul-ecs/*"],
            "EnableIAMEntityDetails": true,
            "IAMEntityTags": [TAG],
            "ServerIDHeaderValue": "consul.dev",
            "STSEndpoint": moto.url,
            "IAMEndpoint": moto.url,
        }
    });
    let r = call(addr, "PUT", "/v1/acl/auth-method", Some(&method), &mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rule = json!({
        "AuthMethod": "iam-ecs-service-token",
        "Description": "Bind a service identity from IAM role tag for ECS",
        "BindType": "service",
        "BindName": format!("${{entity_tags.{TAG}}}"),
    });
    let r = call(addr, "PUT", "/v1/acl/binding-rule", Some(&rule), &mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The controller's gateway rule: its selector does not match a service task, so it binds nothing.
    let gw = json!({
        "AuthMethod": "iam-ecs-service-token",
        "BindType": "role",
        "BindName": "consul-ecs-mesh-gateway-role",
        "Selector": "entity_tags[\"consul.hashicorp.com.gateway-kind\"] == \"mesh-gateway\"",
    });
    let r = call(addr, "PUT", "/v1/acl/binding-rule", Some(&gw), &mgmt).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Log in.
    let token = bearer(&moto, &web_creds, "consul.dev").await;
    let r = login(addr, &token).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), moto.log());
    let t = r.json();
    assert_eq!(t["AuthMethod"], "iam-ecs-service-token");
    assert_eq!(t["ServiceIdentities"], json!([{"ServiceName": "web"}]));
    assert_eq!(t["Local"], json!(true));
    assert_eq!(
        t["Description"],
        format!(
            "token created via login: {{\"consul.hashicorp.com/cluster\":\"{NODE}\",\"consul.hashicorp.com/task-id\":\"0123\"}}"
        )
    );
    let accessor = t["AccessorID"].as_str().unwrap().to_owned();
    let secret = t["SecretID"].as_str().unwrap().to_owned();

    // The login token registers web and not db.
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&json!({"Node": NODE, "Address": "10.1.2.3"})),
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&ecs_service_registration()),
        &secret,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut db = ecs_service_registration();
    db["Service"]["Service"] = json!("db");
    db["Service"]["ID"] = json!("db-0123");
    db["Checks"] = json!([]);
    let r = call(addr, "PUT", "/v1/catalog/register", Some(&db), &secret).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        format!(
            "Permission denied: token with AccessorID '{accessor}' lacks permission 'service:write' on \"db\""
        )
    );
    // Default deny: the anonymous token sees no services, and is told results were filtered.
    let r = get(addr, "/v1/catalog/services").await;
    assert_eq!(r.json(), json!({}));
    assert_eq!(r.header("x-consul-results-filtered-by-acls"), Some("true"));

    // The controller finds login tokens by method and by the metadata in their description.
    let r = call(
        addr,
        "GET",
        "/v1/acl/tokens?authmethod=iam-ecs-service-token",
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let filter = "Description%20contains%20%22consul.hashicorp.com%2Ftask-id%22";
    let r = call(
        addr,
        "GET",
        &format!("/v1/acl/tokens?filter={filter}"),
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1, "{}", r.text());

    // Rejections.
    let wrong_id = bearer(&moto, &web_creds, "other-server").await;
    let r = login(addr, &wrong_id).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("X-Consul-IAM-ServerID"), "{}", r.text());

    let forged = forge(&token, "X-Consul-Iam-Getentity-Body", |b| {
        b.replace("web-task", "stray-task")
    });
    let r = login(addr, &forged).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().starts_with(
            "Permission denied: received error code 403 from STS: SignatureDoesNotMatch"
        ),
        "{}",
        r.text()
    );

    let stray = bearer(&moto, &stray_creds, "consul.dev").await;
    let r = login(addr, &stray).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text()
            .contains("arn:aws:iam::123456789012:role/other/stray-task is not trusted"),
        "{}",
        r.text()
    );

    let r = login(addr, "not a token").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(
        addr,
        "POST",
        "/v1/acl/login",
        Some(&json!({"AuthMethod": "nope", "BearerToken": token})),
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());

    // Only login tokens may log out; logging out makes the token unusable.
    let r = call(addr, "POST", "/v1/acl/logout", None, &mgmt).await;
    assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
    let r = call(addr, "POST", "/v1/acl/logout", None, &secret).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        addr,
        "PUT",
        "/v1/catalog/register",
        Some(&ecs_service_registration()),
        &secret,
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    let r = call(addr, "POST", "/v1/acl/logout", None, &secret).await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));

    // Deleting the auth method deletes its rules and tokens.
    let again = login(addr, &token).await.json()["SecretID"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        addr,
        "DELETE",
        "/v1/acl/auth-method/iam-ecs-service-token",
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(addr, "GET", "/v1/acl/token/self", None, &again).await;
    assert_eq!(r.status, 403);
    let r = call(
        addr,
        "GET",
        "/v1/acl/binding-rules?authmethod=iam-ecs-service-token",
        None,
        &mgmt,
    )
    .await;
    assert_eq!(r.json(), json!([]));
}
