//! The `consul-ecs-local` commands as a user runs them: run (foreground and detached), ps, logs,
//! stop, cleanup after a killed supervisor, and the refusals.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{link_exists, network, processes_mentioning};
use serde_json::json;

fn cli(state: &Path, args: &[&str]) -> Output {
    Command::new(common::program())
        .args(args)
        .env("CONSUL_ECS_LOCAL_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn net_args(n: u8) -> Vec<String> {
    let net = network(n);
    vec![
        "--bridge".to_owned(),
        net.bridge,
        "--subnet".to_owned(),
        net.subnet.to_string(),
        "--image-map".to_owned(),
        "sh=/bin/sh".to_owned(),
    ]
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::patience();
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn detached_tasks_show_in_ps_print_logs_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let taskdef = write(
        dir.path(),
        "web.json",
        &json!({"family": "web", "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c",
                "echo hello from app; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"],
             "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 0.2}},
            {"name": "init", "image": "sh", "essential": false, "command": ["-c", "echo init done"]}
        ]}),
    );
    let mut args = vec!["run", "--detach"];
    let net = net_args(30);
    args.extend(net.iter().map(String::as_str));
    args.push(&taskdef);
    let run = cli(&state, &args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let id = text(&run.stdout).trim().to_owned();
    assert_eq!(id.len(), 32, "{id:?}");
    assert!(
        text(&run.stderr).contains("198.19.130.2"),
        "{}",
        text(&run.stderr)
    );

    wait_for("the app to be healthy", || {
        text(&cli(&state, &["ps"]).stdout).contains("app:RUNNING/HEALTHY")
    });
    let ps = text(&cli(&state, &["ps"]).stdout);
    let line = ps.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(line.contains("web:1") && line.contains("RUNNING") && line.contains("198.19.130.2"));
    assert!(line.contains("init:STOPPED(0)"), "{line}");
    let records: serde_json::Value =
        serde_json::from_slice(&cli(&state, &["ps", "--json"]).stdout).unwrap();
    assert_eq!(records[0]["id"], id);
    assert_eq!(records[0]["lastStatus"], "RUNNING");

    let logs = cli(&state, &["logs", &id[..8], "app"]);
    assert_eq!(text(&logs.stdout), "hello from app\n");
    let all = text(&cli(&state, &["logs", &id[..8]]).stdout);
    assert!(
        all.contains("[app] hello from app\n") && all.contains("[init] init done\n"),
        "{all}"
    );
    let missing = cli(&state, &["logs", &id, "nope"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no container named \"nope\""));

    let stop = cli(&state, &["stop", &id[..8]]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(text(&stop.stdout).trim(), id);
    assert!(text(&cli(&state, &["ps"]).stdout).lines().count() == 1);
    let ps_all = text(&cli(&state, &["ps", "--all"]).stdout);
    assert!(
        ps_all.contains(&id) && ps_all.contains("STOPPED"),
        "{ps_all}"
    );
    assert!(text(&cli(&state, &["logs", &id, "app"]).stdout).ends_with("bye\n"));
    assert!(processes_mentioning(&id[..8]).is_empty());
    assert!(!link_exists(&network(30).bridge));
}

#[test]
fn a_killed_supervisor_leaves_work_that_stop_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let taskdef = write(
        dir.path(),
        "t.json",
        &json!({"family": "orphan", "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c", "exec sleep 300"]}
        ]}),
    );
    let mut args = vec!["run", "-d"];
    let net = net_args(31);
    args.extend(net.iter().map(String::as_str));
    args.push(&taskdef);
    let run = cli(&state, &args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let id = text(&run.stdout).trim().to_owned();
    let record_path = state.join("tasks").join(&id).join("task.json");
    let record = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap()
    };
    wait_for("the app to run", || {
        record()["containers"][0]["lastStatus"] == "RUNNING"
    });
    let supervisor = record()["supervisor"]["pid"].as_i64().unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("ps to notice", || {
        text(&cli(&state, &["ps"]).stdout).contains("RUNNING!")
    });
    assert!(!processes_mentioning(&id[..8]).is_empty());
    let stop = cli(&state, &["stop", "--all"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let after = record();
    assert_eq!(after["lastStatus"], "STOPPED");
    assert!(
        after["stoppedReason"]
            .as_str()
            .unwrap()
            .contains("supervisor was gone")
    );
    wait_for("the container to go", || {
        processes_mentioning(&id[..8]).is_empty()
    });
    let namespaces = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!namespaces.contains(&format!("ecsl-{}", &id[..8])));
    assert!(!link_exists(&format!("ecslv{}", &id[..8])));
    assert!(!link_exists(&network(31).bridge));
}

