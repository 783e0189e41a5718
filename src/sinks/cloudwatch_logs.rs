//! `type = "cloudwatch_logs"`: events to CloudWatch Logs with PutLogEvents, one log event per
//! CloudTrail record, timestamped with its eventTime.
//!
//! Every PutLogEvents rule is obeyed before a call is made: at most 10,000 events and 1,048,576
//! bytes per call (each event counts its UTF-8 message plus 26 bytes), events in chronological
//! order within a call, a call spanning less than 24 hours, no event over the maximum event
//! size (an oversized event fails alone, permanently, and is never truncated). Events that
//! CloudWatch refuses as too old, expired (older than the group's retention) or too new are
//! read from `rejectedLogEventsInfo`, counted and failed permanently: never counted as
//! delivered. Sequence tokens are not used (ignored by the service since 2023) and no
//! DescribeLogStreams call is made: a missing group or stream shows up as
//! ResourceNotFoundException, is created (with `create_missing`) and the call is retried.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatchlogs::types::{InputLogEvent, RejectedLogEventsInfo};
use serde::Deserialize;

use crate::aws::{AwsAccess, sink_error};
use crate::config::{FieldError, units};
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::partition;
use crate::sinks::util::template::{RenderError, Template};
use crate::telemetry;

/// PutLogEvents: events per call.
pub const MAX_CALL_EVENTS: usize = 10_000;
/// PutLogEvents: bytes per call, counting each message's UTF-8 bytes plus `EVENT_OVERHEAD`.
pub const MAX_CALL_BYTES: usize = 1_048_576;
/// What CloudWatch Logs adds to every event when it sizes a call.
pub const EVENT_OVERHEAD: usize = 26;
/// A call's events must span less than 24 hours.
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;
/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// CloudTrail's own delivery to CloudWatch Logs names streams this way.
pub const DEFAULT_STREAM: &str = "{account_id}_CloudTrail_{region}";

fn d_stream() -> String {
    DEFAULT_STREAM.into()
}
fn d_true() -> bool {
    true
}
fn d_max_event() -> u64 {
    // 1 MB per event since April 2025 (message + 26 bytes); it was 256 KiB before.
    MAX_CALL_BYTES as u64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchLogsSinkConfig {
    /// Log group template, e.g. `/cloudtrail/{account_id}`.
    pub group: String,
    /// Log stream template; default `{account_id}_CloudTrail_{region}`, as CloudTrail names
    /// the streams it writes.
    #[serde(default = "d_stream")]
    pub stream: String,
    /// Create missing groups and streams.
    #[serde(default = "d_true")]
    pub create_missing: bool,
    /// Retention applied to the groups this sink creates.
    pub retention_days: Option<i32>,
    /// Largest event accepted, counting the message and 26 bytes (the service maximum by
    /// default; lower it where an account or region still has the old 256 KiB limit).
    #[serde(default = "d_max_event", deserialize_with = "units::size")]
    pub max_event_size: u64,
    /// `region`, `endpoint`, `assume_role` (taken out of the table first).
    #[serde(skip)]
    pub aws: AwsAccess,
}

/// Characters CloudWatch Logs allows in a group name.
fn group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

impl CloudWatchLogsSinkConfig {
    fn template(key: &str, s: &str, ok: fn(char) -> bool) -> Result<Template, FieldError> {
        if s.contains("{uuid}") {
            return Err(FieldError::new(&[key], "{uuid} has no meaning here"));
        }
        // Literal parts only: values from events are letters, digits, `.`, `_` and `-`.
        let literal: String = s
            .split('{')
            .map(|p| p.split_once('}').map_or(p, |(_, rest)| rest))
            .collect();
        if let Some(c) = literal.chars().find(|c| *c != '%' && !ok(*c)) {
            return Err(FieldError::new(
                &[key],
                format!("{c:?} is not allowed in a CloudWatch Logs {key} name"),
            ));
        }
        Template::parse(s).map_err(|m| FieldError::new(&[key], m))
    }

    pub fn check(&self) -> Result<(Template, Template), FieldError> {
        let group = Self::template("group", &self.group, group_char)?;
        let stream = Self::template("stream", &self.stream, |c| c != ':' && c != '*')?;
        if let Some(d) = self.retention_days
            && !RETENTION_DAYS.contains(&d)
        {
            return Err(FieldError::new(
                &["retention_days"],
                format!("{d} is not a retention CloudWatch Logs accepts ({RETENTION_DAYS:?})"),
            ));
        }
        if self.max_event_size <= EVENT_OVERHEAD as u64
            || self.max_event_size > MAX_CALL_BYTES as u64
        {
            return Err(FieldError::new(
                &["max_event_size"],
                format!("must be more than {EVENT_OVERHEAD} bytes and at most {MAX_CALL_BYTES}"),
            ));
        }
        Ok((group, stream))
    }
}

/// One event of a call: where it is in the batch, its timestamp and message size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub index: usize,
    pub timestamp: i64,
    pub bytes: usize,
}

