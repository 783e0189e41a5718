//! CloudTrail → OCSF 1.1.0, as Amazon Security Lake's CloudTrail source (version 2) writes it:
//! Authentication (3002) for console sign-ins, Account Change (3001) for IAM user and role
//! lifecycle, MFA and policy changes, API Activity (6003) for every other call. What is not
//! mapped goes to `unmapped` under its CloudTrail name.

use serde_json::{Map, Value, json};

pub const VERSION: &str = "1.1.0";

/// The verbs that open an API operation's name, by API Activity (OCSF `activity_id`): a name
/// is the verb's if it starts with the verb followed by an upper-case letter, a digit or its end.
const CREATE_VERBS: &[&str] = &[
    "Create",
    "Add",
    "Allocate",
    "Import",
    "Register",
    "Run",
    "Issue",
    "Generate",
    "Request",
    "Copy",
    "Upload",
    "Publish",
    "Send",
    "Invoke",
    "Assume",
    "Launch",
    "Provision",
    "Post",
];
const READ_VERBS: &[&str] = &[
    "Get", "Describe", "List", "Head", "Lookup", "Search", "Select", "Scan", "Query", "BatchGet",
    "Check", "Download", "Retrieve", "Decrypt", "Verify", "Test", "Preview", "Estimate",
    "Validate", "Filter", "Read", "View",
];
const UPDATE_VERBS: &[&str] = &[
    "Update",
    "Put",
    "Modify",
    "Set",
    "Change",
    "Attach",
    "Detach",
    "Associate",
    "Disassociate",
    "Enable",
    "Disable",
    "Tag",
    "Untag",
    "Reset",
    "Replace",
    "Start",
    "Stop",
    "Reboot",
    "Restore",
    "Apply",
    "Authorize",
    "Accept",
    "Reject",
    "Rotate",
    "Encrypt",
    "Resume",
    "Suspend",
    "Move",
    "Rename",
    "Renew",
    "Activate",
    "Deactivate",
    "Assign",
    "Unassign",
    "Link",
    "Unlink",
    "Grant",
    "Edit",
    "Restart",
];
const DELETE_VERBS: &[&str] = &[
    "Delete",
    "Remove",
    "Terminate",
    "Deregister",
    "Revoke",
    "Release",
    "Purge",
    "Destroy",
    "Deprovision",
    "Disconnect",
    "Cancel",
    "Abort",
    "Unsubscribe",
    "Clear",
    "Drop",
];

/// The CRUD activity of an API call, from its verb (`activity_id`, caption).
pub fn api_activity(event_name: &str, read_only: Option<bool>) -> (u8, &'static str) {
    let verb_is = |verbs: &[&str]| {
        verbs.iter().any(|v| {
            event_name.starts_with(v)
                && event_name[v.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
    };
    if verb_is(DELETE_VERBS) {
        (4, "Delete")
    } else if verb_is(CREATE_VERBS) {
        (1, "Create")
    } else if verb_is(READ_VERBS) {
        (2, "Read")
    } else if verb_is(UPDATE_VERBS) {
        (3, "Update")
    } else if read_only == Some(true) {
        (2, "Read")
    } else {
        (99, "Other")
    }
}

/// Account Change activities (OCSF 1.1.0) of IAM calls.
fn account_change(source: &str, name: &str) -> Option<(u8, &'static str)> {
    if source != "iam.amazonaws.com" {
        return None;
    }
    Some(match name {
        "CreateUser" | "CreateRole" | "CreateLoginProfile" => (1, "Create"),
        "EnableUser" => (2, "Enable"),
        "ChangePassword" | "UpdateLoginProfile" => (3, "Password Change"),
        "DeleteUser" | "DeleteRole" | "DeleteLoginProfile" => (6, "Delete"),
        "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" | "PutUserPolicy"
        | "PutRolePolicy" | "PutGroupPolicy" => (7, "Attach Policy"),
        "DetachUserPolicy" | "DetachRolePolicy" | "DetachGroupPolicy" | "DeleteUserPolicy"
        | "DeleteRolePolicy" | "DeleteGroupPolicy" => (8, "Detach Policy"),
        "EnableMFADevice" => (10, "MFA Factor Enable"),
        "DeactivateMFADevice" => (11, "MFA Factor Disable"),
        _ => return None,
    })
}

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|x| !x.is_empty())
}

/// Insert `v` when it is not null.
fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    if !v.is_null() {
        m.insert(k.into(), v);
    }
}

fn opt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |x| Value::String(x.into()))
}

