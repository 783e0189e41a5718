//! CloudTrail → Elastic Common Schema, as Elastic's own AWS CloudTrail integration writes it
//! (its ingest pipeline read as the reference): `event.*`, `user.*`, `group.*`, `source.*`,
//! `user_agent.original`, `cloud.*`, `related.*`, `tls.*`, the actor/target entities
//! (`entity.rs`) and the CloudTrail specifics under `aws.cloudtrail.*` (request, response,
//! additional data and service event details both as Elastic's `{key=value}` text and as
//! `flattened.*` objects). Null, empty, `-` and `none` values in the record are dropped first,
//! as Elastic does. Not done: user-agent parsing and GeoIP (Elastic's ingest node adds those).

mod category;
mod entity;
mod services;
mod text;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use text::{Ordered, java_order, java_text};

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

/// Epoch milliseconds as Elastic writes `@timestamp`: `2016-11-14T17:25:45.000Z`.
fn millis_text(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Any time form CloudTrail writes, as Elastic writes it.
fn timestamp(t: &str) -> Option<String> {
    millis_text(super::time::parse_text(t)?.millis)
}

/// Whether Elastic's first pass drops this value: null, empty, `-`, `none`, or a list or
/// object left empty by the pass.
/// A text Elastic's first pass drops as empty.
fn empty_text(s: &str) -> bool {
    s.is_empty() || s == "-" || s == "none"
}

fn droppable(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => empty_text(s),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Drop, recursively, what Elastic's pipeline drops before it maps a record.
pub fn drop_empty(v: &mut Value) {
    match v {
        Value::Array(a) => {
            a.iter_mut().for_each(drop_empty);
            a.retain(|x| !droppable(x));
        }
        Value::Object(m) => {
            m.values_mut().for_each(drop_empty);
            m.retain(|_, x| !droppable(x));
        }
        _ => {}
    }
}

/// Normalize one record (`r` with its empty values dropped, see [`drop_empty`]; `raw` is its
/// original text, kept in `event.original`).
pub fn normalize(r: &Value, raw: &str, when: &super::time::When) -> Value {
    let ts = millis_text(when.millis).unwrap_or_default();
    let mut o = Map::new();
    let name = s(&r["eventName"]).unwrap_or("");
    let source = s(&r["eventSource"]).unwrap_or("");
    set(&mut o, "@timestamp", ts.into());
    set(&mut o, "ecs.version", "8.11.0".into());
    event_fields(&mut o, r, name, source, raw);
    cloud_fields(&mut o, r, source);
    let related = user_fields(&mut o, r, name);
    source_fields(&mut o, r);
    entity::fields(&mut o, r, source, name);
    if let Some(svc) = s(&r["userIdentity"]["invokedBy"]) {
        set(&mut o, "service.name", svc.into());
    }
    if let Some(tls) = r["tlsDetails"].as_object() {
        tls_fields(&mut o, tls);
    }
    if !related.is_empty() {
        set(&mut o, "related.user", json!(related));
    }
    cloudtrail_fields(&mut o, r, raw);
    Value::Object(o)
}

/// A field under `aws.cloudtrail.`.
fn ct(o: &mut Map<String, Value>, k: &str, v: Value) {
    set(o, &format!("aws.cloudtrail.{k}"), v)
}

/// `event.*`: kind, action, provider, outcome, the original, category and type.
fn event_fields(o: &mut Map<String, Value>, r: &Value, name: &str, source: &str, raw: &str) {
    let failed = s(&r["errorCode"]).is_some() || s(&r["errorMessage"]).is_some();
    let mut outcome = if failed { "failure" } else { "success" }.to_string();
    if name == "ConsoleLogin"
        && let Some(x) = s(&r["responseElements"]["ConsoleLogin"])
    {
        outcome = x.to_lowercase();
    }
    set(o, "event.kind", "event".into());
    set(o, "event.dataset", "aws.cloudtrail".into());
    set(o, "event.module", "aws".into());
    set(
        o,
        "event.action",
        str_v(Some(name).filter(|n| !n.is_empty())),
    );
    set(
        o,
        "event.provider",
        str_v(Some(source).filter(|n| !n.is_empty())),
    );
    set(o, "event.id", str_v(s(&r["eventID"])));
    set(o, "event.outcome", outcome.into());
    set(o, "event.original", raw.into());
    let (category, types) = category::of(name);
    if !category.is_empty() {
        set(o, "event.category", json!(category));
    }
    if !types.is_empty() {
        set(o, "event.type", json!(types));
    }
}

/// `cloud.*`: provider, region, account (the caller's, else the recipient's), service.
fn cloud_fields(o: &mut Map<String, Value>, r: &Value, source: &str) {
    set(o, "cloud.provider", "aws".into());
    set(o, "cloud.region", str_v(s(&r["awsRegion"])));
    set(
        o,
        "cloud.account.id",
        str_v(s(&r["userIdentity"]["accountId"]).or(s(&r["recipientAccountId"]))),
    );
    if let Some(svc) = source.strip_suffix(".amazonaws.com") {
        set(o, "cloud.service.name", svc.into());
    }
}

/// An assumed role's or federated user's session name: what its ARN has after the last `/`.
fn session_name(id: &Value) -> Option<&str> {
    if !matches!(id["type"].as_str(), Some("AssumedRole" | "FederatedUser")) {
        return None;
    }
    let arn = s(&id["arn"])?;
    let rest = arn
        .strip_prefix("arn:aws:sts:")
        .or(arn.strip_prefix("arn:aws-us-gov:sts:"))?;
    rest.rsplit_once('/')
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty())
}

/// `user.*` and `group.*`: the caller (a role's name for an assumed role; the Identity Center
/// user), its e-mail (from an e-mail session name or user name), the user and group a call
/// acts on or renames; returns the users for `related.user`, in Elastic's order.
fn user_fields(o: &mut Map<String, Value>, r: &Value, name: &str) -> Vec<String> {
    let id = &r["userIdentity"];
    let (req, resp) = (&r["requestParameters"], &r["responseElements"]);
    let mut related: Vec<&str> = Vec::new();
    let mut email = None;
    if let Some(session) = session_name(id) {
        related.push(session);
        if let Some((prefix, _)) = session.split_once('@') {
            related.push(prefix);
            email = Some(session);
        }
    }
    let mut user_name = s(&id["userName"]);
    if matches!(id["type"].as_str(), Some("AssumedRole" | "FederatedUser")) {
        user_name = s(&id["sessionContext"]["sessionIssuer"]["userName"]).or(user_name);
    }
    if name == "UserAuthentication" && user_name.is_none() {
        user_name = s(&r["additionalEventData"]["UserName"]);
    }
    let mut user_id = s(&id["principalId"]);
    if id["type"] == "IdentityCenterUser" && user_id.is_none() {
        user_id = s(&id["onBehalfOf"]["userId"]);
    }
    let changed = s(&req["newUserName"]);
    related.extend(
        [s(&req["userName"]), changed, s(&resp["user"]["userId"])]
            .into_iter()
            .flatten(),
    );
    let email = email.or(user_name.filter(|u| u.find('@').is_some_and(|i| i > 0)));
    related.extend([user_id, user_name, changed].into_iter().flatten());
    set(o, "user.name", str_v(user_name));
    set(o, "user.id", str_v(user_id));
    set(o, "user.email", str_v(email));
    set(o, "user.target.name", str_v(s(&req["userName"])));
    set(o, "user.target.id", str_v(s(&resp["user"]["userId"])));
    set(o, "user.changes.name", str_v(changed));
    set(o, "group.name", str_v(s(&req["groupName"])));
    set(o, "group.id", str_v(s(&resp["group"]["groupId"])));
    let mut seen = std::collections::HashSet::new();
    related
        .into_iter()
        .filter(|u| seen.insert(*u))
        .map(String::from)
        .collect()
}

/// `source.*`: the address, and the IP when it is one; `user_agent.original`.
fn source_fields(o: &mut Map<String, Value>, r: &Value) {
    if let Some(addr) = s(&r["sourceIPAddress"]) {
        set(o, "source.address", addr.into());
        if addr.parse::<std::net::IpAddr>().is_ok() {
            set(o, "source.ip", addr.into());
            set(o, "related.ip", json!([addr]));
        }
    }
    set(o, "user_agent.original", str_v(s(&r["userAgent"])));
}

/// `tls.*` from `tlsDetails`.
fn tls_fields(o: &mut Map<String, Value>, tls: &Map<String, Value>) {
    let text = |k: &str| {
        tls.get(k)
            .and_then(|v| v.as_str())
            .filter(|x| !x.is_empty())
    };
    if let Some(v) = text("tlsVersion") {
        // "TLSv1.3" → tls.version "1.3", tls.version_protocol "tls"; without a `v`, as it is.
        match v.split_once('v') {
            Some((proto, ver)) => {
                set(o, "tls.version", str_v(Some(ver).filter(|x| !x.is_empty())));
                if !proto.is_empty() {
                    set(o, "tls.version_protocol", proto.to_lowercase().into());
                }
            }
            None => set(o, "tls.version", v.into()),
        }
    }
    set(o, "tls.cipher", str_v(text("cipherSuite")));
    set(
        o,
        "tls.client.server_name",
        str_v(text("clientProvidedHostHeader")),
    );
}

/// `aws.cloudtrail.resources`: each resource once per (ARN, account, type), with Elastic's
/// key names, in the order Elastic's Java map of them iterates.
fn resources(r: &Value) -> Option<Value> {
    // In the order first put, a repeated key's last value (a Java map's put).
    let mut unique: Vec<(String, Map<String, Value>)> = Vec::new();
    for x in super::resource_entries(r) {
        let Some(m) = x.as_object() else { continue };
        let mut res = m.clone();
        if let Some(v) = res.remove("ARN") {
            res.insert("arn".into(), v);
        }
        if let Some(v) = res.remove("accountId") {
            res.insert("account_id".into(), v);
        }
        let part = |k: &str| res.get(k).map_or(String::new(), plain_text);
        let key = format!("{}_{}_{}", part("arn"), part("account_id"), part("type"));
        match unique.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = res,
            None => unique.push((key, res)),
        }
    }
    if unique.is_empty() {
        return None;
    }
    let held = unique.len();
    let list = java_order(unique.iter().map(|(k, v)| (k.as_str(), v)), held)
        .into_iter()
        .map(|(_, v)| Value::Object(v.clone()))
        .collect();
    Some(Value::Array(list))
}