/// Cut entries, already sorted by timestamp, into PutLogEvents calls that obey the count,
/// size and 24-hour rules. Every entry must fit a call on its own (`bytes + 26 <= 1 MiB`).
pub fn plan_calls(entries: &[Entry]) -> Vec<Range<usize>> {
    let mut calls = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let size = e.bytes + EVENT_OVERHEAD;
        let full = i - start >= MAX_CALL_EVENTS
            || bytes + size > MAX_CALL_BYTES
            || e.timestamp - entries[start].timestamp >= MAX_SPAN_MS;
        if i > start && full {
            calls.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        calls.push(start..entries.len());
    }
    calls
}

/// How far back and ahead of now CloudWatch Logs accepts events.
const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
const MAX_AHEAD_MS: i64 = 2 * 3600 * 1000;
/// Clock difference allowed between this host and CloudWatch when reading rejections.
const CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Why CloudWatch refused the event at position `j` (timestamp `ts`) of a call, from
/// `rejectedLogEventsInfo`.
///
/// Read so that no refused event can ever count as delivered: AWS documents
/// `tooOldLogEventEndIndex` as exclusive and `tooNewLogEventStartIndex` as the first too-new
/// event, while emulators (moto) report the last too-old and the last too-new event; so end
/// indices are inclusive, and once the service reports too-old (too-new) events, every event
/// of the call past the service's age rule by our clock (within 5 minutes) counts as refused
/// too. At worst an accepted event near a boundary is failed and sent again later.
fn rejection(
    info: &RejectedLogEventsInfo,
    j: usize,
    ts: i64,
    now: i64,
) -> Option<(&'static str, &'static str)> {
    let j = j as i64;
    let at_or_before = |x: Option<i32>| x.is_some_and(|x| j <= i64::from(x));
    let old = info.too_old_log_event_end_index.is_some()
        && (at_or_before(info.too_old_log_event_end_index)
            || ts < now - MAX_AGE_MS + CLOCK_MARGIN_MS);
    let new = info
        .too_new_log_event_start_index
        .is_some_and(|x| j >= i64::from(x) || ts > now + MAX_AHEAD_MS - CLOCK_MARGIN_MS);
    if at_or_before(info.expired_log_event_end_index) {
        Some((
            "expired",
            "CloudWatch Logs refused the event as older than the log group's retention",
        ))
    } else if old {
        Some((
            "too_old",
            "CloudWatch Logs refused the event as too old (over 14 days, or older than the log group's retention)",
        ))
    } else if new {
        Some((
            "too_new",
            "CloudWatch Logs refused the event as too new (over 2 hours in the future)",
        ))
    } else {
        None
    }
}

pub struct CloudWatchLogsSink {
    name: Arc<str>,
    group: Template,
    stream: Template,
    cfg: CloudWatchLogsSinkConfig,
    client: aws_sdk_cloudwatchlogs::Client,
    /// Groups this process created or found (a ResourceAlreadyExists answer).
    groups_known: Mutex<HashSet<String>>,
}

enum Put {
    Done(Option<RejectedLogEventsInfo>),
    Missing,
}

impl CloudWatchLogsSink {
    pub fn new(
        name: Arc<str>,
        cfg: CloudWatchLogsSinkConfig,
        client: aws_sdk_cloudwatchlogs::Client,
    ) -> Result<Self, FieldError> {
        let (group, stream) = cfg.check()?;
        Ok(CloudWatchLogsSink {
            name,
            group,
            stream,
            cfg,
            client,
            groups_known: Mutex::new(HashSet::new()),
        })
    }

