//! Why a command cannot do its job, with the flag, file, object, URL or address. `main` prints
//! it after `error:` and exits with the config/usage code; nothing below the CLI sees this type.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::aws::{AwsError, FlagError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("the pipeline has no source named {0:?}")]
    NoSuchSource(String),
    #[error("the pipeline has no source whose place the backfill can take")]
    NoSource,
    #[error("the pipeline has several sources ({}); name the one to replace with --source", .0.join(", "))]
    SeveralSources(Vec<String>),
    /// The backfill's S3 source refused a setting (the key as in a config file).
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
    #[error("--watch-config: {0}")]
    Watcher(notify::Error),
    #[error("--watch-config: cannot watch {}: {source}", dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("api.address {addr}: cannot listen: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
    /// `top`: the metrics endpoint did not answer, or not with metrics.
    #[error("{url}: {detail}")]
    Metrics { url: String, detail: String },
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    /// `lookup`: one input could not be read (the caller names it).
    #[error("{0}")]
    Read(std::io::Error),
    #[error("no S3 client")]
    NoS3Client,
    #[error("{detail} ({reason})")]
    Scan {
        detail: String,
        reason: &'static str,
    },
}
