//! Secrets (tokens, passwords, API keys): given in the config (usually as `${ENV_VAR}`, which
//! the config loader interpolates) or read from a file (`*_file` keys, e.g. a Kubernetes secret
//! mount). A `Secret` never prints its value: `Debug` and `Display` show `***`.

use std::fmt;

use serde::Deserialize;

use super::error::SetupError;

#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret given inline, or read from `file` (trailing newline trimmed). `what` names
    /// the key for errors, e.g. `token`.
    pub fn resolve(
        inline: &Option<Secret>,
        file: &Option<String>,
        what: &str,
    ) -> Result<Option<Secret>, SetupError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(SetupError::SecretTwice { what: what.into() }),
            (Some(s), None) => Ok(Some(s.clone())),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| SetupError::SecretFile {
                        what: what.into(),
                        path: path.clone(),
                        source,
                    })?;
                let text = text.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    return Err(SetupError::SecretEmpty {
                        what: what.into(),
                        path: path.clone(),
                    });
                }
                Ok(Some(Secret(text.to_string())))
            }
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_and_read_from_files() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        std::fs::write(&p, "abc\n").unwrap();
        let file = Some(p.to_string_lossy().to_string());
        assert_eq!(
            Secret::resolve(&None, &file, "token")
                .unwrap()
                .unwrap()
                .expose(),
            "abc"
        );
        assert!(Secret::resolve(&Some(s), &file, "token").is_err());
        let missing = Some("/nonexistent/x".to_string());
        assert!(Secret::resolve(&None, &missing, "token").is_err());
    }
}
