//! CloudTrail → Elastic Common Schema, shaped like Elastic's own AWS CloudTrail integration:
//! `event.*`, `user.*`, `source.*`, `user_agent.original`, `cloud.*`, `related.*` and the
//! CloudTrail specifics under `aws.cloudtrail.*` (request and response both as Elastic's
//! `{key=value}` text and as `flattened.*` objects). Not done: user-agent parsing and GeoIP
//! (Elastic's ingest node adds those).

use serde_json::{Map, Value, json};

use super::ocsf::api_activity;

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|x| !x.is_empty())
}

/// Set a dotted path in a nested object.
fn set(root: &mut Map<String, Value>, path: &str, v: Value) {
    if v.is_null() {
        return;
    }
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.into(), v);
            return;
        }
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else { return };
        cur = m;
    }
}

fn str_v(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |x| Value::String(x.into()))
}

/// Java's `String.hashCode`, spread as `java.util.HashMap` does.
fn java_hash(k: &str) -> u32 {
    let h = k
        .encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
    h ^ (h >> 16)
}

/// The order a `java.util.HashMap` of these keys iterates in: by bucket of a table sized for
/// them (16, doubled while more than 3/4 full).
fn java_order<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = keys.collect();
    let mut cap = 16usize;
    while keys.len() * 4 > cap * 3 {
        cap *= 2;
    }
    keys.sort_by_key(|k| java_hash(k) as usize & (cap - 1));
    keys
}

/// Elastic's text form of a JSON value (a Java map's `toString`, keys in Java's HashMap
/// order): `{a=1, b=[x, y]}`.
pub fn java_text(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{{}}}",
            java_order(m.keys())
                .into_iter()
                .map(|k| format!("{k}={}", java_text(&m[k])))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(java_text).collect::<Vec<_>>().join(", ")
        ),
        Value::String(x) => x.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Epoch milliseconds as Elastic writes `@timestamp`: `2016-11-14T17:25:45.000Z`.
