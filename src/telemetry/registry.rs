//! The process-wide metric values: counters (`*_total`), gauges (set, or read from their owner
//! when scraped) and histograms (fixed buckets). Per-event hot paths keep their own atomics and
//! add their totals here in bulk; histograms hand out a handle so an observation locks only
//! its own series.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

pub type Labels = Vec<(&'static str, String)>;
pub type Key = (&'static str, Labels);

/// A gauge read when the metrics are: `None` once its owner is gone (the series disappears).
pub type GaugeFn = Box<dyn Fn() -> Option<f64> + Send + Sync>;

/// Buckets (seconds) for request and delivery latencies: 5 ms to 5 min.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug, Clone, Default)]
pub struct HistData {
    pub bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for above the last bound.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl HistData {
    fn new(bounds: &'static [f64]) -> Self {
        HistData {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
    fn record(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<Key, u64>,
    gauges: BTreeMap<Key, f64>,
    gauge_fns: BTreeMap<Key, GaugeFn>,
    histograms: BTreeMap<Key, Arc<Mutex<HistData>>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    )
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> Option<T> {
    REGISTRY.lock().ok().map(|mut r| f(&mut r))
}

/// Add `n` to a counter.
pub fn add(name: &'static str, labels: &[(&'static str, &str)], n: u64) {
    let k = key(name, labels);
    with(|r| *r.counters.entry(k).or_default() += n);
}

/// Add one to a counter.
pub fn count(name: &'static str, labels: &[(&'static str, &str)]) {
    add(name, labels, 1);
}

/// Set a gauge.
pub fn gauge(name: &'static str, labels: &[(&'static str, &str)], v: f64) {
    let k = key(name, labels);
    with(|r| r.gauges.insert(k, v));
}

/// A gauge its owner answers when the metrics are read (replaces one with the same labels).
pub fn gauge_fn(name: &'static str, labels: &[(&'static str, &str)], f: GaugeFn) {
    let k = key(name, labels);
    with(|r| r.gauge_fns.insert(k, f));
}

/// One series of a histogram, to observe into.
#[derive(Clone)]
pub struct Histogram {
    data: Arc<Mutex<HistData>>,
    otel: Option<super::otel::Recorder>,
}

impl Histogram {
    pub fn observe(&self, v: f64) {
        if let Ok(mut d) = self.data.lock() {
            d.record(v);
        }
        if let Some(o) = &self.otel {
            o.record(v);
        }
    }
}

/// The series `name{labels}` of a latency histogram.
pub fn histogram(name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
    let k = key(name, labels);
    let otel = super::otel::recorder(name, &k.1);
    let data = with(|r| {
        r.histograms
            .entry(k)
            .or_insert_with(|| Arc::new(Mutex::new(HistData::new(LATENCY_BUCKETS))))
            .clone()
    })
    .unwrap_or_else(|| Arc::new(Mutex::new(HistData::new(LATENCY_BUCKETS))));
    Histogram { data, otel }
}

fn matches(l: &Labels, labels: &[(&str, &str)]) -> bool {
    l.len() == labels.len()
        && l.iter()
            .zip(labels)
            .all(|((a, b), (c, d))| a == c && b == d)
}

/// The current value of a counter (labels must match exactly).
pub fn get(name: &str, labels: &[(&str, &str)]) -> u64 {
    with(|r| {
        r.counters
            .iter()
            .filter(|((n, l), _)| *n == name && matches(l, labels))
            .map(|(_, v)| *v)
            .sum()
    })
    .unwrap_or(0)
}

/// The current value of a gauge, set or read from its owner.
#[cfg(test)]
pub fn get_gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    read()
        .gauges
        .into_iter()
        .find(|((n, l), _)| *n == name && matches(l, labels))
        .map(|(_, v)| v)
}

/// Every value at one moment, for an exporter.
#[derive(Default)]
pub struct Values {
    pub counters: Vec<(Key, u64)>,
    pub gauges: Vec<(Key, f64)>,
    pub histograms: Vec<(Key, HistData)>,
}

/// Read everything (gauges whose owner is gone are forgotten).
pub fn read() -> Values {
    with(|r| {
        let mut gauges: BTreeMap<Key, f64> = r.gauges.clone();
        r.gauge_fns.retain(|k, f| match f() {
            Some(v) => {
                gauges.insert(k.clone(), v);
                true
            }
            None => false,
        });
        Values {
            counters: r.counters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            gauges: gauges.into_iter().collect(),
            histograms: r
                .histograms
                .iter()
                .filter_map(|(k, h)| h.lock().ok().map(|h| (k.clone(), h.clone())))
                .collect(),
        }
    })
    .unwrap_or_default()
}

/// All counters in Prometheus-like notation: `name{k="v"}` → value (the stop log line).
pub fn snapshot() -> BTreeMap<String, u64> {
    read()
        .counters
        .into_iter()
        .map(|((name, labels), v)| {
            let key = if labels.is_empty() {
                name.to_string()
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{name}{{{}}}", l.join(","))
            };
            (key, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_what_is_at_or_below_their_bound() {
        let mut h = HistData::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 1.0, 7.0] {
            h.record(v);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count, 5);
        assert!((h.sum - 8.65).abs() < 1e-9);
    }

    #[test]
    fn gauges_read_from_a_gone_owner_disappear() {
        let owner = Arc::new(std::sync::atomic::AtomicU64::new(7));
        let weak = Arc::downgrade(&owner);
        gauge_fn(
            "test_owned_gauge",
            &[("component", "x")],
            Box::new(move || {
                weak.upgrade()
                    .map(|a| a.load(std::sync::atomic::Ordering::Relaxed) as f64)
            }),
        );
        assert_eq!(
            get_gauge("test_owned_gauge", &[("component", "x")]),
            Some(7.0)
        );
        drop(owner);
        assert_eq!(get_gauge("test_owned_gauge", &[("component", "x")]), None);
    }
}
