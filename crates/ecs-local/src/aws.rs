//! What the ECS agent would fetch from AWS for a task: `secrets` values (Secrets Manager and SSM
//! Parameter Store) and task-role credentials (STS `AssumeRole`).
//!
//! Both sit behind small traits ([`SecretResolver`], [`RoleCredentialsProvider`]) so embedders and
//! tests can hand in fixed values. The AWS implementations sign requests with SigV4 using the
//! runtime's own credentials (the AWS SDK's default chain) and honour endpoint overrides the way
//! the SDKs do: `AWS_ENDPOINT_URL_<SERVICE>` first, then `AWS_ENDPOINT_URL` (unless
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), so moto can stand in for AWS. Secret values and
//! credentials never appear in errors, logs or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use consul_ecs_aws::Credentials;
use consul_ecs_aws::bearer_token::SignedRequest;
use consul_ecs_aws::iam_login::{load_default_credentials, send_signed_request, sign_request};
use serde_json::{Value, json};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one AWS call may take.
pub const AWS_TIMEOUT: Duration = Duration::from_secs(15);

/// A secret that could not be resolved. Never carries the secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {value_from:?}: {reason}")]
pub struct SecretError {
    /// The `valueFrom` at fault.
    pub value_from: String,
    /// Why it could not be resolved.
    pub reason: String,
}

/// Resolves the `valueFrom` of a container's `secrets` entry.
pub trait SecretResolver: Send + Sync + fmt::Debug {
    /// The value for `value_from`.
    fn resolve<'a>(&'a self, value_from: &'a str) -> BoxFuture<'a, Result<String, SecretError>>;
}

/// Fixed values by `valueFrom` (tests, and embedders that already hold the values).
#[derive(Clone, Default)]
pub struct StaticSecrets(BTreeMap<String, String>);

impl StaticSecrets {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value.
    pub fn with(mut self, value_from: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(value_from.into(), value.into());
        self
    }
}

impl fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticSecrets")
            .field("value_from", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretResolver for StaticSecrets {
    fn resolve<'a>(&'a self, value_from: &'a str) -> BoxFuture<'a, Result<String, SecretError>> {
        Box::pin(async move {
            self.0.get(value_from).cloned().ok_or_else(|| SecretError {
                value_from: value_from.to_owned(),
                reason: "no such secret".to_owned(),
            })
        })
    }
}

/// Resolves secrets through Secrets Manager `GetSecretValue` and SSM `GetParameter`.
#[derive(Debug)]
pub struct AwsSecrets {
    region: String,
    endpoint: Option<String>,
    credentials: tokio::sync::OnceCell<Credentials>,
}

impl AwsSecrets {
    /// Resolves names without a region (bare SSM parameter names) in `region`.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoint: None,
            credentials: tokio::sync::OnceCell::new(),
        }
    }

    /// Sends every call to `url` (such as a moto server) instead of the environment's endpoints.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Signs with `credentials` instead of the default credential chain.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = tokio::sync::OnceCell::new_with(Some(credentials));
        self
    }
}

/// A parsed `valueFrom`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    SecretsManager {
        region: String,
        secret_id: String,
        json_key: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
    Ssm {
        region: Option<String>,
        name: String,
    },
}

