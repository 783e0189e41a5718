//! `type = "eventbridge"`: events to an EventBridge bus with PutEvents, each CloudTrail record
//! as an entry's `Detail`, its eventTime as the entry's `Time`.
//!
//! Calls carry at most 10 entries and stay under the request size limit (each entry counted
//! as EventBridge counts it: 14 bytes for Time, plus the UTF-8 bytes of Source, DetailType and
//! Detail); an entry over the limit fails alone, permanently. PutEvents answers per entry:
//! entries that failed with a throttling or internal error are retried alone (the driver
//! resends only them), the others fail permanently with EventBridge's code and message.

use std::sync::Arc;

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Deserialize;

use crate::aws::{AwsAccess, RETRYABLE_CODES, sink_error};
use crate::config::{FieldError, units};
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::telemetry;

/// PutEvents: entries per call.
pub const MAX_CALL_ENTRIES: usize = 10;
/// What EventBridge counts for an entry's `Time`.
const TIME_BYTES: usize = 14;

fn d_bus() -> String {
    "default".into()
}
fn d_source() -> String {
    "trailship.cloudtrail".into()
}
fn d_max_size() -> u64 {
    256 << 10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeSinkConfig {
    /// Bus name or ARN.
    #[serde(default = "d_bus")]
    pub event_bus: String,
    /// The entries' `Source` (`aws.*` is reserved for AWS services).
    #[serde(default = "d_source")]
    pub source: String,
    /// The entries' `DetailType`; by default the one CloudTrail's own events carry on
    /// EventBridge for the record's eventType ("AWS API Call via CloudTrail", …).
    pub detail_type: Option<String>,
    /// Entries and whole calls must stay under this size (EventBridge's limit: 256 KiB).
    #[serde(default = "d_max_size", deserialize_with = "units::size")]
    pub max_size: u64,
    /// `region`, `endpoint`, `assume_role` (taken out of the table first).
    #[serde(skip)]
    pub aws: AwsAccess,
}

/// The detail-type CloudTrail events have on EventBridge, by eventType.
pub fn detail_type_for(event_type: Option<&str>) -> &'static str {
    match event_type {
        Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
        Some("AwsServiceEvent") => "AWS Service Event via CloudTrail",
        Some("AwsCloudTrailInsight") => "AWS Insight via CloudTrail",
        Some("AwsConsoleAction") => "AWS Console Action via CloudTrail",
        _ => "AWS API Call via CloudTrail",
    }
}

impl EventBridgeSinkConfig {
    pub fn check(&self) -> Result<(), FieldError> {
        if self.source.is_empty() || self.source.len() > 256 {
            return Err(FieldError::new(&["source"], "must be 1 to 256 characters"));
        }
        if self.source.starts_with("aws.") {
            return Err(FieldError::new(
                &["source"],
                "sources starting with \"aws.\" are reserved for AWS services; PutEvents refuses them",
            ));
        }
        if self.event_bus.is_empty() {
            return Err(FieldError::new(&["event_bus"], "must name a bus"));
        }
        if self
            .detail_type
            .as_deref()
            .is_some_and(|d| d.is_empty() || d.len() > 128)
        {
            return Err(FieldError::new(
                &["detail_type"],
                "must be 1 to 128 characters",
            ));
        }
        if self.max_size < 1024 {
            return Err(FieldError::new(&["max_size"], "must be at least 1KiB"));
        }
        Ok(())
    }
}

pub struct EventBridgeSink {
    name: Arc<str>,
    cfg: EventBridgeSinkConfig,
    client: aws_sdk_eventbridge::Client,
}

/// One entry to send: where it is in the batch and its size as EventBridge counts it.
struct Entry {
    index: usize,
    detail_type: &'static str,
    size: usize,
}

impl EventBridgeSink {
    pub fn new(
        name: Arc<str>,
        cfg: EventBridgeSinkConfig,
        client: aws_sdk_eventbridge::Client,
    ) -> Result<Self, FieldError> {
        cfg.check()?;
        Ok(EventBridgeSink { name, cfg, client })
    }

