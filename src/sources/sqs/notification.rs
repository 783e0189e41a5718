//! Every way a new CloudTrail object gets announced on an SQS queue:
//! - S3 event notifications (eventVersion 2.x; keys URL-encoded, `+` is a space; several
//!   records per message);
//! - the same inside an SNS envelope (`{"Type":"Notification","Message":"..."}`), or sent raw;
//! - EventBridge "Object Created" events from S3 (keys not encoded);
//! - CloudTrail's own SNS notification `{"s3Bucket": ..., "s3ObjectKey": [...]}`.

use serde_json::Value;

/// An S3 object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// What a message body announces.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    Objects(Vec<ObjectRef>),
    /// Nothing to read (a test event, a deletion): acknowledge and move on.
    Ignore(String),
}

/// Why a body could not be understood (the message is left for the queue's DLQ).
#[derive(Debug, PartialEq, Eq)]
pub struct Poison {
    pub reason: &'static str,
    pub detail: String,
}

fn poison(reason: &'static str, detail: impl Into<String>) -> Poison {
    Poison {
        reason,
        detail: detail.into(),
    }
}

/// S3 event notification keys: form-encoded (`+` is a space, `%XX` escapes).
fn decode_key(k: &str) -> Result<String, Poison> {
    let spaced = k.replace('+', " ");
    urlencoding::decode(&spaced)
        .map(|c| c.into_owned())
        .map_err(|e| {
            poison(
                "bad_key",
                format!("object key {k:?} is not valid URL encoding: {e}"),
            )
        })
}

pub fn parse(body: &str) -> Result<Notice, Poison> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| poison("not_json", format!("message body is not JSON: {e}")))?;
    parse_value(&v, 0)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn parse_value(v: &Value, depth: u8) -> Result<Notice, Poison> {
    // SNS envelope: the payload is a JSON string in "Message".
    if v.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(msg) = v.get("Message").and_then(Value::as_str)
    {
        if depth > 2 {
            return Err(poison("unknown_shape", "SNS envelopes nested too deep"));
        }
        let inner: Value = serde_json::from_str(msg)
            .map_err(|e| poison("not_json", format!("the SNS Message is not JSON: {e}")))?;
        return parse_value(&inner, depth + 1);
    }
    // S3's test event when a notification is configured.
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Ignore("s3:TestEvent".into()));
    }
    if let (Some(bucket), Some(keys)) = (
        v.get("s3Bucket").and_then(Value::as_str),
        v.get("s3ObjectKey"),
    ) {
        return cloudtrail_notice(bucket, keys);
    }
    if v.get("source").and_then(Value::as_str) == Some("aws.s3") && v.get("detail").is_some() {
        return eventbridge_notice(v);
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array)
        && records.iter().any(|r| r.get("s3").is_some())
    {
        return s3_notice(records);
    }
    if v.get("Records").is_some() || v.get("eventVersion").is_some() {
        return Err(poison(
            "unknown_shape",
            "the message holds CloudTrail records, not a notification of an object",
        ));
    }
    Err(poison(
        "unknown_shape",
        "not an S3, SNS, EventBridge or CloudTrail notification",
    ))
}

