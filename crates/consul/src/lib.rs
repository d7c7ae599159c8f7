//! Typed Consul HTTP API client: TLS, tokens, blocking queries, retries.
//!
//! **API Boundary.** Every component that talks to Consul (mesh-init, health-sync, the controller,
//! the data plane) goes through this crate, and the wire types here mirror Consul's JSON exactly
//! (PascalCase, zero values left out of request bodies). Only this crate knows the wire format.
//!
//! - [`ClientConfig`] describes where Consul is and how to reach it (scheme, CA, TLS server name,
//!   client certificate, token, namespace, partition, datacenter, timeouts), with the `CONSUL_*`
//!   environment variables as fallbacks ([`ClientConfig::fill_from_env`]).
//! - [`Client`] holds one keep-alive connection pool (hyper-util, rustls with ring) and hands out
//!   one handle per API area: [`catalog`], [`health`], [`kv`], [`agent`], [`connect`],
//!   [`config_entry`], [`acl`], [`status`].
//! - Reads take [`QueryOptions`] and return [`QueryResponse`] with [`QueryMeta`] (the
//!   `X-Consul-Index` and friends); writes take [`WriteOptions`].
//! - [`watch()`] repeats a blocking query and yields only changed values; [`RetryPolicy`] retries
//!   calls that failed for reasons that may pass (connection errors, 5xx, 429), when a caller asks.
//! - [`Error`] keeps Consul's status code and text (`is_not_found`, `is_acl_not_found`,
//!   `is_permission_denied`).
//!
//! The token is sent as `X-Consul-Token`, marked sensitive, and never appears in `Debug` output
//! or logs.
//!
//! ```no_run
//! use consul_client::{Client, ClientConfig, QueryOptions};
//!
//! # async fn demo() -> Result<(), consul_client::Error> {
//! let mut config = ClientConfig::new("127.0.0.1:8500");
//! config.fill_from_env()?;
//! let client = Client::new(config)?;
//! let nodes = client.catalog().nodes(&QueryOptions::default()).await?;
//! println!("{} nodes at index {}", nodes.value.len(), nodes.meta.last_index);
//! # Ok(())
//! # }
//! ```

pub mod acl;
pub mod agent;
pub mod catalog;
mod client;
mod config;
pub mod config_entry;
pub mod connect;
mod error;
pub mod health;
pub mod kv;
mod retry;
pub mod status;
mod transport;
mod watch;
mod wire;

pub use client::{
    Client, Consistency, INDEX_HEADER, QueryMeta, QueryOptions, QueryResponse, TOKEN_HEADER,
    WriteOptions,
};
pub use config::{
    BasicAuth, CaSource, ClientCertificate, ClientConfig, DEFAULT_ADDRESS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, ENV_CACERT, ENV_CAPATH, ENV_CLIENT_CERT, ENV_CLIENT_KEY,
    ENV_HTTP_ADDR, ENV_HTTP_AUTH, ENV_HTTP_SSL, ENV_HTTP_SSL_VERIFY, ENV_HTTP_TOKEN,
    ENV_HTTP_TOKEN_FILE, ENV_NAMESPACE, ENV_PARTITION, ENV_TLS_SERVER_NAME, PemSource, Scheme,
    Secret, TlsConfig,
};
pub use error::Error;
pub use retry::{Backoff, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, RetryPolicy};
pub use watch::{Watch, watch};
pub use wire::{GoDuration, NanosDuration, format_go_duration, parse_go_duration};