    fn detail_type<'a>(&'a self, e: &Event) -> (&'a str, &'static str) {
        let auto = detail_type_for(e.data.event_type());
        (self.cfg.detail_type.as_deref().unwrap_or(auto), auto)
    }

    /// Send one call; returns the item errors of its entries.
    async fn call(&self, events: &[Event], call: &[Entry]) -> Vec<ItemError> {
        let entries = call.iter().map(|en| {
            let e = &events[en.index];
            let mut b = PutEventsRequestEntry::builder()
                .event_bus_name(&self.cfg.event_bus)
                .source(&self.cfg.source)
                .detail_type(self.cfg.detail_type.as_deref().unwrap_or(en.detail_type))
                .detail(String::from_utf8_lossy(&e.data.raw).into_owned());
            if let Some(ms) = e.data.event_time_millis() {
                b = b.time(DateTime::from_millis(ms));
            }
            b.build()
        });
        let r = self
            .client
            .put_events()
            .set_entries(Some(entries.collect()))
            .send()
            .await;
        let out = match r {
            Ok(o) => o,
            Err(e) => {
                let err = sink_error(&format!("PutEvents to bus {:?}", self.cfg.event_bus), &e);
                return call
                    .iter()
                    .map(|en| ItemError {
                        index: en.index,
                        error: err.clone(),
                    })
                    .collect();
            }
        };
        let results = out.entries.unwrap_or_default();
        let mut errors = Vec::new();
        for (j, en) in call.iter().enumerate() {
            let error = match results.get(j) {
                // An answer without a result for this entry: nothing says it was accepted.
                None => SendError::retryable("PutEvents answered without a result for the entry"),
                Some(res) => match &res.error_code {
                    None => continue,
                    Some(code) => {
                        let text = format!(
                            "EventBridge refused the entry on bus {:?}: {code}: {}",
                            self.cfg.event_bus,
                            res.error_message.as_deref().unwrap_or("")
                        );
                        if RETRYABLE_CODES.contains(&code.as_str()) {
                            SendError::retryable(text)
                        } else {
                            telemetry::count(
                                "eventbridge_rejected_events_total",
                                &[("component", &self.name), ("reason", code)],
                            );
                            SendError::Permanent(text)
                        }
                    }
                },
            };
            errors.push(ItemError {
                index: en.index,
                error,
            });
        }
        if !errors.is_empty() {
            tracing::debug!(sink = %self.name, failed = errors.len(), entries = call.len(), "PutEvents: some entries failed; only those are retried");
        }
        errors
    }
}

impl SinkService for EventBridgeSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut errors = Vec::new();
        let mut calls: Vec<Vec<Entry>> = Vec::new();
        let mut cur: Vec<Entry> = Vec::new();
        let mut cur_size = 0;
        let limit = usize::try_from(self.cfg.max_size).unwrap_or(usize::MAX);
        for (index, e) in events.iter().enumerate() {
            let (dt, auto) = self.detail_type(e);
            let size = TIME_BYTES + self.cfg.source.len() + dt.len() + e.data.raw.len();
            if size >= limit {
                telemetry::count(
                    "eventbridge_rejected_events_total",
                    &[("component", &self.name), ("reason", "too_large")],
                );
                errors.push(ItemError {
                    index,
                    error: SendError::Permanent(format!(
                        "entry of {size} bytes is not under EventBridge's limit of {limit} bytes; it is not truncated"
                    )),
                });
                continue;
            }
            if std::str::from_utf8(&e.data.raw).is_err() {
                errors.push(ItemError {
                    index,
                    error: SendError::Permanent("the event is not valid UTF-8".into()),
                });
                continue;
            }
            if cur.len() >= MAX_CALL_ENTRIES || cur_size + size >= limit {
                calls.push(std::mem::take(&mut cur));
                cur_size = 0;
            }
            cur_size += size;
            cur.push(Entry {
                index,
                detail_type: auto,
                size,
            });
        }
        if !cur.is_empty() {
            calls.push(cur);
        }
        for call in &calls {
            debug_assert!(call.iter().map(|e| e.size).sum::<usize>() < limit);
            errors.extend(self.call(events, call).await);
        }
        Ok(errors)
    }
}

/// The `eventbridge` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "eventbridge",
    defaults: || {
        crate::sinks::util::kind::defaults(100, 1 << 20, std::time::Duration::from_secs(1), 4)
    },
    keys: crate::aws::AwsAccess::KEYS,
    parse: |mut table| {
        let aws = crate::aws::AwsAccess::take(&mut table)?;
        crate::config::from_table::<EventBridgeSinkConfig>(table)
            .map(|c| std::sync::Arc::new(EventBridgeSinkConfig { aws, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for EventBridgeSinkConfig {
    type Service = EventBridgeSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check()
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<EventBridgeSink, crate::config::FieldError> {
        let client = self.aws.eventbridge().await;
        EventBridgeSink::new(name, self, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_types_follow_cloudtrail() {
        assert_eq!(
            detail_type_for(Some("AwsApiCall")),
            "AWS API Call via CloudTrail"
        );
        assert_eq!(detail_type_for(None), "AWS API Call via CloudTrail");
        assert_eq!(
            detail_type_for(Some("AwsCloudTrailInsight")),
            "AWS Insight via CloudTrail"
        );
        assert_eq!(
            detail_type_for(Some("AwsConsoleSignIn")),
            "AWS Console Sign In via CloudTrail"
        );
    }

    #[test]
    fn reserved_source_is_refused() {
        let mut c = EventBridgeSinkConfig {
            event_bus: d_bus(),
            source: "aws.cloudtrail".into(),
            detail_type: None,
            max_size: d_max_size(),
            aws: AwsAccess::default(),
        };
        assert!(c.check().is_err());
        c.source = d_source();
        assert!(c.check().is_ok());
    }
}
