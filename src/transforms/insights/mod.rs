//! `type = "insights"`: CloudTrail Insights, locally. Learns per (eventSource, eventName,
//! account, region) the rate of calls and of errors per minute of **event time**, and emits
//! CloudTrail-format Insight events (`AwsCloudTrailInsight`, Start and End linked by
//! `sharedEventID`, `ApiCallRateInsight` / `ApiErrorRateInsight`, statistics, attributions)
//! when a minute departs far from its baseline. Its output carries only the Insight events;
//! the events it reads are consumed (wire the source to your sinks as well).

pub mod detector;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::util::Transform;
use crate::config::{FieldError, units};
use crate::core::Batch;
use crate::core::ack::AckToken;
use crate::core::event::{Event, EventData, Origin, parse_header};
use crate::telemetry;
use detector::{Attr, Change, Minute, Params, Pending, Series};

fn d(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsConfig {
    #[serde(default = "warm_up", deserialize_with = "units::duration")]
    pub warm_up: Duration,
    #[serde(default = "baseline", deserialize_with = "units::duration")]
    pub baseline: Duration,
    #[serde(default = "sensitivity")]
    pub sensitivity: f64,
    #[serde(default = "min_count")]
    pub min_per_minute: f64,
    #[serde(default = "ratio")]
    pub ratio: f64,
    #[serde(default = "cool_down", deserialize_with = "units::duration")]
    pub cool_down: Duration,
    /// How late (in event time) an event may arrive and still count.
    #[serde(default = "lateness", deserialize_with = "units::duration")]
    pub lateness: Duration,
    #[serde(default = "max_keys")]
    pub max_keys: usize,
}

fn warm_up() -> Duration {
    d(2 * 3600)
}
fn baseline() -> Duration {
    d(7 * 86400)
}
fn sensitivity() -> f64 {
    6.0
}
fn min_count() -> f64 {
    10.0
}
fn ratio() -> f64 {
    3.0
}
fn cool_down() -> Duration {
    d(180)
}
fn lateness() -> Duration {
    d(3600)
}
fn max_keys() -> usize {
    10_000
}

impl InsightsConfig {
    pub fn build(&self, name: &str) -> Result<Insights, FieldError> {
        let minutes = |x: Duration| x.as_secs() / 60;
        if minutes(self.baseline) < 2 {
            return Err(FieldError::new(&["baseline"], "must be at least 2m"));
        }
        if !(self.sensitivity > 0.0 && self.ratio >= 1.0 && self.min_per_minute >= 1.0) {
            return Err(FieldError::new(
                &["sensitivity"],
                "need sensitivity > 0, ratio >= 1, min_per_minute >= 1",
            ));
        }
        Ok(Insights {
            name: name.into(),
            origin: Arc::new(Origin {
                source: name.into(),
                location: "insights".into(),
                trace: Default::default(),
                reread: None,
            }),
            params: Params {
                warm_up: minutes(self.warm_up),
                baseline: minutes(self.baseline),
                sensitivity: self.sensitivity,
                min_count: self.min_per_minute,
                ratio: self.ratio,
                cool_down: (minutes(self.cool_down) as u32).max(1),
            },
            lateness: minutes(self.lateness) as i64,
            max_keys: self.max_keys.max(1),
            keys: HashMap::new(),
            newest: i64::MIN,
            closed_to: i64::MIN,
        })
    }
}

/// (eventSource, eventName, account, region)
type Key = (String, String, String, String);

#[derive(Default)]
struct KeyState {
    pending: Pending,
    /// The last minute accounted in the baselines.
    last: Option<i64>,
    calls: Series,
    errors: Series,
    seen: i64,
}

pub struct Insights {
    name: Arc<str>,
    origin: Arc<Origin>,
    params: Params,
    lateness: i64,
    max_keys: usize,
    keys: HashMap<Key, KeyState>,
    /// The newest event minute seen; minutes up to `newest - lateness` are closed.
    newest: i64,
    closed_to: i64,
}

/// The fields of a record the detector needs beyond the header.
#[derive(Deserialize)]
struct Extra<'a> {
    #[serde(borrow, default, rename = "userIdentity")]
    user: Option<UserId<'a>>,
    #[serde(borrow, default, rename = "userAgent")]
    user_agent: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserId<'a> {
    #[serde(borrow, default)]
    arn: Option<std::borrow::Cow<'a, str>>,
}

