//! What `trailship lookup` looks for: CloudTrail LookupEvents' attributes (all given must
//! match), a time range, errors, account and region.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::core::event::EventData;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct QueryArgs {
    /// The event's eventID.
    #[arg(long)]
    pub event_id: Option<String>,
    /// eventName, e.g. DeleteBucket.
    #[arg(long)]
    pub event_name: Option<String>,
    /// eventSource, e.g. s3.amazonaws.com.
    #[arg(long)]
    pub event_source: Option<String>,
    /// readOnly: true or false.
    #[arg(long)]
    pub read_only: Option<bool>,
    /// Who: the IAM user name, the assumed role's session name or role name, or "root".
    #[arg(long)]
    pub username: Option<String>,
    /// A resource type in the event's resources, e.g. AWS::S3::Bucket.
    #[arg(long)]
    pub resource_type: Option<String>,
    /// A resource: an ARN in the event's resources (or its last part), or a value of its
    /// requestParameters (e.g. a bucket name).
    #[arg(long)]
    pub resource_name: Option<String>,
    /// userIdentity.accessKeyId.
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// Events at or after this time (YYYY-MM-DD, UTC, or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Events before this time (exclusive), like --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Only failed calls (with an errorCode); with a value, only that errorCode.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub error: Option<String>,
    /// recipientAccountId.
    #[arg(long)]
    pub account: Option<String>,
    /// awsRegion.
    #[arg(long)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub args: QueryArgs,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

fn eq(want: &Option<String>, got: Option<&str>) -> bool {
    want.as_deref().is_none_or(|w| got == Some(w))
}

impl Query {
    pub fn new(args: QueryArgs) -> Result<Query, crate::aws::FlagError> {
        use crate::aws::trail_keys::parse_flag;
        Ok(Query {
            since: parse_flag("since", &args.since)?,
            until: parse_flag("until", &args.until)?,
            args,
        })
    }

    /// Whether the body must be parsed (attributes outside the routing header).
    fn needs_body(&self) -> bool {
        let a = &self.args;
        a.username.is_some()
            || a.resource_type.is_some()
            || a.resource_name.is_some()
            || a.access_key_id.is_some()
    }

    /// Whether an event matches; the body is parsed only when the header matched and a body
    /// attribute was asked for.
    pub fn matches(&self, e: &EventData) -> bool {
        let a = &self.args;
        let header_ok = eq(&a.event_id, e.event_id())
            && eq(&a.event_name, e.event_name())
            && eq(&a.event_source, e.event_source())
            && eq(&a.account, e.account_id())
            && eq(&a.region, e.region())
            && a.read_only.is_none_or(|r| e.header.read_only == Some(r))
            && match a.error.as_deref() {
                None => true,
                Some("") => e.error_code().is_some(),
                Some(code) => e.error_code() == Some(code),
            }
            && self.in_time(e);
        if !header_ok {
            return false;
        }
        if !self.needs_body() {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&e.raw) else {
            return false;
        };
        a.username
            .as_deref()
            .is_none_or(|u| usernames(&v).iter().any(|n| n == u))
            && a.access_key_id
                .as_deref()
                .is_none_or(|k| v["userIdentity"]["accessKeyId"].as_str() == Some(k))
            && a.resource_type
                .as_deref()
                .is_none_or(|t| resources(&v).any(|r| r["type"].as_str() == Some(t)))
            && a.resource_name
                .as_deref()
                .is_none_or(|n| names_resource(&v, n))
    }

    fn in_time(&self, e: &EventData) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(t) = e
            .event_time()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            return false;
        };
        let t = t.with_timezone(&Utc);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

fn resources(v: &Value) -> impl Iterator<Item = &Value> {
    v["resources"].as_array().into_iter().flatten()
}

/// The names LookupEvents' Username may mean for this identity.
pub fn usernames(v: &Value) -> Vec<String> {
    let id = &v["userIdentity"];
    let mut out = Vec::new();
    if let Some(u) = id["userName"].as_str() {
        out.push(u.to_string());
    }
    if let Some(u) = id["sessionContext"]["sessionIssuer"]["userName"].as_str() {
        out.push(u.to_string());
    }
    if id["type"].as_str() == Some("AssumedRole")
        && let Some(session) = id["arn"].as_str().and_then(|a| a.rsplit('/').next())
    {
        out.push(session.to_string());
    }
    if id["type"].as_str() == Some("Root") {
        out.push("root".into());
    }
    if let Some(s) = id["invokedBy"].as_str() {
        out.push(s.to_string());
    }
    out
}

