//! A diagnostic tool over this crate, run in a task to see what consul-ecs would see:
//!
//! * `consul-ecs-aws task` reads `ECS_CONTAINER_METADATA_URI_V4/task` and prints the derived task
//!   ID, cluster ARN, region, account and node IP as JSON.
//! * `consul-ecs-aws token [--region R] [--sts-endpoint URL] [--iam-endpoint URL] [--no-entity]
//!   [--server-id VALUE]` builds an `aws-iam` login bearer token from the default AWS credential
//!   chain and prints it. The token is a credential (valid about 15 minutes): handle it as one.
//!
//! Exit status: 0 on success, 1 on any error (printed to stderr), 2 on bad usage.

use std::process::ExitCode;

use consul_ecs_aws::iam_login::{self, LoginOptions};
use consul_ecs_aws::task_metadata::TaskMetadataClient;

const USAGE: &str = "usage: consul-ecs-aws task\n       consul-ecs-aws token [--region R] \
[--sts-endpoint URL] [--iam-endpoint URL] [--no-entity] [--server-id VALUE]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("task") if args.len() == 1 => task().await,
        Some("token") => match token_options(&args[1..]) {
            Ok(parsed) => token(parsed).await,
            Err(message) => {
                eprintln!("{message}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn task() -> Result<String, String> {
    let client = TaskMetadataClient::from_env().map_err(|e| e.to_string())?;
    let task = client.task().await.map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "taskId": task.task_id(),
        "clusterArn": task.cluster_arn().map_err(|e| e.to_string())?,
        "region": task.region().map_err(|e| e.to_string())?,
        "account": task.account().map_err(|e| e.to_string())?,
        "nodeIp": task.node_ip(),
    });
    Ok(summary.to_string())
}

/// Parsed `token` flags; the region may come from the task metadata when not given.
struct TokenArgs {
    region: Option<String>,
    options: LoginOptions,
}

fn token_options(args: &[String]) -> Result<TokenArgs, String> {
    let mut parsed = TokenArgs {
        region: None,
        options: LoginOptions::new(""),
    };
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--region" => parsed.region = Some(value("--region")?),
            "--sts-endpoint" => parsed.options.sts_endpoint = Some(value("--sts-endpoint")?),
            "--iam-endpoint" => parsed.options.iam_endpoint = Some(value("--iam-endpoint")?),
            "--server-id" => {
                parsed.options.server_id_header_value = Some(value("--server-id")?);
            }
            "--no-entity" => parsed.options.include_entity = false,
            other => return Err(format!("unexpected argument: {other}")),
        }
    }
    Ok(parsed)
}

async fn token(mut args: TokenArgs) -> Result<String, String> {
    let region = match args.region.take() {
        Some(region) => region,
        None => {
            let client = TaskMetadataClient::from_env()
                .map_err(|e| format!("no --region given and the task region is unknown: {e}"))?;
            let task = client.task().await.map_err(|e| e.to_string())?;
            iam_login::login_region(None, &task).map_err(|e| e.to_string())?
        }
    };
    args.options.region = region;
    let token = iam_login::bearer_token(&args.options)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token.into_inner())
}
