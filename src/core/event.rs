//! `Event`: one CloudTrail record kept as its original bytes, plus a small parsed header
//! used for routing, plus where it came from and the acknowledgement of its unit of work.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use crate::core::ack::AckToken;

/// Where an event was read from.
#[derive(Debug)]
pub struct Origin {
    /// The configured name of the source component.
    pub source: Arc<str>,
    /// A file path, or an `s3://bucket/key` URL.
    pub location: String,
    /// The span of reading it, when traces are exported.
    pub trace: super::trace::TraceContext,
    /// Set when `location` is a whole file that can be read again: a lagging sink's spill
    /// then keeps which of its records it owes instead of their bytes.
    pub reread: Option<Reread>,
}

/// How a whole file (a trail file) was read, so that its records can be read again, in the
/// same order and numbered the same way (`EventData::record`). Whoever reads them again checks
/// they are the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reread {
    /// The reader's record size limit (larger records were skipped, numbered all the same).
    pub max_record: u32,
}

/// CloudTrail's own event classification (`eventCategory`, with fallbacks for older records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Management,
    Data,
    Insight,
    NetworkActivity,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Management => "management",
            Category::Data => "data",
            Category::Insight => "insight",
            Category::NetworkActivity => "network_activity",
        }
    }
}

/// A string field of the header: normally a byte range of the raw record (no allocation);
/// owned only when the JSON string had escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field {
    #[default]
    Absent,
    Span(u32, u32),
    Owned(Box<str>),
}

/// The routing header of a record. Strings are `Field`s resolved against the raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub event_time: Field,
    pub event_source: Field,
    pub event_name: Field,
    pub aws_region: Field,
    pub account_id: Field,
    pub event_id: Field,
    pub event_type: Field,
    pub error_code: Field,
    pub user_type: Field,
    pub read_only: Option<bool>,
    pub category: Option<Category>,
    /// Valid JSON, but not a record whose header could be read (the source counts it in
    /// `header_unparsed_total`; the event still flows, routed on no fields).
    pub unrecognised: bool,
}

#[derive(Debug, Clone)]
pub struct EventData {
    pub raw: Bytes,
    pub header: Header,
    pub origin: Arc<Origin>,
    /// The record's number in its origin's file (from 0, every record counted, skipped ones
    /// included), when `origin.reread` is set and `raw` is still the record as read. Anything
    /// that makes new bytes makes a new `EventData` with `None`.
    pub record: Option<u32>,
}

/// An event in flight. Cloning shares the bytes and adds one pending delivery to its unit.
#[derive(Debug, Clone)]
pub struct Event {
    pub data: EventData,
    pub ack: AckToken,
}

impl EventData {
    pub fn field<'a>(&'a self, f: &'a Field) -> Option<&'a str> {
        match f {
            Field::Absent => None,
            // The span was taken from a `&str` borrowed out of `raw`, so it is valid UTF-8 on
            // char boundaries; `get` keeps this panic-free even if that ever stopped holding.
            Field::Span(s, e) => self
                .raw
                .get(*s as usize..*e as usize)
                .and_then(|b| std::str::from_utf8(b).ok()),
            Field::Owned(s) => Some(s),
        }
    }
    pub fn event_time(&self) -> Option<&str> {
        self.field(&self.header.event_time)
    }
    /// eventTime as milliseconds since the Unix epoch, when it is an RFC 3339 time.
    pub fn event_time_millis(&self) -> Option<i64> {
        let t = self.event_time()?;
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp_millis())
    }
    pub fn event_source(&self) -> Option<&str> {
        self.field(&self.header.event_source)
    }
    pub fn event_name(&self) -> Option<&str> {
        self.field(&self.header.event_name)
    }
    pub fn region(&self) -> Option<&str> {
        self.field(&self.header.aws_region)
    }
    pub fn account_id(&self) -> Option<&str> {
        self.field(&self.header.account_id)
    }
    pub fn event_id(&self) -> Option<&str> {
        self.field(&self.header.event_id)
    }
    pub fn event_type(&self) -> Option<&str> {
        self.field(&self.header.event_type)
    }
    pub fn error_code(&self) -> Option<&str> {
        self.field(&self.header.error_code)
    }
    pub fn user_type(&self) -> Option<&str> {
        self.field(&self.header.user_type)
    }
    /// The classification, `management` when nothing says otherwise.
    pub fn category(&self) -> Category {
        self.header.category.unwrap_or(Category::Management)
    }
}

impl Event {
    pub fn new(data: EventData, ack: AckToken) -> Self {
        Event { data, ack }
    }
    /// Delivered (or deliberately dropped): resolve this copy's share of the unit.
    pub fn ack(self) {
        self.ack.ack();
    }
    /// Failed permanently: the unit will not be committed.
    pub fn fail(self) {
        self.ack.fail();
    }
}

// ---------------------------------------------------------------------------------------------
// Header parsing

/// A JSON string borrowed from the input when it has no escapes, owned otherwise.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrStr<'a> {
    Bool(bool),
    #[serde(borrow)]
    Str(Text<'a>),
}

