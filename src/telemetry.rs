//! Logging (tracing, text or JSON, level from `TRAILSHIP_LOG`) and the process-wide counters.
//!
//! Counters are named like Prometheus metrics (`*_total`) with labels; they are cheap enough
//! for per-file and per-batch events. Per-event hot paths keep their own atomics and add their
//! totals here in bulk.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

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

type Key = (&'static str, Vec<(&'static str, String)>);

static COUNTERS: LazyLock<Mutex<BTreeMap<Key, u64>>> = LazyLock::new(Default::default);

/// Add `n` to a counter.
pub fn add(name: &'static str, labels: &[(&'static str, &str)], n: u64) {
    let key = (
        name,
        labels
            .iter()
            .map(|(k, v)| (*k, (*v).to_string()))
            .collect::<Vec<_>>(),
    );
    if let Ok(mut m) = COUNTERS.lock() {
        *m.entry(key).or_default() += n;
    }
}

/// Add one to a counter.
pub fn count(name: &'static str, labels: &[(&'static str, &str)]) {
    add(name, labels, 1);
}

/// The current value of a counter (labels must match exactly).
pub fn get(name: &str, labels: &[(&str, &str)]) -> u64 {
    let Ok(m) = COUNTERS.lock() else { return 0 };
    m.iter()
        .filter(|((n, l), _)| {
            *n == name
                && l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((a, b), (c, d))| a == c && b == d)
        })
        .map(|(_, v)| *v)
        .sum()
}

/// All counters in Prometheus-like notation: `name{k="v"}` → value.
pub fn snapshot() -> BTreeMap<String, u64> {
    let Ok(m) = COUNTERS.lock() else {
        return BTreeMap::new();
    };
    m.iter()
        .map(|((name, labels), v)| {
            let key = if labels.is_empty() {
                (*name).to_string()
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{name}{{{}}}", l.join(","))
            };
            (key, *v)
        })
        .collect()
}

/// Every counter in the Prometheus text format (version 0.0.4), named `trailship_*`.
pub fn prometheus() -> String {
    let Ok(m) = COUNTERS.lock() else {
        return String::new();
    };
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::new();
    let mut last = "";
    for ((name, labels), v) in m.iter() {
        if *name != last {
            out.push_str(&format!("# TYPE trailship_{name} counter\n"));
            last = name;
        }
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if l.is_empty() {
            out.push_str(&format!("trailship_{name} {v}\n"));
        } else {
            out.push_str(&format!("trailship_{name}{{{}}} {v}\n", l.join(",")));
        }
    }
    out
}

/// Record one bad input: the counter every kind of bad input shares.
pub fn bad_input(source: &str, reason: &str) {
    count(
        "bad_input_total",
        &[("component", source), ("reason", reason)],
    );
}
