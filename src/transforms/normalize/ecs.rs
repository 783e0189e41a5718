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

/// `2016-11-14T17:25:45Z` → `2016-11-14T17:25:45.000Z`.
fn timestamp(t: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    })
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
pub fn normalize(r: &Value, raw: &str) -> Option<Value> {
    let ts = timestamp(super::event_time(r)?)?;
    let mut o = Map::new();
    let name = s(&r["eventName"]).unwrap_or("");
    let source = s(&r["eventSource"]).unwrap_or("");
    let id = &r["userIdentity"];
    let issuer = &id["sessionContext"]["sessionIssuer"];
    let sign_in_failed = s(&r["responseElements"]["ConsoleLogin"]).is_some_and(|x| x != "Success");
    let failed = s(&r["errorCode"]).is_some() || sign_in_failed;
    set(&mut o, "@timestamp", ts.into());
    set(&mut o, "ecs.version", "8.11.0".into());
    set(&mut o, "event.kind", "event".into());
    set(&mut o, "event.dataset", "aws.cloudtrail".into());
    set(&mut o, "event.module", "aws".into());
    set(&mut o, "event.action", str_v(Some(name)));
    set(&mut o, "event.provider", str_v(Some(source)));
    set(&mut o, "event.id", str_v(s(&r["eventID"])));
    set(
        &mut o,
        "event.outcome",
        (if failed { "failure" } else { "success" }).into(),
    );
    set(&mut o, "event.original", raw.into());
    let (category, types) = categorize(source, name, r["readOnly"].as_bool());
    if !category.is_empty() {
        set(&mut o, "event.category", json!(category));
    }
    set(&mut o, "event.type", json!(types));
    set(&mut o, "cloud.provider", "aws".into());
    set(&mut o, "cloud.region", str_v(s(&r["awsRegion"])));
    set(
        &mut o,
        "cloud.account.id",
        str_v(s(&r["recipientAccountId"]).or(s(&id["accountId"]))),
    );
    let mut related_users: Vec<String> = Vec::new();
    let user_name = s(&id["userName"]).or(s(&issuer["userName"]));
    set(&mut o, "user.name", str_v(user_name));
    set(&mut o, "user.id", str_v(s(&id["principalId"])));
    if let Some(u) = user_name {
        related_users.push(u.into());
    }
    if let Some(addr) = s(&r["sourceIPAddress"]) {
        set(&mut o, "source.address", addr.into());
        if addr.parse::<std::net::IpAddr>().is_ok() {
            set(&mut o, "source.ip", addr.into());
            set(&mut o, "related.ip", json!([addr]));
        } else {
            set(&mut o, "source.domain", addr.into());
        }
    }
    set(&mut o, "user_agent.original", str_v(s(&r["userAgent"])));
    // The user a call acts on (IAM), as ECS user.target.
    if source == "iam.amazonaws.com"
        && let Some(t) = s(&r["requestParameters"]["userName"])
    {
        set(&mut o, "user.target.name", t.into());
        related_users.push(t.into());
    }
    if let Some(u) = user_name.filter(|u| u.contains('@')) {
        set(&mut o, "user.email", u.into());
    }
    if let Some(p) = s(&id["principalId"]) {
        related_users.insert(0, p.into());
    }
    if let Some(svc) = source.strip_suffix(".amazonaws.com") {
        set(&mut o, "cloud.service.name", svc.into());
    }
    // Entities: who acted (the identity's ARN, or the service), and what was acted on.
    let actor = s(&id["arn"]).or(s(&id["invokedBy"]));
    if let Some(a) = actor {
        set(&mut o, "actor.entity.id", json!([a]));
    }
    if let Some(a) = s(&id["arn"]) {
        set(&mut o, "user.entity.id", json!([a]));
    }
    if let Some(svc) = s(&id["invokedBy"]) {
        set(&mut o, "service.name", svc.into());
        set(&mut o, "service.entity.id", json!([svc]));
    }
    let targets: Vec<&str> = super::resource_entries(r)
        .filter_map(|x| s(&x["ARN"]))
        .collect();
    if !targets.is_empty() {
        set(&mut o, "target.entity.id", json!(targets));
        let list: Vec<Value> = super::resource_entries(r)
            .map(|x| {
                let mut m = Map::new();
                set(&mut m, "account_id", str_v(s(&x["accountId"])));
                set(&mut m, "arn", str_v(s(&x["ARN"])));
                set(&mut m, "type", str_v(s(&x["type"])));
                Value::Object(m)
            })
            .collect();
        set(&mut o, "aws.cloudtrail.resources", Value::Array(list));
    }
    if let Some(tls) = r["tlsDetails"].as_object() {
        if let Some(v) = tls.get("tlsVersion").and_then(|v| v.as_str()) {
            // "TLSv1.3" → tls.version "1.3", tls.version_protocol "tls".
            let (proto, ver) = v.split_once('v').unwrap_or(("", v));
            set(&mut o, "tls.version", ver.into());
            if !proto.is_empty() {
                set(
                    &mut o,
                    "tls.version_protocol",
                    proto.to_ascii_lowercase().into(),
                );
            }
        }
        set(
            &mut o,
            "tls.cipher",
            str_v(tls.get("cipherSuite").and_then(|v| v.as_str())),
        );
        set(
            &mut o,
            "tls.client.server_name",
            str_v(tls.get("clientProvidedHostHeader").and_then(|v| v.as_str())),
        );
    }
    if !related_users.is_empty() {
        related_users.dedup();
        set(&mut o, "related.user", json!(related_users));
    }
    let ct =
        |o: &mut Map<String, Value>, k: &str, v: Value| set(o, &format!("aws.cloudtrail.{k}"), v);
    ct(&mut o, "event_version", str_v(s(&r["eventVersion"])));
    ct(&mut o, "event_type", str_v(s(&r["eventType"])));
    ct(&mut o, "event_category", str_v(s(&r["eventCategory"])));
    ct(
        &mut o,
        "recipient_account_id",
        str_v(s(&r["recipientAccountId"])),
    );
    ct(&mut o, "request_id", str_v(s(&r["requestID"])));
    ct(&mut o, "shared_event_id", str_v(s(&r["sharedEventID"])));
    ct(&mut o, "api_version", str_v(s(&r["apiVersion"])));
    ct(&mut o, "vpc_endpoint_id", str_v(s(&r["vpcEndpointId"])));
    ct(&mut o, "read_only", r["readOnly"].clone());
    ct(&mut o, "management_event", r["managementEvent"].clone());
    ct(&mut o, "error_code", str_v(s(&r["errorCode"])));
    ct(&mut o, "error_message", str_v(s(&r["errorMessage"])));
    ct(&mut o, "user_identity.type", str_v(s(&id["type"])));
    ct(&mut o, "user_identity.arn", str_v(s(&id["arn"])));
    ct(
        &mut o,
        "user_identity.access_key_id",
        str_v(s(&id["accessKeyId"])),
    );
    ct(
        &mut o,
        "user_identity.invoked_by",
        str_v(s(&id["invokedBy"])),
    );
    let attrs = &id["sessionContext"]["attributes"];
    ct(
        &mut o,
        "user_identity.session_context.mfa_authenticated",
        str_v(s(&attrs["mfaAuthenticated"])),
    );
    ct(
        &mut o,
        "user_identity.session_context.creation_date",
        s(&attrs["creationDate"])
            .and_then(timestamp)
            .map_or(Value::Null, Value::String),
    );
    for (k, f) in [
        ("type", "type"),
        ("principal_id", "principalId"),
        ("arn", "arn"),
        ("account_id", "accountId"),
    ] {
        ct(
            &mut o,
            &format!("user_identity.session_context.session_issuer.{k}"),
            str_v(s(&issuer[f])),
        );
    }
    for (k, f) in [
        ("request_parameters", "requestParameters"),
        ("response_elements", "responseElements"),
        ("additional_eventdata", "additionalEventData"),
    ] {
        let v = &r[f];
        if v.is_object() || v.is_array() {
            ct(&mut o, k, java_text(v).into());
            ct(&mut o, &format!("flattened.{k}"), v.clone());
        }
    }
    if super::is_sign_in(r) {
        let a = &r["additionalEventData"];
        ct(
            &mut o,
            "console_login.additional_eventdata.login_to",
            str_v(s(&a["LoginTo"])),
        );
        ct(
            &mut o,
            "console_login.additional_eventdata.mobile_version",
            yes(&a["MobileVersion"]),
        );
        ct(
            &mut o,
            "console_login.additional_eventdata.mfa_used",
            yes(&a["MFAUsed"]),
        );
    }
    if r["insightDetails"].is_object() {
        ct(&mut o, "insight_details", r["insightDetails"].clone());
    }
    if let Some(tls) = r["tlsDetails"].as_object() {
        ct(
            &mut o,
            "tls_details.tls_version",
            str_v(tls.get("tlsVersion").and_then(|v| v.as_str())),
        );
        ct(
            &mut o,
            "tls_details.cipher_suite",
            str_v(tls.get("cipherSuite").and_then(|v| v.as_str())),
        );
        ct(
            &mut o,
            "tls_details.client_provided_host_header",
            str_v(tls.get("clientProvidedHostHeader").and_then(|v| v.as_str())),
        );
    }
    Some(Value::Object(o))
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
