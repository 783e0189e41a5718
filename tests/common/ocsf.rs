//! The OCSF 1.1.0 rules the normalizer's output must follow, for the classes it writes (API
//! Activity 6003, Authentication 3002, Account Change 3001) with the cloud and datetime
//! profiles: required attributes, enum values and their captions, types, and no attribute the
//! class does not define. Written from the OCSF 1.1.0 schema's class, object and dictionary
//! definitions (schema.ocsf.io); the schema itself is not in this repository.
#![allow(dead_code)]

use serde_json::Value;

const BASE: &[&str] = &[
    "activity_id",
    "activity_name",
    "category_uid",
    "category_name",
    "class_uid",
    "class_name",
    "type_uid",
    "type_name",
    "severity_id",
    "severity",
    "status_id",
    "status",
    "status_code",
    "status_detail",
    "time",
    "time_dt",
    "metadata",
    "unmapped",
    "message",
    "observables",
    "cloud",
    "actor",
    "api",
    "src_endpoint",
    "http_request",
    "resources",
    "raw_data",
];
const AUTH: &[&str] = &["user", "service", "is_mfa", "dst_endpoint", "session"];
const ACCOUNT: &[&str] = &["user", "policy"];

type Enum = [(i64, &'static str)];

fn caption(enum_: &Enum, id: i64) -> Option<&'static str> {
    enum_.iter().find(|(i, _)| *i == id).map(|(_, c)| *c)
}

const SEVERITY: &Enum = &[
    (0, "Unknown"),
    (1, "Informational"),
    (2, "Low"),
    (3, "Medium"),
    (4, "High"),
    (5, "Critical"),
    (6, "Fatal"),
    (99, "Other"),
];
const STATUS: &Enum = &[
    (0, "Unknown"),
    (1, "Success"),
    (2, "Failure"),
    (99, "Other"),
];
const API: &Enum = &[
    (0, "Unknown"),
    (1, "Create"),
    (2, "Read"),
    (3, "Update"),
    (4, "Delete"),
    (99, "Other"),
];
const AUTHN: &Enum = &[
    (0, "Unknown"),
    (1, "Logon"),
    (2, "Logoff"),
    (3, "Authentication Ticket"),
    (4, "Service Ticket Request"),
    (5, "Service Ticket Renew"),
    (99, "Other"),
];
const ACCT: &Enum = &[
    (0, "Unknown"),
    (1, "Create"),
    (2, "Enable"),
    (3, "Password Change"),
    (4, "Password Reset"),
    (5, "Disable"),
    (6, "Delete"),
    (7, "Attach Policy"),
    (8, "Detach Policy"),
    (9, "Lock"),
    (10, "MFA Factor Enable"),
    (11, "MFA Factor Disable"),
    (99, "Other"),
];
const USER_TYPE: &Enum = &[
    (0, "Unknown"),
    (1, "User"),
    (2, "Admin"),
    (3, "System"),
    (99, "Other"),
];
const ACCOUNT_TYPE: &Enum = &[
    (0, "Unknown"),
    (1, "LDAP Account"),
    (2, "Windows Account"),
    (3, "AWS IAM User"),
    (4, "AWS IAM Role"),
    (5, "GCP Account"),
    (6, "Azure AD Account"),
    (7, "Mac OS Account"),
    (8, "Apple Account"),
    (9, "Linux Account"),
    (10, "AWS Account"),
    (99, "Other"),
];

/// An enum attribute and its caption sibling: the id is in the enum, the caption matches it
/// (or, for Other, holds the source's own value).
fn check_enum(v: &Value, id_key: &str, cap_key: &str, e: &Enum, at: &str, errs: &mut Vec<String>) {
    let Some(id) = v.get(id_key) else { return };
    let Some(id) = id.as_i64() else {
        errs.push(format!("{at}{id_key}: not an integer"));
        return;
    };
    match caption(e, id) {
        None => errs.push(format!("{at}{id_key}: {id} is not in the enum")),
        Some(c) => {
            if let Some(cap) = v.get(cap_key) {
                match cap.as_str() {
                    None => errs.push(format!("{at}{cap_key}: not a string")),
                    Some(x) if id != 99 && x != c => errs.push(format!(
                        "{at}{cap_key}: {x:?} is not the caption of {id} ({c:?})"
                    )),
                    _ => {}
                }
            }
        }
    }
}

fn need<'a>(v: &'a Value, key: &str, at: &str, errs: &mut Vec<String>) -> Option<&'a Value> {
    match v.get(key) {
        None | Some(Value::Null) => {
            errs.push(format!("{at}{key}: required, missing"));
            None
        }
        Some(x) => Some(x),
    }
}

fn string(v: &Value, key: &str, at: &str, errs: &mut Vec<String>) {
    if let Some(x) = v.get(key)
        && !x.is_string()
    {
        errs.push(format!("{at}{key}: not a string"));
    }
}

fn user(u: &Value, at: &str, errs: &mut Vec<String>) {
    if !u.is_object() {
        errs.push(format!("{at}: not an object"));
        return;
    }
    for k in ["name", "uid", "uid_alt", "credential_uid", "type"] {
        string(u, k, &format!("{at}."), errs);
    }
    check_enum(u, "type_id", "type", USER_TYPE, &format!("{at}."), errs);
    if let Some(a) = u.get("account") {
        string(a, "uid", &format!("{at}.account."), errs);
        check_enum(
            a,
            "type_id",
            "type",
            ACCOUNT_TYPE,
            &format!("{at}.account."),
            errs,
        );
    }
    if ["account", "name", "uid"]
        .iter()
        .all(|k| u.get(*k).is_none())
    {
        errs.push(format!("{at}: needs at least one of account, name, uid"));
    }
}

