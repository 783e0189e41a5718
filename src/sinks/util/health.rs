//! What a sink's metrics say about it: request and delivery latency, how long it has been
//! failing (which `/ready` reads), and per source the newest eventTime it delivered (the
//! source lag gauge).

use std::collections::BTreeMap;

use crate::core::run::FailingClock;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::event::Event;
use crate::telemetry::{self, Histogram};

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub struct SinkHealth {
    name: Arc<str>,
    pub request: Histogram,
    pub delivery: Histogram,
    /// Since when (ms) the sink has failed without delivering; 0: it is not failing.
    failing_since: AtomicI64,
    /// Batches being retried now.
    retrying: AtomicUsize,
    /// Per source, the newest eventTime (ms) delivered; shared with the lag gauges.
    newest: Mutex<BTreeMap<Arc<str>, Arc<AtomicI64>>>,
}

impl SinkHealth {
    pub fn new(name: Arc<str>) -> Arc<SinkHealth> {
        let labels = [("component", &*name)];
        let h = Arc::new(SinkHealth {
            request: telemetry::histogram("sink_request_duration_seconds", &labels),
            delivery: telemetry::histogram("sink_delivery_duration_seconds", &labels),
            failing_since: AtomicI64::new(0),
            retrying: AtomicUsize::new(0),
            newest: Mutex::new(BTreeMap::new()),
            name: name.clone(),
        });
        let weak = Arc::downgrade(&h);
        telemetry::gauge_fn(
            "sink_failing_seconds",
            &labels,
            Box::new(move || Some(weak.upgrade()?.failing_seconds())),
        );
        h
    }

    /// A request failed and its batch will be retried.
    pub fn failed(&self) {
        let _ = self.failing_since.compare_exchange(
            0,
            now_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A batch starts being retried; `retry_done` when it leaves the driver, whatever happened.
    pub fn retrying(&self) {
        self.retrying.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry_done(&self) {
        if self.retrying.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.failing_since.store(0, Ordering::Relaxed);
        }
    }

    /// These events were delivered: the sink works; move the sources' newest eventTimes.
    pub fn delivered(&self, events: &[Event]) {
        self.failing_since.store(0, Ordering::Relaxed);
        // RFC 3339 times in CloudTrail's one format sort as text: parse one per source.
        let mut newest: BTreeMap<&Arc<str>, &str> = BTreeMap::new();
        for e in events {
            if let Some(t) = e.data.event_time() {
                let slot = newest.entry(&e.data.origin.source).or_insert(t);
                if t > *slot {
                    *slot = t;
                }
            }
        }
        for (source, t) in newest {
            let Ok(ms) = chrono::DateTime::parse_from_rfc3339(t).map(|d| d.timestamp_millis())
            else {
                continue;
            };
            let cell = self.cell(source);
            cell.fetch_max(ms, Ordering::Relaxed);
        }
    }

    fn cell(&self, source: &Arc<str>) -> Arc<AtomicI64> {
        let Ok(mut map) = self.newest.lock() else {
            return Arc::new(AtomicI64::new(0));
        };
        if let Some(c) = map.get(source) {
            return c.clone();
        }
        let c = Arc::new(AtomicI64::new(0));
        map.insert(source.clone(), c.clone());
        let weak = Arc::downgrade(&c);
        telemetry::gauge_fn(
            "source_lag_seconds",
            &[("component", source), ("sink", &self.name)],
            Box::new(move || {
                let ms = weak.upgrade()?.load(Ordering::Relaxed);
                Some((now_millis() - ms).max(0) as f64 / 1000.0)
            }),
        );
        c
    }
}

impl FailingClock for SinkHealth {
    fn failing_seconds(&self) -> f64 {
        let since = self.failing_since.load(Ordering::Relaxed);
        if since == 0 {
            0.0
        } else {
            (now_millis() - since).max(0) as f64 / 1000.0
        }
    }
}
