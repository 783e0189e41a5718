//! Config field helpers: errors with key paths (`FieldError`, `ConfigError`), reading a
//! component's table (`from_table`), units (`"10s"`, `"2MiB"`), `${VAR}` interpolation and
//! locating a key path's line, and how a URL is printed (`redact`). The pipeline file itself (which needs every component's
//! registry) is read by `topology::config`.
//!
//! Architecture invariant: this module imports nothing from the crate.

pub mod interpolate;
pub mod locate;
pub mod redact;
pub mod units;

use std::time::Duration;

use serde::de::DeserializeOwned;

/// A config problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<String>,
    pub line: Option<usize>,
    /// Dotted key path, e.g. `sinks.out.batch.max_events` (empty when not about one key).
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn at_line(line: usize, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: Some(line),
            key: key.to_string(),
            message: message.into(),
        }
    }
    pub fn at_key(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: None,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            write!(f, " ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// A problem inside one component's table: the key path below the component and the message.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub path: Vec<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(path: &[&str], message: impl std::fmt::Display) -> Self {
        FieldError {
            path: path.iter().map(|s| s.to_string()).collect(),
            message: message.to_string(),
        }
    }
    /// An unknown top-level key: name the keys taken out of the table before the component's
    /// own were read, which serde's "expected one of" list cannot know.
    pub fn also_expected(mut self, keys: &[&str]) -> Self {
        if self.path.len() == 1 && self.message.starts_with("unknown field") && !keys.is_empty() {
            let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            self.message.push_str(&format!(", or {}", list.join(", ")));
        }
        self
    }

    /// Prefix this error's path with `key`.
    pub fn under(mut self, key: &str) -> Self {
        self.path.insert(0, key.to_string());
        self
    }
}

/// Deserialize a component table, keeping the key path of any error.
pub fn from_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .map(|s| s.to_string())
            .filter(|s| s != "?" && !s.is_empty())
            .collect();
        // toml appends "in `key`" on a second line; the path already says where.
        let message = e.into_inner().to_string();
        let message = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        FieldError { path, message }
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub address: std::net::SocketAddr,
    /// `/ready` fails while a sink has been failing without a delivery for longer than this.
    pub stuck_after: Duration,
}
