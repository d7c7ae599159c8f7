//! The error type of mesh-init (and of the pieces health-sync shares): each variant says which step
//! failed and keeps the cause.

use std::path::PathBuf;
use std::time::Duration;

use consul_ecs_aws::task_metadata::DeriveError;
use consul_ecs_aws::{LoginError, MetadataError};

use crate::discovery::DiscoveryError;

/// Everything a run can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task metadata endpoint could not be read.
    #[error(transparent)]
    Metadata(#[from] MetadataError),

    /// A value could not be derived from the task metadata (cluster ARN, region).
    #[error(transparent)]
    Task(#[from] DeriveError),

    /// The Consul servers could not be found from `consulServers.hosts`.
    #[error("finding the Consul servers: {0}")]
    Discovery(#[from] DiscoveryError),

    /// A Consul call failed with an error that retrying cannot fix.
    #[error("{what}: {source}")]
    Consul {
        /// What was being done.
        what: String,
        /// Consul's answer or the transport failure.
        #[source]
        source: Box<consul_client::Error>,
    },

    /// No Consul server answered with a leader.
    #[error("no Consul server with a leader: {0}")]
    NoLeader(String),

    /// A step kept failing until the retry budget ran out.
    #[error("{what}: gave up after {attempts} attempts in {elapsed:?}: {last}")]
    GaveUp {
        /// What was being done.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long they took.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },

    /// The AWS IAM bearer token for the Consul login could not be built.
    #[error("building the AWS IAM login bearer token: {0}")]
    BearerToken(#[from] LoginError),

    /// The bearer token could not be built for a reason that may pass (no credentials yet, STS
    /// unreachable).
    #[error("building the AWS IAM login bearer token: {0}")]
    TransientBearerToken(LoginError),

    /// Consul accepted the login but returned no token.
    #[error("logging in to Consul: the answer carries no SecretID")]
    EmptyLogin,

    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing`, `copying the executable to`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A SIGTERM arrived before the step finished.
    #[error("interrupted by SIGTERM while {0}")]
    Interrupted(String),

    /// A config value cannot be used as it is.
    #[error("{field}: {message}")]
    Config {
        /// The config path of the value.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// The proxy registration read back for transparent proxy is missing or not a proxy.
    #[error("{0}")]
    ProxyLookup(String),

    /// The proxy configuration read back from Consul cannot drive the traffic redirection rules.
    #[error("failed parsing proxy service's Proxy.Config: {0}")]
    ProxyConfig(String),

    /// An `iptables` command failed.
    #[error(
        "failed to setup traffic redirection rules: failed to run command: {command}, err: {message}, output: {output}"
    )]
    Iptables {
        /// The command line.
        command: String,
        /// Why it failed (spawn error or exit status).
        message: String,
        /// Its combined output.
        output: String,
    },

    /// Consul answered `false` to the service-defaults write.
    #[error("failed to set service defaults: operation did not succeed")]
    ServiceDefaultsRefused,
}

impl Error {
    /// Wraps a Consul failure with what was being done.
    pub fn consul(what: impl Into<String>, source: consul_client::Error) -> Error {
        Error::Consul {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// True for failures that may pass by themselves: Consul unreachable or overloaded, a server
    /// without a leader, discovery that found nothing yet, a metadata endpoint that did not answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Consul { source, .. } => source.is_retryable(),
            Error::Discovery(err) => err.is_transient(),
            Error::TransientBearerToken(_) | Error::NoLeader(_) => true,
            Error::Metadata(err) => matches!(
                err,
                MetadataError::Http { .. } | MetadataError::Status { .. }
            ),
            _ => false,
        }
    }

    /// True when the run stopped because of SIGTERM.
    pub fn is_interrupted(&self) -> bool {
        match self {
            Error::Interrupted(_) => true,
            Error::GaveUp { last, .. } => last.is_interrupted(),
            _ => false,
        }
    }
}