fn parse_value_from(value_from: &str) -> Result<SecretSource, String> {
    if !value_from.starts_with("arn:") {
        return Ok(SecretSource::Ssm {
            region: None,
            name: value_from.to_owned(),
        });
    }
    let parts: Vec<&str> = value_from.split(':').collect();
    let service = parts.get(2).copied().unwrap_or_default();
    let region = parts.get(3).copied().unwrap_or_default();
    if region.is_empty() {
        return Err("the ARN has no region".to_owned());
    }
    match service {
        "secretsmanager" => {
            // arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key[:stage[:id]]]
            if parts.len() < 7 || parts[5] != "secret" || parts[6].is_empty() {
                return Err("not a Secrets Manager secret ARN".to_owned());
            }
            let optional = |i: usize| {
                parts
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .map(|s| (*s).to_owned())
            };
            if parts.len() > 10 {
                return Err("too many fields after the secret name".to_owned());
            }
            Ok(SecretSource::SecretsManager {
                region: region.to_owned(),
                secret_id: parts[..7].join(":"),
                json_key: optional(7),
                version_stage: optional(8),
                version_id: optional(9),
            })
        }
        "ssm" => {
            // arn:aws:ssm:<region>:<account>:parameter/<name> (hierarchical names keep their '/').
            let resource = parts.get(5..).map(|r| r.join(":")).unwrap_or_default();
            let rest = resource
                .strip_prefix("parameter")
                .filter(|r| r.starts_with('/'))
                .ok_or_else(|| "not an SSM parameter ARN".to_owned())?;
            let name = if rest[1..].contains('/') {
                rest.to_owned()
            } else {
                rest[1..].to_owned()
            };
            Ok(SecretSource::Ssm {
                region: Some(region.to_owned()),
                name,
            })
        }
        other => Err(format!(
            "{other:?} ARNs cannot be secrets (use secretsmanager or ssm)"
        )),
    }
}

impl SecretResolver for AwsSecrets {
    fn resolve<'a>(&'a self, value_from: &'a str) -> BoxFuture<'a, Result<String, SecretError>> {
        Box::pin(async move {
            let error = |reason: String| SecretError {
                value_from: value_from.to_owned(),
                reason,
            };
            let source = parse_value_from(value_from).map_err(error)?;
            let credentials = self
                .credentials
                .get_or_try_init(|| load_default_credentials(&self.region, AWS_TIMEOUT))
                .await
                .map_err(|e| error(format!("no AWS credentials to fetch it with: {e}")))?;
            match source {
                SecretSource::SecretsManager {
                    region,
                    secret_id,
                    json_key,
                    version_stage,
                    version_id,
                } => {
                    let mut body = json!({ "SecretId": secret_id });
                    if let Some(stage) = version_stage {
                        body["VersionStage"] = Value::from(stage);
                    }
                    if let Some(id) = version_id {
                        body["VersionId"] = Value::from(id);
                    }
                    let endpoint = endpoint(
                        self.endpoint.as_deref(),
                        "SECRETS_MANAGER",
                        "secretsmanager",
                        &region,
                    );
                    let reply = call_json(
                        "secretsmanager",
                        &region,
                        &endpoint,
                        "secretsmanager.GetSecretValue",
                        &body,
                        credentials,
                    )
                    .await
                    .map_err(error)?;
                    let text = reply
                        .get("SecretString")
                        .and_then(Value::as_str)
                        .ok_or_else(|| error("the secret has no SecretString".to_owned()))?;
                    match json_key {
                        None => Ok(text.to_owned()),
                        Some(key) => {
                            let document: Value = serde_json::from_str(text).map_err(|_| {
                                error(format!(
                                    "the secret is not a JSON object, so it has no key {key:?}"
                                ))
                            })?;
                            match document.get(&key) {
                                Some(Value::String(s)) => Ok(s.clone()),
                                Some(other) => Ok(other.to_string()),
                                None => Err(error(format!("the secret has no key {key:?}"))),
                            }
                        }
                    }
                }
                SecretSource::Ssm { region, name } => {
                    let region = region.unwrap_or_else(|| self.region.clone());
                    let endpoint = endpoint(self.endpoint.as_deref(), "SSM", "ssm", &region);
                    let reply = call_json(
                        "ssm",
                        &region,
                        &endpoint,
                        "AmazonSSM.GetParameter",
                        &json!({ "Name": name, "WithDecryption": true }),
                        credentials,
                    )
                    .await
                    .map_err(error)?;
                    reply
                        .pointer("/Parameter/Value")
                        .and_then(Value::as_str)
                        .map(ToOwned::to_owned)
                        .ok_or_else(|| error("the reply has no Parameter.Value".to_owned()))
                }
            }
        })
    }
}

/// The endpoint for a service: the one given, else the SDKs' environment overrides, else AWS's.
fn endpoint(given: Option<&str>, env_suffix: &str, host_prefix: &str, region: &str) -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let ignore = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v == "true");
    let configured = if let Some(given) = given {
        Some(given.to_owned())
    } else if ignore {
        None
    } else {
        var(&format!("AWS_ENDPOINT_URL_{env_suffix}")).or_else(|| var("AWS_ENDPOINT_URL"))
    };
    let url = configured.unwrap_or_else(|| format!("https://{host_prefix}.{region}.amazonaws.com"));
    let url = url.trim().trim_end_matches('/');
    format!("{url}/")
}

