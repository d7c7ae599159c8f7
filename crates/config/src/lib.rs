//! CONSUL_ECS_CONFIG_JSON: typed model, defaults and schema validation with errors by JSON path.
//!
//! Every consul-ecs program of a task reads one JSON document from the `CONSUL_ECS_CONFIG_JSON`
//! environment variable. Loading it takes three steps:
//!
//! 1. parse the text as JSON (a fault is reported with its line and column);
//! 2. validate it against the schema embedded in this crate ([`SCHEMA_JSON`], JSON Schema draft-07),
//!    collecting *every* violation with its dotted path;
//! 3. decode it into [`Config`], applying the same defaults upstream applies, including the places where
//!    an absent object and a `null` one differ.
//!
//! ```
//! let config = consul_ecs_config::Config::from_json(
//!     r#"{"bootstrapDir": "/consul", "consulServers": {"hosts": "consul.example"},
//!         "service": {"port": 8080}}"#,
//! )?;
//! assert_eq!(config.consul_servers.http.port, consul_ecs_config::DEFAULT_HTTP_PORT);
//! assert_eq!(config.service_name("Web-App"), "web-app");
//! assert!(config.transparent_proxy_enabled());
//!
//! let err = consul_ecs_config::Config::from_json(r#"{"bootstrapDir": ""}"#).unwrap_err();
//! assert_eq!(err.violations().len(), 2);
//! # Ok::<(), consul_ecs_config::ConfigError>(())
//! ```
//!
//! The crate does no I/O beyond reading the one environment variable, and it never panics on input.
//! Where we deliberately differ from upstream is listed in the crate's README.

mod decode;
mod error;
mod model;
mod path;
mod resolved;
mod schema;

use std::ffi::OsString;

use serde_json::Value;

pub use error::{ConfigError, Violation};
pub use model::*;

/// The environment variable that holds the config.
pub const ENV_CONFIG_JSON: &str = "CONSUL_ECS_CONFIG_JSON";

/// The JSON Schema (draft-07) every config must satisfy, as embedded in the binary.
pub const SCHEMA_JSON: &str = schema::SCHEMA_TEXT;

/// The text of [`ENV_CONFIG_JSON`]; an unset or empty variable is an error.
pub fn from_env_var() -> Result<String, ConfigError> {
    env_text(std::env::var_os(ENV_CONFIG_JSON))
}

fn env_text(value: Option<OsString>) -> Result<String, ConfigError> {
    match value {
        None => Err(ConfigError::NotPopulated),
        Some(value) if value.is_empty() => Err(ConfigError::NotPopulated),
        Some(value) => value.into_string().map_err(|_| ConfigError::NotUnicode),
    }
}

impl Config {
    /// Parses, validates and decodes a config document.
    ///
    /// On failure the error lists every schema violation at once (or, for a document that passes the
    /// schema, every value the typed fields cannot hold).
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let mut document: Value = serde_json::from_str(text).map_err(not_json)?;
        schema::canonicalize_open_objects(&mut document);

        let found = schema::validate(&document)?;
        if !found.is_empty() {
            return Err(ConfigError::Invalid(path::into_violations(
                &document, found,
            )));
        }
        decode::decode(&document)
            .map_err(|found| ConfigError::Invalid(path::into_violations(&document, found)))
    }

    /// Reads, validates and decodes the config in [`ENV_CONFIG_JSON`].
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_json(&from_env_var()?)
    }
}

fn not_json(error: serde_json::Error) -> ConfigError {
    let full = error.to_string();
    // serde_json appends " at line L column C"; we report those as fields instead.
    let message = match full.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => full,
    };
    ConfigError::NotJson {
        line: error.line(),
        column: error.column(),
        message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_text_rejects_unset_and_empty_and_passes_text_through() {
        let message = |r: Result<String, ConfigError>| r.unwrap_err().to_string();
        assert_eq!(
            message(env_text(None)),
            "\"CONSUL_ECS_CONFIG_JSON\" isn't populated"
        );
        assert_eq!(
            message(env_text(Some(OsString::new()))),
            "\"CONSUL_ECS_CONFIG_JSON\" isn't populated"
        );
        assert_eq!(env_text(Some("{}".into())).unwrap(), "{}");
    }

    #[cfg(unix)]
    #[test]
    fn env_text_rejects_bytes_that_are_not_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let err = env_text(Some(OsString::from_vec(vec![b'{', 0xff, b'}']))).unwrap_err();
        assert!(matches!(err, ConfigError::NotUnicode), "{err:?}");
    }
}