    fn reject(&self, reason: &'static str, n: u64) {
        telemetry::add(
            "cloudwatch_logs_rejected_events_total",
            &[("component", &self.name), ("reason", reason)],
            n,
        );
    }

    async fn put(
        &self,
        group: &str,
        stream: &str,
        events: Vec<InputLogEvent>,
    ) -> Result<Put, SendError> {
        let r = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await;
        match r {
            Ok(out) => Ok(Put::Done(out.rejected_log_events_info)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(Put::Missing)
            }
            Err(e) => Err(sink_error(
                &format!("PutLogEvents to log group {group:?} stream {stream:?}"),
                &e,
            )),
        }
    }

    /// Create the group (with its retention) unless this process knows it exists, then the
    /// stream; "already exists" answers are fine (another process may have been first).
    async fn create(&self, group: &str, stream: &str) -> Result<(), SendError> {
        let known = self
            .groups_known
            .lock()
            .map(|g| g.contains(group))
            .unwrap_or(false);
        let mut group_error = None;
        if !known {
            match self
                .client
                .create_log_group()
                .log_group_name(group)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::info!(sink = %self.name, log_group = group, retention_days = ?self.cfg.retention_days, "created log group");
                    if let Some(days) = self.cfg.retention_days {
                        let r = self
                            .client
                            .put_retention_policy()
                            .log_group_name(group)
                            .retention_in_days(days)
                            .send()
                            .await;
                        if let Err(e) = r {
                            tracing::warn!(sink = %self.name, log_group = group, error = %crate::aws::sdk_error_text(&e), "could not set the retention of the new log group; its events are kept until a retention is set");
                        }
                    }
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
                Err(e) => {
                    // Often a role allowed to create streams but not groups, in a group that
                    // exists: try the stream anyway, and report this if that fails too.
                    group_error = Some(sink_error(&format!("creating log group {group:?}"), &e));
                }
            }
            if group_error.is_none()
                && let Ok(mut g) = self.groups_known.lock()
            {
                g.insert(group.to_string());
            }
        }
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(sink = %self.name, log_group = group, log_stream = stream, "created log stream");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => {
                // The group may have been deleted behind our back: forget it.
                if let Ok(mut g) = self.groups_known.lock() {
                    g.remove(group);
                }
                Err(group_error.unwrap_or_else(|| {
                    sink_error(
                        &format!("creating log stream {stream:?} in group {group:?}"),
                        &e,
                    )
                }))
            }
        }
    }

    /// Send one call's entries; returns the item errors of this call.
    async fn call(
        &self,
        group: &str,
        stream: &str,
        events: &[Event],
        entries: &[Entry],
    ) -> Vec<ItemError> {
        let build = || {
            entries
                .iter()
                .map(|en| {
                    let msg = String::from_utf8_lossy(&events[en.index].data.raw).into_owned();
                    InputLogEvent::builder()
                        .timestamp(en.timestamp)
                        .message(msg)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SendError::Permanent(format!("building a PutLogEvents call: {e}")))
        };
        let fail_all = |error: SendError| -> Vec<ItemError> {
            entries
                .iter()
                .map(|en| ItemError {
                    index: en.index,
                    error: error.clone(),
                })
                .collect()
        };
        let mut result = match build() {
            Ok(evs) => self.put(group, stream, evs).await,
            Err(e) => Err(e),
        };
        if let Ok(Put::Missing) = result {
            if !self.cfg.create_missing {
                return fail_all(SendError::Permanent(format!(
                    "log group {group:?} or stream {stream:?} does not exist and create_missing = false"
                )));
            }
            if let Err(e) = self.create(group, stream).await {
                return fail_all(e);
            }
            result = match build() {
                Ok(evs) => self.put(group, stream, evs).await,
                Err(e) => Err(e),
            };
        }
        let info = match result {
            Ok(Put::Done(info)) => info,
            Ok(Put::Missing) => {
                return fail_all(SendError::retryable(format!(
                    "log group {group:?} stream {stream:?} still missing after creating it"
                )));
            }
            Err(e) => return fail_all(e),
        };
        let Some(info) = info else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
        let now = chrono::Utc::now().timestamp_millis();
        for (j, en) in entries.iter().enumerate() {
            if let Some((reason, text)) = rejection(&info, j, en.timestamp, now) {
                *counts.entry(reason).or_default() += 1;
                errors.push(ItemError {
                    index: en.index,
                    error: SendError::Permanent(format!(
                        "{text} (log group {group:?}, stream {stream:?}, timestamp {})",
                        en.timestamp
                    )),
                });
            }
        }
        for (reason, n) in &counts {
            self.reject(reason, *n);
        }
        if !errors.is_empty() {
            tracing::warn!(sink = %self.name, log_group = group, log_stream = stream, rejected = ?counts, sent = entries.len(), "CloudWatch Logs refused events of a call; they are not counted as delivered");
        }
        errors
    }
}

