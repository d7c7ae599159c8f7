//! The task metadata client against the in-process metadata server (and misbehaving servers) over
//! real sockets, and the diagnostic binary reading `ECS_CONTAINER_METADATA_URI_V4`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder, TaskRoleCredentials};
use consul_ecs_aws::task_metadata::{
    HEALTHY, MetadataError, RUNNING, STOPPED, TaskMetadataClient, UNHEALTHY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn server() -> MetadataServer {
    let task = TaskBuilder::fargate("mesh")
        .region("us-west-2")
        .account("111122223333")
        .task_id("feedfacefeedfacefeedfacefeedface")
        .ip("10.0.7.9")
        .container_with_health_check("app")
        .container_with_health_check("consul-dataplane")
        .container("consul-ecs-health-sync")
        .build();
    MetadataServer::start(loopback(), task).await.unwrap()
}

#[tokio::test]
async fn reads_the_task_and_derives_values() {
    let server = server().await;
    let client = TaskMetadataClient::new(&server.base_url()).unwrap();
    let task = client.task().await.unwrap();
    assert_eq!(task, server.task());
    assert_eq!(task.task_id(), "feedfacefeedfacefeedfacefeedface");
    assert_eq!(
        task.cluster_arn().unwrap(),
        "arn:aws:ecs:us-west-2:111122223333:cluster/mesh"
    );
    assert_eq!(task.region().unwrap(), "us-west-2");
    assert_eq!(task.node_ip(), "10.0.7.9");
    server.shutdown().await;
}

#[tokio::test]
async fn health_changes_are_visible_on_the_next_read() {
    let server = server().await;
    let client = TaskMetadataClient::new(&server.base_url()).unwrap();
    let before = client.task().await.unwrap();
    assert_eq!(before.container("app").unwrap().health_status(), "UNKNOWN");

    assert!(server.set_container_health("app", HEALTHY));
    let after = client.task().await.unwrap();
    let health = after.container("app").unwrap().health.clone().unwrap();
    assert_eq!(health.status, HEALTHY);
    assert_eq!(health.exit_code, Some(0));
    assert!(health.status_since.is_some());

    assert!(server.set_container_health("app", UNHEALTHY));
    let task = client.task().await.unwrap();
    assert_eq!(task.container("app").unwrap().health_status(), UNHEALTHY);
    // A container without a health check gets one when a status is set, as ECS would report.
    assert!(server.set_container_health("consul-ecs-health-sync", HEALTHY));
    assert!(!server.set_container_health("no-such-container", HEALTHY));
    server.shutdown().await;
}

#[tokio::test]
async fn stopped_and_removed_containers_are_detected() {
    let server = server().await;
    let client = TaskMetadataClient::new(&server.base_url()).unwrap();
    assert!(
        !client
            .task()
            .await
            .unwrap()
            .has_container_stopped("consul-dataplane")
    );

    // Desired STOPPED while still running is not stopped yet.
    assert!(server.set_container_status("consul-dataplane", RUNNING, STOPPED));
    assert!(
        !client
            .task()
            .await
            .unwrap()
            .has_container_stopped("consul-dataplane")
    );

    assert!(server.set_container_status("consul-dataplane", STOPPED, STOPPED));
    let task = client.task().await.unwrap();
    assert!(task.has_container_stopped("consul-dataplane"));
    let dataplane = task.container("consul-dataplane").unwrap();
    assert_eq!(dataplane.exit_code, Some(0));
    assert!(dataplane.finished_at.is_some());

    assert!(server.remove_container("app"));
    let task = client.task().await.unwrap();
    assert!(task.container("app").is_none());
    assert!(
        task.has_container_stopped("app"),
        "an absent container counts as stopped"
    );
    assert!(!server.remove_container("app"));
    server.shutdown().await;
}

#[tokio::test]
async fn per_container_urls_serve_the_container_and_its_task() {
    let server = server().await;
    let url = server.container_url("consul-dataplane").unwrap();
    assert!(
        url.contains("/v4/feedfacefeedfacefeedfacefeedface-"),
        "{url}"
    );
    let client = TaskMetadataClient::new(&url).unwrap();
    assert_eq!(client.container().await.unwrap().name, "consul-dataplane");
    assert_eq!(client.task().await.unwrap(), server.task());
    let tagged = client.task_with_tags().await.unwrap();
    assert_eq!(tagged.task_tags, Some(Default::default()));

    // The root form's own document is the first NORMAL container unless chosen.
    let root = TaskMetadataClient::new(&server.base_url()).unwrap();
    assert_eq!(root.container().await.unwrap().name, "app");
    server.set_self_container("consul-ecs-health-sync");
    assert_eq!(
        root.container().await.unwrap().name,
        "consul-ecs-health-sync"
    );

    let (status, _) = common::raw_get(server.addr(), "/v4/unknown/task").await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn stats_routes_answer_in_docker_shape() {
    let server = server().await;
    let task = server.task();
    let (status, body) = common::raw_get(server.addr(), "/task/stats").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    for container in &task.containers {
        assert_eq!(
            stats[&container.docker_id]["id"],
            container.docker_id.as_str()
        );
        assert!(stats[&container.docker_id]["memory_stats"]["limit"].is_u64());
    }
    let (status, body) = common::raw_get(server.addr(), "/stats").await;
    assert_eq!(status, 200);
    let own: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(own["name"], "/app");
    server.set_container_status("app", STOPPED, STOPPED);
    let (_, body) = common::raw_get(server.addr(), "/stats").await;
    assert_eq!(body, "null", "a stopped container has no stats");
    server.shutdown().await;
}

#[tokio::test]
async fn credentials_are_served_in_the_ecs_provider_shape() {
    let server = server().await;
    let creds = TaskRoleCredentials::new(
        "ASIAEXAMPLEKEY",
        "very-secret-key",
        "session-token-value",
        "arn:aws:iam::111122223333:role/consul-ecs/app",
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    );
    let debug = format!("{creds:?}");
    assert!(!debug.contains("very-secret-key") && !debug.contains("session-token-value"));
    server.set_credentials("abc-123", creds);
    assert_eq!(
        server.credentials_url("abc-123"),
        format!("http://{}/v2/credentials/abc-123", server.addr())
    );

    let (status, body) = common::raw_get(server.addr(), "/v2/credentials/abc-123").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "AccessKeyId": "ASIAEXAMPLEKEY",
            "Expiration": "2033-05-18T03:33:20Z",
            "RoleArn": "arn:aws:iam::111122223333:role/consul-ecs/app",
            "SecretAccessKey": "very-secret-key",
            "Token": "session-token-value"
        })
    );
    server.remove_credentials("abc-123");
    let (status, _) = common::raw_get(server.addr(), "/v2/credentials/abc-123").await;
    assert_eq!(status, 400);
    server.shutdown().await;
}