fn new_uuid() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

const ATTRIBUTES: [&str; 3] = ["userIdentityArn", "userAgent", "errorCode"];

fn attributions(insight: &[Attr; 3], minutes: u32, base: &[Attr; 3]) -> Value {
    let top = |a: &Attr, per: f64| -> Vec<Value> {
        let mut v: Vec<(&String, &f64)> = a.iter().collect();
        v.sort_by(|x, y| y.1.total_cmp(x.1).then(x.0.cmp(y.0)));
        v.into_iter()
            .take(5)
            .map(|(k, c)| json!({"value": k, "average": (c / per * 100.0).round() / 100.0}))
            .collect()
    };
    let m = f64::from(minutes.max(1));
    Value::Array(
        ATTRIBUTES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "attribute": name,
                    "insight": top(&insight[i], m),
                    "baseline": top(&base[i], 1.0),
                })
            })
            .collect(),
    )
}

fn minute_time(m: i64) -> String {
    chrono::DateTime::from_timestamp(m * 60, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl Insights {
    fn emit(&self, key: &Key, kind: &str, c: &Change, out: &mut Batch) {
        let (source, name, account, region) = key;
        let avg = c.open.sum / f64::from(c.open.minutes.max(1));
        let mut stats = json!({
            "baseline": {"average": (c.open.baseline_mean * 1e4).round() / 1e4},
            "insight": {"average": (avg * 1e4).round() / 1e4},
            "baselineDuration": c.baseline_minutes,
        });
        if !c.start {
            stats["insightDuration"] = c.open.minutes.into();
        }
        let rec = json!({
            "eventVersion": "1.08",
            "eventTime": minute_time(c.minute),
            "awsRegion": region,
            "eventID": new_uuid(),
            "eventType": "AwsCloudTrailInsight",
            "recipientAccountId": account,
            "sharedEventID": c.open.shared_id,
            "insightDetails": {
                "state": if c.start { "Start" } else { "End" },
                "eventSource": source,
                "eventName": name,
                "insightType": kind,
                "insightContext": {
                    "statistics": stats,
                    "attributions": attributions(&c.open.attrs, c.open.minutes, &c.baseline_attrs),
                }
            },
            "eventCategory": "Insight"
        });
        let Ok(raw) = serde_json::to_vec(&rec) else {
            return;
        };
        let raw = bytes::Bytes::from(raw);
        let Ok(header) = parse_header(&raw) else {
            return;
        };
        telemetry::count(
            "insights_total",
            &[
                ("component", &self.name),
                ("state", if c.start { "start" } else { "end" }),
            ],
        );
        out.push(Event::new(
            EventData {
                raw,
                header,
                record: None,
                origin: self.origin.clone(),
            },
            AckToken::none(),
        ));
    }

    fn observe(&mut self, e: &EventData) {
        if e.event_type() == Some("AwsCloudTrailInsight") {
            return;
        }
        let Some(ms) = e.event_time_millis() else {
            return;
        };
        let minute = ms.div_euclid(60_000);
        if minute <= self.closed_to {
            telemetry::count("insights_late_events_total", &[("component", &self.name)]);
            return;
        }
        let key: Key = (
            e.event_source().unwrap_or("").into(),
            e.event_name().unwrap_or("").into(),
            e.account_id().unwrap_or("").into(),
            e.region().unwrap_or("").into(),
        );
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            // Forget the key seen longest ago.
            if let Some(old) = self
                .keys
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| k.clone())
            {
                self.keys.remove(&old);
                telemetry::count("insights_keys_evicted_total", &[("component", &self.name)]);
            }
        }
        let extra: Option<Extra> = serde_json::from_slice(&e.raw).ok();
        let state = self.keys.entry(key).or_default();
        state.seen = state.seen.max(minute);
        let m: &mut Minute = state.pending.minutes.entry(minute).or_default();
        let error = e.error_code();
        let values = [
            extra
                .as_ref()
                .and_then(|x| x.user.as_ref())
                .and_then(|u| u.arn.as_deref())
                .unwrap_or("null")
                .to_string(),
            extra
                .as_ref()
                .and_then(|x| x.user_agent.as_deref())
                .unwrap_or("null")
                .to_string(),
            error.unwrap_or("null").to_string(),
        ];
        m.calls += 1.0;
        for (a, v) in m.attrs.iter_mut().zip(&values) {
            *a.entry(v.clone()).or_default() += 1.0;
        }
        if error.is_some() {
            m.errors += 1.0;
            for (a, v) in m.error_attrs.iter_mut().zip(&values) {
                *a.entry(v.clone()).or_default() += 1.0;
            }
        }
        self.newest = self.newest.max(minute);
    }

    /// Close every minute up to `to` for every key, emitting what changes.
    fn close_to(&mut self, to: i64, out: &mut Batch) {
        if to <= self.closed_to {
            return;
        }
        self.closed_to = to;
        let p = self.params.clone();
        let mut changes: Vec<(Key, &'static str, Change)> = Vec::new();
        let mut new_id = new_uuid;
        for (key, st) in self.keys.iter_mut() {
            let ready: Vec<i64> = st.pending.minutes.range(..=to).map(|(m, _)| *m).collect();
            for m in ready {
                let Some(min) = st.pending.minutes.remove(&m) else {
                    continue;
                };
                if let Some(last) = st.last {
                    let gap = m - last - 1;
                    for c in st.calls.idle(gap, &p, &mut new_id, last + 1) {
                        changes.push((key.clone(), "ApiCallRateInsight", c));
                    }
                    for c in st.errors.idle(gap, &p, &mut new_id, last + 1) {
                        changes.push((key.clone(), "ApiErrorRateInsight", c));
                    }
                }
                if let Some(c) = st.calls.close(m, min.calls, &min.attrs, &p, &mut new_id) {
                    changes.push((key.clone(), "ApiCallRateInsight", c));
                }
                if let Some(c) = st
                    .errors
                    .close(m, min.errors, &min.error_attrs, &p, &mut new_id)
                {
                    changes.push((key.clone(), "ApiErrorRateInsight", c));
                }
                st.last = Some(m);
            }
            // Open insights whose key went quiet: the empty minutes count too.
            if (st.calls.open.is_some() || st.errors.open.is_some())
                && let Some(last) = st.last
                && last < to
            {
                let gap = to - last;
                for c in st.calls.idle(gap, &p, &mut new_id, last + 1) {
                    changes.push((key.clone(), "ApiCallRateInsight", c));
                }
                for c in st.errors.idle(gap, &p, &mut new_id, last + 1) {
                    changes.push((key.clone(), "ApiErrorRateInsight", c));
                }
                st.last = Some(to);
            }
        }
        changes.sort_by_key(|(_, _, c)| c.minute);
        for (key, kind, c) in changes {
            self.emit(&key, kind, &c, out);
        }
    }
}

impl Transform for Insights {
    fn process(&mut self, batch: Batch, out: &mut [Batch]) {
        for e in batch {
            self.observe(&e.data);
            e.ack();
        }
        if self.newest != i64::MIN {
            self.close_to(self.newest - self.lateness - 1, &mut out[0]);
        }
    }

    /// The input is over: every minute seen is final.
    fn finish(&mut self, out: &mut [Batch]) -> bool {
        if self.newest != i64::MIN {
            self.close_to(self.newest, &mut out[0]);
        }
        false
    }
}

/// The `insights` transform kind (registered in `transforms::KINDS`).
pub const KIND: crate::transforms::util::kind::TransformKind =
    crate::transforms::util::kind::TransformKind {
        name: "insights",
        parse: crate::transforms::util::kind::parse_with::<InsightsConfig>,
    };

impl crate::transforms::util::kind::TransformBuild for InsightsConfig {
    fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn crate::transforms::util::Transform>, crate::config::FieldError> {
        let _ = data_dir;
        Ok(Box::new(InsightsConfig::build(self, name)?))
    }
}
