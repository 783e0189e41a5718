//! Counters an S3 source keeps for a progress display (`trailship backfill` on a terminal):
//! what the listing found so far and what has been delivered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Default)]
pub struct Progress {
    /// Objects (and their bytes) the listing selected so far.
    pub listed_objects: AtomicU64,
    pub listed_bytes: AtomicU64,
    /// The listing reached its end (the totals above are final).
    pub listing_done: AtomicBool,
    /// Objects whose events were all delivered (or that were set aside), and their bytes.
    pub done_objects: AtomicU64,
    pub done_bytes: AtomicU64,
    /// Events read.
    pub events: AtomicU64,
    /// Objects that could not be delivered after every attempt.
    pub failed_objects: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

static WATCHED: OnceLock<Arc<Progress>> = OnceLock::new();

/// Ask the S3 source of this process to keep totals for a display (it then counts the whole
/// listing ahead of reading, one extra ListObjectsV2 call per 1,000 objects).
pub fn watch() -> Arc<Progress> {
    WATCHED.get_or_init(Default::default).clone()
}

/// The display's counters, when one was asked for.
pub fn watched() -> Option<Arc<Progress>> {
    WATCHED.get().cloned()
}
