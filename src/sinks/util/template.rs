//! Path templates for the file sink: strftime `%Y %m %d %H %M %S` over the event's eventTime
//! and `{account_id}`, `{region}`, `{event_source}`, `{category}` from the event.
//!
//! A value taken from an event can never leave the sink's directory: values must be plain
//! names (letters, digits, `.`, `_`, `-`; not `.` or `..`), else the event is rejected.

use super::error::SetupError;
use crate::core::event::EventData;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Time {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    AccountId,
    Region,
    EventSource,
    Category,
    /// A fresh random id per output object or file (rendered as `{uuid}`, filled per group).
    Uuid,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Time(Time),
    Key(Key),
}

#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

/// An event whose field cannot go into a path: that event fails alone, permanently.
#[derive(Debug, thiserror::Error)]
#[error("the event's {field} {value:?} is not a safe path component for template {template:?}")]
pub struct RenderError {
    pub field: &'static str,
    pub value: String,
    pub template: String,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, SetupError> {
        let bad = |reason: String| SetupError::Template {
            template: s.into(),
            reason,
        };
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let t = match chars.next() {
                        Some('Y') => Time::Year,
                        Some('m') => Time::Month,
                        Some('d') => Time::Day,
                        Some('H') => Time::Hour,
                        Some('M') => Time::Minute,
                        Some('S') => Time::Second,
                        Some('%') => {
                            lit.push('%');
                            continue;
                        }
                        Some(o) => {
                            return Err(bad(format!(
                                "unsupported strftime field %{o} in {s:?} (supported: %Y %m %d %H %M %S %%)"
                            )));
                        }
                        None => {
                            return Err(bad(format!(
                                "a lone '%' ends {s:?} (write %% for a literal '%')"
                            )));
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Time(t));
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(bad(format!("unclosed '{{' in {s:?}"))),
                        }
                    }
                    let k = match name.as_str() {
                        "account_id" => Key::AccountId,
                        "region" => Key::Region,
                        "event_source" => Key::EventSource,
                        "category" => Key::Category,
                        "uuid" => Key::Uuid,
                        o => {
                            return Err(bad(format!(
                                "unknown field {{{o}}} in {s:?} (supported: {{account_id}} {{region}} {{event_source}} {{category}} {{uuid}})"
                            )));
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Key(k));
                }
                '}' => return Err(bad(format!("unmatched '}}' in {s:?}"))),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if s.is_empty() || s.ends_with('/') {
            return Err(bad("the path must name a file, not a directory".into()));
        }
        Ok(Template {
            parts,
            source: s.to_string(),
        })
    }

    /// True when the path is the same for every event.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Render the path for one event into `out`.
    pub fn render(&self, e: &EventData, out: &mut String) -> Result<(), RenderError> {
        out.clear();
        let mut now: Option<String> = None;
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Time(t) => {
                    let ts = match e.event_time().filter(|s| is_iso_time(s)) {
                        Some(s) => s,
                        // No usable eventTime: file the event under the time it was processed.
                        None => now.get_or_insert_with(|| {
                            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
                        }),
                    };
                    let (a, b) = match t {
                        Time::Year => (0, 4),
                        Time::Month => (5, 7),
                        Time::Day => (8, 10),
                        Time::Hour => (11, 13),
                        Time::Minute => (14, 16),
                        Time::Second => (17, 19),
                    };
                    out.push_str(&ts[a..b]);
                }
                Part::Key(Key::Uuid) => out.push_str(UUID),
                Part::Key(k) => {
                    let (v, name) = match k {
                        Key::Uuid => continue,
                        Key::AccountId => (e.account_id(), "account_id"),
                        Key::Region => (e.region(), "region"),
                        Key::EventSource => (e.event_source(), "event_source"),
                        Key::Category => (Some(e.category().as_str()), "category"),
                    };
                    let v = v.unwrap_or("unknown");
                    if !safe_component(v) {
                        return Err(RenderError {
                            field: name,
                            value: v.into(),
                            template: self.source.clone(),
                        });
                    }
                    out.push_str(v);
                }
            }
        }
        Ok(())
    }
}

/// What `{uuid}` renders as; `fill_uuid` replaces it once per output object.
pub const UUID: &str = "{uuid}";

/// Give a rendered path or key its own random id (16 letters and digits, like CloudTrail's).
pub fn fill_uuid(rendered: &str) -> String {
    if rendered.contains(UUID) {
        let id: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(16)
            .collect();
        rendered.replace(UUID, &id)
    } else {
        rendered.to_string()
    }
}

fn is_iso_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b.iter().take(19).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

fn safe_component(v: &str) -> bool {
    !v.is_empty()
        && v != "."
        && v != ".."
        && v.len() <= 255
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::test_data as ev;

    #[test]
    fn renders_time_and_fields() {
        let t =
            Template::parse("out/{account_id}/{region}/%Y/%m/%d/%H-{category}-{event_source}.json")
                .unwrap();
        let e = ev(
            r#"{"eventTime":"2023-07-10T11:45:12Z","recipientAccountId":"123","awsRegion":"us-east-1","eventSource":"s3.amazonaws.com"}"#,
        );
        let mut s = String::new();
        t.render(&e, &mut s).unwrap();
        assert_eq!(
            s,
            "out/123/us-east-1/2023/07/10/11-management-s3.amazonaws.com.json"
        );
        assert!(!t.is_constant());
        assert!(Template::parse("a/b.json").unwrap().is_constant());
    }

    #[test]
    fn rejects_escapes_and_bad_templates() {
        let t = Template::parse("out/{region}/x.json").unwrap();
        let mut s = String::new();
        for bad in ["../../etc", "a/b", "..", "a\\\\b", ""] {
            let e = ev(&format!(r#"{{"awsRegion":"{bad}"}}"#));
            assert!(t.render(&e, &mut s).is_err(), "{bad}");
        }
        assert!(Template::parse("x/%Q").is_err());
        assert!(Template::parse("x/{nope}").is_err());
        assert!(Template::parse("x/{region").is_err());
        assert!(Template::parse("x/").is_err());
    }

    #[test]
    fn missing_time_uses_now() {
        let t = Template::parse("%Y.json").unwrap();
        let mut s = String::new();
        t.render(&ev(r#"{"eventTime":"garbage"}"#), &mut s).unwrap();
        assert_eq!(s.len(), 9);
    }
}
