//! health-sync against our dev server and an in-process task metadata endpoint: the check state
//! machine, the writes Consul sees (exactly one per change, none in steady state), the ordered shutdown,
//! and Consul going away and coming back.
#![allow(clippy::unwrap_used)]

#[path = "../../mesh-init/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use consul_ecs_aws::metadata_server::TaskBuilder;
use consul_ecs_config::Config;
use consul_ecs_health_sync::{Error, run};
use consul_ecs_mesh_init::Environment;
use consul_ecs_mesh_init::testing::fake_secret;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const APP: &str = "web-abcdef0123-app";
const DP: &str = "web-abcdef0123-consul-dataplane";
const PROXY_DP: &str = "web-abcdef0123-sidecar-proxy-consul-dataplane";

/// Registers the task with mesh-init, then forgets the writes that took.
async fn registered(h: &Harness, config: &Config, env: &Environment) {
    consul_ecs_mesh_init::run(config, env).await.unwrap();
    h.proxy.clear();
}

fn spawn(config: &Config, env: &Environment) -> JoinHandle<Result<(), Error>> {
    let (config, env) = (config.clone(), env.clone());
    tokio::spawn(async move { run(&config, &env).await })
}

async fn statuses(h: &Harness) -> BTreeMap<String, String> {
    h.checks()
        .await
        .into_iter()
        .map(|(id, c)| (id, c["Status"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn wait_for_statuses(h: &Harness, wanted: &[(&str, &str)]) {
    let wanted = expect(wanted);
    wait_until("check statuses", || async { statuses(h).await == wanted }).await;
}

/// The check IDs in each write to `/v1/catalog/register`.
fn written_checks(h: &Harness) -> Vec<Vec<String>> {
    h.proxy
        .writes_to("/v1/catalog/register")
        .iter()
        .map(|w| {
            w.json()["Checks"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| c["CheckID"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn web_config(h: &Harness) -> Config {
    h.config(json!({"healthSyncContainers": ["app"], "service": {"name": "web", "port": 8080}}))
}

/// Captures log lines of everything polled on this thread (the test runtime is single-threaded).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn count_lines(buffer: &Arc<Mutex<Vec<u8>>>, needle: &str) -> usize {
    String::from_utf8_lossy(&buffer.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test]
async fn each_health_change_is_one_write_steady_state_is_none_and_sigterm_is_final() {
    let (logs, _guard) = capture_logs();
    let h = Harness::start(task("web")).await;
    let config = web_config(&h);
    let mut env = h.env();
    env.verify_interval = Duration::from_secs(3600);
    consul_ecs_mesh_init::run(&config, &env).await.unwrap();
    assert_eq!(h.proxy.writes().len(), 2, "mesh-init: service and sidecar");
    h.proxy.clear();
    let running = spawn(&config, &env);

    // Both containers report UNKNOWN: the checks are already critical, so nothing is written.
    h.wait_for_steps(5).await;
    assert!(h.proxy.writes().is_empty(), "{:?}", h.proxy.writes());
    let critical = [(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")];
    assert_eq!(statuses(&h).await, expect(&critical));

    // The app turns healthy: its check passes; the dataplane's waits for the dataplane itself.
    h.metadata.set_container_health("app", "HEALTHY");
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "critical"), (PROXY_DP, "critical")],
    )
    .await;
    assert_eq!(written_checks(&h), [vec![APP.to_owned()]]);

    // The dataplane turns healthy: both dataplane checks in one write, at one Raft index.
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    let passing = [(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")];
    wait_for_statuses(&h, &passing).await;
    assert_eq!(written_checks(&h)[1], [DP, PROXY_DP]);
    let checks = h
        .client()
        .health()
        .node(CLUSTER_ARN, &Default::default())
        .await
        .unwrap();
    let index = |id: &str| {
        checks
            .value
            .iter()
            .find(|c| c.check_id == id)
            .map(|c| c.modify_index)
            .unwrap()
    };
    assert_eq!(index(DP), index(PROXY_DP), "one atomic write");

    // Steady state: many steps, no writes.
    h.wait_for_steps(10).await;
    assert_eq!(h.proxy.writes().len(), 2);

    // The app fails: its check and the dataplane aggregate, in one write.
    h.metadata.set_container_health("app", "UNHEALTHY");
    wait_for_statuses(&h, &critical).await;
    assert_eq!(written_checks(&h)[2], [APP, DP, PROXY_DP]);
    let app = &h.checks().await[APP];
    assert_eq!(
        app["Output"],
        format!("ECS health status is \"UNHEALTHY\" for container \"{APP}\"")
    );

    // And recovers.
    h.metadata.set_container_health("app", "HEALTHY");
    wait_for_statuses(&h, &passing).await;
    assert_eq!(h.proxy.writes().len(), 4);
    // One line per changed container, logged once Consul accepted the write.
    let updated = "container health check updated in Consul";
    wait_until("log lines", || async { count_lines(&logs, updated) >= 6 }).await;
    h.wait_for_steps(3).await;
    assert_eq!(count_lines(&logs, updated), 6);

    // SIGTERM while healthy: everything critical in one write, and it stays so although the
    // containers still say HEALTHY.
    env.shutdown.cancel();
    wait_for_statuses(&h, &critical).await;
    assert_eq!(written_checks(&h)[4], [APP, DP, PROXY_DP]);
    h.wait_for_steps(10).await;
    assert_eq!(
        statuses(&h).await,
        expect(&critical),
        "never back to passing"
    );
    assert_eq!(h.proxy.writes().len(), 5);
    assert_eq!(
        count_lines(&logs, "set Consul health status to critical"),
        2
    );
    assert!(!running.is_finished(), "waits for the dataplane to stop");

    // The dataplane stops: the service and its sidecar are deregistered, then health-sync exits.
    h.metadata
        .set_container_status("consul-dataplane", "STOPPED", "STOPPED");
    tokio::time::timeout(patience(), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let deregistrations: Vec<Value> = h
        .proxy
        .writes_to("/v1/catalog/deregister")
        .iter()
        .map(|w| w.json())
        .collect();
    assert_eq!(
        deregistrations,
        [
            json!({"Node": CLUSTER_ARN, "ServiceID": "web-abcdef0123"}),
            json!({"Node": CLUSTER_ARN, "ServiceID": "web-abcdef0123-sidecar-proxy"}),
        ]
    );
    assert_eq!(h.proxy.writes().len(), 7);
    assert!(h.services().await.is_empty());
    assert!(h.checks().await.is_empty());
}

#[tokio::test]
async fn a_container_missing_from_the_metadata_is_not_ready() {
    let h = Harness::start(task("web")).await;
    let config = web_config(&h);
    let env = h.env();
    registered(&h, &config, &env).await;
    h.metadata.set_container_health("app", "HEALTHY");
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    let running = spawn(&config, &env);
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;
    assert_eq!(
        h.proxy.writes().len(),
        1,
        "the first change is one write for all three"
    );

    // consul-ecs#300: an app container that vanishes (or has not appeared yet) takes the task out.
    h.metadata.remove_container("app");
    wait_for_statuses(
        &h,
        &[(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")],
    )
    .await;
    assert_eq!(h.proxy.writes().len(), 2);
    running.abort();
}

#[tokio::test]
async fn a_container_without_an_ecs_health_check_counts_as_healthy_while_running() {
    let task = TaskBuilder::fargate("test")
        .family("web", 1)
        .task_id(TASK_ID)
        .ip(TASK_IP)
        .container("app")
        .container_with_health_check("consul-dataplane")
        .build();
    let h = Harness::start(task).await;
    let config = web_config(&h);
    let env = h.env();
    registered(&h, &config, &env).await;
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    let running = spawn(&config, &env);
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;
    assert_eq!(
        h.checks().await[APP]["Output"],
        "container \"app\" has no ECS health check; counted as \"HEALTHY\" from its known status"
    );

    h.metadata.set_container_status("app", "STOPPED", "STOPPED");
    wait_for_statuses(
        &h,
        &[(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")],
    )
    .await;
    assert_eq!(h.proxy.writes().len(), 2);
    running.abort();
}

#[tokio::test]
async fn a_gateway_syncs_its_one_check_and_deregisters_alone() {
    let task = TaskBuilder::fargate("test")
        .family("mgw", 1)
        .task_id(TASK_ID)
        .ip(TASK_IP)
        .container_with_health_check("consul-dataplane")
        .build();
    let h = Harness::start(task).await;
    let config = h.config(json!({"gateway": {"kind": "mesh-gateway"}}));
    let env = h.env();
    registered(&h, &config, &env).await;
    let check = "mgw-abcdef0123-consul-dataplane";
    let running = spawn(&config, &env);
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    wait_for_statuses(&h, &[(check, "passing")]).await;
    assert_eq!(written_checks(&h), [vec![check.to_owned()]]);

    env.shutdown.cancel();
    wait_for_statuses(&h, &[(check, "critical")]).await;
    h.metadata
        .set_container_status("consul-dataplane", "STOPPED", "STOPPED");
    tokio::time::timeout(patience(), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let deregistrations = h.proxy.writes_to("/v1/catalog/deregister");
    assert_eq!(deregistrations.len(), 1);
    assert_eq!(deregistrations[0].json()["ServiceID"], "mgw-abcdef0123");
    assert_eq!(h.proxy.writes().len(), 3);
}

#[tokio::test]
async fn changes_made_while_consul_is_unreachable_are_sent_once_it_is_back() {
    let mut h = Harness::start(task("web")).await;
    let config = web_config(&h);
    let env = h.env();
    registered(&h, &config, &env).await;
    let running = spawn(&config, &env);
    h.wait_for_steps(2).await;

    h.proxy.go_down().await;
    h.metadata.set_container_health("app", "HEALTHY");
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    h.wait_for_steps(5).await;
    assert_eq!(
        statuses(&h).await,
        expect(&[(APP, "critical"), (DP, "critical"), (PROXY_DP, "critical")])
    );

    h.proxy.come_back().await.unwrap();
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;
    h.wait_for_steps(5).await;
    assert_eq!(
        written_checks(&h),
        [vec![APP, DP, PROXY_DP]],
        "one write after the outage"
    );
    running.abort();
}

#[tokio::test]
async fn a_consul_restart_that_keeps_its_state_gets_only_what_changed() {
    let data = tempfile::tempdir().unwrap();
    let mut h = Harness::start_with(task("web"), Some(data.path().to_path_buf())).await;
    let config = web_config(&h);
    let env = h.env();
    registered(&h, &config, &env).await;
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    let running = spawn(&config, &env);
    h.wait_for_steps(3).await;
    assert!(h.proxy.writes().is_empty());

    h.stop_consul().await;
    h.metadata.set_container_health("app", "HEALTHY");
    h.wait_for_steps(5).await;
    h.start_consul().await;
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;
    h.wait_for_steps(5).await;
    let writes = written_checks(&h);
    assert_eq!(
        writes.last().unwrap(),
        &vec![APP.to_owned(), DP.to_owned(), PROXY_DP.to_owned()]
    );
    assert!(
        h.proxy
            .writes()
            .iter()
            .all(|w| w.path == "/v1/catalog/register"),
        "no re-registration: Consul kept the services"
    );
    running.abort();
}

#[tokio::test]
async fn a_consul_that_lost_its_state_gets_the_registration_back() {
    let mut h = Harness::start(task("web")).await;
    let config = web_config(&h);
    let mut env = h.env();
    env.verify_interval = Duration::from_millis(100);
    registered(&h, &config, &env).await;
    h.metadata.set_container_health("app", "HEALTHY");
    h.metadata
        .set_container_health("consul-dataplane", "HEALTHY");
    let running = spawn(&config, &env);
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;

    h.stop_consul().await;
    h.start_consul().await;
    assert!(
        h.services().await.is_empty(),
        "an in-memory dev server forgets everything"
    );
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "passing"), (PROXY_DP, "passing")],
    )
    .await;
    let services = h.services().await;
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        ["web-abcdef0123", "web-abcdef0123-sidecar-proxy"]
    );
    assert_eq!(services["web-abcdef0123"]["Port"], 8080);
    running.abort();
}

#[tokio::test]
async fn sigterm_before_consul_answers_ends_health_sync_at_once() {
    let mut h = Harness::start(task("web")).await;
    let config = web_config(&h);
    let mut env = h.env();
    env.retry_budget = Duration::from_secs(600);
    registered(&h, &config, &env).await;
    h.proxy.go_down().await;
    let running = spawn(&config, &env);
    h.wait_for_steps(1).await;
    env.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("no hang: upstream waits for SIGKILL here")
        .unwrap()
        .unwrap();
    assert!(h.proxy.writes().is_empty());
}

#[tokio::test]
async fn with_login_health_sync_uses_its_own_token_and_logs_out_last() {
    let h = Harness::start(task("web")).await;
    h.proxy.fake_acl();
    let config = h.config(json!({
        "healthSyncContainers": ["app"], "service": {"name": "web", "port": 8080},
        "consulLogin": {"enabled": true, "includeEntity": false},
    }));
    let mut env = h.env();
    env.aws_credentials = Some(consul_ecs_aws::Credentials::new(
        "AKIDEXAMPLE",
        "secret",
        None,
        None,
        "test",
    ));
    registered(&h, &config, &env).await;
    let running = spawn(&config, &env);
    h.metadata.set_container_health("app", "HEALTHY");
    wait_for_statuses(
        &h,
        &[(APP, "passing"), (DP, "critical"), (PROXY_DP, "critical")],
    )
    .await;
    env.shutdown.cancel();
    h.metadata.remove_container("consul-dataplane");
    tokio::time::timeout(patience(), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // mesh-init's login was the first (and it logged out); health-sync's is the second.
    let token = fake_secret(2);
    let writes = h.proxy.writes();
    let paths: Vec<&str> = writes.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/acl/login",
            "/v1/catalog/register",
            "/v1/catalog/register",
            "/v1/catalog/deregister",
            "/v1/catalog/deregister",
            "/v1/acl/logout",
        ]
    );
    assert!(
        writes[1..]
            .iter()
            .all(|w| w.token.as_deref() == Some(token.as_str()))
    );
}
