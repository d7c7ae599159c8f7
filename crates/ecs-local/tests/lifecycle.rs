//! Task lifecycle with real namespaces and processes: dependsOn conditions, essential containers,
//! health checks, stopTimeout and stop order, shared volumes, refusals, and teardown.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, assert_clean, def, link_exists, sh};
use consul_ecs_local::{
    ESSENTIAL_EXITED, Health, RuntimeError, STOPPED_BY_USER, Status, TaskOptions,
};
use serde_json::json;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn position(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("{what:?} missing from {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_conditions_order_the_containers() {
    let h = Harness::new(1);
    let out = h.host_dir("out");
    let log = "/out/order";
    let mut containers = vec![
        sh(
            "a",
            false,
            &format!("echo a-start >> {log}; sleep 0.5; echo a-end >> {log}"),
        ),
        sh("b", false, &format!("echo b-start >> {log}; exec sleep 30")),
        sh("c", false, &format!("echo c >> {log}; exit 3")),
        sh("d", false, &format!("echo d >> {log}")),
        sh(
            "h",
            false,
            &format!("sleep 0.5; echo ready >> {log}; touch /out/ready; exec sleep 30"),
        ),
        sh("e", false, &format!("echo e >> {log}; exec sleep 30")),
        sh("main", true, &format!("echo main >> {log}; exec sleep 30")),
    ];
    let deps = [
        ("b", json!([{"containerName": "a", "condition": "START"}])),
        (
            "c",
            json!([{"containerName": "a", "condition": "COMPLETE"}]),
        ),
        ("d", json!([{"containerName": "a", "condition": "SUCCESS"}])),
        ("e", json!([{"containerName": "h", "condition": "HEALTHY"}])),
        (
            "main",
            json!([
                {"containerName": "c", "condition": "COMPLETE"},
                {"containerName": "d", "condition": "SUCCESS"},
                {"containerName": "e", "condition": "START"}
            ]),
        ),
    ];
    for container in &mut containers {
        container["mountPoints"] = json!([{"sourceVolume": "out", "containerPath": "/out"}]);
        for (name, dep) in &deps {
            if container["name"] == *name {
                container["dependsOn"] = dep.clone();
            }
        }
        if container["name"] == "h" {
            container["healthCheck"] = json!({
                "command": ["CMD-SHELL", "test -f /out/ready"], "interval": 0.2, "timeout": 2, "retries": 1
            });
        }
    }
    let task_def = json!({
        "family": "order",
        "volumes": [{"name": "out", "host": {"sourcePath": out.display().to_string()}}],
        "containerDefinitions": containers,
    });
    let mut task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let record = tokio::time::timeout(
        common::patience(),
        task.wait_until(|r| r.last_status == Status::Running),
    )
    .await
    .unwrap();
    // The task is RUNNING once every container has started (or finished).
    assert_eq!(
        record.container("main").unwrap().last_status,
        Status::Running
    );
    assert_eq!(record.container("c").unwrap().exit_code, Some(3));
    assert_eq!(record.container("h").unwrap().health, Some(Health::Healthy));
    // START only means the dependency's process exists; wait for the last writers.
    let order_file = out.join("order");
    common::eventually("e and main to write", || {
        let order = lines(&order_file);
        order.contains(&"main".to_owned()) && order.contains(&"e".to_owned())
    })
    .await;
    let order = lines(&order_file);
    let at = |what| position(&order, what);
    // START does not wait for the dependency to finish; COMPLETE and SUCCESS do.
    assert!(at("b-start") < at("a-end"), "{order:?}");
    assert!(at("a-end") < at("c") && at("a-end") < at("d"), "{order:?}");
    assert!(at("ready") < at("e"), "{order:?}");
    assert!(at("c") < at("main") && at("d") < at("main"), "{order:?}");
    let record = task.stop().await;
    assert_eq!(record.stopped_reason.as_deref(), Some(STOPPED_BY_USER));
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_success_dependency_keeps_its_dependent_from_ever_starting() {
    let h = Harness::new(2);
    let task_def = json!({
        "family": "unmet",
        "containerDefinitions": [
            sh("init", false, "exit 1"),
            {"name": "app", "image": "sh", "command": ["-c", "exec sleep 30"],
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
        ],
    });
    let task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    let reason = record.stopped_reason.clone().unwrap();
    assert!(reason.contains("\"init\" exited with code 1"), "{reason}");
    let app = record.container("app").unwrap();
    assert_eq!((app.last_status, app.exit_code), (Status::Stopped, None));
    assert!(h.log(&record.id, "app").is_empty());
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_essential_exit_stops_the_task_and_a_non_essential_one_does_not() {
    let h = Harness::new(3);
    let task_def = json!({
        "family": "essential",
        "containerDefinitions": [
            sh("main", true, "sleep 1; exit 7"),
            sh("short", false, "exit 3"),
            sh("side", false, "trap 'echo side got TERM; exit 0' TERM; while :; do sleep 0.1; done"),
        ],
    });
    let mut task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    // The non-essential container exits first; the task runs on.
    let record = task
        .wait_until(|r| r.container("short").unwrap().exit_code.is_some())
        .await;
    assert_eq!(record.container("short").unwrap().exit_code, Some(3));
    assert_eq!(record.last_status, Status::Running);
    assert_eq!(record.desired_status, Status::Running);
    assert_eq!(
        record.container("main").unwrap().last_status,
        Status::Running
    );
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    assert_eq!(record.stopped_reason.as_deref(), Some(ESSENTIAL_EXITED));
    assert_eq!(record.container("main").unwrap().exit_code, Some(7));
    assert_eq!(record.container("side").unwrap().exit_code, Some(0));
    assert!(h.log(&record.id, "side").contains("side got TERM"));
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_pass_fail_and_show_in_the_metadata() {
    let h = Harness::new(4);
    let check = |script: &str, start_period: f64| {
        json!({"command": ["CMD-SHELL", script], "interval": 0.2, "timeout": 2, "retries": 2,
               "startPeriod": start_period})
    };
    let mut good = sh("good", true, "exec sleep 30");
    good["healthCheck"] = check("test -s /etc/hostname && echo fine", 0.0);
    let mut bad = sh("bad", false, "exec sleep 30");
    bad["healthCheck"] = check("echo broken; exit 1", 0.0);
    let mut patient = sh("patient", false, "exec sleep 30");
    patient["healthCheck"] = check("exit 1", 300.0);
    let mut exec_form = sh("exec-form", false, "exec sleep 30");
    exec_form["healthCheck"] = json!({"command": ["/bin/true"], "interval": 0.2, "retries": 1});
    let task_def =
        json!({"family": "health", "containerDefinitions": [good, bad, patient, exec_form]});
    let mut task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let record = tokio::time::timeout(
        common::patience(),
        task.wait_until(|r| {
            r.container("good").unwrap().health == Some(Health::Healthy)
                && r.container("bad").unwrap().health == Some(Health::Unhealthy)
                && r.container("exec-form").unwrap().health == Some(Health::Healthy)
        }),
    )
    .await
    .unwrap();
    assert_eq!(record.last_status, Status::Running);
    // Failures inside startPeriod are not counted.
    assert_eq!(
        record.container("patient").unwrap().health,
        Some(Health::Unknown)
    );
    let metadata = task.metadata();
    let health = |name: &str| metadata.container(name).unwrap().health.clone().unwrap();
    assert_eq!(health("good").status, "HEALTHY");
    assert_eq!(health("good").output.as_deref(), Some("fine"));
    assert_eq!(health("bad").status, "UNHEALTHY");
    assert_eq!(health("bad").output.as_deref(), Some("broken"));
    assert_eq!(health("patient").status, "UNKNOWN");
    let record = task.stop().await;
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_sigterm_in_reverse_dependency_order_and_sigkill_after_stop_timeout() {
    let h = Harness::new(5);
    let out = h.host_dir("out");
    let mount = json!([{"sourceVolume": "out", "containerPath": "/out"}]);
    let mut proxy = sh(
        "proxy",
        false,
        "trap 'echo proxy-term >> /out/order; exit 0' TERM; touch /out/proxy-ready; \
         while :; do sleep 0.1; done",
    );
    proxy["mountPoints"] = mount.clone();
    let mut app = sh(
        "app",
        true,
        "trap 'echo app-term >> /out/order; sleep 0.5; echo app-exit >> /out/order; exit 0' TERM; \
         touch /out/app-ready; while :; do sleep 0.1; done",
    );
    app["mountPoints"] = mount.clone();
    app["dependsOn"] = json!([{"containerName": "proxy", "condition": "START"}]);
    let mut stubborn = sh(
        "stubborn",
        false,
        "trap '' TERM; touch /out/stubborn-ready; while :; do sleep 0.1; done",
    );
    stubborn["mountPoints"] = mount.clone();
    stubborn["stopTimeout"] = json!(1);
    let task_def = json!({
        "family": "stopping",
        "volumes": [{"name": "out", "host": {"sourcePath": out.display().to_string()}}],
        "containerDefinitions": [proxy, app, stubborn],
    });
    let task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    // A signal that arrives before a script has set its trap ends it the default way.
    common::eventually("the scripts to set their traps", || {
        ["proxy", "app", "stubborn"]
            .iter()
            .all(|name| out.join(format!("{name}-ready")).exists())
    })
    .await;
    let asked = Instant::now();
    let record = task.stop().await;
    let took = asked.elapsed();
    let order = lines(&out.join("order"));
    assert_eq!(order, ["app-term", "app-exit", "proxy-term"]);
    let code = |name: &str| record.container(name).unwrap().exit_code;
    assert_eq!(code("app"), Some(0));
    assert_eq!(code("proxy"), Some(0));
    // SIGKILL: 128 + 9.
    assert_eq!(code("stubborn"), Some(137));
    assert!(took >= Duration::from_secs(1), "stopped after {took:?}");
    assert_eq!(record.stopped_reason.as_deref(), Some(STOPPED_BY_USER));
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_is_shared_at_consul_and_read_only_where_asked() {
    let h = Harness::new(6);
    let mut writer = sh(
        "writer",
        false,
        "echo shared-content > /consul/file && mkdir -p /bin/consul-inject && echo wrote",
    );
    writer["mountPoints"] = json!([
        {"sourceVolume": "consul_data", "containerPath": "/consul"},
        {"sourceVolume": "consul_binary", "containerPath": "/bin/consul-inject", "readOnly": true}
    ]);
    let mut reader = sh(
        "reader",
        true,
        "cat /consul/file; touch /consul/other 2>/dev/null || echo read-only-refused; \
         test -d /bin/consul-inject && echo inject-dir-present",
    );
    reader["mountPoints"] =
        json!([{"sourceVolume": "consul_data", "containerPath": "/consul", "readOnly": true}]);
    reader["volumesFrom"] = json!([{"sourceContainer": "writer", "readOnly": true}]);
    reader["dependsOn"] = json!([{"containerName": "writer", "condition": "SUCCESS"}]);
    let task_def = json!({
        "family": "volumes",
        "volumes": [{"name": "consul_data"}, {"name": "consul_binary"}],
        "containerDefinitions": [writer, reader],
    });
    let task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let id = task.id().to_owned();
    let volume = h
        .runtime
        .state()
        .task_dir(&id)
        .join("volumes/consul_data/file");
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    assert_eq!(record.container("writer").unwrap().exit_code, Some(0));
    assert_eq!(record.container("reader").unwrap().exit_code, Some(0));
    let log = h.log(&id, "reader");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["shared-content", "read-only-refused", "inject-dir-present"],
        "{log}"
    );
    // Task volumes go with the task; the host never saw /consul or /bin/consul-inject.
    assert!(!volume.exists());
    assert!(!std::path::Path::new("/consul").exists());
    assert!(!std::path::Path::new("/bin/consul-inject").exists());
    assert!(!std::path::Path::new("/usr/bin/consul-inject").exists());
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_definitions_name_container_and_field_and_leave_nothing() {
    let h = Harness::new(7);
    let bridge = common::network(7).bridge;
    let unknown_image = json!({"family": "bad", "containerDefinitions": [
        {"name": "web", "image": "nginx:1.27"},
        sh("ok", false, "true"),
    ]});
    let err = h
        .runtime
        .start_task(&def(&unknown_image.to_string()), TaskOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Definition(_)));
    let text = err.to_string();
    assert!(
        text.starts_with("container \"web\": image: image \"nginx:1.27\" is not in the image map"),
        "{text}"
    );
    let unsupported = json!({"family": "bad", "containerDefinitions": [
        {"name": "web", "image": "sh", "firelensConfiguration": {"type": "fluentbit"}}
    ]});
    let text = consul_ecs_local::TaskDefinition::from_json(&unsupported.to_string())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "container \"web\": firelensConfiguration: not supported by ecs-local (FireLens log routing needs Fluent Bit)"
    );
    let missing_secret = json!({"family": "bad", "containerDefinitions": [{
        "name": "web", "image": "sh", "command": ["-c", "true"],
        "secrets": [{"name": "X", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"}]
    }]});
    let text = h
        .runtime
        .start_task(&def(&missing_secret.to_string()), TaskOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("container \"web\": no such secret"), "{text}");
    let tasks = std::fs::read_dir(h.runtime.state().tasks_dir())
        .unwrap()
        .count();
    assert_eq!(tasks, 0);
    assert!(!link_exists(&bridge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_users_and_ecs_variables_reach_the_process() {
    let h = Harness::new(8);
    let mut app = sh(
        "app",
        true,
        "echo uid=$(id -u) gid=$(id -g); echo secret=$CA_PEM; echo region=$AWS_REGION; \
         echo creds=$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; echo meta=$ECS_CONTAINER_METADATA_URI_V4; \
         echo extra=$EXTRA; echo host=$(hostname); ulimit -n; pwd",
    );
    app["user"] = json!("5995:5995");
    app["workingDirectory"] = json!("/work-dir");
    app["ulimits"] = json!([{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}]);
    app["secrets"] = json!([{"name": "CA_PEM",
        "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ca-AbCdEf"}]);
    let task_def = json!({
        "family": "env",
        "taskRoleArn": "arn:aws:iam::123456789012:role/app",
        "containerDefinitions": [app],
    });
    let mut options = TaskOptions::default();
    options
        .environment
        .push(("EXTRA".to_owned(), "from-options".to_owned()));
    let task = h
        .runtime
        .start_task(&def(&task_def.to_string()), options)
        .await
        .unwrap();
    let id = task.id().to_owned();
    let ip = task.ip().unwrap();
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    let log = h.log(&id, "app");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "uid=5995 gid=5995");
    assert_eq!(lines[1], "secret=PEM DATA");
    assert_eq!(lines[2], "region=us-east-1");
    assert!(lines[3].starts_with("creds=/v2/credentials/"), "{log}");
    assert_eq!(
        lines[4],
        format!("meta=http://169.254.170.2/v4/{id}-1000000000")
    );
    assert_eq!(lines[5], "extra=from-options");
    assert_eq!(
        lines[6],
        format!("host=ip-{}", ip.to_string().replace('.', "-"))
    );
    assert_eq!(lines[7], "4096");
    assert_eq!(lines[8], "/work-dir");
    assert_eq!(record.container("app").unwrap().exit_code, Some(0));
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_stops_the_task_with_code_127() {
    let h = Harness::new(9);
    let task_def = json!({"family": "missing", "containerDefinitions": [
        {"name": "app", "image": "sh", "entryPoint": ["/no/such/program"]}
    ]});
    let task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let id = task.id().to_owned();
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    assert_eq!(record.container("app").unwrap().exit_code, Some(127));
    assert!(h.log(&id, "app").contains("\"/no/such/program\""));
    assert_clean(&record, h.runtime.state().root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_task_shape_plans_with_our_images() {
    let h = Harness::new(10);
    let mut config = h.runtime.config().clone();
    config.images.insert(
        "hashicorp/consul-ecs",
        consul_ecs_local::ImageEntry::program("/bin/true"),
    );
    config.images.insert(
        "hashicorp/consul-dataplane",
        consul_ecs_local::ImageEntry::program("/bin/true"),
    );
    config.images.insert(
        "nicholasjackson/fake-service",
        consul_ecs_local::ImageEntry::program("/bin/true"),
    );
    let runtime = consul_ecs_local::Runtime::new(config).unwrap();
    let mesh_task = def(include_str!("data/mesh-task.json"));
    runtime.check(&mesh_task, &TaskOptions::default()).unwrap();
    // Without a mapping for the app image, the app container is named.
    let err = h
        .runtime
        .check(&mesh_task, &TaskOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("container \"web\": image:"), "{err}");
}

#[test]
fn ending_the_supervision_mid_task_kills_the_containers_and_removes_the_namespace() {
    let h = Harness::new(11);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let task_def = json!({"family": "crash", "containerDefinitions": [
        sh("app", true, "exec sleep 300"),
        sh("helper", false, "sleep 300 & sleep 300 & wait"),
    ]});
    let id = runtime.block_on(async {
        let mut task = h
            .runtime
            .start_task(&def(&task_def.to_string()), TaskOptions::default())
            .await
            .unwrap();
        task.wait_until(|r| r.last_status == Status::Running).await;
        task.id().to_owned()
    });
    // As if the embedding program went away: the supervising future is dropped mid-task.
    drop(runtime);
    let record = h.runtime.state().read(&id).unwrap();
    assert_eq!(record.last_status, Status::Stopped);
    let reason = record.stopped_reason.clone().unwrap();
    assert!(reason.contains("supervisor ended"), "{reason}");
    let check = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check.block_on(assert_clean(&record, h.runtime.state().root()));
    assert!(!link_exists(&common::network(11).bridge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_statuses_follow_pending_running_stopped() {
    let h = Harness::new(12);
    let out = h.host_dir("out");
    let mut gate = sh("gate", false, "exec sleep 30");
    gate["mountPoints"] = json!([{"sourceVolume": "out", "containerPath": "/out"}]);
    gate["healthCheck"] =
        json!({"command": ["CMD-SHELL", "test -f /out/open"], "interval": 0.2, "retries": 1});
    let mut app = sh("app", true, "exec sleep 30");
    app["dependsOn"] = json!([{"containerName": "gate", "condition": "HEALTHY"}]);
    let task_def = json!({
        "family": "statuses",
        "volumes": [{"name": "out", "host": {"sourcePath": out.display().to_string()}}],
        "containerDefinitions": [app, gate],
    });
    let mut task = h
        .runtime
        .start_task(&def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let mut documents = task.subscribe_metadata();
    task.wait_until(|r| r.container("gate").unwrap().health == Some(Health::Unhealthy))
        .await;
    let waiting = task.metadata();
    assert_eq!(waiting.known_status, "PENDING");
    assert_eq!(waiting.desired_status, "RUNNING");
    let app_doc = waiting.container("app").unwrap();
    assert_eq!(
        (
            app_doc.known_status.as_str(),
            app_doc.desired_status.as_str()
        ),
        ("PENDING", "RUNNING")
    );
    assert!(app_doc.started_at.is_none());
    assert_eq!(waiting.container("gate").unwrap().known_status, "RUNNING");
    // The dependency becomes healthy; the app starts and the task is RUNNING.
    std::fs::write(out.join("open"), b"").unwrap();
    task.wait_until(|r| r.last_status == Status::Running).await;
    let running = task.metadata();
    assert_eq!(running.known_status, "RUNNING");
    let app_doc = running.container("app").unwrap();
    assert_eq!(app_doc.known_status, "RUNNING");
    assert!(app_doc.started_at.is_some());
    assert_eq!(
        running
            .container("gate")
            .unwrap()
            .health
            .as_ref()
            .unwrap()
            .status,
        "HEALTHY"
    );
    let record = task.stop().await;
    let stopped = documents.borrow_and_update().clone();
    assert_eq!(
        (
            stopped.known_status.as_str(),
            stopped.desired_status.as_str()
        ),
        ("STOPPED", "STOPPED")
    );
    assert!(stopped.execution_stopped_at.is_some());
    for name in ["app", "gate"] {
        let container = stopped.container(name).unwrap();
        assert_eq!(container.known_status, "STOPPED");
        assert_eq!(container.desired_status, "STOPPED");
        // SIGTERM: 128 + 15.
        assert_eq!(container.exit_code, Some(143), "{name}");
        assert!(container.finished_at.is_some());
    }
    assert_clean(&record, h.runtime.state().root()).await;
}
