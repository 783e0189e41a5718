//! `trailship verify`: the checks of `integrity` over a directory or an S3 prefix, and the
//! summary a person reads.

use crate::integrity::Report;

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