fn obj(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// OCSF's user type for a CloudTrail identity type.
fn user_type(t: &str) -> (u8, &'static str) {
    match t {
        "IAMUser" | "AssumedRole" | "FederatedUser" | "IdentityCenterUser" | "SAMLUser"
        | "WebIdentityUser" => (1, "User"),
        "Root" => (2, "Admin"),
        "AWSService" | "AWSAccount" => (3, "System"),
        _ => (99, "Other"),
    }
}

/// The OCSF user for a CloudTrail `userIdentity`.
fn user(id: &Value) -> Value {
    let mut u = Map::new();
    let issuer = &id["sessionContext"]["sessionIssuer"];
    put(
        &mut u,
        "name",
        opt(s(&id["userName"]).or(s(&issuer["userName"]))),
    );
    put(&mut u, "uid", opt(s(&id["arn"])));
    // An Identity Center user is known by its identity-store user id (onBehalfOf.userId).
    put(
        &mut u,
        "uid_alt",
        opt(s(&id["onBehalfOf"]["userId"]).or(s(&id["principalId"]))),
    );
    put(
        &mut u,
        "credential_uid",
        opt(s(&id["accessKeyId"]).or(s(&id["credentialId"]))),
    );
    if let Some(t) = s(&id["type"]) {
        let (tid, caption) = user_type(t);
        u.insert("type_id".into(), tid.into());
        u.insert("type".into(), (if tid == 99 { t } else { caption }).into());
    }
    if let Some(a) = s(&id["accountId"]) {
        u.insert(
            "account".into(),
            json!({"uid": a, "type_id": 10, "type": "AWS Account"}),
        );
    }
    // A user is known by an account, a name or a uid: an AWS service acting on its own has
    // only its name (invokedBy), some identities only a principal id; one with none of these
    // is left out.
    if !has_user_key(&u)
        && let Some(x) = s(&id["invokedBy"]).or(s(&id["principalId"]))
    {
        let k = if s(&id["invokedBy"]).is_some() {
            "name"
        } else {
            "uid"
        };
        u.insert(k.into(), x.into());
    }
    if has_user_key(&u) {
        obj(u)
    } else {
        Value::Null
    }
}

/// OCSF's `at_least_one` of a user.
fn has_user_key(u: &Map<String, Value>) -> bool {
    ["account", "name", "uid"]
        .iter()
        .any(|k| u.contains_key(*k))
}

/// The user for a record: its `userIdentity`, with an Identity Center sign-in's user name
/// (`additionalEventData.UserName`) where the identity names none.
fn record_user(r: &Value) -> Value {
    let mut u = user(&r["userIdentity"]);
    if let (Value::Object(m), Some(n)) = (&mut u, s(&r["additionalEventData"]["UserName"]))
        && s(&r["userIdentity"]["userName"]).is_none()
    {
        m.insert("name".into(), n.into());
    }
    u
}

fn session(id: &Value) -> Value {
    let ctx = &id["sessionContext"];
    let mut m = Map::new();
    put(
        &mut m,
        "created_time_dt",
        opt(s(&ctx["attributes"]["creationDate"])),
    );
    if let Some(mfa) = s(&ctx["attributes"]["mfaAuthenticated"]) {
        m.insert("is_mfa".into(), (mfa == "true").into());
    }
    put(&mut m, "issuer", opt(s(&ctx["sessionIssuer"]["arn"])));
    obj(m)
}

fn actor(r: &Value) -> Value {
    let id = &r["userIdentity"];
    let mut a = Map::new();
    put(&mut a, "user", record_user(r));
    put(&mut a, "session", session(id));
    put(&mut a, "invoked_by", opt(s(&id["invokedBy"])));
    let mut idp = Map::new();
    put(
        &mut idp,
        "name",
        opt(s(&id["webIdFederationData"]["federatedProvider"]).or(s(&id["identityProvider"]))),
    );
    put(
        &mut idp,
        "uid",
        opt(s(&id["onBehalfOf"]["identityStoreArn"])),
    );
    put(&mut a, "idp", obj(idp));
    if !["process", "user", "invoked_by", "session"]
        .iter()
        .any(|k| a.contains_key(*k))
    {
        // OCSF requires an actor and this record names no caller at all (no CloudTrail writer
        // makes such a record): OCSF's own word for it, the Unknown user type.
        a.insert(
            "user".into(),
            json!({"name": "Unknown", "type_id": 0, "type": "Unknown"}),
        );
    }
    Value::Object(a)
}

fn src_endpoint(r: &Value) -> Value {
    let mut m = Map::new();
    if let Some(addr) = s(&r["sourceIPAddress"]) {
        if addr.parse::<std::net::IpAddr>().is_ok() {
            m.insert("ip".into(), addr.into());
        } else {
            // An AWS service calling on someone's behalf ("ec2.amazonaws.com", "AWS Internal"):
            // the service of a service-to-service call, and its domain when it is a name.
            m.insert("svc_name".into(), addr.into());
            if addr.contains('.') {
                m.insert("domain".into(), addr.into());
            }
        }
    }
    put(&mut m, "uid", opt(s(&r["vpcEndpointId"])));
    if !m.contains_key("ip")
        && !m.contains_key("svc_name")
        && let Some(svc) = s(&r["userIdentity"]["invokedBy"])
    {
        m.insert("svc_name".into(), svc.into());
    }
    if m.is_empty() {
        // Required, and the record says nothing of where the call came from.
        m.insert("svc_name".into(), "Unknown".into());
    }
    Value::Object(m)
}

fn resources(r: &Value) -> Value {
    let list: Vec<Value> = super::resource_entries(r)
        .map(|x| {
            let mut m = Map::new();
            // `ARNPrefix`: the objects under a prefix (S3 ListObjects, DeleteObjects).
            put(&mut m, "uid", opt(s(&x["ARN"]).or(s(&x["ARNPrefix"]))));
            put(&mut m, "type", opt(s(&x["type"])));
            if let Some(a) = s(&x["accountId"]) {
                m.insert("owner".into(), json!({"account": {"uid": a}}));
            }
            m
        })
        // A resource is known by its uid: an entry with only a type names none.
        .filter(|m| m.contains_key("uid"))
        .map(Value::Object)
        .collect();
    if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    }
}

