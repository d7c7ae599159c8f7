//! Which ACL credentials a run uses, and the login and logout against Consul's HTTP API.
//!
//! * `CONSUL_HTTP_TOKEN` set: that static token, and no login (even with `consulLogin.enabled`).
//! * else `consulLogin.enabled`: an AWS IAM bearer token (a signed, unsent `sts:GetCallerIdentity`
//!   request, built by `consul-ecs-aws`) exchanged for a token with `POST /v1/acl/login` on the auth
//!   method (default `iam-ecs-service-token`), with meta `consul.hashicorp.com/task-id` and
//!   `consul.hashicorp.com/cluster` (configured meta laid over them). Upstream logs in over gRPC; our
//!   data plane and control plane speak only HTTP.
//! * else no token.
//!
//! Tokens and bearer tokens are [`Secret`]s: they never appear in logs or `Debug` output.

use std::collections::BTreeMap;
use std::time::Duration;

use consul_client::acl::AclLoginParams;
use consul_client::{Client, Secret, WriteOptions};
use consul_ecs_aws::iam_login::{self, LoginOptions};
use consul_ecs_aws::{LoginError, TaskMetadata};
use consul_ecs_config::Config;

use crate::task::TaskIdentity;
use crate::{Environment, Error};

/// Login meta key holding the task ID.
pub const META_TASK_ID: &str = "consul.hashicorp.com/task-id";
/// Login meta key holding the cluster ARN.
pub const META_CLUSTER: &str = "consul.hashicorp.com/cluster";

/// How long to wait after a login before using the token, so that other servers have replicated it
/// (upstream waits the same).
pub const LOGIN_SETTLE_DELAY: Duration = Duration::from_millis(100);

/// The parameters of an auth method login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginParams {
    /// Auth method name.
    pub auth_method: String,
    /// The AWS IAM bearer token.
    pub bearer_token: Secret,
    /// Datacenter to log in to (empty: the server's).
    pub datacenter: String,
    /// Partition of the auth method (the service's or gateway's; empty: not set).
    pub partition: String,
    /// Metadata recorded on the token.
    pub meta: BTreeMap<String, String>,
}

/// The ACL credentials of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No token at all (ACLs off).
    None,
    /// `CONSUL_HTTP_TOKEN`.
    Static(Secret),
    /// Log in with these parameters.
    Login(LoginParams),
}

impl Credentials {
    /// Decides the credentials and, for a login, builds the bearer token (one real STS call when
    /// `includeEntity` is on).
    pub async fn resolve(
        config: &Config,
        env: &Environment,
        task: &TaskMetadata,
        identity: &TaskIdentity,
    ) -> Result<Credentials, Error> {
        if let Some(token) = env.static_token() {
            return Ok(Credentials::Static(Secret::new(token)));
        }
        let login = &config.consul_login;
        if !login.enabled {
            return Ok(Credentials::None);
        }
        let region = iam_login::login_region(Some(&login.region), task)?;
        let options = LoginOptions {
            include_entity: login.include_entity,
            sts_endpoint: non_empty(&login.sts_endpoint),
            server_id_header_value: non_empty(&login.server_id_header_value),
            ..LoginOptions::new(region)
        };
        let token = crate::retry::retry(env, "building the login bearer token", || async {
            let built = match &env.aws_credentials {
                Some(credentials) => {
                    iam_login::bearer_token_with_credentials(&options, credentials).await
                }
                None => iam_login::bearer_token(&options).await,
            };
            built.map_err(|err| match err {
                // The credential endpoint or STS may not answer yet; those are worth another try.
                LoginError::Credentials(_) | LoginError::Http { .. } => {
                    Error::TransientBearerToken(err)
                }
                err => Error::BearerToken(err),
            })
        })
        .await?;
        Ok(Credentials::Login(login_params(
            config,
            identity,
            token.into_inner(),
        )))
    }

    /// The token to use before any login: the static one, if any.
    pub fn static_token(&self) -> Option<Secret> {
        match self {
            Credentials::Static(token) => Some(token.clone()),
            _ => None,
        }
    }
}

/// The login parameters of a task with a bearer token.
pub fn login_params(config: &Config, identity: &TaskIdentity, bearer_token: String) -> LoginParams {
    let mut meta = BTreeMap::from([
        (META_TASK_ID.to_owned(), identity.task_id.clone()),
        (META_CLUSTER.to_owned(), identity.node.clone()),
    ]);
    meta.extend(
        config
            .consul_login
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    LoginParams {
        auth_method: config.consul_login.method.clone(),
        bearer_token: Secret::new(bearer_token),
        datacenter: config.consul_login.datacenter.clone(),
        partition: identity.partition.clone(),
        meta,
    }
}

/// The body and options of `POST /v1/acl/login`. The login is always in the default namespace
/// (an empty `ns`), in the task's partition and the configured datacenter.
pub fn login_request(params: &LoginParams) -> (AclLoginParams, WriteOptions) {
    let body = AclLoginParams {
        auth_method: params.auth_method.clone(),
        bearer_token: params.bearer_token.clone(),
        meta: params.meta.clone(),
    };
    let options = WriteOptions {
        datacenter: non_empty(&params.datacenter),
        namespace: Some(String::new()),
        partition: non_empty(&params.partition),
        token: None,
    };
    (body, options)
}

/// Logs in and returns the token's secret.
pub async fn login(client: &Client, params: &LoginParams) -> Result<Secret, Error> {
    let (body, options) = login_request(params);
    // No token of ours goes with the login request.
    let anonymous = client.with_token(None);
    let token = anonymous
        .acl()
        .login(&body, &options)
        .await
        .map_err(|e| Error::consul("logging in to Consul", e))?;
    let Some(secret) = token.secret_id.filter(|s| !s.is_empty()) else {
        return Err(Error::EmptyLogin);
    };
    tracing::info!(
        auth_method = %params.auth_method,
        accessor_id = %token.accessor_id,
        "logged in to Consul"
    );
    tokio::time::sleep(LOGIN_SETTLE_DELAY).await;
    Ok(secret)
}

/// Destroys a token obtained by [`login`].
pub async fn logout(client: &Client, token: &Secret, datacenter: &str) -> Result<(), Error> {
    let options = WriteOptions {
        datacenter: non_empty(datacenter),
        token: Some(token.clone()),
        ..WriteOptions::default()
    };
    client
        .acl()
        .logout(&options)
        .await
        .map_err(|e| Error::consul("logging out of Consul", e))?;
    tracing::info!("logged out of Consul");
    Ok(())
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}
