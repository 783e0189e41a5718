//! The `s3` source's config: bucket, prefix, time bounds, key filters, concurrency and
//! attempts, and its registry entry.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::{keys, spawn};
use crate::aws::AwsAccess;
use crate::config::{FieldError, units};
use crate::core::run::{SourceContext, SourceReport};
use crate::sources::util::kind::StartError;
use crate::sources::util::object::KeyFilter;

fn d_concurrency() -> usize {
    4
}
fn d_attempts() -> u32 {
    4
}
fn d_max_record() -> u64 {
    crate::decode::DEFAULT_MAX_RECORD_BYTES as u64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    pub bucket: String,
    /// Key prefix, e.g. `AWSLogs/123456789012/CloudTrail/us-east-1/`.
    #[serde(default)]
    pub prefix: String,
    /// Only objects whose key day (`…/YYYY/MM/DD/…`) overlaps `[start_time, end_time)`;
    /// `YYYY-MM-DD` or an RFC 3339 time.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// Objects read (and in flight to the sinks) at once.
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    /// Reads of an object whose events could not be delivered before it is recorded as failed
    /// (and read first at the next start).
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub key_include: Vec<String>,
    #[serde(default)]
    pub key_exclude: Vec<String>,
    #[serde(default = "d_max_record", deserialize_with = "units::size")]
    pub max_record_bytes: u64,
    /// `region`, `endpoint`, `assume_role` (taken out of the table first).
    #[serde(skip)]
    pub aws: AwsAccess,
    /// `validate_digests` and its keys (taken out of the table first).
    #[serde(skip)]
    pub digests: crate::sources::util::integrity::DigestOptions,
}

pub(super) type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl S3SourceConfig {
    pub(super) fn bounds(&self) -> Result<Bounds, FieldError> {
        let parse = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(keys::parse_bound)
                .transpose()
                .map_err(|m| FieldError::new(&[key], m))
        };
        let b = (
            parse("start_time", &self.start_time)?,
            parse("end_time", &self.end_time)?,
        );
        if let (Some(s), Some(e)) = b
            && s >= e
        {
            return Err(FieldError::new(&["end_time"], "must be after start_time"));
        }
        Ok(b)
    }

    pub fn check(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.bucket.is_empty() || self.bucket.contains('/') {
            errs.push(FieldError::new(&["bucket"], "must name a bucket"));
        }
        if let Err(e) = self.bounds() {
            errs.push(e);
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            errs.push(FieldError::new(&["concurrency"], "must be from 1 to 256"));
        }
        if self.max_attempts == 0 {
            errs.push(FieldError::new(&["max_attempts"], "must be at least 1"));
        }
        if let Err(e) = KeyFilter::new(&self.key_include, &self.key_exclude) {
            errs.push(e);
        }
        errs
    }

    /// What a checkpoint belongs to: another bucket, prefix or range starts afresh.
    pub(super) fn scope(&self) -> String {
        format!(
            "s3://{}/{} [{}, {})",
            self.bucket,
            self.prefix,
            self.start_time.as_deref().unwrap_or("-"),
            self.end_time.as_deref().unwrap_or("-")
        )
    }
}

/// The `s3` source kind (registered in `sources::KINDS`).
pub const KIND: crate::sources::util::kind::SourceKind = crate::sources::util::kind::SourceKind {
    name: "s3",
    keys: crate::aws::AwsAccess::KEYS,
    parse: |mut table, digests| {
        let aws = crate::aws::AwsAccess::take(&mut table)?;
        crate::config::from_table::<S3SourceConfig>(table)
            .map(|c| std::sync::Arc::new(S3SourceConfig { aws, digests, ..c }) as _)
    },
};

impl crate::sources::util::kind::SourceParts for S3SourceConfig {
    fn check_own(&self) -> Vec<crate::config::FieldError> {
        self.check()
    }
    fn digests(&self) -> &crate::sources::util::integrity::DigestOptions {
        &self.digests
    }
    fn aws_access(&self) -> Option<&crate::aws::AwsAccess> {
        Some(&self.aws)
    }
    fn start(self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError> {
        spawn(self, ctx)
    }
}
