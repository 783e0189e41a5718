//! Why an AWS call of the one-shot commands (and the helpers the components share) failed,
//! naming the bucket, prefix, key or input; what happens next is the caller's (a command
//! stops, `verify` records a problem and goes on).

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{url:?}: expected s3://BUCKET/PREFIX")]
    NotS3Url { url: String },
    #[error("{url:?}: no bucket")]
    NoBucket { url: String },
    #[error("listing s3://{bucket}/{prefix}: {detail}")]
    List {
        bucket: String,
        prefix: String,
        detail: String,
    },
    /// GetObject refused or failed (the detail is the SDK's, with the endpoint's answer).
    #[error("{detail}")]
    Get {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error("reading the body: {detail}")]
    Body {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// A time bound (`--since`, `start_time`, …) that is neither a day nor an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("{value:?}: {why}")]
pub struct BoundError {
    pub value: String,
    pub why: String,
}

/// A command-line time bound that does not parse, with its flag.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {source}")]
pub struct FlagError {
    pub flag: &'static str,
    pub source: BoundError,
}
