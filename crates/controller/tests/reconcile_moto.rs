//! The reconcile pass with the AWS SDK against moto's ECS (EC2 launch type: moto 5.2.1 cannot run
//! FARGATE + awsvpc tasks) and the dev server with ACLs on. moto is started on a free loopback port
//! per test and killed when the test ends. moto's StopTask stops a task at once, so the stopping
//! state is covered by `reconcile_fake.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use consul_ecs_controller::{ReconcileSettings, Reconciler, SdkEcs, reconcile, setup};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto_ecs.py");

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let child = Command::new(&python)
            .args([SCRIPT, "serve", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto with {python} ({e}); scripts/setup.sh installs it")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url }
    }

    fn script(&self, args: &[&str]) -> String {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let out = Command::new(python)
            .arg(SCRIPT)
            .args(args)
            .env("MOTO_URL", &self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "moto_ecs.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[tokio::test]
async fn stopped_task_is_cleaned_up_and_running_tasks_keep_everything() {
    let moto = Moto::start();
    let made: serde_json::Value = serde_json::from_str(&moto.script(&["setup", "4"])).unwrap();
    let cluster = made["cluster"].as_str().unwrap().to_owned();
    let arns: Vec<String> = made["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let ids: Vec<String> = arns
        .iter()
        .map(|a| reconcile::task_id(a).to_owned())
        .collect();

    let (server, consul) = consul().await;
    setup(&consul, &setup_input(&cluster)).await.unwrap();
    for id in &ids {
        login_token(&consul, &cluster, id).await;
        register_task_services(&consul, &cluster, id).await;
    }
    let ecs = SdkEcs::with_endpoint("us-east-1", &moto.url, "testing", "testing").await;
    let mut r = Reconciler::new(
        consul.clone(),
        ecs,
        ReconcileSettings {
            cluster_arn: cluster.clone(),
            partition: None,
            full_scan_every: 0,
        },
    );

    // The last task has no mesh tag: like upstream, its objects count as a gone task's.
    let first = r.pass().await.unwrap();
    assert_eq!(first.present_tasks, 3, "{first:?}");
    assert_eq!(first.tokens_deleted, 1, "{first:?}");
    let mut expect: Vec<String> = ids[..3].to_vec();
    expect.sort();
    assert_eq!(token_tasks(&consul).await, expect);

    // Nothing changed: no writes.
    let again = r.pass().await.unwrap();
    assert_eq!(again.consul_writes, 0, "{again:?}");

    moto.script(&["stop", &cluster, &arns[1]]);
    let stats = r.pass().await.unwrap();
    assert_eq!(stats.tokens_deleted, 1, "{stats:?}");
    assert_eq!(stats.services_deregistered, 2, "{stats:?}");
    let mut expect = vec![ids[0].clone(), ids[2].clone()];
    expect.sort();
    assert_eq!(token_tasks(&consul).await, expect);
    let services = service_ids(&consul, &cluster).await;
    assert_eq!(services.len(), 4, "{services:?}");
    assert!(
        services
            .iter()
            .all(|s| s.contains(&ids[0]) || s.contains(&ids[2])),
        "{services:?}"
    );
    server.shutdown().await;
}
