//! When a record says it happened, in every form CloudTrail and its exporters write it:
//! RFC 3339 with or without a fraction (CloudTrail's own `2023-07-10T12:08:05Z`), the
//! space-separated form of CloudTrail Lake and Athena exports (`2025-03-26 16:43:57.000000000`,
//! UTC), an ISO date-time without a zone (UTC), and epoch milliseconds (a JSON number or a string
//! of digits; a value below 10^11 is taken as seconds, which no millisecond time after March
//! 1973 is).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

/// A parsed event time: epoch milliseconds and its RFC 3339 text (the record's own text when it
/// was RFC 3339 already, else the canonical UTC form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub millis: i64,
    pub rfc3339: String,
}

const NAIVE_FORMATS: &[&str] = &["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];
const SECONDS_BELOW: i64 = 100_000_000_000;

/// The record's time (`eventTime`, else Logstash's `@timestamp`), parsed. `None`: there is none,
/// or it is in no form above.
pub fn of_record(r: &Value) -> Option<When> {
    ["eventTime", "@timestamp"]
        .iter()
        .map(|k| &r[*k])
        .find(|v| !v.is_null() && v.as_str() != Some(""))
        .and_then(parse)
}

pub fn parse(v: &Value) -> Option<When> {
    match v {
        Value::String(s) => parse_text(s.trim()),
        Value::Number(n) => from_epoch(n.as_i64()?),
        _ => None,
    }
}

pub fn parse_text(s: &str) -> Option<When> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        // Kept as written when it is the form OCSF's datetime_t and ECS expect (a `T`, an
        // upper-case `Z`); `2025-03-26 14:23:57Z` or a lower-case `z` is rewritten.
        let plain = s.as_bytes().get(10) == Some(&b'T') && !s.ends_with('z');
        return Some(if plain {
            When {
                millis: t.timestamp_millis(),
                rfc3339: s.to_string(),
            }
        } else {
            utc(t.with_timezone(&Utc))
        });
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(utc(t.with_timezone(&Utc)));
    }
    let naive = s.strip_suffix(" UTC").unwrap_or(s);
    if let Some(t) = NAIVE_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
    {
        return Some(utc(t.and_utc()));
    }
    if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) {
        return from_epoch(s.parse().ok()?);
    }
    None
}

fn from_epoch(n: i64) -> Option<When> {
    let millis = if n.abs() < SECONDS_BELOW {
        n.checked_mul(1000)?
    } else {
        n
    };
    DateTime::from_timestamp_millis(millis).map(utc)
}

fn utc(t: DateTime<Utc>) -> When {
    When {
        millis: t.timestamp_millis(),
        rfc3339: t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

/// Now, for a record whose time cannot be read: the time it was normalized.
pub fn now() -> When {
    utc(Utc::now())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ms(v: Value) -> Option<i64> {
        parse(&v).map(|w| w.millis)
    }

    #[test]
    fn every_form_gives_the_same_instant() {
        let want = Some(1_742_999_037_000);
        for v in [
            json!("2025-03-26T14:23:57Z"),
            json!("2025-03-26T14:23:57.000Z"),
            json!("2025-03-26T16:23:57+02:00"),
            json!("2025-03-26 14:23:57.000000000"),
            json!("2025-03-26 14:23:57"),
            json!("2025-03-26 14:23:57 UTC"),
            json!("2025-03-26T14:23:57"),
            json!("2025-03-26 16:23:57+02:00"),
            json!(1_742_999_037_000i64),
            json!("1742999037000"),
            json!(1_742_999_037),
        ] {
            assert_eq!(ms(v.clone()), want, "{v}");
        }
        assert_eq!(
            ms(json!("2025-03-26 14:23:57.123456789")),
            Some(1_742_999_037_123)
        );
    }

    #[test]
    fn rfc3339_text_is_kept_and_other_forms_become_rfc3339() {
        let kept = parse(&json!("2023-07-10T12:08:05Z")).unwrap();
        assert_eq!(kept.rfc3339, "2023-07-10T12:08:05Z");
        let lake = parse(&json!("2025-03-26 16:43:57.000000000")).unwrap();
        assert_eq!(lake.rfc3339, "2025-03-26T16:43:57Z");
        let frac = parse(&json!("2025-03-26 16:43:57.250")).unwrap();
        assert_eq!(frac.rfc3339, "2025-03-26T16:43:57.250Z");
    }

    #[test]
    fn what_is_no_time_is_none() {
        for v in [
            json!("yesterday"),
            json!("2025-13-40T99:00:00Z"),
            json!(""),
            json!(true),
            json!({"t": 1}),
            json!(1.5e300),
            json!(i64::MAX),
            json!("99999999999999999999"),
        ] {
            assert_eq!(parse(&v), None, "{v}");
        }
        assert_eq!(of_record(&json!({"eventName": "X"})), None);
        assert_eq!(
            of_record(&json!({"@timestamp": "2020-09-14T01:19:40.000Z"})).map(|w| w.millis),
            Some(1_600_046_380_000)
        );
    }
}
