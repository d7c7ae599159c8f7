//! Building the bearer token for Consul's `aws-iam` auth method from AWS credentials.
//!
//! With `include_entity` (the default) this makes one real, signed `sts:GetCallerIdentity` call to
//! learn the caller's ARN, then signs (without sending) an `iam:GetRole` or `iam:GetUser` request
//! for that role or user and embeds it in `X-Consul-IAM-GetEntity-*` headers of a second signed,
//! unsent `sts:GetCallerIdentity` request. The token is that STS request, encoded by
//! [`encode_bearer_token`]. The Consul server replays the requests; signatures are valid for about
//! 15 minutes.
//!
//! Credentials come from the AWS SDK's default chain (environment, shared files, web identity, ECS
//! container credentials through `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`/`FULL_URI`, IMDS).
//! Endpoints: `sts_endpoint`/`iam_endpoint` options first, then `AWS_ENDPOINT_URL_STS`/`_IAM`, then
//! `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), then AWS's own: regional
//! STS and the partition's global IAM endpoint.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

pub use aws_credential_types::Credentials;

use crate::arn::{ArnError, IamPrincipal, PrincipalKind};
use crate::aws_xml::{self, CallerIdentity, XmlError};
use crate::bearer_token::{
    BearerToken, GET_CALLER_IDENTITY_BODY, GET_ENTITY_BODY_HEADER, GET_ENTITY_HEADERS_HEADER,
    GET_ENTITY_METHOD_HEADER, GET_ENTITY_URL_HEADER, SERVER_ID_HEADER, SignedRequest,
    canonical_header_name, encode_bearer_token,
};
use crate::task_metadata::{DeriveError, TaskMetadata};
use crate::transport::{self, HttpError};

/// The `Content-Type` of AWS query API requests.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The IAM API version used for `GetRole`/`GetUser`.
pub const IAM_API_VERSION: &str = "2010-05-08";
/// The default deadline for each AWS call and for loading credentials.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

const USER_AGENT: &str = concat!("consul-ecs/", env!("CARGO_PKG_VERSION"));

/// How to build a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOptions {
    /// The STS region: `consulLogin.region`, else the task's region (see [`login_region`]).
    pub region: String,
    /// Embed a signed `iam:GetRole`/`iam:GetUser` request (`consulLogin.includeEntity`).
    pub include_entity: bool,
    /// `consulLogin.stsEndpoint`.
    pub sts_endpoint: Option<String>,
    /// An IAM endpoint (consul-ecs never sets one; tests and the local runtime do).
    pub iam_endpoint: Option<String>,
    /// `consulLogin.serverIdHeaderValue`, sent as `X-Consul-IAM-ServerID`.
    pub server_id_header_value: Option<String>,
    /// The deadline for loading credentials and for the `GetCallerIdentity` call.
    pub timeout: Duration,
}

impl LoginOptions {
    /// Options for `region` with upstream's defaults: entity included, AWS endpoints, no server ID.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            include_entity: true,
            sts_endpoint: None,
            iam_endpoint: None,
            server_id_header_value: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The login region: the configured one if non-empty, else the region in the task ARN.
pub fn login_region(configured: Option<&str>, task: &TaskMetadata) -> Result<String, DeriveError> {
    match configured.map(str::trim) {
        Some(region) if !region.is_empty() => Ok(region.to_owned()),
        _ => task.region(),
    }
}

/// Why a token could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The credential chain produced no credentials.
    #[error("loading AWS credentials: {0}")]
    Credentials(String),
    /// An endpoint is not an absolute http(s) URL.
    #[error("invalid {service} endpoint {url:?}: {reason}")]
    Endpoint {
        /// `sts` or `iam`.
        service: &'static str,
        /// The endpoint.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Signing failed (for example a header value that is not valid HTTP).
    #[error("signing the {action} request: {reason}")]
    Sign {
        /// The API action.
        action: &'static str,
        /// The signer's complaint.
        reason: String,
    },
    /// `sts:GetCallerIdentity` could not be sent.
    #[error("calling sts:GetCallerIdentity at {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The transport failure.
        source: HttpError,
    },
    /// `sts:GetCallerIdentity` was refused.
    #[error("sts:GetCallerIdentity at {url} returned HTTP {status}: {code}: {message}")]
    Aws {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The AWS error code, such as `SignatureDoesNotMatch`.
        code: String,
        /// The AWS error message (or the start of the body).
        message: String,
    },
    /// The `GetCallerIdentity` response could not be read.
    #[error("reading the sts:GetCallerIdentity response: {0}")]
    Xml(#[from] XmlError),
    /// The caller is not a role, assumed role or user, so no entity request can be built.
    #[error("the caller cannot be looked up in IAM: {0}")]
    Principal(#[from] ArnError),
}

/// The endpoints and IAM signing region a token is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The STS URL requests are signed for (always ending in `/`).
    pub sts: String,
    /// The IAM URL requests are signed for (always ending in `/`).
    pub iam: String,
    /// The region IAM requests are signed for (`us-east-1` in the `aws` partition).
    pub iam_region: String,
}

impl Endpoints {
    /// Resolves the endpoints for `options`, reading environment variables through `env`.
    pub fn resolve(options: &LoginOptions, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let env_allowed = !env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let pick = |configured: &Option<String>, service_var: &str| -> Option<String> {
            configured
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| {
                    env_allowed
                        .then(|| env(service_var).or_else(|| env("AWS_ENDPOINT_URL")))
                        .flatten()
                })
        };
        let region = options.region.as_str();
        let dns_suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let (iam_default, iam_region) = if region.starts_with("cn-") {
            ("https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1")
        } else if region.starts_with("us-gov-") {
            ("https://iam.us-gov.amazonaws.com", "us-gov-west-1")
        } else {
            ("https://iam.amazonaws.com", "us-east-1")
        };
        let sts = pick(&options.sts_endpoint, "AWS_ENDPOINT_URL_STS")
            .unwrap_or_else(|| format!("https://sts.{region}.{dns_suffix}"));
        let iam = pick(&options.iam_endpoint, "AWS_ENDPOINT_URL_IAM")
            .unwrap_or_else(|| iam_default.to_owned());
        Self {
            sts: with_trailing_slash(sts.trim()),
            iam: with_trailing_slash(iam.trim()),
            iam_region: iam_region.to_owned(),
        }
    }
}

fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// Loads credentials through the AWS SDK's default chain for `region`, with rustls on ring.
pub async fn load_default_credentials(
    region: &str,
    timeout: Duration,
) -> Result<Credentials, LoginError> {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let load = async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .http_client(http_client)
            .load()
            .await;
        let provider = config.credentials_provider().ok_or_else(|| {
            LoginError::Credentials("no credentials provider is configured".to_owned())
        })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| LoginError::Credentials(error_chain(&e)))
    };
    tokio::time::timeout(timeout, load).await.map_err(|_| {
        LoginError::Credentials(format!(
            "the credential chain gave no answer within {timeout:?}"
        ))
    })?
}

/// An error and its sources on one line, `outer: inner: …`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Builds a token with credentials from the default chain.
pub async fn bearer_token(options: &LoginOptions) -> Result<BearerToken, LoginError> {
    let credentials = load_default_credentials(&options.region, options.timeout).await?;
    bearer_token_with_credentials(options, &credentials).await
}

/// Builds a token with the given credentials (`include_entity` makes one real STS call).
pub async fn bearer_token_with_credentials(
    options: &LoginOptions,
    credentials: &Credentials,
) -> Result<BearerToken, LoginError> {
    let endpoints = Endpoints::resolve(options, |name| std::env::var(name).ok());
    let server_id = options
        .server_id_header_value
        .as_deref()
        .filter(|v| !v.is_empty());
    let now = SystemTime::now();
    tracing::debug!(
        sts = %endpoints.sts,
        iam = %endpoints.iam,
        include_entity = options.include_entity,
        "building an aws-iam login bearer token"
    );

    let mut headers = base_headers();
    if options.include_entity {
        let identity = get_caller_identity(
            &endpoints.sts,
            &options.region,
            credentials,
            options.timeout,
        )
        .await?;
        tracing::debug!(arn = %identity.arn, "sts:GetCallerIdentity named the caller");
        let principal = IamPrincipal::parse(&identity.arn)?;
        let (action, name_key) = match principal.kind {
            PrincipalKind::Role | PrincipalKind::AssumedRole => ("GetRole", "RoleName"),
            PrincipalKind::User => ("GetUser", "UserName"),
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", action)
            .append_pair(name_key, &principal.name)
            .append_pair("Version", IAM_API_VERSION)
            .finish();
        let mut iam_headers = base_headers();
        if let Some(value) = server_id {
            set_header(&mut iam_headers, SERVER_ID_HEADER, value);
        }
        let iam = sign_request(
            &SignedRequest {
                method: "POST".to_owned(),
                url: endpoints.iam.clone(),
                headers: iam_headers,
                body,
            },
            "iam",
            &endpoints.iam_region,
            credentials,
            now,
        )?;
        set_header(&mut headers, GET_ENTITY_METHOD_HEADER, &iam.method);
        set_header(&mut headers, GET_ENTITY_URL_HEADER, &iam.url);
        set_header(&mut headers, GET_ENTITY_HEADERS_HEADER, &iam.headers_json());
        set_header(&mut headers, GET_ENTITY_BODY_HEADER, &iam.body);
    }
    if let Some(value) = server_id {
        set_header(&mut headers, SERVER_ID_HEADER, value);
    }
    let sts = sign_request(
        &SignedRequest {
            method: "POST".to_owned(),
            url: endpoints.sts,
            headers,
            body: GET_CALLER_IDENTITY_BODY.to_owned(),
        },
        "sts",
        &options.region,
        credentials,
        now,
    )?;
    Ok(encode_bearer_token(&sts))
}

/// Calls `sts:GetCallerIdentity` at `sts_url`, signed for `region`.
pub async fn get_caller_identity(
    sts_url: &str,
    region: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<CallerIdentity, LoginError> {
    let request = sign_request(
        &SignedRequest {
            method: "POST".to_owned(),
            url: with_trailing_slash(sts_url),
            headers: base_headers(),
            body: GET_CALLER_IDENTITY_BODY.to_owned(),
        },
        "sts",
        region,
        credentials,
        SystemTime::now(),
    )?;
    let response = send_signed_request(&request, None, timeout)
        .await
        .map_err(|source| LoginError::Http {
            url: request.url.clone(),
            source,
        })?;
    if response.status != 200 {
        let (code, message) = match aws_xml::parse_error(&response.body) {
            Some(error) => (error.code, error.message),
            None => (String::new(), transport::excerpt(response.body.as_bytes())),
        };
        return Err(LoginError::Aws {
            url: request.url,
            status: response.status,
            code,
            message,
        });
    }
    Ok(aws_xml::parse_get_caller_identity(&response.body)?)
}

fn base_headers() -> BTreeMap<String, Vec<String>> {
    let mut headers = BTreeMap::new();
    set_header(&mut headers, "Content-Type", FORM_CONTENT_TYPE);
    set_header(&mut headers, "User-Agent", USER_AGENT);
    headers
}

fn set_header(headers: &mut BTreeMap<String, Vec<String>>, name: &str, value: &str) {
    let name = canonical_header_name(name);
    headers.retain(|key, _| !key.eq_ignore_ascii_case(&name));
    headers.insert(name, vec![value.to_owned()]);
}

/// Signs `request` with SigV4 for `service` in `region` at `time`, adding `X-Amz-Date`,
/// `X-Amz-Security-Token` (with session credentials) and `Authorization`. All headers present,
/// except `Authorization` and `User-Agent`, are covered by the signature, as is the URL's host.
pub fn sign_request(
    request: &SignedRequest,
    service: &'static str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SignedRequest, LoginError> {
    let action = if service == "iam" {
        "iam"
    } else {
        "sts:GetCallerIdentity"
    };
    let error = |reason: String| LoginError::Sign { action, reason };
    // The signer needs an absolute URL with a host (it panics without one), so check first.
    let uri: http::Uri = request.url.parse().map_err(|e| LoginError::Endpoint {
        service,
        url: request.url.clone(),
        reason: format!("{e}"),
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(LoginError::Endpoint {
            service,
            url: request.url.clone(),
            reason: "expected an absolute http:// or https:// URL with a host".to_owned(),
        });
    }
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| error(e.to_string()))?
        .into();
    let pairs: Vec<(&str, &str)> = request
        .headers
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), v.as_str())))
        .collect();
    let signable = SignableRequest::new(
        &request.method,
        request.url.as_str(),
        pairs.into_iter(),
        SignableBody::Bytes(request.body.as_bytes()),
    )
    .map_err(|e| error(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| error(e.to_string()))?
        .into_parts();
    let mut signed = request.clone();
    for (name, value) in instructions.headers() {
        set_header(&mut signed.headers, name, value);
    }
    Ok(signed)
}