#[test]
fn a_foreground_run_prefixes_output_and_reports_a_failed_essential_container() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let taskdef = write(
        dir.path(),
        "fail.json",
        &json!({"family": "fails", "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c", "echo working; exit 3"]}
        ]}),
    );
    let mut args = vec!["run"];
    let net = net_args(32);
    args.extend(net.iter().map(String::as_str));
    args.push(&taskdef);
    let run = cli(&state, &args);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    let line = stdout.lines().next().unwrap();
    assert!(
        line.starts_with("[fails-") && line.ends_with("/app] working"),
        "{stdout}"
    );
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("stopped: Essential container in task exited [app=3]"),
        "{stderr}"
    );
    assert!(!link_exists(&network(32).bridge));
}

#[test]
fn refusals_name_the_file_container_and_field_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = write(
        dir.path(),
        "good.json",
        &json!({"family": "good", "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c", "sleep 30"]}]}),
    );
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"family": "bad", "containerDefinitions": [
            {"name": "web", "image": "nginx:1.27", "links": ["db"]}]}),
    );
    let mut args = vec!["run", "--detach"];
    let net = net_args(33);
    args.extend(net.iter().map(String::as_str));
    args.extend([good.as_str(), bad.as_str()]);
    let run = cli(&state, &args);
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains(&format!(
            "{bad}: container \"web\": links: not supported by ecs-local"
        )),
        "{stderr}"
    );
    // The good definition was not started either.
    let tasks = std::fs::read_dir(state.join("tasks")).unwrap().count();
    assert_eq!(tasks, 0);
    assert!(!link_exists(&network(33).bridge));
    let image = write(
        dir.path(),
        "image.json",
        &json!({"family": "bad", "containerDefinitions": [{"name": "web", "image": "nginx:1.27"}]}),
    );
    let run = cli(&state, &["run", &image]);
    assert!(
        text(&run.stderr)
            .contains("container \"web\": image: image \"nginx:1.27\" is not in the image map")
    );
}

#[test]
fn without_root_the_runtime_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let taskdef = write(
        dir.path(),
        "t.json",
        &json!({"family": "t", "containerDefinitions": [{"name": "a", "image": "sh"}]}),
    );
    // Readable by the unprivileged user.
    let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dir.path(), perms).unwrap();
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(common::program())
        .args(["run", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg(&taskdef)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("must run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN)"),
        "{stderr}"
    );
}

#[test]
fn logs_follow_until_the_task_stops() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let taskdef = write(
        dir.path(),
        "t.json",
        &json!({"family": "chatty", "containerDefinitions": [
            {"name": "app", "image": "sh", "command": ["-c",
                "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"]}
        ]}),
    );
    let mut args = vec!["run", "-d"];
    let net = net_args(34);
    args.extend(net.iter().map(String::as_str));
    args.push(&taskdef);
    let run = cli(&state, &args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let id = text(&run.stdout).trim().to_owned();
    // Follows while the task runs, and returns once it has stopped and everything was printed.
    let follow = cli(&state, &["logs", "-f", &id]);
    assert!(follow.status.success(), "{}", text(&follow.stderr));
    assert_eq!(
        text(&follow.stdout),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    let ps = text(&cli(&state, &["ps", "-a"]).stdout);
    assert!(
        ps.contains("STOPPED") && ps.contains("app:STOPPED(0)"),
        "{ps}"
    );
    assert!(!link_exists(&network(34).bridge));
}
