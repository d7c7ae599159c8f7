//! Errors of loading a config: a missing variable, text that is not JSON, or a list of violations.

use std::fmt;

use crate::ENV_CONFIG_JSON;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The environment variable is unset or empty.
    #[error("\"{ENV_CONFIG_JSON}\" isn't populated")]
    NotPopulated,
    /// The environment variable holds bytes that are not UTF-8.
    #[error("\"{ENV_CONFIG_JSON}\" is not valid UTF-8")]
    NotUnicode,
    /// The text is not a JSON document.
    #[error("not valid JSON: {message} at line {line} column {column}")]
    NotJson {
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// What the parser expected or found.
        message: String,
    },
    /// The document breaks the schema or cannot be decoded; every violation found is listed.
    #[error("{}", ViolationList(.0))]
    Invalid(Vec<Violation>),
    /// The embedded schema did not compile (a defect of this crate, not of the input).
    #[error("internal error: the embedded config schema is unusable: {0}")]
    Schema(String),
}

impl ConfigError {
    /// Every violation found, with its path; empty for errors that are not about the document's content
    /// (a missing variable, text that is not JSON).
    pub fn violations(&self) -> &[Violation] {
        match self {
            ConfigError::Invalid(violations) => violations,
            _ => &[],
        }
    }
}

/// One problem in a config document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the offending value (`service.name`, `proxy.upstreams.0.localBindPort`), or
    /// `(root)` for the top level. For a missing required field, the path of the object that lacks it.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Lists violations the way upstream's multi-error does: a count line, then one tab-indented `* ` line
/// each.
struct ViolationList<'a>(&'a [Violation]);

impl fmt::Display for ViolationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.len() {
            1 => writeln!(f, "1 error occurred:")?,
            n => writeln!(f, "{n} errors occurred:")?,
        }
        for violation in self.0 {
            writeln!(f, "\t* {violation}")?;
        }
        Ok(())
    }
}
