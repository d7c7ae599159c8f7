//! Real login tokens against moto with SigV4 verification on: the embedded `GetCallerIdentity` and
//! `GetRole` requests, replayed exactly as encoded, name the assumed role and return its tags, and
//! any tampering is refused. Also the default credential chain (environment variables and ECS
//! container credentials from the metadata server) in a real process.
//!
//! moto is started on a free loopback port per test and killed when the test ends; if it is not
//! installed these tests fail and say that `scripts/setup.sh` installs it.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Moto;
use consul_ecs_aws::aws_xml;
use consul_ecs_aws::bearer_token::{
    EntityAction, LoginRequest, TokenRules, parse_bearer_token_with,
};
use consul_ecs_aws::iam_login::{
    Credentials, LoginOptions, bearer_token_with_credentials, send_signed_request,
};
use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder, TaskRoleCredentials};

const SETUP: &str = include_str!("moto_setup.py");
/// The number of unauthenticated calls `moto_setup.py` makes before signatures are checked.
const SETUP_UNAUTHENTICATED_CALLS: u32 = 4;
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// The assumed-role session `moto_setup.py` creates.
struct Assumed {
    credentials: Credentials,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    role_arn: String,
    assumed_role_arn: String,
}

fn setup(moto: &Moto) -> Assumed {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .args(["-c", SETUP])
        .env("MOTO_URL", &moto.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "moto setup failed:\n{}\nmoto log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        moto.log()
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let field = |name: &str| json[name].as_str().unwrap().to_owned();
    Assumed {
        credentials: Credentials::new(
            field("AccessKeyId"),
            field("SecretAccessKey"),
            Some(field("SessionToken")),
            None,
            "moto",
        ),
        access_key_id: field("AccessKeyId"),
        secret_access_key: field("SecretAccessKey"),
        session_token: field("SessionToken"),
        role_arn: field("RoleArn"),
        assumed_role_arn: field("AssumedRoleArn"),
    }
}

fn rules(moto: &Moto, server_id: Option<&str>) -> TokenRules {
    TokenRules {
        sts_endpoint: Some(moto.url.clone()),
        iam_endpoint: Some(moto.url.clone()),
        require_entity: true,
        server_id_header_value: server_id.map(str::to_owned),
        allowed_sts_header_values: Vec::new(),
    }
}

/// Replays both embedded requests exactly as encoded and checks what moto says about them.
async fn assert_replays_as(login: &LoginRequest, assumed: &Assumed, moto: &Moto) {
    let response = send_signed_request(&login.sts, None, REPLAY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}\n{}", response.body, moto.log());
    let identity = aws_xml::parse_get_caller_identity(&response.body).unwrap();
    assert_eq!(identity.arn, assumed.assumed_role_arn);
    assert_eq!(
        identity.arn,
        "arn:aws:sts::123456789012:assumed-role/consul-ecs-app/task-0123"
    );

    let entity = login.entity.as_ref().unwrap();
    assert_eq!(entity.action, EntityAction::GetRole);
    assert_eq!(entity.name, "consul-ecs-app");
    let response = send_signed_request(&entity.request, None, REPLAY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}\n{}", response.body, moto.log());
    let role = aws_xml::parse_get_entity(&response.body).unwrap();
    assert_eq!(role.arn, assumed.role_arn);
    assert_eq!(role.name, "consul-ecs-app");
    assert_eq!(role.path, "/consul-ecs/");
    assert_eq!(
        role.tags
            .get("consul.hashicorp.com.service-name")
            .map(String::as_str),
        Some("app")
    );
}

#[tokio::test]
async fn token_replays_to_the_assumed_role_and_its_tags() {
    let moto = Moto::start(Some(SETUP_UNAUTHENTICATED_CALLS));
    let assumed = setup(&moto);

    let mut options = LoginOptions::new("us-east-1");
    options.sts_endpoint = Some(moto.url.clone());
    options.iam_endpoint = Some(moto.url.clone());
    options.server_id_header_value = Some("consul.dev".to_owned());
    let token = bearer_token_with_credentials(&options, &assumed.credentials)
        .await
        .unwrap();
    let login = parse_bearer_token_with(token.expose(), &rules(&moto, Some("consul.dev"))).unwrap();
    assert_eq!(login.server_id.as_deref(), Some("consul.dev"));
    assert_replays_as(&login, &assumed, &moto).await;

    // The signatures cover the Consul headers and the embedded request: change any of them and
    // STS or IAM refuses the replay, as it would refuse a forged login.
    let mut forged = login.sts.clone();
    forged.headers.insert(
        "X-Consul-Iam-Serverid".to_owned(),
        vec!["another-server".to_owned()],
    );
    let response = send_signed_request(&forged, None, REPLAY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(
        aws_xml::parse_error(&response.body).unwrap().code,
        "SignatureDoesNotMatch"
    );

    let mut forged = login.entity.clone().unwrap().request;
    forged.body = forged.body.replace("consul-ecs-app", "some-admin-role");
    let response = send_signed_request(&forged, None, REPLAY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.status, 403, "{}", response.body);

    // A token built with a wrong secret is refused at the real GetCallerIdentity call.
    let wrong = Credentials::new(
        assumed.access_key_id.clone(),
        "not-the-secret",
        Some(assumed.session_token.clone()),
        None,
        "moto",
    );
    let err = bearer_token_with_credentials(&options, &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    drop(moto);
}

fn token_from_tool(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "consul-ecs-aws token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn default_credential_chain_in_a_real_process() {
    let moto = Moto::start(Some(SETUP_UNAUTHENTICATED_CALLS));
    let assumed = setup(&moto);

    // Environment variables, with moto reached through the SDK's AWS_ENDPOINT_URL.
    let token = token_from_tool(
        common::tool()
            .args(["token", "--region", "us-east-1"])
            .env("AWS_ACCESS_KEY_ID", &assumed.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &assumed.secret_access_key)
            .env("AWS_SESSION_TOKEN", &assumed.session_token)
            .env("AWS_ENDPOINT_URL", &moto.url),
    );
    let login = parse_bearer_token_with(&token, &rules(&moto, None)).unwrap();
    assert_eq!(login.sts.url, format!("{}/", moto.url));
    assert_replays_as(&login, &assumed, &moto).await;

    // ECS container credentials from the metadata server, as a task role is delivered; the region
    // comes from the task ARN in ECS_CONTAINER_METADATA_URI_V4.
    let task = TaskBuilder::fargate("mesh")
        .region("us-east-1")
        .container("app")
        .build();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = MetadataServer::start(loopback, task).await.unwrap();
    server.set_credentials(
        "task-0123",
        TaskRoleCredentials::new(
            assumed.access_key_id.clone(),
            assumed.secret_access_key.clone(),
            assumed.session_token.clone(),
            assumed.role_arn.clone(),
            SystemTime::now() + Duration::from_secs(3600),
        ),
    );
    let metadata_uri = server.container_url("app").unwrap();
    let credentials_uri = server.credentials_url("task-0123");
    let mut command = common::tool();
    command
        .args([
            "token",
            "--sts-endpoint",
            &moto.url,
            "--iam-endpoint",
            &moto.url,
        ])
        .env("ECS_CONTAINER_METADATA_URI_V4", &metadata_uri)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &credentials_uri);
    let token = tokio::task::spawn_blocking(move || token_from_tool(&mut command))
        .await
        .unwrap();
    let login = parse_bearer_token_with(&token, &rules(&moto, None)).unwrap();
    assert_replays_as(&login, &assumed, &moto).await;

    server.shutdown().await;
    drop(moto);
}

#[test]
fn no_credentials_anywhere_is_a_clear_error() {
    let out = common::tool()
        .args(["token", "--region", "us-east-1", "--no-entity"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: loading AWS credentials: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
