//! Task networking with real namespaces: tasks reach each other across the bridge, the host reaches
//! them, and each task's metadata endpoint (and task-role credentials) answer at 169.254.170.2.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::{Harness, assert_clean, def, http_get_eventually, link_exists};
use consul_ecs_local::TaskOptions;
use serde_json::{Value, json};

fn fake_service(name: &str, upstreams: &str) -> Value {
    json!({
        "family": name,
        "containerDefinitions": [{
            "name": "app",
            "image": "fake-service",
            "environment": [
                {"name": "NAME", "value": name},
                {"name": "LISTEN_ADDR", "value": "0.0.0.0:9090"},
                {"name": "UPSTREAM_URIS", "value": upstreams}
            ],
            "portMappings": [{"containerPort": 9090}]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_with_their_own_addresses_reach_each_other_across_the_bridge() {
    let h = Harness::new(20);
    let bridge = common::network(20).bridge;
    let b = h
        .runtime
        .start_task(
            &def(&fake_service("b", "").to_string()),
            TaskOptions::default(),
        )
        .await
        .unwrap();
    let b_ip = b.ip().unwrap();
    let a_def = fake_service("a", &format!("http://{b_ip}:9090/from-a"));
    let a = h
        .runtime
        .start_task(&def(&a_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let a_ip = a.ip().unwrap();
    assert_ne!(a_ip, b_ip);
    assert_eq!(h.runtime.gateway().to_string(), "198.19.120.1");
    // The host reaches A at its address; A calls B at B's.
    let body = http_get_eventually(SocketAddr::from((a_ip, 9090)), "/").await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["name"], "a");
    assert_eq!(
        reply["hostname"],
        format!("ip-{}", a_ip.to_string().replace('.', "-"))
    );
    let call = &reply["upstream_calls"][0];
    assert_eq!(call["name"], "b", "{reply}");
    assert_eq!(call["code"], 200);
    assert_eq!(call["uri"], format!("http://{b_ip}:9090/from-a"));
    assert_eq!(
        call["hostname"],
        format!("ip-{}", b_ip.to_string().replace('.', "-"))
    );
    let a_record = a.stop().await;
    assert_clean(&a_record, h.runtime.state().root()).await;
    // The bridge stays while B runs, and goes with the last task.
    assert!(link_exists(&bridge));
    let b_record = b.stop().await;
    assert_clean(&b_record, h.runtime.state().root()).await;
    assert!(!link_exists(&bridge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_endpoint_answers_inside_the_task_with_its_own_document() {
    let h = Harness::new(21);
    // fake-service fetches what it is told to call, so it reads the endpoint from inside the task.
    let launcher = common::program().display().to_string();
    let script = format!(
        "UPSTREAM_URIS=\"$ECS_CONTAINER_METADATA_URI_V4/task,$ECS_CONTAINER_METADATA_URI_V4,\
         http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI\" exec {launcher} fake-service"
    );
    let task_def = json!({
        "family": "meta",
        "taskRoleArn": "arn:aws:iam::123456789012:role/meta-task",
        "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c", script],
             "environment": [{"name": "NAME", "value": "meta"}, {"name": "LISTEN_ADDR", "value": "0.0.0.0:9090"}]},
            {"name": "sidecar", "image": "sh", "essential": false, "command": ["-c", "exec sleep 30"],
             "healthCheck": {"command": ["CMD", "true"], "interval": 0.2}}
        ]
    });
    let mut options = TaskOptions::default();
    options.tags.insert("team".to_owned(), "mesh".to_owned());
    let mut task = h
        .runtime
        .start_task(&def(&task_def.to_string()), options)
        .await
        .unwrap();
    let ip = task.ip().unwrap();
    task.wait_until(|r| {
        r.container("sidecar").unwrap().health == Some(consul_ecs_local::Health::Healthy)
    })
    .await;
    let body = http_get_eventually(SocketAddr::from((ip, 9090)), "/").await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    let calls = reply["upstream_calls"].as_array().unwrap();
    let document = &calls[0];
    assert_eq!(document["code"], 200, "{document}");
    assert_eq!(
        document["TaskARN"],
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task/local/{}",
            task.id()
        )
    );
    assert_eq!(document["Family"], "meta");
    assert_eq!(document["KnownStatus"], "RUNNING");
    let containers = document["Containers"].as_array().unwrap();
    let app = containers.iter().find(|c| c["Name"] == "app").unwrap();
    assert_eq!(app["KnownStatus"], "RUNNING");
    assert_eq!(app["Networks"][0]["IPv4Addresses"][0], ip.to_string());
    assert_eq!(app["Networks"][0]["IPv4SubnetCIDRBlock"], "198.19.121.0/24");
    let sidecar = containers.iter().find(|c| c["Name"] == "sidecar").unwrap();
    assert_eq!(sidecar["Health"]["status"], "HEALTHY");
    // The container's own document.
    assert_eq!(calls[1]["Name"], "app", "{}", calls[1]);
    // Task-role credentials.
    assert_eq!(calls[2]["AccessKeyId"], "ASIATESTKEY", "{}", calls[2]);
    assert_eq!(
        calls[2]["RoleArn"],
        "arn:aws:iam::123456789012:role/meta-task"
    );
    // The host-side view matches.
    let metadata = task.metadata();
    assert_eq!(metadata.task_tags.unwrap()["team"], "mesh");
    let record = task.stop().await;
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_can_be_prepared_before_any_task_and_released_after() {
    let h = Harness::new(22);
    let bridge = common::network(22).bridge;
    let gateway = h.runtime.prepare_network().unwrap();
    assert_eq!(gateway.to_string(), "198.19.122.1");
    assert!(link_exists(&bridge));
    // A host service can listen on the gateway before tasks exist, and tasks reach it there.
    let listener = tokio::net::TcpListener::bind((gateway, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .await;
        }
    });
    let task = h
        .runtime
        .start_task(
            &def(&fake_service("c", &format!("http://{gateway}:{port}/")).to_string()),
            TaskOptions::default(),
        )
        .await
        .unwrap();
    let body = http_get_eventually(SocketAddr::from((task.ip().unwrap(), 9090)), "/").await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["upstream_calls"][0]["code"], 200, "{reply}");
    let record = task.stop().await;
    assert_clean(&record, h.runtime.state().root()).await;
    // Prepared, so the bridge outlives the last task until released.
    assert!(link_exists(&bridge));
    h.runtime.release_network();
    assert!(!link_exists(&bridge));
}
