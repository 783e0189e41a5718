//! `trailship verify`: the checks of `integrity` over a directory or an S3 prefix, and the
//! summary a person reads.

use crate::integrity::{IntegrityError, Report, Request};

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A trail directory (a local copy of AWSLogs/…), or s3://BUCKET/PREFIX.
    pub location: String,
    /// Digests ending at or after this time (YYYY-MM-DD, UTC, or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Digests starting before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// A public key for the digests signed with this fingerprint: FINGERPRINT=FILE (DER or
    /// PEM; `aws cloudtrail list-public-keys` gives both). Repeat for several.
    #[arg(long = "public-key")]
    pub public_keys: Vec<String>,
    /// Fetch the public keys no --public-key gives through CloudTrail's ListPublicKeys (in
    /// each digest's region).
    #[arg(long)]
    pub fetch_public_keys: bool,
    /// AWS region for s3:// (default: the standard chain).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// Endpoint override for s3://.
    #[arg(long)]
    pub endpoint: Option<String>,
}

impl From<&VerifyArgs> for Request {
    fn from(a: &VerifyArgs) -> Request {
        Request {
            location: a.location.clone(),
            since: a.since.clone(),
            until: a.until.clone(),
            public_keys: a.public_keys.clone(),
            fetch_public_keys: a.fetch_public_keys,
            aws_region: a.aws_region.clone(),
            endpoint: a.endpoint.clone(),
        }
    }
}

/// Run the checks the flags ask for.
pub fn run(args: &VerifyArgs) -> Result<Report, IntegrityError> {
    crate::integrity::run(&Request::from(args))
}

/// The summary a person reads.
pub fn print(report: &Report) {
    for p in &report.problems {
        println!("FAIL  {:<6} {}: {}", p.kind, p.file, p.what);
    }
    println!(
        "Results: {}/{} digest files valid, {}/{} log files valid; {} problem(s)",
        report.digests_valid,
        report.digests,
        report.logs_valid,
        report.logs,
        report.problems.len()
    );
}
