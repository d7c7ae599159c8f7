//! The `app-entrypoint` state machine with real child processes and hand-fed signals.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Script, eventually, patience};
use consul_ecs_entrypoint::{AppConfig, Signal, SignalSender, Signals, app_entrypoint};
use tokio::task::JoinHandle;

fn start(command: Vec<String>, delay: Duration) -> (SignalSender, JoinHandle<u8>) {
    let (sender, signals) = Signals::channel();
    let config = AppConfig {
        command,
        shutdown_delay: delay,
    };
    (sender, tokio::spawn(app_entrypoint(config, signals)))
}

async fn exit_code(handle: JoinHandle<u8>) -> u8 {
    tokio::time::timeout(patience(), handle)
        .await
        .expect("the entrypoint to return")
        .unwrap()
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

#[tokio::test]
async fn the_childs_exit_code_passes_through() {
    for code in [0u8, 3, 255] {
        let (_sender, handle) = start(sh(&format!("exit {code}")), Duration::ZERO);
        assert_eq!(exit_code(handle).await, code);
    }
}

#[tokio::test]
async fn a_child_killed_by_a_signal_gives_128_plus_the_signal() {
    let (_sender, handle) = start(sh("kill -KILL $$"), Duration::ZERO);
    assert_eq!(exit_code(handle).await, 128 + 9);
}

#[tokio::test]
async fn a_child_that_cannot_start_gives_1() {
    let (_sender, handle) = start(
        vec!["/nonexistent/program".into(), "arg".into()],
        Duration::ZERO,
    );
    assert_eq!(exit_code(handle).await, 1);
}

#[tokio::test]
async fn sigint_is_forwarded() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::from_secs(30));
    script.wait_ready().await;
    sender.send(Signal::SIGINT);
    assert_eq!(exit_code(handle).await, 42);
    assert_eq!(script.signals(), ["INT"]);
}

#[tokio::test]
async fn sigterm_without_a_delay_reaches_the_whole_process_group_at_once() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::ZERO);
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    assert_eq!(exit_code(handle).await, 55);
    script.wait_for_signal("GROUP-TERM").await;
    assert!(script.signals().contains(&"TERM".to_owned()));
}

#[tokio::test]
async fn sigterm_with_a_delay_waits_then_terminates_the_group() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::from_secs(2));
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    // Well inside the delay the application is untouched.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!handle.is_finished());
    assert!(script.signals().is_empty(), "{:?}", script.signals());
    assert_eq!(exit_code(handle).await, 55);
    script.wait_for_signal("GROUP-TERM").await;
}

#[tokio::test]
async fn a_second_sigterm_during_the_delay_is_forwarded() {
    let script = Script::trapping();
    // A delay far longer than the test's patience: only the forwarded SIGTERM can end the child in time.
    let (sender, handle) = start(script.command(), Duration::from_secs(3600));
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!handle.is_finished());
    sender.send(Signal::SIGTERM);
    assert_eq!(exit_code(handle).await, 55);
    // Forwarded to the child only, not to its group.
    assert_eq!(script.signals(), ["TERM"]);
}

#[tokio::test]
async fn other_signals_are_forwarded_during_the_delay() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::from_secs(3600));
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    sender.send(Signal::SIGUSR1);
    script.wait_for_signal("USR1").await;
    sender.send(Signal::SIGINT);
    assert_eq!(exit_code(handle).await, 42);
    assert_eq!(script.signals(), ["USR1", "INT"]);
}

#[tokio::test]
async fn a_child_exiting_during_the_delay_gives_its_own_code() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::from_secs(3600));
    script.wait_ready().await;
    sender.send(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    script.ask_to_exit(9);
    assert_eq!(exit_code(handle).await, 9);
    assert!(script.signals().is_empty(), "{:?}", script.signals());
}

#[tokio::test]
async fn sigchld_and_sigurg_are_not_forwarded_but_others_are() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::ZERO);
    script.wait_ready().await;
    sender.send(Signal::SIGURG);
    sender.send(Signal::SIGCHLD);
    sender.send(Signal::SIGHUP);
    script.wait_for_signal("HUP").await;
    sender.send(Signal::SIGUSR1);
    script.wait_for_signal("USR1").await;
    sender.send(Signal::SIGINT);
    assert_eq!(exit_code(handle).await, 42);
    assert_eq!(script.signals(), ["HUP", "USR1", "INT"]);
}

#[tokio::test]
async fn the_child_keeps_running_when_the_signal_source_closes() {
    let script = Script::trapping();
    let (sender, handle) = start(script.command(), Duration::ZERO);
    script.wait_ready().await;
    drop(sender);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!handle.is_finished());
    script.ask_to_exit(4);
    assert_eq!(exit_code(handle).await, 4);
}

#[tokio::test]
async fn signals_after_the_group_was_terminated_are_still_forwarded() {
    // A child that ignores the first SIGTERM: the wrapper keeps forwarding until it exits.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo TERM >> {log}' TERM; trap 'echo INT >> {log}; exit 42' INT; : > {ready}; \
         parent=$PPID; while kill -0 $parent 2>/dev/null; do sleep 0.1; done",
        log = log.display(),
        ready = ready.display()
    );
    let (sender, handle) = start(sh(&script), Duration::ZERO);
    eventually("the child to start", || ready.exists()).await;
    sender.send(Signal::SIGTERM);
    eventually("the child to see SIGTERM", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("TERM"))
    })
    .await;
    assert!(!handle.is_finished());
    sender.send(Signal::SIGINT);
    assert_eq!(exit_code(handle).await, 42);
}