impl BoolOrStr<'_> {
    fn as_bool(&self) -> Option<bool> {
        match self {
            BoolOrStr::Bool(b) => Some(*b),
            BoolOrStr::Str(Text(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            BoolOrStr::Str(Text(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            BoolOrStr::Str(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct RawIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawInsight<'a> {
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Text<'a>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Text<'a>>,
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Text<'a>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Text<'a>>,
    #[serde(rename = "awsRegion", borrow, default)]
    aws_region: Option<Text<'a>>,
    #[serde(rename = "recipientAccountId", borrow, default)]
    recipient_account_id: Option<Text<'a>>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(rename = "eventType", borrow, default)]
    event_type: Option<Text<'a>>,
    #[serde(rename = "eventCategory", borrow, default)]
    event_category: Option<Text<'a>>,
    #[serde(rename = "errorCode", borrow, default)]
    error_code: Option<Text<'a>>,
    #[serde(rename = "readOnly", borrow, default)]
    read_only: Option<BoolOrStr<'a>>,
    #[serde(rename = "managementEvent", borrow, default)]
    management_event: Option<BoolOrStr<'a>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<RawIdentity<'a>>,
    #[serde(rename = "insightDetails", borrow, default)]
    insight_details: Option<RawInsight<'a>>,
}

/// Why a record was not accepted as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    NotUtf8,
    InvalidJson(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::NotUtf8 => write!(f, "record is not valid UTF-8"),
            RecordError::InvalidJson(e) => write!(f, "record is not valid JSON: {e}"),
        }
    }
}

impl RecordError {
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::NotUtf8 => "invalid_utf8",
            RecordError::InvalidJson(_) => "invalid_json",
        }
    }
}

fn field_of(raw: &[u8], v: Option<Text<'_>>) -> Field {
    match v.map(|t| t.0) {
        None => Field::Absent,
        Some(Cow::Owned(s)) => Field::Owned(s.into_boxed_str()),
        Some(Cow::Borrowed(s)) => {
            let base = raw.as_ptr() as usize;
            let start = s.as_ptr() as usize;
            match start.checked_sub(base) {
                Some(off) if off + s.len() <= raw.len() && raw.len() <= u32::MAX as usize => {
                    Field::Span(off as u32, (off + s.len()) as u32)
                }
                _ => Field::Owned(s.into()),
            }
        }
    }
}

/// S3 object-level and other data-plane operations, for records older than `eventCategory`
/// (eventVersion < 1.08) that also lack `managementEvent`.
const DATA_EVENT_NAMES: &[(&str, &[&str])] = &[
    (
        "s3.amazonaws.com",
        &[
            "GetObject",
            "PutObject",
            "DeleteObject",
            "DeleteObjects",
            "HeadObject",
            "CopyObject",
            "ListObjects",
            "ListObjectsV2",
            "ListObjectVersions",
            "GetObjectAcl",
            "PutObjectAcl",
            "GetObjectTagging",
            "PutObjectTagging",
            "UploadPart",
            "CreateMultipartUpload",
            "CompleteMultipartUpload",
            "AbortMultipartUpload",
            "RestoreObject",
            "SelectObjectContent",
        ],
    ),
    ("lambda.amazonaws.com", &["Invoke"]),
    (
        "dynamodb.amazonaws.com",
        &[
            "GetItem",
            "PutItem",
            "DeleteItem",
            "UpdateItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "BatchWriteItem",
            "GetRecords",
            "GetShardIterator",
        ],
    ),
];

fn classify(h: &RawHeader<'_>) -> Category {
    if let Some(c) = h.event_category.as_ref().map(|t| t.0.as_ref()) {
        match c {
            "Management" => return Category::Management,
            "Data" => return Category::Data,
            "Insight" => return Category::Insight,
            "NetworkActivity" => return Category::NetworkActivity,
            _ => {}
        }
    }
    match h.event_type.as_ref().map(|t| t.0.as_ref()) {
        Some("AwsCloudTrailInsight") => return Category::Insight,
        Some("AwsVpceEvent") => return Category::NetworkActivity,
        _ => {}
    }
    if let Some(m) = h.management_event.as_ref().and_then(BoolOrStr::as_bool) {
        return if m {
            Category::Management
        } else {
            Category::Data
        };
    }
    if let (Some(src), Some(name)) = (
        h.event_source.as_ref().map(|t| t.0.as_ref()),
        h.event_name.as_ref().map(|t| t.0.as_ref()),
    ) && DATA_EVENT_NAMES
        .iter()
        .any(|(s, names)| *s == src && names.contains(&name))
    {
        return Category::Data;
    }
    Category::Management
}

/// Parse the routing header of one record. `raw` must be one JSON object.
/// A record whose header fields have unexpected types is still accepted (valid JSON is never
/// lost), with an empty header.
pub fn parse_header(raw: &[u8]) -> Result<Header, RecordError> {
    if std::str::from_utf8(raw).is_err() {
        return Err(RecordError::NotUtf8);
    }
    match serde_json::from_slice::<RawHeader<'_>>(raw) {
        Ok(h) => {
            let category = Some(classify(&h));
            let read_only = h.read_only.as_ref().and_then(BoolOrStr::as_bool);
            let (src, name) = match (h.event_source, h.event_name, h.insight_details) {
                (None, None, Some(i)) => (i.event_source, i.event_name),
                (s, n, _) => (s, n),
            };
            Ok(Header {
                event_time: field_of(raw, h.event_time),
                event_source: field_of(raw, src),
                event_name: field_of(raw, name),
                aws_region: field_of(raw, h.aws_region),
                account_id: field_of(raw, h.recipient_account_id),
                event_id: field_of(raw, h.event_id),
                event_type: field_of(raw, h.event_type),
                error_code: field_of(raw, h.error_code),
                user_type: field_of(raw, h.user_identity.and_then(|u| u.kind)),
                read_only,
                category,
                unrecognised: false,
            })
        }
        Err(e) => match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Ok(_) => Ok(Header {
                unrecognised: true,
                ..Header::default()
            }),
            Err(_) => Err(RecordError::InvalidJson(e.to_string())),
        },
    }
}

