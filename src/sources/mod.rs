//! Sources: where events come from. Each has a Config and a task that reads, emits events
//! with acknowledgement tokens, and commits its positions as units resolve.

pub mod file;
pub mod s3;
pub mod sqs;
pub mod util;

use util::integrity;

use crate::aws::AwsAccess;
use crate::config::FieldError;

pub use crate::core::run::{SourceContext, SourceReport};

#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(file::FileSourceConfig),
    Sqs(Box<sqs::SqsSourceConfig>),
    S3(Box<s3::S3SourceConfig>),
}

impl SourceConfig {
    pub fn parse(kind: &str, mut table: toml::Table) -> Result<Self, FieldError> {
        let digests = integrity::DigestOptions::take(&mut table)?;
        match kind {
            "file" => crate::config::from_table(table)
                .map(|c| Self::File(file::FileSourceConfig { digests, ..c })),
            "sqs" => {
                let aws = AwsAccess::take(&mut table)?;
                crate::config::from_table(table)
                    .map(|c| Self::Sqs(Box::new(sqs::SqsSourceConfig { aws, digests, ..c })))
            }
            "s3" => {
                let aws = AwsAccess::take(&mut table)?;
                crate::config::from_table(table)
                    .map(|c| Self::S3(Box::new(s3::S3SourceConfig { aws, digests, ..c })))
            }
            other => Err(FieldError::new(
                &["type"],
                format!("unknown source type {other:?}; expected one of: file, sqs, s3"),
            )),
        }
    }

    /// Keys taken out of a source's table before its own are read.
    pub fn shared_keys(kind: &str) -> &'static [&'static str] {
        const DIGESTS: [&str; 4] = integrity::DigestOptions::KEYS;
        match kind {
            "sqs" | "s3" => &[
                "region",
                "endpoint",
                "assume_role",
                DIGESTS[0],
                DIGESTS[1],
                DIGESTS[2],
                DIGESTS[3],
            ],
            _ => &DIGESTS,
        }
    }

    pub fn check(&self) -> Vec<FieldError> {
        let (mut errs, digests) = match self {
            Self::File(c) => (c.check(), &c.digests),
            Self::Sqs(c) => (c.check(), &c.digests),
            Self::S3(c) => (c.check(), &c.digests),
        };
        errs.extend(digests.check());
        errs
    }

    /// Prepare the source (open its checkpoint store: errors stop start-up) and start it.
    pub fn spawn(
        &self,
        ctx: SourceContext,
    ) -> Result<tokio::task::JoinHandle<SourceReport>, String> {
        match self {
            Self::File(c) => file::spawn(c.clone(), ctx),
            Self::Sqs(c) => sqs::spawn((**c).clone(), ctx),
            Self::S3(c) => s3::spawn((**c).clone(), ctx),
        }
    }
}