impl SinkService for CloudWatchLogsSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut stream = String::new();
        let (groups, mut errors) = partition::by_key(events, |e, key| {
            self.group.render(&e.data, key)?;
            self.stream.render(&e.data, &mut stream)?;
            key.push('\n');
            key.push_str(&stream);
            Ok::<(), RenderError>(())
        });
        let now = chrono::Utc::now().timestamp_millis();
        for (key, idx) in groups {
            let (group, stream) = key.split_once('\n').unwrap_or((&key, ""));
            let mut entries = Vec::with_capacity(idx.len());
            for i in idx {
                let e = &events[i];
                let bytes = e.data.raw.len();
                if (bytes + EVENT_OVERHEAD) as u64 > self.cfg.max_event_size {
                    self.reject("too_large", 1);
                    errors.push(ItemError {
                        index: i,
                        error: SendError::Permanent(format!(
                            "event of {bytes} bytes is over the maximum CloudWatch Logs event size ({} bytes with the 26-byte overhead); it is not truncated",
                            self.cfg.max_event_size
                        )),
                    });
                    continue;
                }
                if std::str::from_utf8(&e.data.raw).is_err() {
                    errors.push(ItemError {
                        index: i,
                        error: SendError::Permanent("the event is not valid UTF-8".into()),
                    });
                    continue;
                }
                entries.push(Entry {
                    index: i,
                    // An event without a usable eventTime is stamped with the time it is sent.
                    timestamp: e.data.event_time_millis().unwrap_or(now),
                    bytes,
                });
            }
            entries.sort_by_key(|e| e.timestamp);
            for call in plan_calls(&entries) {
                errors.extend(self.call(group, stream, events, &entries[call]).await);
            }
        }
        Ok(errors)
    }
}

