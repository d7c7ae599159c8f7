//! AWS surfaces for consul-ecs: the ECS task metadata v4 endpoint (client, and with the `server`
//! feature an in-process endpoint), and login bearer tokens for Consul's `aws-iam` auth method
//! (building them from the AWS credential chain, and parsing them on the server side).
//!
//! Secrets (credentials, session tokens, bearer tokens) never appear in `Debug` output or logs.

pub mod arn;
pub mod aws_xml;
pub mod bearer_token;
pub mod iam_login;
#[cfg(feature = "server")]
pub mod metadata_server;
pub mod task_metadata;
mod transport;

pub use bearer_token::{BearerToken, LoginRequest, TokenError, TokenRules, parse_bearer_token};
pub use iam_login::{Credentials, LoginError, LoginOptions};
pub use task_metadata::{MetadataError, TaskMetadata, TaskMetadataClient};
pub use transport::HttpError;
