//! The `envoy-entrypoint` state machine with real child processes, hand-fed signals and an in-process
//! ECS task metadata endpoint on a real socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Script, patience};
use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use consul_ecs_aws::task_metadata::{RUNNING, STOPPED};
use consul_ecs_entrypoint::{
    EnvoyConfig, MetadataEndpoint, Signal, SignalSender, Signals, envoy_entrypoint,
};
use tokio::task::JoinHandle;

const POLL: Duration = Duration::from_millis(200);

fn mesh_task() -> TaskBuilder {
    TaskBuilder::fargate("mesh")
        .container("consul-ecs-mesh-init")
        .container_with_health_check("consul-dataplane")
        .container("consul-ecs-health-sync")
        .internal_container("~internal~ecs~pause", "CNI_PAUSE")
}

async fn metadata(task: TaskBuilder) -> MetadataServer {
    let server = MetadataServer::start("127.0.0.1:0".parse().unwrap(), task.build())
        .await
        .unwrap();
    // mesh-init has done its job by the time the proxy runs.
    server.set_container_status("consul-ecs-mesh-init", STOPPED, STOPPED);
    server
}

fn start(command: Vec<String>, url: String) -> (SignalSender, JoinHandle<u8>) {
    let (sender, signals) = Signals::channel();
    let config = EnvoyConfig {
        command,
        metadata: MetadataEndpoint::Url(url),
        poll_interval: POLL,
    };
    (sender, tokio::spawn(envoy_entrypoint(config, signals)))
}

async fn exit_code(handle: JoinHandle<u8>) -> u8 {
    tokio::time::timeout(patience(), handle)
        .await
        .expect("the entrypoint to return")
        .unwrap()
}

#[tokio::test]
async fn the_proxys_exit_code_passes_through() {
    let server = metadata(mesh_task().container("app")).await;
    let command = vec!["/bin/sh".into(), "-c".into(), "exit 17".into()];
    let (_sender, handle) = start(command, server.base_url());
    assert_eq!(exit_code(handle).await, 17);
}

#[tokio::test]
async fn a_proxy_that_cannot_start_gives_1() {
    let server = metadata(mesh_task().container("app")).await;
    let (_sender, handle) = start(vec!["/nonexistent/envoy".into()], server.base_url());
    assert_eq!(exit_code(handle).await, 1);
}

#[tokio::test]
async fn sigterm_waits_for_the_application_containers_to_stop() {
    let server = metadata(mesh_task().container("app").container("worker")).await;
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), server.base_url());
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    // Several polls see running applications: the proxy stays up and hears nothing.
    tokio::time::sleep(POLL * 5).await;
    assert!(!handle.is_finished());
    assert!(script.signals().is_empty(), "{:?}", script.signals());

    // One application stopping is not enough.
    server.set_container_status("app", STOPPED, STOPPED);
    tokio::time::sleep(POLL * 5).await;
    assert!(!handle.is_finished());
    assert!(script.signals().is_empty(), "{:?}", script.signals());

    server.set_container_status("worker", STOPPED, STOPPED);
    assert_eq!(exit_code(handle).await, 55);
    // SIGTERM went to the proxy's whole process group.
    script.wait_for_signal("GROUP-TERM").await;
}

#[tokio::test]
async fn stopped_applications_alone_do_not_stop_the_proxy_before_sigterm() {
    let server = metadata(mesh_task().container("app")).await;
    server.set_container_status("app", STOPPED, STOPPED);
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), server.base_url());
    script.wait_ready().await;
    tokio::time::sleep(POLL * 5).await;
    assert!(!handle.is_finished());
    sender.send(Signal::SIGTERM);
    assert_eq!(exit_code(handle).await, 55);
}

#[tokio::test]
async fn a_task_without_application_containers_stops_the_proxy_after_sigterm() {
    // A gateway task: only the mesh containers.
    let server = metadata(mesh_task()).await;
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), server.base_url());
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    assert_eq!(exit_code(handle).await, 55);
}

#[tokio::test]
async fn an_application_still_stopping_counts_as_running() {
    let server = metadata(mesh_task().container("app")).await;
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), server.base_url());
    script.wait_ready().await;
    server.set_container_status("app", RUNNING, STOPPED);
    sender.send(Signal::SIGTERM);
    tokio::time::sleep(POLL * 5).await;
    assert!(!handle.is_finished());
    server.set_container_status("app", STOPPED, STOPPED);
    assert_eq!(exit_code(handle).await, 55);
}

#[tokio::test]
async fn other_signals_are_forwarded_and_sigterm_is_not() {
    let server = metadata(mesh_task().container("app")).await;
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), server.base_url());
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    sender.send(Signal::SIGURG);
    sender.send(Signal::SIGCHLD);
    sender.send(Signal::SIGUSR1);
    script.wait_for_signal("USR1").await;
    sender.send(Signal::SIGTERM);
    sender.send(Signal::SIGINT);
    assert_eq!(exit_code(handle).await, 42);
    assert_eq!(script.signals(), ["USR1", "INT"]);
}

#[tokio::test]
async fn polling_survives_an_endpoint_that_is_down() {
    // Reserve a port, then leave nothing listening on it.
    let addr: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), format!("http://{addr}"));
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    tokio::time::sleep(POLL * 5).await;
    assert!(!handle.is_finished());
    assert!(script.signals().is_empty(), "{:?}", script.signals());

    // The endpoint comes back with the application stopped.
    let mut task = mesh_task().container("app").build();
    for container in &mut task.containers {
        if container.name == "app" || container.name == "consul-ecs-mesh-init" {
            container.desired_status = STOPPED.into();
            container.known_status = STOPPED.into();
        }
    }
    let server = MetadataServer::start(addr, task).await.unwrap();
    assert_eq!(exit_code(handle).await, 55);
    server.shutdown().await;
}
