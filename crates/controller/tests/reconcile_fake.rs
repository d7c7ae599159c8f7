//! The reconcile pass against the dev server (ACLs on) with an in-memory ECS, which can show what
//! moto cannot: tasks that are stopping (desired STOPPED, not yet stopped), throttling, and
//! thousands of tasks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_ecs_controller::fake::FakeEcs;
use consul_ecs_controller::{ReconcileSettings, Reconciler, reconcile, run_loop, setup};

const MESH: (&str, &str) = (reconcile::MESH_TAG, "true");

fn arn(task: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/mesh/{task}")
}

fn reconciler(consul: &consul_client::Client, ecs: FakeEcs) -> Reconciler<FakeEcs> {
    Reconciler::new(
        consul.clone(),
        ecs,
        ReconcileSettings {
            cluster_arn: CLUSTER.to_owned(),
            partition: None,
            full_scan_every: 0,
        },
    )
}

async fn world(tasks: &[&str]) -> (devserver::DevServer, consul_client::Client, FakeEcs) {
    let (server, consul) = consul().await;
    setup(&consul, &setup_input(CLUSTER)).await.unwrap();
    let ecs = FakeEcs::new();
    for task in tasks {
        ecs.run(&arn(task), &[MESH]);
        login_token(&consul, CLUSTER, task).await;
        register_task_services(&consul, CLUSTER, task).await;
    }
    (server, consul, ecs)
}

#[tokio::test]
async fn stopped_task_loses_tokens_and_services_in_one_pass_running_keeps_them() {
    let (server, consul, ecs) = world(&["t1", "t2", "t3"]).await;
    // A token of another cluster and a token without login meta are never touched.
    login_token(
        &consul,
        "arn:aws:ecs:us-east-1:123456789012:cluster/other",
        "t9",
    )
    .await;
    let mut r = reconciler(&consul, ecs);
    let first = r.pass().await.unwrap();
    assert_eq!(first.consul_writes, 0, "{first:?}");
    assert_eq!(first.present_tasks, 3);

    r.ecs().stop(&arn("t2"));
    let stats = r.pass().await.unwrap();
    assert_eq!(stats.tokens_deleted, 1, "{stats:?}");
    assert_eq!(stats.services_deregistered, 2, "{stats:?}");
    assert_eq!(token_tasks(&consul).await, ["t1", "t3", "t9"]);
    assert_eq!(
        service_ids(&consul, CLUSTER).await,
        [
            "web-t1",
            "web-t1-sidecar-proxy",
            "web-t3",
            "web-t3-sidecar-proxy"
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stopping_task_keeps_everything_until_it_has_stopped() {
    let (server, consul, ecs) = world(&["t1", "t2"]).await;
    let mut r = reconciler(&consul, ecs);
    r.pass().await.unwrap();

    r.ecs().begin_stop(&arn("t2"));
    for _ in 0..2 {
        let stats = r.pass().await.unwrap();
        assert_eq!(stats.consul_writes, 0, "{stats:?}");
        assert_eq!(stats.present_tasks, 2);
    }
    assert_eq!(token_tasks(&consul).await, ["t1", "t2"]);

    r.ecs().stop(&arn("t2"));
    r.pass().await.unwrap();
    assert_eq!(token_tasks(&consul).await, ["t1"]);
    assert_eq!(
        service_ids(&consul, CLUSTER).await,
        ["web-t1", "web-t1-sidecar-proxy"]
    );

    // ECS eventually forgets the stopped task: nothing else changes.
    r.ecs().forget(&arn("t2"));
    let stats = r.pass().await.unwrap();
    assert_eq!(stats.consul_writes, 0);
    assert_eq!(token_tasks(&consul).await, ["t1"]);
    server.shutdown().await;
}

#[tokio::test]
async fn steady_state_makes_no_consul_write_and_no_token_list() {
    let (server, consul, ecs) = world(&["t1", "t2"]).await;
    let mut r = reconciler(&consul, ecs);
    r.pass().await.unwrap();
    r.pass().await.unwrap();
    let before = write_index(&consul, CLUSTER).await;
    for _ in 0..3 {
        let stats = r.pass().await.unwrap();
        assert_eq!(stats.consul_writes, 0, "{stats:?}");
        assert!(!stats.listed_tokens, "{stats:?}");
        assert!(!stats.listed_services, "{stats:?}");
        assert_eq!(
            stats.consul_reads, 2,
            "only the two index probes: {stats:?}"
        );
    }
    assert_eq!(write_index(&consul, CLUSTER).await, before);

    // A new token for an unknown task moves the token index: the next pass looks and removes it.
    login_token(&consul, CLUSTER, "ghost").await;
    let stats = r.pass().await.unwrap();
    assert!(stats.listed_tokens);
    assert_eq!(stats.tokens_deleted, 1);
    assert_eq!(token_tasks(&consul).await, ["t1", "t2"]);
    server.shutdown().await;
}

#[tokio::test]
async fn service_without_task_meta_is_skipped_and_does_not_block_cleanup() {
    let (server, consul, ecs) = world(&["t1", "t2"]).await;
    register(&consul, CLUSTER, "legacy-1", "legacy", None).await;
    let mut r = reconciler(&consul, ecs);
    r.ecs().stop(&arn("t1"));
    let stats = r.pass().await.unwrap();
    assert_eq!(stats.services_deregistered, 2, "{stats:?}");
    assert_eq!(
        service_ids(&consul, CLUSTER).await,
        ["legacy-1", "web-t2", "web-t2-sidecar-proxy"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ecs_failure_or_throttling_removes_nothing() {
    let (server, consul, ecs) = world(&["t1", "t2"]).await;
    let mut r = reconciler(&consul, ecs);
    r.ecs().stop(&arn("t1"));
    r.ecs().set_failing(false, true);
    let err = r.pass().await.unwrap_err();
    assert!(err.is_throttled(), "{err}");
    r.ecs().set_failing(true, false);
    assert!(r.pass().await.is_err());
    assert_eq!(token_tasks(&consul).await, ["t1", "t2"]);

    r.ecs().set_failing(false, false);
    r.pass().await.unwrap();
    assert_eq!(token_tasks(&consul).await, ["t2"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_replica_and_a_restart_converge_without_errors() {
    let (server, consul, ecs) = world(&["t1", "t2", "t3"]).await;
    let mut a = reconciler(&consul, ecs);
    a.pass().await.unwrap();
    a.ecs().stop(&arn("t1"));
    a.ecs().stop(&arn("t3"));

    // Replica B (or a restarted controller with no memory) sees the same cluster.
    let b_ecs = FakeEcs::new();
    b_ecs.run(&arn("t2"), &[MESH]);
    let mut b = reconciler(&consul, b_ecs);
    let sb = b.pass().await.unwrap();
    let sa = a.pass().await.unwrap();
    assert_eq!(sa.failures + sb.failures, 0, "{sa:?} {sb:?}");
    assert_eq!(token_tasks(&consul).await, ["t2"]);
    assert_eq!(
        service_ids(&consul, CLUSTER).await,
        ["web-t2", "web-t2-sidecar-proxy"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn run_loop_finishes_the_current_pass_and_returns_on_shutdown() {
    let (server, consul, ecs) = world(&["t1"]).await;
    let mut r = reconciler(&consul, ecs);
    let mut passes = 0;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    run_loop(
        &mut r,
        Duration::from_millis(20),
        async {
            let _ = rx.await;
        },
        |outcome| {
            assert!(outcome.is_ok());
            passes += 1;
            if passes == 3
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        },
    )
    .await;
    assert_eq!(passes, 3);
    server.shutdown().await;
}