/// CloudTrail's own notification: `s3Bucket` and the list `s3ObjectKey`.
fn cloudtrail_notice(bucket: &str, keys: &Value) -> Result<Notice, Poison> {
    let keys = keys
        .as_array()
        .ok_or_else(|| poison("unknown_shape", "s3ObjectKey is not a list"))?;
    let objects = keys
        .iter()
        .map(|k| {
            k.as_str()
                .map(|k| ObjectRef {
                    bucket: bucket.to_string(),
                    key: k.to_string(),
                })
                .ok_or_else(|| poison("unknown_shape", "an s3ObjectKey entry is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Notice::Objects(objects))
}

/// An EventBridge event from S3: only `Object Created` announces an object.
fn eventbridge_notice(v: &Value) -> Result<Notice, Poison> {
    let dt = v.get("detail-type").and_then(Value::as_str).unwrap_or("");
    if dt != "Object Created" {
        return Ok(Notice::Ignore(format!("EventBridge {dt:?}")));
    }
    let bucket = str_at(v, &["detail", "bucket", "name"]).ok_or_else(|| {
        poison(
            "unknown_shape",
            "EventBridge event without detail.bucket.name",
        )
    })?;
    let key = str_at(v, &["detail", "object", "key"]).ok_or_else(|| {
        poison(
            "unknown_shape",
            "EventBridge event without detail.object.key",
        )
    })?;
    Ok(Notice::Objects(vec![ObjectRef {
        bucket: bucket.into(),
        key: key.into(),
    }]))
}

/// An S3 event notification (eventVersion 2.x): its `ObjectCreated:*` records.
fn s3_notice(records: &[Value]) -> Result<Notice, Poison> {
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    for r in records {
        let version = r.get("eventVersion").and_then(Value::as_str).unwrap_or("");
        if !version.starts_with("2.") {
            return Err(poison(
                "unknown_shape",
                format!("S3 event notification eventVersion {version:?} (2.x understood)"),
            ));
        }
        let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            ignored.push(name.to_string());
            continue;
        }
        let bucket = str_at(r, &["s3", "bucket", "name"])
            .ok_or_else(|| poison("unknown_shape", "S3 record without s3.bucket.name"))?;
        let key = str_at(r, &["s3", "object", "key"])
            .ok_or_else(|| poison("unknown_shape", "S3 record without s3.object.key"))?;
        objects.push(ObjectRef {
            bucket: bucket.into(),
            key: decode_key(key)?,
        });
    }
    if objects.is_empty() {
        return Ok(Notice::Ignore(format!("S3 {}", ignored.join(", "))));
    }
    Ok(Notice::Objects(objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/notifications/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn objects(n: Notice) -> Vec<(String, String)> {
        match n {
            Notice::Objects(o) => o.into_iter().map(|o| (o.bucket, o.key)).collect(),
            Notice::Ignore(r) => panic!("ignored: {r}"),
        }
    }

    #[test]
    fn s3_notifications_decode_keys() {
        assert_eq!(
            objects(parse(&fixture("sqs-body-s3-objectcreated-put.json")).unwrap()),
            vec![("xxx".into(), "test.pdf".into())]
        );
        assert_eq!(
            objects(parse(&fixture("powertools-s3EventDecodedKey.json")).unwrap()),
            vec![("sourcebucket".into(), "Happy Face.jpg".into())]
        );
        let body = r#"{"Records":[{"eventVersion":"2.2","eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"AWSLogs/1/a+b%2Bc.json.gz"}}},{"eventVersion":"2.1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k2"}}}]}"#;
        assert_eq!(
            objects(parse(body).unwrap()),
            vec![
                ("b".into(), "AWSLogs/1/a b+c.json.gz".into()),
                ("b".into(), "k2".into())
            ]
        );
    }

    #[test]
    fn sns_eventbridge_and_cloudtrail_shapes() {
        let sns = objects(parse(&fixture("nexrad-sns-wrapped-s3-objectcreated.json")).unwrap());
        assert_eq!(sns.len(), 1);
        assert_eq!(sns[0].0, "noaa-nexrad-level2");
        assert_eq!(
            objects(
                parse(&fixture(
                    "powertools-s3EventBridgeNotificationObjectCreatedEvent.json"
                ))
                .unwrap()
            ),
            vec![("example-bucket".into(), "IMG_m7fzo3.jpg".into())]
        );
        let ct = objects(parse(&fixture("awsdocs-cloudtrail-sns-message-2.json")).unwrap());
        assert_eq!(ct.len(), 3);
        assert!(ct[0].1.starts_with("AWSLogs/123456789012/CloudTrail/"));
        // CloudTrail's message inside an SNS envelope.
        let inner = fixture("awsdocs-cloudtrail-sns-message-2.json");
        let wrapped = serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": inner}).to_string();
        assert_eq!(objects(parse(&wrapped).unwrap()).len(), 3);
    }

    #[test]
    fn ignored_and_poison() {
        assert!(matches!(
            parse(&fixture("awsdocs-s3-test-event.json")),
            Ok(Notice::Ignore(_))
        ));
        assert!(matches!(
            parse(&fixture("powertools-s3EventDeleteObject.json")),
            Ok(Notice::Ignore(_))
        ));
        assert!(matches!(
            parse(&fixture(
                "powertools-s3EventBridgeNotificationObjectDeletedEvent.json"
            )),
            Ok(Notice::Ignore(_))
        ));
        assert_eq!(parse("hello").unwrap_err().reason, "not_json");
        assert_eq!(
            parse(&fixture("sqs-body-sns-envelope-generic.json"))
                .unwrap_err()
                .reason,
            "unknown_shape"
        );
        assert_eq!(
            parse(r#"{"Records":[{"eventVersion":"1.08","eventID":"x"}]}"#)
                .unwrap_err()
                .reason,
            "unknown_shape"
        );
        assert_eq!(
            parse(
                r#"{"Records":[{"eventVersion":"3.0","eventName":"ObjectCreated:Put","s3":{}}]}"#
            )
            .unwrap_err()
            .reason,
            "unknown_shape"
        );
    }
}
