//! `consul-ecs app-entrypoint` and `consul-ecs envoy-entrypoint` as ECS runs them: the real binary wrapping
//! a real child script, real signals sent to the wrapper, and an ECS task metadata endpoint on a real socket.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use consul_ecs_aws::task_metadata::STOPPED;
use support::{consul_ecs_bin, free_port, patience};

/// A child script that appends each signal it traps to a log, exits 42 on SIGINT and 55 on SIGTERM, and
/// writes a ready file once its traps are set. A background process in its group reports SIGTERM too.
const TRAPPING: &str = r#"
log="$1"
trap 'echo INT >> "$log"; exit 42' INT
trap 'echo TERM >> "$log"; exit 55' TERM
sh -c 'trap "echo GROUP-TERM >> \"$1\"; exit 0" TERM; : > "$1.group"; while kill -0 "$2" 2>/dev/null; do sleep 0.1; done' grandchild "$log" "$$" &
while [ ! -e "$log.group" ]; do sleep 0.05; done
echo ready > "$log.ready"
parent=$PPID
while kill -0 "$parent" 2>/dev/null; do sleep 0.1; done
"#;

struct Script {
    dir: tempfile::TempDir,
}

impl Script {
    fn new() -> Script {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("child.sh"), TRAPPING).unwrap();
        Script { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("signals")
    }

    /// `/bin/sh <script> <log>`.
    fn command(&self) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            self.dir.path().join("child.sh").display().to_string(),
            self.log().display().to_string(),
        ]
    }

    fn signals(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn wait_ready(&self) {
        let ready = self.dir.path().join("signals.ready");
        eventually("the child script to start", || ready.exists());
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience();
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The wrapper process, its stderr collected in the background. Killed if the test ends early.
struct Wrapper {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Wrapper {
    fn start(args: &[&str], command: &[String], env: &[(&str, &str)]) -> Wrapper {
        let mut cmd = Command::new(consul_ecs_bin());
        cmd.args(args)
            .args(command)
            .env_remove("ECS_CONTAINER_METADATA_URI_V4")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Wrapper {
            child,
            stderr: Some(stderr),
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// True if the wrapper is still running after `period` (a short, bounded wait).
    fn still_running_after(&mut self, period: Duration) -> bool {
        std::thread::sleep(period);
        self.child.try_wait().unwrap().is_none()
    }

    fn wait(mut self) -> Exit {
        let deadline = Instant::now() + patience();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().unwrap().join().unwrap();
                panic!("the wrapper did not exit in time; its stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Exit {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

// === app-entrypoint ===

#[test]
fn app_exit_code_passes_through() {
    let exit = Wrapper::start(&["app-entrypoint"], &sh("exit 7"), &[]).wait();
    assert_eq!(exit.code, Some(7), "{}", exit.stderr);
}

#[test]
fn app_child_killed_by_a_signal_exits_128_plus_the_signal() {
    let exit = Wrapper::start(&["app-entrypoint"], &sh("kill -KILL $$"), &[]).wait();
    assert_eq!(exit.code, Some(137), "{}", exit.stderr);
}

#[test]
fn app_that_cannot_start_exits_1() {
    let exit = Wrapper::start(&["app-entrypoint"], &["/nonexistent/app".into()], &[]).wait();
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr.contains("consul-ecs: starting process"),
        "{}",
        exit.stderr
    );
}

#[test]
fn app_sigint_is_forwarded() {
    let script = Script::new();
    let wrapper = Wrapper::start(&["app-entrypoint"], &script.command(), &[]);
    script.wait_ready();
    wrapper.signal("INT");
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(42), "{}", exit.stderr);
    assert_eq!(script.signals(), ["INT"]);
}

#[test]
fn app_sigterm_without_a_delay_reaches_the_application_at_once() {
    let script = Script::new();
    let wrapper = Wrapper::start(&["app-entrypoint"], &script.command(), &[]);
    script.wait_ready();
    wrapper.signal("TERM");
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(55), "{}", exit.stderr);
    eventually("the process group to get SIGTERM", || {
        script.signals().contains(&"GROUP-TERM".to_owned())
    });
}

#[test]
fn app_single_dash_shutdown_delay_holds_sigterm_for_the_delay() {
    let script = Script::new();
    let mut wrapper = Wrapper::start(
        &[
            "app-entrypoint",
            "-shutdown-delay",
            "2s",
            "-log-level",
            "DEBUG",
        ],
        &script.command(),
        &[],
    );
    script.wait_ready();
    wrapper.signal("TERM");
    assert!(wrapper.still_running_after(Duration::from_millis(500)));
    assert!(script.signals().is_empty(), "{:?}", script.signals());
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(55), "{}", exit.stderr);
    assert!(
        exit.stderr.contains(
            "[INFO]  consul-ecs: received sigterm. waiting 2s before terminating application."
        ),
        "{}",
        exit.stderr
    );
    assert!(
        exit.stderr.contains("[DEBUG] consul-ecs:"),
        "{}",
        exit.stderr
    );
}

#[test]
fn app_second_sigterm_during_the_delay_is_forwarded() {
    let script = Script::new();
    let mut wrapper = Wrapper::start(
        &["app-entrypoint", "--shutdown-delay=1h"],
        &script.command(),
        &[],
    );
    script.wait_ready();
    wrapper.signal("TERM");
    assert!(wrapper.still_running_after(Duration::from_millis(300)));
    wrapper.signal("TERM");
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(55), "{}", exit.stderr);
    assert_eq!(script.signals(), ["TERM"]);
}

#[test]
fn app_bad_shutdown_delay_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let exit = Wrapper::start(
        &["app-entrypoint", "-shutdown-delay", "asdf"],
        &sh(&format!(": > {}", marker.display())),
        &[],
    )
    .wait();
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr
            .contains("invalid value \"asdf\" for flag -shutdown-delay: parse error"),
        "{}",
        exit.stderr
    );
    assert!(!marker.exists());
}

#[test]
fn app_missing_command_is_an_error() {
    for args in [
        &["app-entrypoint"][..],
        &["app-entrypoint", "-shutdown-delay", "5s"],
    ] {
        let exit = Wrapper::start(args, &[], &[]).wait();
        assert_eq!(exit.code, Some(1));
        assert!(
            exit.stderr.contains("command is required"),
            "{}",
            exit.stderr
        );
    }
}

#[test]
fn app_flags_after_the_command_belong_to_the_application() {
    let mut command = sh("echo $0 $1");
    command.extend(["--shutdown-delay".into(), "asdf".into()]);
    let exit = Wrapper::start(&["app-entrypoint"], &command, &[]).wait();
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert_eq!(exit.stdout, "--shutdown-delay asdf\n");

    // The same with `--` before the command, and single-dash flags in the command left alone.
    let mut command = sh("echo $0");
    command.push("-log-level".into());
    let mut args = vec!["app-entrypoint", "-shutdown-delay", "1s", "--"];
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    args.extend(command);
    let exit = Wrapper::start(&args, &[], &[]).wait();
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert_eq!(exit.stdout, "-log-level\n");
}

// === envoy-entrypoint ===

/// A task with the mesh containers and one application container, `app`.
fn mesh_task() -> consul_ecs_aws::task_metadata::TaskMetadata {
    let mut task = TaskBuilder::fargate("mesh")
        .container("consul-ecs-mesh-init")
        .container_with_health_check("consul-dataplane")
        .container("consul-ecs-health-sync")
        .container("app")
        .build();
    for container in &mut task.containers {
        if container.name == "consul-ecs-mesh-init" {
            container.desired_status = STOPPED.into();
            container.known_status = STOPPED.into();
        }
    }
    task
}

/// A runtime for the metadata endpoint, which serves while the test thread drives processes.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn start_metadata(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> MetadataServer {
    rt.block_on(MetadataServer::start(addr, mesh_task()))
        .unwrap()
}