fn millis_text(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Any time form CloudTrail writes, as Elastic writes it.
fn timestamp(t: &str) -> Option<String> {
    millis_text(super::time::parse_text(t)?.millis)
}

fn categorize(
    source: &str,
    name: &str,
    read_only: Option<bool>,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let auth = source == "signin.amazonaws.com"
        || (source == "sts.amazonaws.com"
            && (name.starts_with("AssumeRole")
                || name == "GetSessionToken"
                || name == "GetFederationToken"));
    if auth {
        return (vec!["authentication"], vec!["info"]);
    }
    let category = match source {
        "iam.amazonaws.com" => vec!["iam"],
        "s3.amazonaws.com" => vec!["file"],
        "ec2.amazonaws.com" if name.contains("SecurityGroup") => vec!["network"],
        "kms.amazonaws.com" | "secretsmanager.amazonaws.com" => vec!["configuration"],
        _ => vec![],
    };
    let t = match api_activity(name, read_only).0 {
        1 => "creation",
        3 => "change",
        4 => "deletion",
        _ => "info",
    };
    let mut types = vec![t];
    if source == "iam.amazonaws.com" && (name.contains("User") || name.contains("LoginProfile")) {
        types.push("user");
    }
    if source == "iam.amazonaws.com" && name.contains("Group") {
        types.push("group");
    }
    (category, types)
}

fn yes(v: &Value) -> Value {
    match s(v) {
        Some(x) => Value::Bool(x.eq_ignore_ascii_case("yes") || x == "true"),
        None => Value::Null,
    }
}

/// Normalize one record (`raw` is its original text, kept in `event.original`).
pub fn normalize(r: &Value, raw: &str, when: &super::time::When) -> Value {
    let ts = millis_text(when.millis).unwrap_or_default();
    let mut o = Map::new();
    let name = s(&r["eventName"]).unwrap_or("");
    let source = s(&r["eventSource"]).unwrap_or("");
    set(&mut o, "@timestamp", ts.into());
    set(&mut o, "ecs.version", "8.11.0".into());
    event_fields(&mut o, r, name, source, raw);
    cloud_fields(&mut o, r, source);
    let related = user_fields(&mut o, r, source);
    source_fields(&mut o, r);
    entities(&mut o, r);
    if let Some(tls) = r["tlsDetails"].as_object() {
        tls_fields(&mut o, tls);
    }
    if !related.is_empty() {
        set(&mut o, "related.user", json!(related));
    }
    cloudtrail_fields(&mut o, r);
    Value::Object(o)
}

/// A field under `aws.cloudtrail.`.
fn ct(o: &mut Map<String, Value>, k: &str, v: Value) {
    set(o, &format!("aws.cloudtrail.{k}"), v)
}

/// `event.*`: kind, action, provider, outcome, the original, category and type.
fn event_fields(o: &mut Map<String, Value>, r: &Value, name: &str, source: &str, raw: &str) {
    let sign_in_failed = s(&r["responseElements"]["ConsoleLogin"]).is_some_and(|x| x != "Success");
    let failed = s(&r["errorCode"]).is_some() || sign_in_failed;
    set(o, "event.kind", "event".into());
    set(o, "event.dataset", "aws.cloudtrail".into());
    set(o, "event.module", "aws".into());
    set(o, "event.action", str_v(Some(name)));
    set(o, "event.provider", str_v(Some(source)));
    set(o, "event.id", str_v(s(&r["eventID"])));
    set(
        o,
        "event.outcome",
        (if failed { "failure" } else { "success" }).into(),
    );
    set(o, "event.original", raw.into());
    let (category, types) = categorize(source, name, r["readOnly"].as_bool());
    if !category.is_empty() {
        set(o, "event.category", json!(category));
    }
    set(o, "event.type", json!(types));
}

/// `cloud.*`: provider, region, account, service.
fn cloud_fields(o: &mut Map<String, Value>, r: &Value, source: &str) {
    set(o, "cloud.provider", "aws".into());
    set(o, "cloud.region", str_v(s(&r["awsRegion"])));
    set(
        o,
        "cloud.account.id",
        str_v(s(&r["recipientAccountId"]).or(s(&r["userIdentity"]["accountId"]))),
    );
    if let Some(svc) = source.strip_suffix(".amazonaws.com") {
        set(o, "cloud.service.name", svc.into());
    }
}

/// `user.*` (the caller, the IAM user a call acts on, an e-mail name); returns the users for
/// `related.user`.
fn user_fields(o: &mut Map<String, Value>, r: &Value, source: &str) -> Vec<String> {
    let id = &r["userIdentity"];
    let issuer = &id["sessionContext"]["sessionIssuer"];
    let mut related: Vec<String> = Vec::new();
    let user_name = s(&id["userName"]).or(s(&issuer["userName"]));
    set(o, "user.name", str_v(user_name));
    set(o, "user.id", str_v(s(&id["principalId"])));
    if let Some(u) = user_name {
        related.push(u.into());
    }
    // The user a call acts on (IAM), as ECS user.target.
    if source == "iam.amazonaws.com"
        && let Some(t) = s(&r["requestParameters"]["userName"])
    {
        set(o, "user.target.name", t.into());
        related.push(t.into());
    }
    if let Some(u) = user_name.filter(|u| u.contains('@')) {
        set(o, "user.email", u.into());
    }
    if let Some(p) = s(&id["principalId"]) {
        related.insert(0, p.into());
    }
    related.dedup();
    related
}

/// `source.*`: an IP address, or a service's domain; `user_agent.original`.
fn source_fields(o: &mut Map<String, Value>, r: &Value) {
    if let Some(addr) = s(&r["sourceIPAddress"]) {
        set(o, "source.address", addr.into());
        if addr.parse::<std::net::IpAddr>().is_ok() {
            set(o, "source.ip", addr.into());
            set(o, "related.ip", json!([addr]));
        } else {
            set(o, "source.domain", addr.into());
        }
    }
    set(o, "user_agent.original", str_v(s(&r["userAgent"])));
}

/// Entities: who acted (the identity's ARN, or the service), and what was acted on.
fn entities(o: &mut Map<String, Value>, r: &Value) {
    let id = &r["userIdentity"];
    let actor = s(&id["arn"]).or(s(&id["invokedBy"]));
    if let Some(a) = actor {
        set(o, "actor.entity.id", json!([a]));
    }
    if let Some(a) = s(&id["arn"]) {
        set(o, "user.entity.id", json!([a]));
    }
    if let Some(svc) = s(&id["invokedBy"]) {
        set(o, "service.name", svc.into());
        set(o, "service.entity.id", json!([svc]));
    }
    let targets: Vec<&str> = super::resource_entries(r)
        .filter_map(|x| s(&x["ARN"]))
        .collect();
    if !targets.is_empty() {
        set(o, "target.entity.id", json!(targets));
        let list: Vec<Value> = super::resource_entries(r)
            .map(|x| {
                let mut m = Map::new();
                set(&mut m, "account_id", str_v(s(&x["accountId"])));
                set(&mut m, "arn", str_v(s(&x["ARN"])));
                set(&mut m, "type", str_v(s(&x["type"])));
                Value::Object(m)
            })
            .collect();
        set(o, "aws.cloudtrail.resources", Value::Array(list));
    }
}

/// `tls.*` from `tlsDetails`.
fn tls_fields(o: &mut Map<String, Value>, tls: &Map<String, Value>) {
    let text = |k: &str| tls.get(k).and_then(|v| v.as_str());
    if let Some(v) = text("tlsVersion") {
        // "TLSv1.3" → tls.version "1.3", tls.version_protocol "tls".
        let (proto, ver) = v.split_once('v').unwrap_or(("", v));
        set(o, "tls.version", ver.into());
        if !proto.is_empty() {
            set(o, "tls.version_protocol", proto.to_ascii_lowercase().into());
        }
    }
    set(o, "tls.cipher", str_v(text("cipherSuite")));
    set(
        o,
        "tls.client.server_name",
        str_v(text("clientProvidedHostHeader")),
    );
}

/// `aws.cloudtrail.*`: the record's own fields as Elastic's integration names them.
fn cloudtrail_fields(o: &mut Map<String, Value>, r: &Value) {
    for (k, f) in [
        ("event_version", "eventVersion"),
        ("event_type", "eventType"),
        ("event_category", "eventCategory"),
        ("recipient_account_id", "recipientAccountId"),
        ("request_id", "requestID"),
        ("shared_event_id", "sharedEventID"),
        ("api_version", "apiVersion"),
        ("vpc_endpoint_id", "vpcEndpointId"),
    ] {
        ct(o, k, str_v(s(&r[f])));
    }
    ct(o, "read_only", r["readOnly"].clone());
    ct(o, "management_event", r["managementEvent"].clone());
    ct(o, "error_code", str_v(s(&r["errorCode"])));
    ct(o, "error_message", str_v(s(&r["errorMessage"])));
    user_identity_fields(o, &r["userIdentity"]);
    for (k, f) in [
        ("request_parameters", "requestParameters"),
        ("response_elements", "responseElements"),
        ("additional_eventdata", "additionalEventData"),
    ] {
        let v = &r[f];
        if v.is_object() || v.is_array() {
            ct(o, k, java_text(v).into());
            ct(o, &format!("flattened.{k}"), v.clone());
        }
    }
    if super::is_sign_in(r) {
        let a = &r["additionalEventData"];
        ct(
            o,
            "console_login.additional_eventdata.login_to",
            str_v(s(&a["LoginTo"])),
        );
        ct(
            o,
            "console_login.additional_eventdata.mobile_version",
            yes(&a["MobileVersion"]),
        );
        ct(
            o,
            "console_login.additional_eventdata.mfa_used",
            yes(&a["MFAUsed"]),
        );
    }
    if r["insightDetails"].is_object() {
        ct(o, "insight_details", r["insightDetails"].clone());
    }
    if let Some(tls) = r["tlsDetails"].as_object() {
        let text = |k: &str| str_v(tls.get(k).and_then(|v| v.as_str()));
        ct(o, "tls_details.tls_version", text("tlsVersion"));
        ct(o, "tls_details.cipher_suite", text("cipherSuite"));
        ct(
            o,
            "tls_details.client_provided_host_header",
            text("clientProvidedHostHeader"),
        );
    }
}

/// `aws.cloudtrail.user_identity.*`, its session context and issuer.
fn user_identity_fields(o: &mut Map<String, Value>, id: &Value) {
    ct(o, "user_identity.type", str_v(s(&id["type"])));
    ct(o, "user_identity.arn", str_v(s(&id["arn"])));
    ct(
        o,
        "user_identity.access_key_id",
        str_v(s(&id["accessKeyId"])),
    );
    ct(o, "user_identity.invoked_by", str_v(s(&id["invokedBy"])));
    let attrs = &id["sessionContext"]["attributes"];
    ct(
        o,
        "user_identity.session_context.mfa_authenticated",
        str_v(s(&attrs["mfaAuthenticated"])),
    );
    ct(
        o,
        "user_identity.session_context.creation_date",
        s(&attrs["creationDate"])
            .and_then(timestamp)
            .map_or(Value::Null, Value::String),
    );
    let issuer = &id["sessionContext"]["sessionIssuer"];
    for (k, f) in [
        ("type", "type"),
        ("principal_id", "principalId"),
        ("arn", "arn"),
        ("account_id", "accountId"),
    ] {
        ct(
            o,
            &format!("user_identity.session_context.session_issuer.{k}"),
            str_v(s(&issuer[f])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_text_is_elastics_map_form() {
        let v: Value = serde_json::from_str(r#"{"a":"x","b":[1,"y"],"c":{"d":null}}"#).unwrap();
        assert_eq!(java_text(&v), "{a=x, b=[1, y], c={d=null}}");
        // Java's HashMap order, as Elastic prints it.
        let v: Value =
            serde_json::from_str(r#"{"MobileVersion":"No","LoginTo":"x","MFAUsed":"No"}"#).unwrap();
        assert_eq!(java_text(&v), "{LoginTo=x, MobileVersion=No, MFAUsed=No}");
    }
}
