//! What a running source is given, and what it reports when it finishes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::fanout::Fanout;

/// What a running source is given.
pub struct SourceContext {
    pub name: Arc<str>,
    pub out: Fanout,
    pub data_dir: PathBuf,
    /// Process what is there now, then finish.
    pub once: bool,
    /// Stop reading new input (units in flight still complete and commit).
    pub shutdown: CancellationToken,
    /// Stop waiting for units in flight: save what is committed and return.
    pub hard_stop: CancellationToken,
    /// Counters for a progress display, when one is shown.
    pub progress: Option<Arc<Progress>>,
}

/// What a source reports when it finishes.
#[derive(Debug, Default, Clone)]
pub struct SourceReport {
    pub events: u64,
    pub units_committed: u64,
    /// Units whose events were not all delivered (not committed).
    pub units_failed: u64,
    /// Inputs set aside as bad (each logged with its reason).
    pub bad_inputs: u64,
    /// Units still unresolved when the source stopped waiting.
    pub units_unresolved: u64,
    /// A problem that stopped the source.
    pub fatal: Option<String>,
}

/// What the components of one running pipeline report back to it besides the sources'
/// reports: owned by the topology (one per pipeline, never process-global) and handed to each
/// sink and buffer when it starts; the CLI reads it for the exit status.
#[derive(Debug, Default)]
pub struct Outcome {
    sinks_not_started: std::sync::Mutex<Vec<String>>,
    events_left_behind: std::sync::atomic::AtomicU64,
    damaged_regions: std::sync::atomic::AtomicU64,
}

impl Outcome {
    /// A sink could not be started (the pipeline is stopped; the run ends with the config
    /// status).
    pub fn sink_not_started(&self, sink: &str) {
        if let Ok(mut s) = self.sinks_not_started.lock() {
            s.push(sink.to_string());
        }
    }
    /// Events a `--once` run left in a disk buffer because its sink failed them.
    pub fn left_behind(&self, events: u64) {
        self.events_left_behind
            .fetch_add(events, std::sync::atomic::Ordering::SeqCst);
    }
    /// A damaged region met in a disk buffer (its records are lost).
    pub fn damaged_region(&self) {
        self.damaged_regions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn sinks_not_started(&self) -> Vec<String> {
        self.sinks_not_started
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
    pub fn events_left_behind(&self) -> u64 {
        self.events_left_behind
            .load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn damaged_regions(&self) -> u64 {
        self.damaged_regions
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A sink's failing clock, as `/ready` reads it.
pub trait FailingClock: Send + Sync {
    /// Seconds the sink has been failing without a delivery (0: it is not failing).
    fn failing_seconds(&self) -> f64;
}

type Clocks = Vec<(String, std::sync::Weak<dyn FailingClock>)>;

/// The pipeline's health as `/ready` reads it: whether it runs, and each sink's failing clock.
/// Made by the CLI, shared with the API and the topology (each sink registers its clock when it
/// starts; a clock goes when its sink does). Never process-global.
#[derive(Default)]
pub struct Health {
    ready: std::sync::atomic::AtomicBool,
    sinks: std::sync::Mutex<Clocks>,
    /// Sinks whose disk buffer is full: their sources wait.
    full: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Health {
    /// Whether `/ready` may answer 200: set once the pipeline runs, cleared when it stops.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Watch a sink's failing clock (held weakly).
    pub fn watch_sink(&self, sink: &str, clock: std::sync::Weak<dyn FailingClock>) {
        if let Ok(mut s) = self.sinks.lock() {
            s.retain(|(_, c)| c.strong_count() > 0);
            s.push((sink.to_string(), clock));
        }
    }
    /// A sink's disk buffer is full (its sources wait), or has room again.
    pub fn buffer_full(&self, sink: &str, full: bool) {
        if let Ok(mut f) = self.full.lock() {
            if full {
                f.insert(sink.to_string());
            } else {
                f.remove(sink);
            }
        }
    }
    /// Sinks whose disk buffer is full now.
    pub fn full_buffers(&self) -> Vec<String> {
        self.full
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }
    /// Sinks failing without a delivery for longer than `after`, with for how long.
    pub fn stuck_sinks(&self, after: std::time::Duration) -> Vec<(String, f64)> {
        let Ok(s) = self.sinks.lock() else {
            return Vec::new();
        };
        s.iter()
            .filter_map(|(n, c)| Some((n.clone(), c.upgrade()?.failing_seconds())))
            .filter(|(_, secs)| *secs > after.as_secs_f64())
            .collect()
    }
}

/// Counters a source keeps for a progress display (`trailship backfill` on a terminal): what
/// its listing found so far and what has been delivered. Asked for through `SourceContext`
/// (the S3 source then counts the whole listing ahead of reading, one extra ListObjectsV2 call
/// per 1,000 objects).
#[derive(Debug, Default)]
pub struct Progress {
    /// Objects (and their bytes) the listing selected so far.
    pub listed_objects: std::sync::atomic::AtomicU64,
    pub listed_bytes: std::sync::atomic::AtomicU64,
    /// The listing reached its end (the totals above are final).
    pub listing_done: std::sync::atomic::AtomicBool,
    /// Objects whose events were all delivered (or that were set aside), and their bytes.
    pub done_objects: std::sync::atomic::AtomicU64,
    pub done_bytes: std::sync::atomic::AtomicU64,
    /// Events read.
    pub events: std::sync::atomic::AtomicU64,
    /// Objects that could not be delivered after every attempt.
    pub failed_objects: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}