#[test]
fn envoy_outlives_the_application_after_sigterm() {
    let rt = runtime();
    let server = start_metadata(&rt, "127.0.0.1:0".parse().unwrap());
    let script = Script::new();
    let url = server.base_url();
    let mut wrapper = Wrapper::start(
        &["envoy-entrypoint", "-log-level", "info"],
        &script.command(),
        &[("ECS_CONTAINER_METADATA_URI_V4", &url)],
    );
    script.wait_ready();
    wrapper.signal("TERM");
    // Polls at 1 s intervals see the application running: the proxy hears nothing.
    assert!(wrapper.still_running_after(Duration::from_millis(2500)));
    assert!(script.signals().is_empty(), "{:?}", script.signals());

    server.set_container_status("app", STOPPED, STOPPED);
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(55), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("consul-ecs: terminating Envoy with sigterm"),
        "{}",
        exit.stderr
    );
    eventually("the proxy's process group to get SIGTERM", || {
        script.signals().contains(&"GROUP-TERM".to_owned())
    });
}

#[test]
fn envoy_sigint_is_forwarded() {
    let rt = runtime();
    let server = start_metadata(&rt, "127.0.0.1:0".parse().unwrap());
    let script = Script::new();
    let url = server.base_url();
    let wrapper = Wrapper::start(
        &["envoy-entrypoint"],
        &script.command(),
        &[("ECS_CONTAINER_METADATA_URI_V4", &url)],
    );
    script.wait_ready();
    wrapper.signal("INT");
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(42), "{}", exit.stderr);
    assert_eq!(script.signals(), ["INT"]);
}

#[test]
fn envoy_keeps_polling_while_the_metadata_endpoint_is_down() {
    let rt = runtime();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let script = Script::new();
    let url = format!("http://{addr}");
    let mut wrapper = Wrapper::start(
        &["envoy-entrypoint"],
        &script.command(),
        &[("ECS_CONTAINER_METADATA_URI_V4", &url)],
    );
    script.wait_ready();
    wrapper.signal("TERM");
    assert!(wrapper.still_running_after(Duration::from_millis(2500)));
    assert!(script.signals().is_empty(), "{:?}", script.signals());

    // The endpoint comes back, with the application stopped.
    let server = start_metadata(&rt, addr);
    server.set_container_status("app", STOPPED, STOPPED);
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(55), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("[ERROR] consul-ecs: fetching task metadata"),
        "{}",
        exit.stderr
    );
}

#[test]
fn envoy_without_a_metadata_endpoint_logs_and_keeps_the_proxy_up() {
    let script = Script::new();
    let mut wrapper = Wrapper::start(&["envoy-entrypoint"], &script.command(), &[]);
    script.wait_ready();
    wrapper.signal("TERM");
    assert!(wrapper.still_running_after(Duration::from_millis(1500)));
    wrapper.signal("INT");
    let exit = wrapper.wait();
    assert_eq!(exit.code, Some(42), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("ECS_CONTAINER_METADATA_URI_V4 env var not set"),
        "{}",
        exit.stderr
    );
}

#[test]
fn envoy_exit_code_passes_through_and_a_command_is_required() {
    let exit = Wrapper::start(&["envoy-entrypoint"], &sh("exit 3"), &[]).wait();
    assert_eq!(exit.code, Some(3), "{}", exit.stderr);

    let exit = Wrapper::start(&["envoy-entrypoint", "-log-level", "debug"], &[], &[]).wait();
    assert_eq!(exit.code, Some(1));
    assert!(
        exit.stderr.contains("command is required"),
        "{}",
        exit.stderr
    );
}
