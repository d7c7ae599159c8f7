//! The narrow ECS surface the controller uses (`ListTasks`, `DescribeTasks` with tags), as a trait so
//! tests and benchmarks can stand in for ECS, and its implementation on the AWS SDK.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{DesiredStatus as SdkDesiredStatus, TaskField};

/// Which tasks `ListTasks` returns (its `desiredStatus` filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredStatus {
    /// Tasks ECS wants running (the API's default filter).
    Running,
    /// Tasks ECS wants stopped: stopping ones and, for a while, stopped ones.
    Stopped,
}

/// One page of task ARNs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskPage {
    /// Task ARNs on this page.
    pub arns: Vec<String>,
    /// Token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// What the controller reads of a described task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcsTask {
    /// Task ARN.
    pub arn: String,
    /// `lastStatus` (`PROVISIONING`, `RUNNING`, `DEPROVISIONING`, `STOPPED`, ...).
    pub last_status: String,
    /// `desiredStatus` (`RUNNING` or `STOPPED`).
    pub desired_status: String,
    /// Task tags.
    pub tags: BTreeMap<String, String>,
}

/// Why an ECS call failed.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// ECS asked us to slow down; the loop backs off.
    #[error("ECS {operation} throttled: {message}")]
    Throttled {
        /// The API operation.
        operation: &'static str,
        /// ECS's message.
        message: String,
    },
    /// Any other failure.
    #[error("ECS {operation} failed: {message}")]
    Call {
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl EcsError {
    /// Whether ECS throttled the call.
    pub fn is_throttled(&self) -> bool {
        matches!(self, EcsError::Throttled { .. })
    }
}

/// The ECS calls the controller makes.
pub trait EcsApi: Send + Sync {
    /// `ListTasks{cluster, desiredStatus, nextToken}`.
    fn list_tasks(
        &self,
        cluster: &str,
        desired: DesiredStatus,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<TaskPage, EcsError>> + Send;

    /// `DescribeTasks{cluster, tasks, include: [TAGS]}` for at most 100 ARNs.
    fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<EcsTask>, EcsError>> + Send;
}

/// [`EcsApi`] on the AWS SDK. The endpoint follows `AWS_ENDPOINT_URL_ECS` / `AWS_ENDPOINT_URL`.
#[derive(Clone, Debug)]
pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
}

impl SdkEcs {
    /// A client for `region` with the default credential chain, TLS by rustls on ring.
    pub async fn new(region: &str) -> Self {
        Self::build(region, None).await
    }

    /// A client for a local emulator (moto, LocalStack): this endpoint and static credentials.
    pub async fn with_endpoint(region: &str, endpoint: &str, key_id: &str, secret: &str) -> Self {
        let credentials =
            aws_sdk_ecs::config::Credentials::new(key_id, secret, None, None, "static");
        Self::build(region, Some((endpoint, credentials))).await
    }

    async fn build(
        region: &str,
        emulator: Option<(&str, aws_sdk_ecs::config::Credentials)>,
    ) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .http_client(http_client);
        // Upstream appends "controller" to the User-Agent; the SDK's app name is the supported way.
        if let Ok(name) = aws_config::AppName::new("consul-ecs-controller") {
            loader = loader.app_name(name);
        }
        if let Some((endpoint, credentials)) = emulator {
            loader = loader
                .endpoint_url(endpoint)
                .credentials_provider(credentials);
        }
        let config = loader.load().await;
        Self {
            client: aws_sdk_ecs::Client::new(&config),
        }
    }
}

fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    err: aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> EcsError {
    let code = err.code().unwrap_or_default().to_owned();
    let message = match err.message() {
        Some(m) => format!("{code}: {m}"),
        None => aws_sdk_ecs::error::DisplayErrorContext(&err).to_string(),
    };
    if code.contains("Throttl")
        || code == "TooManyRequestsException"
        || code == "RequestLimitExceeded"
    {
        EcsError::Throttled { operation, message }
    } else {
        EcsError::Call { operation, message }
    }
}

impl EcsApi for SdkEcs {
    async fn list_tasks(
        &self,
        cluster: &str,
        desired: DesiredStatus,
        next_token: Option<String>,
    ) -> Result<TaskPage, EcsError> {
        let status = match desired {
            DesiredStatus::Running => SdkDesiredStatus::Running,
            DesiredStatus::Stopped => SdkDesiredStatus::Stopped,
        };
        let out = self
            .client
            .list_tasks()
            .cluster(cluster)
            .desired_status(status)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| sdk_error("ListTasks", e))?;
        Ok(TaskPage {
            arns: out.task_arns.unwrap_or_default(),
            next_token: out.next_token.filter(|t| !t.is_empty()),
        })
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<EcsTask>, EcsError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTasks", e))?;
        Ok(out
            .tasks
            .unwrap_or_default()
            .into_iter()
            .map(|t| EcsTask {
                arn: t.task_arn.unwrap_or_default(),
                last_status: t.last_status.unwrap_or_default(),
                desired_status: t.desired_status.unwrap_or_default(),
                tags: t
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|tag| Some((tag.key?, tag.value.unwrap_or_default())))
                    .collect(),
            })
            .collect())
    }
}