/// Top-level CloudTrail keys every class maps.
const MAPPED: &[&str] = &[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "eventCategory",
    "resources",
    "vpcEndpointId",
    "apiVersion",
];

/// Normalize one record that happened at `when` (`known`: read from the record; else the time
/// it was normalized, the record's own text kept in `unmapped.eventTime`).
pub fn normalize(r: &Value, when: &super::time::When, known: bool) -> Value {
    let name = s(&r["eventName"]).unwrap_or("");
    let source = s(&r["eventSource"]).unwrap_or("");
    let id = &r["userIdentity"];
    let c = class_of(r, name, source);
    let mut o = Map::new();
    classification(&mut o, &c, name, failed(r));
    put(&mut o, "status_code", opt(s(&r["errorCode"])));
    put(&mut o, "status_detail", opt(s(&r["errorMessage"])));
    o.insert("time".into(), when.millis.into());
    let mut meta = metadata(r);
    if known {
        o.insert("time_dt".into(), when.rfc3339.clone().into());
    } else if let Value::Object(m) = &mut meta {
        m.insert("processed_time".into(), when.millis.into());
    }
    o.insert("metadata".into(), meta);
    o.insert("cloud".into(), cloud(r));
    o.insert("src_endpoint".into(), src_endpoint(r));
    if let Some(ua) = s(&r["userAgent"]) {
        o.insert("http_request".into(), json!({ "user_agent": ua }));
    }
    o.insert("actor".into(), actor(r));
    if c.class_uid == 6003 {
        // Only API Activity has resources in OCSF 1.1.0; the other classes keep them unmapped.
        put(&mut o, "resources", resources(r));
    }
    match c.class_uid {
        3002 => authentication(&mut o, r, source),
        3001 => account_change_details(&mut o, r),
        _ => {}
    }
    // API details for every class (the call is what happened).
    o.insert("api".into(), api(r, name, source));
    let mut rest = unmapped(r, id, c.class_uid);
    if !known && !r["eventTime"].is_null() {
        let m = rest.as_object_mut();
        match m {
            Some(m) => {
                m.insert("eventTime".into(), r["eventTime"].clone());
            }
            None => rest = json!({ "eventTime": r["eventTime"] }),
        }
    }
    put(&mut o, "unmapped", rest);
    let seen = observables(&o);
    put(&mut o, "observables", seen);
    Value::Object(o)
}

