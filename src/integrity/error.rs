//! Why a digest check could not be made, with the key spec, file, object or region. A check
//! that cannot list stops (`verify` exits 2; a source's watch tries again at its next check);
//! a digest or log file that cannot be read is a problem in the report and the others go on.

use std::path::PathBuf;

use crate::aws::{AwsError, FlagError};

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("--public-key {spec:?}: expected FINGERPRINT=FILE")]
    KeySpec { spec: String },
    #[error("--public-key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("not a PEM key: {0}")]
    Pem(base64::DecodeError),
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// Walking a local directory failed (the detail names the path).
    #[error("{detail}")]
    Walk { root: PathBuf, detail: String },
    #[error("{source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decompress: {source}")]
    Gunzip { key: String, source: std::io::Error },
    #[error("not a digest file: {0}")]
    NotDigest(serde_json::Error),
    #[error("ListPublicKeys in {region}: {detail}")]
    ListPublicKeys { region: String, detail: String },
}

impl IntegrityError {
    /// The object is not there (S3 answered NoSuchKey).
    pub fn is_missing(&self) -> bool {
        matches!(self, IntegrityError::Aws(AwsError::Get { detail, .. }) if detail.contains("NoSuchKey"))
    }
}
