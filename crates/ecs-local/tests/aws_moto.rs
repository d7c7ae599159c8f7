//! The AWS side against moto: secrets from Secrets Manager (whole, and one JSON key) and SSM
//! Parameter Store, task-role credentials from STS AssumeRole, and a secret reaching a container.
//!
//! moto is started on a free loopback port per test and killed when the test ends; without moto the
//! tests fail with a message pointing to `scripts/setup.sh`, which installs it.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use consul_ecs_aws::Credentials;
use consul_ecs_local::{
    AssumeRole, AwsSecrets, RoleCredentialsProvider, SecretResolver, TaskOptions,
};
use serde_json::{Value, json};

const SETUP: &str = r#"
import json, os, boto3
kw = dict(endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
sm = boto3.client("secretsmanager", **kw)
ca = sm.create_secret(Name="consul-ca", SecretString="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")["ARN"]
db = sm.create_secret(Name="db", SecretString=json.dumps({"password": "hunter2", "port": 5432}))["ARN"]
ssm = boto3.client("ssm", **kw)
ssm.put_parameter(Name="/app/db/url", Value="postgres://db:5432", Type="SecureString")
ssm.put_parameter(Name="plain", Value="plain-value", Type="String")
iam = boto3.client("iam", **kw)
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
         "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="web-task", Path="/consul-ecs/",
                       AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
print(json.dumps({"ca": ca, "db": db, "role": role}))
"#;

struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Self {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let probe = Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            panic!(
                "moto is missing ({python} cannot import moto.server and boto3); scripts/setup.sh installs it"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + common::patience();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn setup(&self) -> Value {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let output = Command::new(python)
            .args(["-c", SETUP])
            .env("MOTO_URL", &self.url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "test")
}

#[tokio::test]
async fn secrets_resolve_from_secrets_manager_and_parameter_store() {
    let moto = Moto::start();
    let arns = moto.setup();
    let resolver = AwsSecrets::new("us-east-1")
        .with_endpoint(&moto.url)
        .with_credentials(credentials());
    let ca = arns["ca"].as_str().unwrap();
    let db = arns["db"].as_str().unwrap();
    let resolve = |value_from: String| {
        let resolver = &resolver;
        async move { resolver.resolve(&value_from).await }
    };
    assert!(
        resolve(ca.to_owned())
            .await
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\nMIIB")
    );
    assert_eq!(
        resolve(format!("{db}:password::")).await.unwrap(),
        "hunter2"
    );
    assert_eq!(resolve(format!("{db}:port::")).await.unwrap(), "5432");
    assert_eq!(
        resolve("arn:aws:ssm:us-east-1:123456789012:parameter/app/db/url".to_owned())
            .await
            .unwrap(),
        "postgres://db:5432"
    );
    assert_eq!(resolve("plain".to_owned()).await.unwrap(), "plain-value");
    let missing = resolve(format!("{db}:user::"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("the secret has no key \"user\""),
        "{missing}"
    );
    let unknown = resolve("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope".to_owned())
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("ResourceNotFoundException"), "{unknown}");
    // Values never appear in errors.
    assert!(!missing.contains("hunter2"));
}

#[tokio::test]
async fn task_role_credentials_come_from_assume_role() {
    let moto = Moto::start();
    let arns = moto.setup();
    let provider = AssumeRole::new("us-east-1")
        .with_endpoint(&moto.url)
        .with_credentials(credentials());
    let role = arns["role"].as_str().unwrap();
    let creds = provider.credentials(role, "task-1234").await.unwrap();
    assert!(!creds.access_key_id.is_empty() && !creds.session_token.is_empty());
    assert!(creds.expiration > SystemTime::now());
    let err = AssumeRole::new("us-east-1")
        .with_endpoint("http://127.0.0.1:1")
        .with_credentials(credentials())
        .credentials(role, "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(role), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_from_secrets_manager_reaches_the_container_environment() {
    let moto = Moto::start();
    let arns = moto.setup();
    let url = moto.url.clone();
    let h = common::Harness::configured(40, move |config| {
        config.secrets = Arc::new(
            AwsSecrets::new("us-east-1")
                .with_endpoint(&url)
                .with_credentials(credentials()),
        );
    });
    let task_def = json!({"family": "secret", "containerDefinitions": [{
        "name": "app", "image": "sh", "command": ["-c", "echo \"$DB_PASSWORD\""],
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": format!("{}:password::", arns["db"].as_str().unwrap())}]
    }]});
    let task = h
        .runtime
        .start_task(&common::def(&task_def.to_string()), TaskOptions::default())
        .await
        .unwrap();
    let id = task.id().to_owned();
    let record = tokio::time::timeout(common::patience(), task.wait())
        .await
        .unwrap();
    assert_eq!(h.log(&id, "app"), "hunter2\n");
    // The definition on disk never holds the value.
    let on_disk = std::fs::read_to_string(h.runtime.state().record_path(&id)).unwrap();
    assert!(!on_disk.contains("hunter2"));
    common::assert_clean(&record, h.runtime.state().root()).await;
}