/// The `cloudwatch_logs` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "cloudwatch_logs",
    defaults: || {
        crate::sinks::util::kind::defaults(
            MAX_CALL_EVENTS,
            1_000_000,
            std::time::Duration::from_secs(1),
            4,
        )
    },
    keys: crate::aws::AwsAccess::KEYS,
    parse: |mut table| {
        let aws = crate::aws::AwsAccess::take(&mut table)?;
        crate::config::from_table::<CloudWatchLogsSinkConfig>(table)
            .map(|c| std::sync::Arc::new(CloudWatchLogsSinkConfig { aws, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for CloudWatchLogsSinkConfig {
    type Service = CloudWatchLogsSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check().map(|_| ())
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<CloudWatchLogsSink, crate::config::FieldError> {
        let client = self.aws.cloudwatch_logs().await;
        CloudWatchLogsSink::new(name, self, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(spec: &[(i64, usize)]) -> Vec<Entry> {
        spec.iter()
            .enumerate()
            .map(|(index, (timestamp, bytes))| Entry {
                index,
                timestamp: *timestamp,
                bytes: *bytes,
            })
            .collect()
    }

    fn check(es: &[Entry], calls: &[Range<usize>]) {
        let mut next = 0;
        for c in calls {
            assert_eq!(c.start, next, "calls cover every entry once, in order");
            next = c.end;
            let call = &es[c.clone()];
            assert!(!call.is_empty() && call.len() <= MAX_CALL_EVENTS);
            let bytes: usize = call.iter().map(|e| e.bytes + EVENT_OVERHEAD).sum();
            assert!(bytes <= MAX_CALL_BYTES, "{bytes}");
            assert!(call.last().unwrap().timestamp - call[0].timestamp < MAX_SPAN_MS);
        }
        assert_eq!(next, es.len());
    }

    #[test]
    fn splits_at_count_bytes_and_span() {
        // 25,000 small events: 10,000 + 10,000 + 5,000.
        let es = entries(&vec![(0, 10); 25_000]);
        let calls = plan_calls(&es);
        check(&es, &calls);
        assert_eq!(calls.len(), 3);

        // 1,000-byte events: (1000 + 26) * 1022 = 1,048,572 <= 1 MiB; one more is over.
        let es = entries(&vec![(0, 1000); 3000]);
        let calls = plan_calls(&es);
        check(&es, &calls);
        assert_eq!(calls[0].len(), 1022);

        // The overhead alone decides: 1,048,550-byte message fits alone, exactly.
        let es = entries(&[(0, MAX_CALL_BYTES - EVENT_OVERHEAD), (0, 1)]);
        let calls = plan_calls(&es);
        check(&es, &calls);
        assert_eq!(calls, vec![0..1, 1..2]);

        // A span of exactly 24 hours is cut; just under is not.
        let es = entries(&[(0, 1), (MAX_SPAN_MS - 1, 1), (MAX_SPAN_MS, 1)]);
        let calls = plan_calls(&es);
        check(&es, &calls);
        assert_eq!(calls, vec![0..2, 2..3]);
        assert!(plan_calls(&[]).is_empty());
    }

    #[test]
    fn rejected_indices_never_count_as_delivered() {
        let now = 1_800_000_000_000;
        let info = RejectedLogEventsInfo::builder()
            .too_old_log_event_end_index(1)
            .too_new_log_event_start_index(4)
            .build();
        let got: Vec<_> = (0..6)
            .map(|j| rejection(&info, j, now, now).map(|r| r.0))
            .collect();
        assert_eq!(
            got,
            vec![
                Some("too_old"),
                Some("too_old"),
                None,
                None,
                Some("too_new"),
                Some("too_new")
            ]
        );
        let info = RejectedLogEventsInfo::builder()
            .expired_log_event_end_index(0)
            .build();
        assert_eq!(rejection(&info, 0, now, now).map(|r| r.0), Some("expired"));
        assert_eq!(rejection(&info, 1, now, now), None);
    }

    #[test]
    fn emulator_style_indices_are_widened_by_the_clock() {
        // moto names the LAST too-new event as the start index: the one before it, also a
        // day ahead, must not count as delivered.
        let now = 1_800_000_000_000;
        let day = 24 * 3600 * 1000;
        let info = RejectedLogEventsInfo::builder()
            .too_new_log_event_start_index(3)
            .build();
        assert_eq!(
            rejection(&info, 2, now + day, now).map(|r| r.0),
            Some("too_new")
        );
        assert_eq!(rejection(&info, 1, now, now), None);
        let info = RejectedLogEventsInfo::builder()
            .too_old_log_event_end_index(0)
            .build();
        assert_eq!(
            rejection(&info, 1, now - 20 * day, now).map(|r| r.0),
            Some("too_old")
        );
        assert_eq!(rejection(&info, 1, now - day, now), None);
    }

    #[test]
    fn config_checks() {
        let cfg = |group: &str, stream: &str, retention: Option<i32>| CloudWatchLogsSinkConfig {
            group: group.into(),
            stream: stream.into(),
            create_missing: true,
            retention_days: retention,
            max_event_size: d_max_event(),
            aws: AwsAccess::default(),
        };
        assert!(
            cfg("/cloudtrail/{account_id}", DEFAULT_STREAM, Some(90))
                .check()
                .is_ok()
        );
        assert!(cfg("/cloudtrail/%Y-%m", "{region}", None).check().is_ok());
        assert!(cfg("bad group", DEFAULT_STREAM, None).check().is_err());
        assert!(cfg("g", "a:b", None).check().is_err());
        assert!(cfg("g", "{uuid}", None).check().is_err());
        assert!(cfg("g", "s", Some(2)).check().is_err());
    }
}