async fn send(
    service: &'static str,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
    credentials: &Credentials,
) -> Result<(u16, String), String> {
    let request = SignedRequest {
        method: "POST".to_owned(),
        url: url.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect(),
        body,
    };
    let signed = sign_request(&request, service, region, credentials, SystemTime::now())
        .map_err(|e| format!("signing the {service} request: {e}"))?;
    let response = send_signed_request(&signed, None, AWS_TIMEOUT)
        .await
        .map_err(|e| format!("calling {url}: {e}"))?;
    Ok((response.status, response.body))
}

/// A call to an AWS JSON 1.1 API.
async fn call_json(
    service: &'static str,
    region: &str,
    url: &str,
    target: &str,
    body: &Value,
    credentials: &Credentials,
) -> Result<Value, String> {
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", target),
    ];
    let (status, text) = send(
        service,
        region,
        url,
        &headers,
        body.to_string(),
        credentials,
    )
    .await?;
    let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 {
        let kind = reply
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t))
            .unwrap_or("error");
        let message = reply
            .get("message")
            .or_else(|| reply.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("{target} answered {status} {kind}: {message}"));
    }
    Ok(reply)
}

/// Temporary credentials for a task role.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleCredentials {
    /// The access key ID.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they expire.
    pub expiration: SystemTime,
}

impl fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Credentials for a task role that could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credentials for task role {role_arn:?}: {reason}")]
pub struct CredentialsError {
    /// The role.
    pub role_arn: String,
    /// Why.
    pub reason: String,
}

/// Supplies the credentials a task's containers get for its `taskRoleArn`.
pub trait RoleCredentialsProvider: Send + Sync + fmt::Debug {
    /// Credentials for `role_arn`, for a session named `session_name`.
    fn credentials<'a>(
        &'a self,
        role_arn: &'a str,
        session_name: &'a str,
    ) -> BoxFuture<'a, Result<RoleCredentials, CredentialsError>>;
}

/// The same fixed credentials for every role (tests, or a moto without signature checks).
#[derive(Clone)]
pub struct StaticRoleCredentials(RoleCredentials);

impl StaticRoleCredentials {
    /// Fixed credentials valid for a day from now.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: impl Into<String>,
    ) -> Self {
        Self(RoleCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.into(),
            expiration: SystemTime::now() + Duration::from_secs(86_400),
        })
    }
}

impl fmt::Debug for StaticRoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticRoleCredentials")
            .field(&self.0)
            .finish()
    }
}

impl RoleCredentialsProvider for StaticRoleCredentials {
    fn credentials<'a>(
        &'a self,
        _role_arn: &'a str,
        _session_name: &'a str,
    ) -> BoxFuture<'a, Result<RoleCredentials, CredentialsError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// Assumes the task role through STS (`AssumeRole`, one hour sessions), as the ECS agent does.
#[derive(Debug)]
pub struct AssumeRole {
    region: String,
    endpoint: Option<String>,
    credentials: tokio::sync::OnceCell<Credentials>,
}

impl AssumeRole {
    /// Calls STS in `region` with the runtime's own credentials.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoint: None,
            credentials: tokio::sync::OnceCell::new(),
        }
    }

    /// Sends the calls to `url` (such as a moto server) instead of the environment's endpoint.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Signs with `credentials` instead of the default credential chain.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = tokio::sync::OnceCell::new_with(Some(credentials));
        self
    }
}