/// An AWS response read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body (lossily decoded as UTF-8).
    pub body: String,
}

/// Sends a captured signed request exactly as encoded: same method, path, query, headers and body,
/// and a `Host` header for the host it was signed for. With `endpoint`, the request goes to that
/// scheme and address instead (as Consul does with a configured `STSEndpoint`/`IAMEndpoint`), still
/// carrying the signed `Host`.
pub async fn send_signed_request(
    request: &SignedRequest,
    endpoint: Option<&str>,
    timeout: Duration,
) -> Result<AwsResponse, HttpError> {
    let invalid = |url: &str, reason: String| HttpError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let signed_uri: http::Uri = request
        .url
        .parse()
        .map_err(|e| invalid(&request.url, format!("{e}")))?;
    let host =
        signed_host(&signed_uri).ok_or_else(|| invalid(&request.url, "missing host".into()))?;
    let path = signed_uri.path_and_query().map_or("/", |p| p.as_str());
    let target = match endpoint {
        Some(endpoint) => format!("{}{}", endpoint.trim_end_matches('/'), path),
        None => request.url.clone(),
    };
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|e| HttpError::InvalidRequest(format!("method {:?}: {e}", request.method)))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(target.as_str())
        .header(http::header::HOST, host);
    for (name, values) in &request.headers {
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for value in values {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let http_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
    let response = transport::send(http_request, timeout).await?;
    Ok(AwsResponse {
        status: response.status.as_u16(),
        body: String::from_utf8_lossy(&response.body).into_owned(),
    })
}

/// The Host value SigV4 signs: the host, plus the port when it is not the scheme's default.
fn signed_host(uri: &http::Uri) -> Option<String> {
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(port) if Some(port) != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    })
}
