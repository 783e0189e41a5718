//! From two `/metrics` samples to one row per component: events/s in and out, errors,
//! retries, buffer fill, source lag, how long a sink has been failing.

use std::collections::BTreeMap;

use super::parse::Sample;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub name: String,
    pub kind: &'static str,
    pub in_rate: Option<f64>,
    pub out_rate: Option<f64>,
    pub errors: f64,
    pub retries: f64,
    /// Disk buffer fill (0–1), or events held by a memory buffer.
    pub buffer: Option<Buffer>,
    pub lag: Option<f64>,
    pub failing: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Buffer {
    Fill(f64),
    Events(f64),
}

type Totals = BTreeMap<(String, String), f64>;

/// Sum per (metric, component) — or `sink` for the buffer metrics.
fn totals(samples: &[Sample]) -> Totals {
    let mut out = Totals::new();
    for s in samples {
        let who = s
            .labels
            .get("component")
            .or_else(|| s.labels.get("sink"))
            .cloned()
            .unwrap_or_default();
        *out.entry((s.name.clone(), who)).or_default() += s.value;
    }
    out
}

fn rate(now: &Totals, before: &Totals, key: &(String, String), secs: f64) -> Option<f64> {
    let n = now.get(key)?;
    let b = before.get(key).copied().unwrap_or(0.0);
    Some(((n - b) / secs).max(0.0))
}

/// The largest source lag whose `label` is `name` (a source's over its sinks, or a sink's over
/// its sources).
fn max_lag(now: &[Sample], label: &str, name: &str) -> Option<f64> {
    now.iter()
        .filter(|s| s.name == "source_lag_seconds")
        .filter(|s| s.labels.get(label).is_some_and(|v| v == name))
        .map(|s| s.value)
        .reduce(f64::max)
}

/// Rows for every component seen, sources first, then transforms, then sinks.
pub fn rows(now: &[Sample], before: &[Sample], secs: f64) -> Vec<Row> {
    let secs = secs.max(0.001);
    let (t, b) = (totals(now), totals(before));
    let key = |m: &str, c: &str| (m.to_string(), c.to_string());
    let mut kinds: BTreeMap<String, &'static str> = BTreeMap::new();
    for (m, c) in t.keys() {
        let kind = match m.as_str() {
            "events_received_total" | "files_tracked" | "sqs_messages_in_flight" => "source",
            "transform_events_in_total" => "transform",
            "events_sent_total" | "sink_failing_seconds" | "sink_retries_total" => "sink",
            _ => continue,
        };
        kinds.insert(c.clone(), kind);
    }
    let mut rows: Vec<Row> = kinds
        .into_iter()
        .map(|(name, kind)| {
            let mut r = Row {
                name: name.clone(),
                kind,
                ..Default::default()
            };
            let get = |m: &str| t.get(&key(m, &name)).copied();
            match kind {
                "source" => {
                    r.in_rate = rate(&t, &b, &key("events_received_total", &name), secs);
                    r.out_rate = r.in_rate;
                    r.errors = get("bad_input_total").unwrap_or(0.0)
                        + get("sqs_receive_errors_total").unwrap_or(0.0);
                    r.retries = get("sqs_message_retries_total").unwrap_or(0.0);
                    r.lag = max_lag(now, "component", &name);
                }
                "transform" => {
                    r.in_rate = rate(&t, &b, &key("transform_events_in_total", &name), secs);
                    r.out_rate = rate(&t, &b, &key("transform_events_out_total", &name), secs);
                }
                _ => {
                    r.out_rate = rate(&t, &b, &key("events_sent_total", &name), secs);
                    r.errors = get("events_failed_total").unwrap_or(0.0)
                        + get("events_dead_lettered_total").unwrap_or(0.0);
                    r.retries = get("sink_retries_total").unwrap_or(0.0);
                    r.failing = get("sink_failing_seconds");
                    r.lag = max_lag(now, "sink", &name);
                    r.buffer = match (get("buffer_bytes"), get("buffer_max_bytes")) {
                        (Some(used), Some(max)) if max > 0.0 => Some(Buffer::Fill(used / max)),
                        _ => get("buffer_events").map(Buffer::Events),
                    };
                }
            }
            r
        })
        .collect();
    let order = |k: &str| match k {
        "source" => 0,
        "transform" => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| order(a.kind).cmp(&order(b.kind)).then(a.name.cmp(&b.name)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::top::parse::parse;

    #[test]
    fn rates_and_gauges_per_component() {
        let before = parse(
            "trailship_events_received_total{component=\"trail\"} 100\ntrailship_events_sent_total{component=\"siem\"} 50\n",
        );
        let now = parse(
            "trailship_events_received_total{component=\"trail\"} 300\ntrailship_bad_input_total{component=\"trail\",reason=\"not_json\"} 2\ntrailship_events_sent_total{component=\"siem\"} 250\ntrailship_sink_retries_total{component=\"siem\"} 4\ntrailship_sink_failing_seconds{component=\"siem\"} 0\ntrailship_buffer_bytes{sink=\"siem\"} 2097152\ntrailship_buffer_max_bytes{sink=\"siem\"} 8388608\ntrailship_source_lag_seconds{component=\"trail\",sink=\"siem\"} 42\ntrailship_transform_events_in_total{component=\"only_writes\"} 10\ntrailship_transform_events_out_total{component=\"only_writes\"} 4\n",
        );
        let r = rows(&now, &before, 2.0);
        let names: Vec<(&str, &str)> = r.iter().map(|r| (r.name.as_str(), r.kind)).collect();
        assert_eq!(
            names,
            [
                ("trail", "source"),
                ("only_writes", "transform"),
                ("siem", "sink")
            ]
        );
        assert_eq!(r[0].in_rate, Some(100.0));
        assert_eq!(r[0].errors, 2.0);
        assert_eq!(r[0].lag, Some(42.0));
        assert_eq!(r[1].in_rate, Some(5.0));
        assert_eq!(r[1].out_rate, Some(2.0));
        assert_eq!(r[2].out_rate, Some(100.0));
        assert_eq!(r[2].retries, 4.0);
        assert_eq!(r[2].buffer, Some(Buffer::Fill(0.25)));
        assert_eq!(r[2].lag, Some(42.0));
        assert_eq!(r[2].failing, Some(0.0));
    }
}