fn endpoint(e: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(ip) = e.get("ip")
        && ip
            .as_str()
            .and_then(|x| x.parse::<std::net::IpAddr>().ok())
            .is_none()
    {
        errs.push(format!("{at}.ip: not an IP address"));
    }
    if ["ip", "domain", "uid", "hostname", "name", "svc_name"]
        .iter()
        .all(|k| e.get(*k).is_none())
    {
        errs.push(format!(
            "{at}: needs at least one of ip, domain, uid, hostname, name, svc_name"
        ));
    }
}

/// Every rule broken by one event (empty: valid).
pub fn validate(v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let e = &mut errs;
    for k in [
        "activity_id",
        "category_uid",
        "class_uid",
        "severity_id",
        "time",
        "type_uid",
    ] {
        if let Some(x) = need(v, k, "", e)
            && !x.is_i64()
        {
            e.push(format!("{k}: not an integer"));
        }
    }
    let class = v["class_uid"].as_i64().unwrap_or(0);
    let activity = v["activity_id"].as_i64().unwrap_or(-1);
    if v["type_uid"].as_i64() != Some(class * 100 + activity) {
        e.push("type_uid: not class_uid * 100 + activity_id".into());
    }
    check_enum(v, "severity_id", "severity", SEVERITY, "", e);
    check_enum(v, "status_id", "status", STATUS, "", e);
    let (cat, extra, acts, cat_name, class_name): (i64, &[&str], &Enum, &str, &str) = match class {
        6003 => (6, &[], API, "Application Activity", "API Activity"),
        3002 => (
            3,
            AUTH,
            AUTHN,
            "Identity & Access Management",
            "Authentication",
        ),
        3001 => (
            3,
            ACCOUNT,
            ACCT,
            "Identity & Access Management",
            "Account Change",
        ),
        other => {
            e.push(format!(
                "class_uid: {other} is not a class this normalizer writes"
            ));
            return errs;
        }
    };
    if v["category_uid"].as_i64() != Some(cat) {
        e.push(format!("category_uid: {class} belongs to category {cat}"));
    }
    if v["category_name"].as_str().is_some_and(|c| c != cat_name) {
        e.push("category_name: wrong caption".into());
    }
    if v["class_name"].as_str().is_some_and(|c| c != class_name) {
        e.push("class_name: wrong caption".into());
    }
    check_enum(v, "activity_id", "activity_name", acts, "", e);
    if let Some(t) = v["time"].as_i64()
        && !(946_684_800_000..4_102_444_800_000).contains(&t)
    {
        e.push(format!(
            "time: {t} is not milliseconds since 1970 in a plausible range"
        ));
    }
    if let Some(t) = v.get("time_dt")
        && t.as_str()
            .and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok())
            .is_none()
    {
        e.push("time_dt: not an RFC 3339 time".into());
    }
    if let Some(m) = need(v, "metadata", "", e) {
        if let Some(p) = need(m, "product", "metadata.", e) {
            need(p, "vendor_name", "metadata.product.", e);
            string(p, "name", "metadata.product.", e);
        }
        if need(m, "version", "metadata.", e).and_then(|x| x.as_str()) != Some("1.1.0") {
            e.push("metadata.version: not 1.1.0".into());
        }
        string(m, "uid", "metadata.", e);
    }
    if let Some(c) = need(v, "cloud", "", e) {
        need(c, "provider", "cloud.", e);
    }
    if let Some(obj) = v.as_object() {
        for k in obj.keys() {
            if !BASE.contains(&k.as_str()) && !extra.contains(&k.as_str()) {
                e.push(format!("{k}: not an attribute of {class_name}"));
            }
        }
    }
    match class {
        6003 => {
            if let Some(a) = need(v, "actor", "", e) {
                if let Some(u) = a.get("user") {
                    user(u, "actor.user", e);
                }
                if [
                    "user",
                    "session",
                    "invoked_by",
                    "idp",
                    "process",
                    "app_name",
                ]
                .iter()
                .all(|k| a.get(*k).is_none())
                {
                    e.push("actor: empty".into());
                }
            }
            if let Some(api) = need(v, "api", "", e) {
                need(api, "operation", "api.", e);
                if let Some(r) = api.get("request") {
                    need(r, "uid", "api.request.", e);
                }
            }
            if let Some(s) = need(v, "src_endpoint", "", e) {
                endpoint(s, "src_endpoint", e);
            }
        }
        3002 => {
            if let Some(u) = need(v, "user", "", e) {
                user(u, "user", e);
            }
            if v.get("service").is_none() && v.get("dst_endpoint").is_none() {
                e.push("needs at least one of service, dst_endpoint".into());
            }
            if let Some(m) = v.get("is_mfa")
                && !m.is_boolean()
            {
                e.push("is_mfa: not a boolean".into());
            }
        }
        3001 => {
            if let Some(u) = need(v, "user", "", e) {
                user(u, "user", e);
            }
        }
        _ => {}
    }
    if let Some(r) = v.get("resources") {
        match r.as_array() {
            None => e.push("resources: not an array".into()),
            Some(list) => {
                for x in list {
                    string(x, "uid", "resources[].", e);
                    string(x, "type", "resources[].", e);
                }
            }
        }
    }
    errs
}