/// Serves one fixed raw HTTP response to every connection.
async fn canned(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn garbage_json_is_an_error_naming_the_url_and_position() {
    let addr = canned(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"Cluster\": oops }",
    )
    .await;
    let client = TaskMetadataClient::new(&format!("http://{addr}")).unwrap();
    let err = client.task().await.unwrap_err();
    assert!(matches!(err, MetadataError::Decode { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("http://{addr}/task")),
        "{message}"
    );
    assert!(message.contains("line 1 column"), "{message}");
}

#[tokio::test]
async fn non_200_is_an_error_with_status_and_body() {
    let addr =
        canned("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 13\r\n\r\nagent is sick")
            .await;
    let client = TaskMetadataClient::new(&format!("http://{addr}/v4/x")).unwrap();
    let err = client.task().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("fetching task metadata from http://{addr}/v4/x/task: HTTP 500: agent is sick")
    );
}

#[tokio::test]
async fn server_down_is_a_connect_error() {
    let server = server().await;
    let url = server.base_url();
    server.shutdown().await;
    let client = TaskMetadataClient::new(&url).unwrap();
    let err = client.task().await.unwrap_err();
    assert!(
        matches!(
            err,
            MetadataError::Http {
                source: consul_ecs_aws::HttpError::Connect { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("{url}/task")), "{err}");
}

#[tokio::test]
async fn a_silent_server_hits_the_deadline() {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = TaskMetadataClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let err = client.task().await.unwrap_err();
    assert!(
        matches!(
            err,
            MetadataError::Http {
                source: consul_ecs_aws::HttpError::Timeout(_),
                ..
            }
        ),
        "{err:?}"
    );
    hold.abort();
}

#[test]
fn invalid_endpoints_are_rejected_up_front() {
    for url in [
        "",
        "169.254.170.2/v4/x",
        "ftp://host/x",
        "http://",
        "not a url",
    ] {
        let err = TaskMetadataClient::new(url).unwrap_err();
        assert!(
            matches!(err, MetadataError::InvalidUrl { .. }),
            "{url:?}: {err:?}"
        );
    }
    let client = TaskMetadataClient::new("http://169.254.170.2/v4/abc/").unwrap();
    assert_eq!(client.base_url(), "http://169.254.170.2/v4/abc");
}

#[test]
fn missing_env_var_is_named() {
    let out = common::tool().arg("task").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: ECS_CONTAINER_METADATA_URI_V4 env var not set"
    );
    let out = common::tool()
        .arg("task")
        .env("ECS_CONTAINER_METADATA_URI_V4", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ECS_CONTAINER_METADATA_URI_V4"));
}

#[tokio::test]
async fn from_env_reads_the_endpoint_in_a_real_process() {
    let server = server().await;
    let url = server.container_url("app").unwrap();
    let out = tokio::process::Command::from(common::tool())
        .arg("task")
        .env("ECS_CONTAINER_METADATA_URI_V4", &url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "taskId": "feedfacefeedfacefeedfacefeedface",
            "clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/mesh",
            "region": "us-west-2",
            "account": "111122223333",
            "nodeIp": "10.0.7.9"
        })
    );
    server.shutdown().await;
}
