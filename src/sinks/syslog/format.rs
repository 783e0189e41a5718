//! Syslog messages for the syslog sink: RFC 5424 and RFC 3164 headers around the record's JSON,
//! or a CEF message (ArcSight Common Event Format) with the mapping documented in the README.

use serde::Deserialize;
use serde_json::Value;

use crate::core::event::EventData;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - JSON`
    #[default]
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOST APP[PROCID]: JSON`
    Rfc3164,
    /// RFC 5424 header, CEF message.
    Cef,
}

/// Facility names → numbers (RFC 5424 table 1).
pub fn facility(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "ntp" => 12,
        "security" | "audit" => 13,
        "console" => 14,
        "solaris-cron" => 15,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// What every message of a sink shares.
#[derive(Debug, Clone)]
pub struct Header {
    pub format: Format,
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
}

/// Printable ASCII without spaces, at most `max` long (RFC 5424 header fields); `-` if empty.
fn field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

impl Header {
    pub fn new(format: Format, facility: u8, hostname: &str, app_name: &str) -> Self {
        Header {
            format,
            facility,
            hostname: field(hostname, 255),
            app_name: field(app_name, 48),
            procid: std::process::id().to_string(),
        }
    }

    /// The whole syslog message for one event.
    pub fn message(&self, e: &EventData) -> Vec<u8> {
        // warning for failed calls, notice for insights, info otherwise.
        let severity = if e.error_code().is_some() {
            4
        } else if e.event_type() == Some("AwsCloudTrailInsight") {
            5
        } else {
            6
        };
        let pri = u16::from(self.facility) * 8 + severity;
        let time = e.event_time().filter(|t| t.len() >= 19);
        let mut out = match self.format {
            Format::Rfc5424 | Format::Cef => {
                let ts = time.map(str::to_string).unwrap_or_else(|| {
                    chrono::Utc::now()
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                });
                let msgid = field(e.event_name().unwrap_or(""), 32);
                format!(
                    "<{pri}>1 {} {} {} {} {msgid} - ",
                    field(&ts, 64),
                    self.hostname,
                    self.app_name,
                    self.procid
                )
            }
            Format::Rfc3164 => {
                let t = time
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(chrono::Utc::now);
                format!(
                    "<{pri}>{} {} {}[{}]: ",
                    t.format("%b %e %H:%M:%S"),
                    self.hostname,
                    self.app_name,
                    self.procid
                )
            }
        }
        .into_bytes();
        match self.format {
            Format::Cef => out.extend_from_slice(cef(e).as_bytes()),
            _ => out.extend_from_slice(&e.raw),
        }
        out
    }
}

/// CEF header fields escape `\` and `|`.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

/// CEF extension values escape `\`, `=` and line breaks.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The CEF message of a CloudTrail record.
pub fn cef(e: &EventData) -> String {
    let v: Value = serde_json::from_slice(&e.raw).unwrap_or(Value::Null);
    let s = |p: &str| v.pointer(p).and_then(Value::as_str);
    let name = e.event_name().unwrap_or("unknown");
    let source = e.event_source().unwrap_or("unknown");
    let failed = e.error_code().is_some();
    let severity = if e.event_type() == Some("AwsCloudTrailInsight") {
        7
    } else if failed {
        6
    } else {
        3
    };
    let mut out = format!(
        "CEF:0|AWS|CloudTrail|{}|{}|{}|{severity}|",
        cef_header(s("/eventVersion").unwrap_or("1.0")),
        cef_header(&format!("{source}:{name}")),
        cef_header(name),
    );
    let mut ext: Vec<(&str, String)> = Vec::new();
    if let Some(ms) = e.event_time_millis() {
        ext.push(("rt", ms.to_string()));
    }
    let mut push = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ext.push((k, cef_value(v)));
        }
    };
    push("externalId", e.event_id());
    push("act", Some(name));
    push("cat", e.event_type());
    match s("/sourceIPAddress") {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => push("src", Some(ip)),
        other => push("shost", other),
    }
    push(
        "suser",
        s("/userIdentity/arn").or(s("/userIdentity/invokedBy")),
    );
    push("requestClientApplication", s("/userAgent"));
    push("outcome", Some(if failed { "failure" } else { "success" }));
    push("reason", e.error_code());
    push("msg", s("/errorMessage"));
    for (i, (label, value)) in [
        ("awsRegion", e.region()),
        ("recipientAccountId", e.account_id()),
        ("userIdentityType", e.user_type()),
        ("eventSource", Some(source)),
        ("eventCategory", Some(e.category().as_str())),
        ("requestID", s("/requestID")),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            ext.push((CS_LABELS[i], label.to_string()));
            ext.push((CS[i], cef_value(v)));
        }
    }
    let parts: Vec<String> = ext.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&parts.join(" "));
    out
}

const CS: [&str; 6] = ["cs1", "cs2", "cs3", "cs4", "cs5", "cs6"];
const CS_LABELS: [&str; 6] = [
    "cs1Label", "cs2Label", "cs3Label", "cs4Label", "cs5Label", "cs6Label",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::test_data as ev;

    const REC: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123:user/a=b"},"eventTime":"2023-07-10T11:45:12Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2 | x","errorCode":"AccessDenied","errorMessage":"no\nway","requestID":"r1","eventID":"e1","eventType":"AwsApiCall","recipientAccountId":"123"}"#;

    #[test]
    fn rfc5424_and_rfc3164_headers() {
        let e = ev(REC);
        let h = Header::new(Format::Rfc5424, 16, "host a", "trailship");
        let m = String::from_utf8(h.message(&e)).unwrap();
        let pid = std::process::id();
        assert_eq!(
            m,
            format!("<132>1 2023-07-10T11:45:12Z hosta trailship {pid} CreateUser - {REC}")
        );
        let h = Header::new(Format::Rfc3164, 4, "h", "ts");
        let m = String::from_utf8(h.message(&e)).unwrap();
        assert!(
            m.starts_with(&format!("<36>Jul 10 11:45:12 h ts[{pid}]: {{")),
            "{m}"
        );
    }

    #[test]
    fn cef_maps_and_escapes() {
        let c = cef(&ev(REC));
        assert!(
            c.starts_with("CEF:0|AWS|CloudTrail|1.08|iam.amazonaws.com:CreateUser|CreateUser|6|"),
            "{c}"
        );
        for want in [
            "rt=1688989512000",
            "externalId=e1",
            "src=198.51.100.7",
            "suser=arn:aws:iam::123:user/a\\=b",
            "requestClientApplication=aws-cli/2 | x",
            "outcome=failure",
            "reason=AccessDenied",
            "msg=no\\nway",
            "cs1Label=awsRegion cs1=us-east-1",
            "cs2Label=recipientAccountId cs2=123",
        ] {
            assert!(c.contains(want), "{want} in {c}");
        }
        assert!(!c.contains('\n'));
        assert_eq!(facility("local4"), Some(20));
        assert_eq!(facility("nope"), None);
    }
}
