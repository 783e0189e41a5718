//! `type = "normalize"`, `schema = "ocsf" | "ecs" | "raw"`: each event's body becomes the
//! record in that schema (`raw`: unchanged). The routing header (eventTime, eventID, …) is
//! kept from the original record, so sinks still key, partition and time events as before.

pub mod ecs;
mod exact;
pub mod ocsf;
pub mod time;

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::util::Transform;
use crate::core::Batch;
use crate::core::event::{Event, EventData, Field, Header};
use crate::telemetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    Ocsf,
    Ecs,
    Raw,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    pub schema: Schema,
}

impl NormalizeConfig {
    pub fn build(&self, name: &str) -> Normalize {
        Normalize {
            name: name.into(),
            schema: self.schema,
        }
    }
}

#[derive(Clone)]
pub struct Normalize {
    name: Arc<str>,
    schema: Schema,
}

/// The record's `resources` entries (none when absent or not a list).
pub fn resource_entries(r: &Value) -> impl Iterator<Item = &Value> {
    r["resources"].as_array().into_iter().flatten()
}

/// A console sign-in (records before eventType existed are known by their name and source).
pub fn is_sign_in(r: &Value) -> bool {
    r["eventType"].as_str() == Some("AwsConsoleSignIn")
        || (r["eventSource"].as_str() == Some("signin.amazonaws.com")
            && r["eventName"].as_str() == Some("ConsoleLogin"))
}

/// The header with every field owned (the new body has other byte positions).
fn owned_header(d: &EventData) -> Header {
    let own = |f: &Field| match d.field(f) {
        Some(v) => Field::Owned(v.into()),
        None => Field::Absent,
    };
    let h = &d.header;
    Header {
        event_time: own(&h.event_time),
        event_source: own(&h.event_source),
        event_name: own(&h.event_name),
        aws_region: own(&h.aws_region),
        account_id: own(&h.account_id),
        event_id: own(&h.event_id),
        event_type: own(&h.event_type),
        error_code: own(&h.error_code),
        user_type: own(&h.user_type),
        read_only: h.read_only,
        category: h.category,
        unrecognised: h.unrecognised,
    }
}

/// One record in `schema`, as JSON text, and whether its time could be read (when not, the
/// time it was normalized stands in: OCSF requires `time`, Elasticsearch data streams
/// `@timestamp`). `None`: it cannot be (not a JSON object).
pub fn convert(schema: Schema, raw: &[u8]) -> Option<(Vec<u8>, bool)> {
    if schema == Schema::Raw {
        return Some((raw.to_vec(), true));
    }
    let mut v: Value = serde_json::from_slice(raw).ok()?;
    if !v.is_object() {
        return None;
    }
    let (when, known) = match time::of_record(&v) {
        Some(w) => (w, true),
        None => (time::now(), false),
    };
    let out = match schema {
        Schema::Raw => return None,
        Schema::Ocsf => ocsf::normalize(&v, &when, known),
        Schema::Ecs => {
            ecs::drop_empty(&mut v);
            ecs::normalize(&v, std::str::from_utf8(raw).ok()?, &when)
        }
    };
    Some((exact::to_vec(&v, raw, out)?, known))
}

impl Transform for Normalize {
    fn worker(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }
    fn process(&mut self, batch: Batch, out: &mut [Batch]) {
        if self.schema == Schema::Raw {
            out[0].extend(batch);
            return;
        }
        for e in batch {
            match convert(self.schema, &e.data.raw) {
                Some((body, known_time)) => {
                    if !known_time {
                        telemetry::count(
                            "normalize_time_unparsed_total",
                            &[("component", &self.name)],
                        );
                    }
                    let Event { data, ack } = e;
                    let header = owned_header(&data);
                    out[0].push(Event::new(
                        EventData {
                            raw: Bytes::from(body),
                            header,
                            record: None,
                            origin: data.origin,
                        },
                        ack,
                    ));
                }
                None => {
                    // Not a JSON object: passed on unchanged, counted.
                    telemetry::count("normalize_passed_raw_total", &[("component", &self.name)]);
                    out[0].push(e);
                }
            }
        }
    }
}

/// The `normalize` transform kind (registered in `transforms::KINDS`).
pub const KIND: crate::transforms::util::kind::TransformKind =
    crate::transforms::util::kind::TransformKind {
        name: "normalize",
        parse: crate::transforms::util::kind::parse_with::<NormalizeConfig>,
    };

impl crate::transforms::util::kind::TransformBuild for NormalizeConfig {
    fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn crate::transforms::util::Transform>, crate::config::FieldError> {
        let _ = data_dir;
        Ok(Box::new(NormalizeConfig::build(self, name)))
    }
}
