//! Logging (tracing, text or JSON, level from `TRAILSHIP_LOG`) and the process-wide metrics:
//! counters, gauges and histograms, named like Prometheus metrics with labels per component
//! (`registry`), served as Prometheus text (`prometheus`) and documented in one list
//! (`catalog`), which the README's metrics table follows.

pub mod catalog;
pub mod otel;
pub mod prometheus;
mod registry;

pub use prometheus::prometheus;
pub use registry::{Histogram, add, count, gauge, gauge_fn, get, histogram, snapshot};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr: stdout belongs to the console sink. `default` is the level when
/// `TRAILSHIP_LOG` is not set.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter =
        EnvFilter::try_from_env("TRAILSHIP_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Record one bad input: the counter every kind of bad input shares.
pub fn bad_input(source: &str, reason: &str) {
    count(
        "bad_input_total",
        &[("component", source), ("reason", reason)],
    );
}