/// The event's IPs, user names and ARNs, each named by where it is in the event (OCSF 1.1.0
/// observable type ids: 2 IP Address, 4 User Name, 10 Resource UID).
fn observables(o: &Map<String, Value>) -> Value {
    let mut list = Vec::new();
    let mut add = |name: &str, type_id: u8, caption: &str, v: &Value| {
        if let Some(x) = v.as_str() {
            list.push(json!({"name": name, "type_id": type_id, "type": caption, "value": x}));
        }
    };
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    add(
        "src_endpoint.ip",
        2,
        "IP Address",
        &get("src_endpoint")["ip"],
    );
    for who in ["actor.user", "user"] {
        let u = match who {
            "user" => get("user"),
            _ => &get("actor")["user"],
        };
        if u["type_id"] != 0 {
            add(&format!("{who}.name"), 4, "User Name", &u["name"]);
        }
        if u["uid"].as_str().is_some_and(|x| x.starts_with("arn:")) {
            add(&format!("{who}.uid"), 10, "Resource UID", &u["uid"]);
        }
    }
    if let Some(issuer) = get("actor")["session"]["issuer"].as_str() {
        add(
            "actor.session.issuer",
            10,
            "Resource UID",
            &Value::String(issuer.into()),
        );
    }
    for res in get("resources").as_array().into_iter().flatten() {
        add("resources.uid", 10, "Resource UID", &res["uid"]);
    }
    if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    }
}

/// The OCSF class and activity of a record.
struct Class {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u8,
    caption: &'static str,
}

fn class_of(r: &Value, name: &str, source: &str) -> Class {
    let iam = |class_uid, class_name, (activity_id, caption)| Class {
        class_uid,
        class_name,
        category_uid: 3,
        category_name: "Identity & Access Management",
        activity_id,
        caption,
    };
    if super::is_sign_in(r) {
        let a = if name == "ConsoleLogin" {
            (1, "Logon")
        } else {
            (99, "Other")
        };
        iam(3002, "Authentication", a)
    } else if let Some(a) = account_change(source, name) {
        iam(3001, "Account Change", a)
    } else {
        let (activity_id, caption) = api_activity(name, r["readOnly"].as_bool());
        Class {
            class_uid: 6003,
            class_name: "API Activity",
            category_uid: 6,
            category_name: "Application Activity",
            activity_id,
            caption,
        }
    }
}

/// An error code, or a console sign-in that did not succeed.
fn failed(r: &Value) -> bool {
    let login_failed = super::is_sign_in(r)
        && s(&r["responseElements"]["ConsoleLogin"]).is_some_and(|x| x != "Success");
    s(&r["errorCode"]).is_some() || login_failed
}

/// Class, category, activity, type, severity and status.
fn classification(o: &mut Map<String, Value>, c: &Class, name: &str, failed: bool) {
    let activity_name = if c.activity_id == 99 { name } else { c.caption };
    o.insert("activity_id".into(), c.activity_id.into());
    o.insert("activity_name".into(), activity_name.into());
    o.insert("category_uid".into(), c.category_uid.into());
    o.insert("category_name".into(), c.category_name.into());
    o.insert("class_uid".into(), c.class_uid.into());
    o.insert("class_name".into(), c.class_name.into());
    o.insert(
        "type_uid".into(),
        (u64::from(c.class_uid) * 100 + u64::from(c.activity_id)).into(),
    );
    o.insert(
        "type_name".into(),
        format!("{}: {activity_name}", c.class_name).into(),
    );
    o.insert("severity_id".into(), 1.into());
    o.insert("severity".into(), "Informational".into());
    o.insert("status_id".into(), (if failed { 2 } else { 1 }).into());
    o.insert(
        "status".into(),
        (if failed { "Failure" } else { "Success" }).into(),
    );
}

fn metadata(r: &Value) -> Value {
    let mut product = Map::new();
    product.insert("name".into(), "CloudTrail".into());
    product.insert("vendor_name".into(), "AWS".into());
    put(&mut product, "version", opt(s(&r["eventVersion"])));
    if let Some(c) = s(&r["eventCategory"]) {
        product.insert("feature".into(), json!({ "name": c }));
    }
    let mut meta = Map::new();
    meta.insert("product".into(), Value::Object(product));
    meta.insert("version".into(), VERSION.into());
    meta.insert("profiles".into(), json!(["cloud", "datetime"]));
    put(&mut meta, "uid", opt(s(&r["eventID"])));
    put(&mut meta, "event_code", opt(s(&r["eventType"])));
    Value::Object(meta)
}

fn cloud(r: &Value) -> Value {
    let mut cloud = Map::new();
    cloud.insert("provider".into(), "AWS".into());
    put(&mut cloud, "region", opt(s(&r["awsRegion"])));
    if let Some(a) = s(&r["recipientAccountId"]) {
        cloud.insert(
            "account".into(),
            json!({"uid": a, "type_id": 10, "type": "AWS Account"}),
        );
    }
    Value::Object(cloud)
}

