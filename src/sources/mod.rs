//! The source registry: one line per kind in `KINDS`. Sources are where events come from:
//! each is a file or folder with its config, a task that reads, emits events with
//! acknowledgement tokens and commits its positions as units resolve, and its `KIND`. Sources
//! import `util`, never each other or this registry.

pub mod file;
pub mod s3;
pub mod sqs;
pub mod util;

use std::sync::Arc;

use util::integrity;
use util::kind::{Source, SourceKind};

use crate::aws::AwsAccess;
use crate::config::FieldError;

pub use crate::core::run::{SourceContext, SourceReport};

/// Every source kind. Adding a source: its file or folder, `pub mod` above, and one line here.
pub const KINDS: &[SourceKind] = &[file::KIND, sqs::KIND, s3::KIND];

/// A configured source of one of the `KINDS`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: &'static str,
    source: Arc<dyn Source>,
}

impl SourceConfig {
    /// A source configured in code (the backfill's S3 source).
    pub fn new(kind: &'static str, source: Arc<dyn Source>) -> Self {
        SourceConfig { kind, source }
    }

    pub fn parse(kind: &str, mut table: toml::Table) -> Result<Self, FieldError> {
        let Some(k) = KINDS.iter().find(|k| k.name == kind) else {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            return Err(FieldError::new(
                &["type"],
                format!(
                    "unknown source type {kind:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
        };
        let digests = integrity::DigestOptions::take(&mut table)?;
        Ok(SourceConfig {
            kind: k.name,
            source: (k.parse)(table, digests)?,
        })
    }

    /// Keys taken out of a source's table before its own are read.
    pub fn shared_keys(kind: &str) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = KINDS
            .iter()
            .find(|k| k.name == kind)
            .map(|k| k.keys.to_vec())
            .unwrap_or_default();
        keys.extend(integrity::DigestOptions::KEYS);
        keys
    }

    pub fn check(&self) -> Vec<FieldError> {
        self.source.check()
    }

    /// Prepare the source (open its checkpoint store: errors stop start-up) and start it.
    pub fn spawn(
        &self,
        ctx: SourceContext,
    ) -> Result<tokio::task::JoinHandle<SourceReport>, util::kind::StartError> {
        self.source.spawn(ctx)
    }

    /// Its AWS access, for a source that reads from AWS.
    pub fn aws(&self) -> Option<&AwsAccess> {
        self.source.aws()
    }

    /// The configuration as its own type, when it is of that kind.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        self.source.as_any().downcast_ref::<T>()
    }
}