/// The name to show for who made the call.
pub fn who(v: &Value) -> String {
    let id = &v["userIdentity"];
    if id["type"].as_str() == Some("AssumedRole")
        && let Some(a) = id["arn"].as_str()
    {
        // role/session
        let parts: Vec<&str> = a.rsplitn(3, '/').collect();
        if parts.len() >= 2 {
            return format!("{}/{}", parts[1], parts[0]);
        }
    }
    usernames(v)
        .into_iter()
        .next()
        .or_else(|| id["principalId"].as_str().map(String::from))
        .unwrap_or_else(|| "-".into())
}

fn names_resource(v: &Value, name: &str) -> bool {
    let arn_hit = resources(v).any(|r| {
        r["ARN"].as_str().is_some_and(|a| {
            a == name || a.ends_with(&format!("/{name}")) || a.ends_with(&format!(":{name}"))
        })
    });
    arn_hit || value_has(&v["requestParameters"], name, 0)
}

/// Whether a string value equal to `name` is anywhere in `v` (a few levels deep).
fn value_has(v: &Value, name: &str, depth: usize) -> bool {
    match v {
        Value::String(s) => s == name,
        Value::Array(a) if depth < 4 => a.iter().any(|x| value_has(x, name, depth + 1)),
        Value::Object(o) if depth < 4 => o.values().any(|x| value_has(x, name, depth + 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Origin, parse_header};
    use std::sync::Arc;

    fn data(raw: &str) -> EventData {
        let raw = bytes::Bytes::from(raw.to_string());
        EventData {
            header: parse_header(&raw).unwrap(),
            record: None,
            raw,
            origin: Arc::new(Origin {
                source: "l".into(),
                location: "f".into(),
                trace: Default::default(),
                reread: None,
            }),
        }
    }

    const DELETE: &str = r#"{"eventVersion":"1.08","eventTime":"2023-07-10T12:08:05Z","eventSource":"s3.amazonaws.com","eventName":"DeleteBucket","awsRegion":"us-east-1","userIdentity":{"type":"IAMUser","userName":"bert-jan","accessKeyId":"AKIA1"},"requestParameters":{"bucketName":"b1"},"resources":[{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::b1"}],"readOnly":false,"eventID":"e1","recipientAccountId":"123"}"#;
    const ROLE: &str = r#"{"eventTime":"2023-07-11T00:00:00Z","eventName":"GetObject","errorCode":"AccessDenied","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/Admin/alice","sessionContext":{"sessionIssuer":{"userName":"Admin"}}},"eventID":"e2"}"#;

    fn q(f: impl FnOnce(&mut QueryArgs)) -> Query {
        let mut a = QueryArgs::default();
        f(&mut a);
        Query::new(a).unwrap()
    }

    #[test]
    fn attributes_match_like_lookup_events() {
        let (d, r) = (data(DELETE), data(ROLE));
        assert!(q(|a| a.resource_name = Some("b1".into())).matches(&d));
        assert!(q(|a| a.resource_type = Some("AWS::S3::Bucket".into())).matches(&d));
        assert!(!q(|a| a.resource_name = Some("b2".into())).matches(&d));
        assert!(q(|a| a.username = Some("bert-jan".into())).matches(&d));
        assert!(q(|a| a.username = Some("alice".into())).matches(&r));
        assert!(q(|a| a.username = Some("Admin".into())).matches(&r));
        assert!(q(|a| a.access_key_id = Some("AKIA1".into())).matches(&d));
        assert!(q(|a| a.read_only = Some(false)).matches(&d));
        assert!(!q(|a| a.read_only = Some(true)).matches(&d));
        assert!(q(|a| a.error = Some(String::new())).matches(&r));
        assert!(!q(|a| a.error = Some(String::new())).matches(&d));
        assert!(q(|a| a.error = Some("AccessDenied".into())).matches(&r));
        assert!(q(|a| a.since = Some("2023-07-11".into())).matches(&r));
        assert!(!q(|a| a.since = Some("2023-07-11".into())).matches(&d));
        assert!(q(|a| a.until = Some("2023-07-11".into())).matches(&d));
        assert!(
            q(|a| {
                a.event_name = Some("DeleteBucket".into());
                a.account = Some("123".into());
                a.region = Some("us-east-1".into());
            })
            .matches(&d)
        );
        assert_eq!(who(&serde_json::from_str(ROLE).unwrap()), "Admin/alice");
    }
}