/// A user object, or OCSF's Unknown user type where the class requires one and there is none.
fn user_or_unknown(u: Value) -> Value {
    if u.is_null() {
        json!({"name": "Unknown", "type_id": 0, "type": "Unknown"})
    } else {
        u
    }
}

/// Authentication (3002): the user, the service signed in to (and the console URL signed in
/// to, `LoginTo`), MFA.
fn authentication(o: &mut Map<String, Value>, r: &Value, source: &str) {
    o.insert("user".into(), user_or_unknown(record_user(r)));
    if !source.is_empty() {
        o.insert("service".into(), json!({ "name": source }));
    }
    if let Some(to) = s(&r["additionalEventData"]["LoginTo"]) {
        o.insert("dst_endpoint".into(), json!({ "svc_name": to }));
    } else if source.is_empty() {
        o.insert("dst_endpoint".into(), json!({ "svc_name": "Unknown" }));
    }
    if let Some(mfa) = s(&r["additionalEventData"]["MFAUsed"]) {
        o.insert("is_mfa".into(), (mfa == "Yes").into());
    }
}

/// Account Change (3001): the user or role the call names (with its ids from the response,
/// as CreateUser and CreateRole return them), else the caller; the policy.
fn account_change_details(o: &mut Map<String, Value>, r: &Value) {
    let p = &r["requestParameters"];
    let target = s(&p["userName"]).or(s(&p["roleName"]));
    let u = match target {
        Some(n) => {
            let made = &r["responseElements"];
            let made = if made["user"].is_object() {
                &made["user"]
            } else {
                &made["role"]
            };
            let mut m = Map::new();
            m.insert("name".into(), n.into());
            put(&mut m, "uid", opt(s(&made["arn"])));
            put(
                &mut m,
                "uid_alt",
                opt(s(&made["userId"]).or(s(&made["roleId"]))),
            );
            Value::Object(m)
        }
        None => user(&r["userIdentity"]),
    };
    o.insert("user".into(), user_or_unknown(u));
    if let Some(arn) = s(&p["policyArn"]) {
        o.insert(
            "policy".into(),
            json!({ "uid": arn, "name": arn.rsplit('/').next().unwrap_or(arn) }),
        );
    } else if let Some(n) = s(&p["policyName"]) {
        o.insert("policy".into(), json!({ "name": n }));
    }
}

fn api(r: &Value, name: &str, source: &str) -> Value {
    let mut api = Map::new();
    api.insert("operation".into(), name.into());
    if !source.is_empty() {
        api.insert("service".into(), json!({ "name": source }));
    }
    put(&mut api, "version", opt(s(&r["apiVersion"])));
    if let Some(req) = s(&r["requestID"]) {
        let mut m = Map::new();
        m.insert("uid".into(), req.into());
        put(&mut m, "data", r["requestParameters"].clone());
        api.insert("request".into(), Value::Object(m));
    }
    let mut resp = Map::new();
    put(&mut resp, "error", opt(s(&r["errorCode"])));
    put(&mut resp, "message", opt(s(&r["errorMessage"])));
    put(&mut resp, "data", r["responseElements"].clone());
    put(&mut api, "response", obj(resp));
    Value::Object(api)
}

/// The rest, under its CloudTrail name.
fn unmapped(r: &Value, id: &Value, class_uid: u32) -> Value {
    let mut unmapped = Map::new();
    if let Some(rec) = r.as_object() {
        for (k, v) in rec {
            if MAPPED.contains(&k.as_str()) || v.is_null() {
                continue;
            }
            unmapped.insert(k.clone(), v.clone());
        }
    }
    if !r["resources"].is_null() && class_uid != 6003 {
        unmapped.insert("resources".into(), r["resources"].clone());
    }
    if s(&r["requestID"]).is_none() && !r["requestParameters"].is_null() {
        unmapped.insert("requestParameters".into(), r["requestParameters"].clone());
    }
    if let Some(t) = s(&id["type"]) {
        unmapped.insert("userIdentity.type".into(), t.into());
    }
    obj(unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_make_activities() {
        assert_eq!(api_activity("CreateBucket", None), (1, "Create"));
        assert_eq!(api_activity("DescribeInstances", Some(true)), (2, "Read"));
        assert_eq!(api_activity("PutBucketPolicy", Some(false)), (3, "Update"));
        assert_eq!(api_activity("DeleteTrail", None), (4, "Delete"));
        assert_eq!(api_activity("ConsoleLogin", None), (99, "Other"));
        assert_eq!(
            api_activity("Settle", Some(true)),
            (2, "Read"),
            "not the verb Set"
        );
        assert_eq!(api_activity("Getaway", Some(false)), (99, "Other"));
    }
}