impl RoleCredentialsProvider for AssumeRole {
    fn credentials<'a>(
        &'a self,
        role_arn: &'a str,
        session_name: &'a str,
    ) -> BoxFuture<'a, Result<RoleCredentials, CredentialsError>> {
        Box::pin(async move {
            let error = |reason: String| CredentialsError {
                role_arn: role_arn.to_owned(),
                reason,
            };
            let credentials = self
                .credentials
                .get_or_try_init(|| load_default_credentials(&self.region, AWS_TIMEOUT))
                .await
                .map_err(|e| error(format!("no AWS credentials to call STS with: {e}")))?;
            let body = form(&[
                ("Action", "AssumeRole"),
                ("Version", "2011-06-15"),
                ("RoleArn", role_arn),
                ("RoleSessionName", session_name),
                ("DurationSeconds", "3600"),
            ]);
            let url = endpoint(self.endpoint.as_deref(), "STS", "sts", &self.region);
            let headers = [(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )];
            let (status, text) = send("sts", &self.region, &url, &headers, body, credentials)
                .await
                .map_err(error)?;
            if status != 200 {
                let detail = consul_ecs_aws::aws_xml::parse_error(&text)
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .unwrap_or_else(|| format!("status {status}"));
                return Err(error(format!("AssumeRole failed: {detail}")));
            }
            parse_assume_role(&text).map_err(error)
        })
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(key));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

fn parse_assume_role(xml: &str) -> Result<RoleCredentials, String> {
    let creds = element(xml, "Credentials").ok_or("the AssumeRole reply has no <Credentials>")?;
    let field = |tag: &str| {
        element(creds, tag)
            .map(|s| {
                s.trim()
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
            })
            .ok_or_else(|| format!("the AssumeRole reply has no <{tag}>"))
    };
    let expiration = field("Expiration")?;
    let expiration =
        time::OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
            .map(SystemTime::from)
            .map_err(|e| format!("the AssumeRole expiration {expiration:?} is not a time: {e}"))?;
    Ok(RoleCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: field("SessionToken")?,
        expiration,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn value_from_forms() {
        assert_eq!(
            parse_value_from("arn:aws:secretsmanager:us-west-2:123:secret:ca-AbCdEf").unwrap(),
            SecretSource::SecretsManager {
                region: "us-west-2".into(),
                secret_id: "arn:aws:secretsmanager:us-west-2:123:secret:ca-AbCdEf".into(),
                json_key: None,
                version_stage: None,
                version_id: None,
            }
        );
        assert_eq!(
            parse_value_from("arn:aws:secretsmanager:us-west-2:123:secret:db:password::").unwrap(),
            SecretSource::SecretsManager {
                region: "us-west-2".into(),
                secret_id: "arn:aws:secretsmanager:us-west-2:123:secret:db".into(),
                json_key: Some("password".into()),
                version_stage: None,
                version_id: None,
            }
        );
        assert_eq!(
            parse_value_from("arn:aws:ssm:eu-west-1:123:parameter/app/db/url").unwrap(),
            SecretSource::Ssm {
                region: Some("eu-west-1".into()),
                name: "/app/db/url".into()
            }
        );
        assert_eq!(
            parse_value_from("arn:aws:ssm:eu-west-1:123:parameter/plain").unwrap(),
            SecretSource::Ssm {
                region: Some("eu-west-1".into()),
                name: "plain".into()
            }
        );
        assert_eq!(
            parse_value_from("plain-name").unwrap(),
            SecretSource::Ssm {
                region: None,
                name: "plain-name".into()
            }
        );
        for bad in [
            "arn:aws:s3:::bucket/key",
            "arn:aws:secretsmanager::123:secret:x",
            "arn:aws:secretsmanager:us-east-1:123:notsecret:x",
            "arn:aws:ssm:us-east-1:123:document/x",
        ] {
            assert!(parse_value_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assume_role_replies_parse_and_redact() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials>\
            <AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s3cr&amp;t</SecretAccessKey>\
            <SessionToken>xyzzy-session</SessionToken><Expiration>2030-01-02T03:04:05Z</Expiration>\
            </Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let creds = parse_assume_role(xml).unwrap();
        assert_eq!(creds.access_key_id, "ASIA1");
        assert_eq!(creds.secret_access_key, "s3cr&t");
        let debug = format!("{creds:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("xyzzy"),
            "{debug}"
        );
        assert!(parse_assume_role("<x/>").is_err());
        assert_eq!(
            form(&[("RoleArn", "arn:aws:iam::1:role/a b")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b"
        );
    }
}