/// A value as Painless's string concatenation writes it.
fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => java_text(other),
    }
}

/// The record's parts Elastic renders as text, as the record wrote them.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(rename = "requestParameters", borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(rename = "responseElements", borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(rename = "additionalEventData", borrow, default)]
    additional: Option<&'a RawValue>,
    #[serde(rename = "serviceEventDetails", borrow, default)]
    service: Option<&'a RawValue>,
}

impl<'a> Parts<'a> {
    fn of(&self, field: &str) -> Option<&'a RawValue> {
        match field {
            "requestParameters" => self.request,
            "responseElements" => self.response,
            "additionalEventData" => self.additional,
            "serviceEventDetails" => self.service,
            _ => None,
        }
    }
}

/// `v` (the record's `field`) in Elastic's text form, its keys in the record's order when
/// its text can be read again from `parts`.
fn rendered(v: &Value, part: Option<&RawValue>) -> String {
    let ordered = part.and_then(|p| serde_json::from_str::<Ordered>(p.get()).ok());
    match ordered {
        Some(mut o) => {
            o.drop_empty();
            o.java_text()
        }
        None => java_text(v),
    }
}

/// `aws.cloudtrail.*`: the record's own fields as Elastic's integration names them.
fn cloudtrail_fields(o: &mut Map<String, Value>, r: &Value, raw: &str) {
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
    if !r["managementEvent"].is_null() {
        ct(
            o,
            "management_event",
            plain_text(&r["managementEvent"]).into(),
        );
    }
    ct(
        o,
        "session_credential_from_console",
        r["sessionCredentialFromConsole"].clone(),
    );
    ct(o, "error_code", str_v(s(&r["errorCode"])));
    ct(o, "error_message", str_v(s(&r["errorMessage"])));
    user_identity_fields(o, &r["userIdentity"]);
    let parts = serde_json::from_str::<Parts>(raw).ok();
    let part = parts.as_ref();
    for (k, f) in [
        ("request_parameters", "requestParameters"),
        ("response_elements", "responseElements"),
        ("additional_eventdata", "additionalEventData"),
        ("service_event_details", "serviceEventDetails"),
    ] {
        let v = &r[f];
        if !v.is_null() {
            let text = rendered(v, part.and_then(|p| p.of(f)));
            // Elastic keeps the object only while its text fits a keyword (32,766 bytes).
            let fits = text.encode_utf16().count() < 32766;
            ct(o, k, text.into());
            if fits {
                ct(o, &format!("flattened.{k}"), v.clone());
            }
        }
    }
    if let Some(list) = resources(r) {
        ct(o, "resources", list);
    }
    console_login_fields(o, r);
    if !r["insightDetails"].is_null() {
        ct(o, "flattened.insight_details", r["insightDetails"].clone());
    }
}

/// `aws.cloudtrail.console_login.additional_eventdata.*` of a console sign-in.
fn console_login_fields(o: &mut Map<String, Value>, r: &Value) {
    if r["eventName"] != "ConsoleLogin" {
        return;
    }
    let a = &r["additionalEventData"];
    let yes = |k: &str| match &a[k] {
        Value::Null => Value::Null,
        v => Value::Bool(v != "No"),
    };
    let base = "console_login.additional_eventdata";
    ct(o, &format!("{base}.login_to"), a["LoginTo"].clone());
    ct(o, &format!("{base}.mobile_version"), yes("MobileVersion"));
    ct(o, &format!("{base}.mfa_used"), yes("MFAUsed"));
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