/// A record as a test's event data (source `t`, location `x`, no unit).
#[cfg(test)]
pub(crate) fn test_data(raw: &str) -> EventData {
    let raw = Bytes::copy_from_slice(raw.as_bytes());
    EventData {
        header: parse_header(&raw).expect("a test record"),
        raw,
        origin: Arc::new(Origin {
            source: "t".into(),
            location: "x".into(),
            trace: Default::default(),
            reread: None,
        }),
        record: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(raw: &str) -> EventData {
        let raw = Bytes::copy_from_slice(raw.as_bytes());
        let header = parse_header(&raw).unwrap();
        EventData {
            raw,
            header,
            origin: Arc::new(Origin {
                source: "t".into(),
                location: "x".into(),
                trace: Default::default(),
                reread: None,
            }),
            record: None,
        }
    }

    #[test]
    fn header_fields_are_spans_into_raw() {
        let d = data(
            r#"{"eventVersion":"1.08","eventTime":"2023-07-10T11:45:12Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","recipientAccountId":"123456789012","eventID":"abc","eventType":"AwsApiCall","readOnly":true,"eventCategory":"Data","userIdentity":{"type":"IAMUser","arn":"x"}}"#,
        );
        assert!(matches!(d.header.event_id, Field::Span(..)));
        assert_eq!(d.event_time(), Some("2023-07-10T11:45:12Z"));
        assert_eq!(d.event_time_millis(), Some(1_688_989_512_000));
        assert_eq!(d.event_source(), Some("s3.amazonaws.com"));
        assert_eq!(d.event_name(), Some("GetObject"));
        assert_eq!(d.region(), Some("us-east-1"));
        assert_eq!(d.account_id(), Some("123456789012"));
        assert_eq!(d.event_id(), Some("abc"));
        assert_eq!(d.user_type(), Some("IAMUser"));
        assert_eq!(d.header.read_only, Some(true));
        assert_eq!(d.category(), Category::Data);
        assert_eq!(d.error_code(), None);
    }

    #[test]
    fn escaped_strings_are_owned() {
        let d = data(r#"{"eventName":"Get\u004fbject","errorCode":"AccessDenied"}"#);
        assert_eq!(d.event_name(), Some("GetObject"));
        assert_eq!(d.error_code(), Some("AccessDenied"));
    }

    #[test]
    fn classification_fallbacks() {
        let c = |s: &str| data(s).category();
        assert_eq!(
            c(r#"{"eventType":"AwsCloudTrailInsight"}"#),
            Category::Insight
        );
        assert_eq!(
            c(r#"{"eventType":"AwsVpceEvent"}"#),
            Category::NetworkActivity
        );
        assert_eq!(c(r#"{"managementEvent":false}"#), Category::Data);
        assert_eq!(
            c(r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#),
            Category::Data
        );
        assert_eq!(
            c(r#"{"eventSource":"s3.amazonaws.com","eventName":"CreateBucket"}"#),
            Category::Management
        );
    }

    #[test]
    fn insight_source_comes_from_insight_details() {
        let d = data(
            r#"{"eventType":"AwsCloudTrailInsight","insightDetails":{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances"}}"#,
        );
        assert_eq!(d.event_source(), Some("ec2.amazonaws.com"));
        assert_eq!(d.event_name(), Some("RunInstances"));
    }

    #[test]
    fn read_only_as_string_and_odd_types() {
        assert_eq!(
            data(r#"{"readOnly":"false"}"#).header.read_only,
            Some(false)
        );
        // eventTime of the wrong type: accepted, header left empty
        let d = data(r#"{"eventTime":5,"eventID":"x"}"#);
        assert_eq!(d.event_id(), None);
    }

    #[test]
    fn rejects_invalid() {
        assert_eq!(parse_header(b"{\"a\":\xff}"), Err(RecordError::NotUtf8));
        assert!(matches!(
            parse_header(b"{\"a\":}"),
            Err(RecordError::InvalidJson(_))
        ));
    }
}
