//! Every metric trailship exports: name (without the `trailship_` prefix), kind, labels and
//! meaning. The Prometheus HELP lines, the OpenTelemetry instruments and the README's metrics
//! table all come from this list; a test checks that every name the code uses is here.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn prometheus(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static str,
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, labels: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};

pub const METRICS: &[Metric] = &[
    m(
        "build_info",
        G,
        "version",
        "Always 1; the running version in its label.",
    ),
    m(
        "config_reloads_total",
        C,
        "outcome",
        "Config reloads (SIGHUP, --watch-config) by outcome: applied, partial (a component could not start), rejected (the old config keeps running).",
    ),
    // Sources
    m(
        "events_received_total",
        C,
        "component",
        "Events a source read (counted when its file, object or range is done).",
    ),
    m(
        "bytes_received_total",
        C,
        "component",
        "Bytes of the records a source read (uncompressed, as forwarded).",
    ),
    m(
        "files_read_total",
        C,
        "component",
        "Trail files a file source finished reading.",
    ),
    m(
        "files_tracked",
        G,
        "component",
        "Files a file source is watching now.",
    ),
    m(
        "bad_input_total",
        C,
        "component, reason",
        "Inputs that could not be read as CloudTrail (reason: not_json, truncated, corrupt_gzip, read_error, empty_file, unreadable, …); the good events around them are kept.",
    ),
    m(
        "digest_files_total",
        C,
        "component",
        "CloudTrail digest files seen (not forwarded as events).",
    ),
    m(
        "integrity_problems_total",
        C,
        "component, problem",
        "Digest or log-file integrity problems found (validate_digests).",
    ),
    m(
        "checkpoint_write_errors_total",
        C,
        "component",
        "Checkpoints that could not be written (retried; the progress is kept in memory).",
    ),
    m(
        "checkpoint_corrupt_total",
        C,
        "",
        "Checkpoint files that could not be read at start (set aside; files are read again).",
    ),
    m(
        "header_unparsed_total",
        C,
        "",
        "Records whose routing header could not be read (forwarded as they are).",
    ),
    m(
        "sqs_messages_in_flight",
        G,
        "component",
        "SQS messages received and not yet deleted or released.",
    ),
    m(
        "sqs_receive_errors_total",
        C,
        "component",
        "Failed ReceiveMessage calls (retried).",
    ),
    m(
        "sqs_delete_errors_total",
        C,
        "component",
        "Failed DeleteMessage calls (the message comes back after its visibility timeout).",
    ),
    m(
        "sqs_message_retries_total",
        C,
        "component",
        "Messages released for another try because an object failed or was not delivered.",
    ),
    // Transforms
    m(
        "transform_events_in_total",
        C,
        "component",
        "Events a transform took in.",
    ),
    m(
        "transform_events_out_total",
        C,
        "component",
        "Events a transform passed on (summed over its outputs).",
    ),
    m(
        "events_dropped_total",
        C,
        "component",
        "Events dropped on purpose: not passed on by a transform (filtered, deduplicated), or sent to an output nobody consumes. They count as delivered.",
    ),
    m(
        "dedup_dropped_total",
        C,
        "component",
        "Duplicate events dropped by a dedup transform.",
    ),
    m(
        "dedup_evicted_total",
        C,
        "component",
        "Event IDs evicted from a full dedup window.",
    ),
    m(
        "dedup_no_event_id_total",
        C,
        "component",
        "Events without eventID passed by a dedup transform.",
    ),
    m(
        "dedup_state_corrupt_total",
        C,
        "component",
        "Dedup state files that could not be read (started empty).",
    ),
    m(
        "normalize_passed_raw_total",
        C,
        "component",
        "Records a normalize transform could not map (not a JSON object) and passed as they were.",
    ),
    m(
        "normalize_time_unparsed_total",
        C,
        "component",
        "Records normalized whose time was in no known form: the time of normalization stands in.",
    ),
    m(
        "insights_total",
        C,
        "component, state",
        "Insight events emitted (state: start, end).",
    ),
    m(
        "insights_late_events_total",
        C,
        "component",
        "Events too late for an insights transform's window.",
    ),
    m(
        "insights_keys_evicted_total",
        C,
        "component",
        "Series an insights transform forgot to stay within max_keys.",
    ),
    // Sinks
    m(
        "events_sent_total",
        C,
        "component",
        "Events a sink delivered (acknowledged by the destination).",
    ),
    m(
        "bytes_sent_total",
        C,
        "component",
        "Bytes of the events a sink delivered (as read, before encoding).",
    ),
    m(
        "batches_sent_total",
        C,
        "component",
        "Requests a sink completed with every event of them delivered.",
    ),
    m(
        "events_failed_total",
        C,
        "component",
        "Events a sink gave up on with no dead-letter sink (their units are not committed and are read again).",
    ),
    m(
        "events_dead_lettered_total",
        C,
        "component",
        "Events a sink gave up on and sent to its dead-letter sink.",
    ),
    m(
        "sink_retries_total",
        C,
        "component",
        "Requests retried after a retryable failure.",
    ),
    m(
        "sink_request_duration_seconds",
        H,
        "component",
        "Time of one request to the destination, successful or not.",
    ),
    m(
        "sink_delivery_duration_seconds",
        H,
        "component",
        "Acknowledgement lag: from a batch reaching its sink to its events being acknowledged or given up, retries included.",
    ),
    m(
        "sink_failing_seconds",
        G,
        "component",
        "How long a sink has been failing without a delivery (0 when it delivers); /ready fails past api.stuck_after.",
    ),
    m(
        "source_lag_seconds",
        G,
        "component, sink",
        "Now minus the newest eventTime a sink delivered from a source.",
    ),
    m(
        "sink_file_repairs_total",
        C,
        "",
        "Partial lines a file sink cut off after a crash.",
    ),
    m(
        "eventbridge_rejected_events_total",
        C,
        "component, reason",
        "Entries EventBridge rejected in PutEvents answers.",
    ),
    m(
        "cloudwatch_logs_rejected_events_total",
        C,
        "component, reason",
        "Events CloudWatch Logs rejected (too old, too new, expired).",
    ),
    // Buffers
    m(
        "buffer_events",
        G,
        "sink",
        "Events held in a memory buffer.",
    ),
    m(
        "buffer_bytes",
        G,
        "sink",
        "Bytes of segment files in a disk buffer.",
    ),
    m("buffer_max_bytes", G, "sink", "A disk buffer's max_size."),
    m(
        "buffer_events_written_total",
        C,
        "sink",
        "Events written (and fsynced) to a disk buffer.",
    ),
    m(
        "buffer_full_total",
        C,
        "sink",
        "Times a full disk buffer made its sources wait (when_full = \"block\").",
    ),
    m(
        "buffer_spills_total",
        C,
        "sink",
        "Times a sink fell behind and its events went to its spill on disk (the other sinks went on).",
    ),
    m(
        "buffer_spilled_events_total",
        C,
        "sink",
        "Events that went to a sink's spill on disk instead of straight to it (copied, or named as records of their trail file to read again).",
    ),
    m(
        "buffer_reread_lost_events_total",
        C,
        "sink",
        "Events a spill named that could not be read again from their file (deleted or rewritten before the sink caught up): lost for that sink.",
    ),
    m(
        "buffer_refused_total",
        C,
        "sink",
        "Batches a full disk buffer refused (when_full = \"drop_newest\"; their units are read again).",
    ),
    m(
        "buffer_dropped_total",
        C,
        "sink",
        "Batches refused while the disk buffer could not be written.",
    ),
    m(
        "buffer_write_errors_total",
        C,
        "sink",
        "Failed disk buffer writes (the batch is refused, not acknowledged).",
    ),
    m(
        "buffer_read_errors_total",
        C,
        "sink",
        "Failed disk buffer reads (retried).",
    ),
    m(
        "buffer_damaged_regions_total",
        C,
        "sink",
        "Damaged regions found in disk buffer segments (reported, skipped).",
    ),
    m(
        "buffer_damaged_bytes_total",
        C,
        "sink",
        "Bytes in damaged disk buffer regions.",
    ),
];

pub fn find(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quoted metric name in the source tree is in the catalogue, and the README's
    /// metrics table lists every catalogued name.
    #[test]
    fn every_metric_is_catalogued_and_documented() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = std::collections::BTreeSet::new();
        for entry in walkdir::WalkDir::new(root.join("src")) {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|e| e != "rs")
                || entry.path().ends_with("catalog.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for part in text.split('"').skip(1).step_by(2) {
                let metricish = part.ends_with("_total")
                    || part.ends_with("_seconds") && part.contains('_') && !part.contains(' ');
                if metricish
                    && !part.starts_with("test_")
                    && part.starts_with(|c: char| c.is_ascii_lowercase())
                    && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    used.insert(part.to_string());
                }
            }
        }
        for name in &used {
            assert!(
                find(name).is_some(),
                "metric {name} is used but not in the catalogue"
            );
        }
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        for m in METRICS {
            assert!(
                readme.contains(&format!("`trailship_{}`", m.name)),
                "README's metrics table misses trailship_{}",
                m.name
            );
        }
    }
}
