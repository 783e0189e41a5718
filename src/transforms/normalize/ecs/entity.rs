//! Entities as Elastic's CloudTrail integration finds them (its actor/target mapping): who
//! acted (`actor.entity.id`, and by kind `user.`/`host.`/`service.`/`entity.` ids), what the
//! call acted on (`target.entity.id`, and by kind `user.target.`, `host.target.`,
//! `service.target.`, `entity.target.`), and every entity the record names
//! (`related.entity`). Per service, a table says which fields name related entities and, per
//! event name, which name the targets. Sets come out sorted, as Elastic's do.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::set;

use super::services::{Pick, RESOURCES, Rule, SERVICES};
use Pick::{Chain, Each};

/// The values a path reaches (`[]` after a segment walks each item of that list).
fn reach<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    let (seg, rest) = match path.split_once('.') {
        Some((s, r)) => (s, Some(r)),
        None => (path, None),
    };
    let items: Vec<&Value> = match seg.strip_suffix("[]") {
        Some(name) => v[name].as_array().into_iter().flatten().collect(),
        None => vec![&v[seg]],
    };
    for x in items {
        match rest {
            Some(r) => reach(x, r, out),
            None if !x.is_null() => out.push(x),
            None => {}
        }
    }
}

/// A value as an entity id: a non-empty string, or a number (as its text).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn pick(r: &Value, p: &Pick, into: &mut BTreeSet<String>) {
    let mut found = Vec::new();
    match p {
        Each(path) => {
            reach(r, path, &mut found);
            into.extend(found.into_iter().filter_map(text));
        }
        Chain(items, fields) => {
            reach(r, items, &mut found);
            for item in found {
                chain(item, fields, into);
            }
        }
    }
}

/// Add `fields` of `item` in order, stopping at the first that is missing or already known.
fn chain(item: &Value, fields: &[&str], into: &mut BTreeSet<String>) {
    for f in fields {
        let mut values = Vec::new();
        reach(item, f, &mut values);
        if values.is_empty() {
            return;
        }
        for v in values {
            if !text(v).is_some_and(|t| into.insert(t)) {
                return;
            }
        }
    }
}

fn named(rule: &Rule, name: &str) -> bool {
    rule.0.iter().any(|n| match n.strip_prefix('~') {
        Some(part) => name.contains(part),
        None => *n == name,
    })
}

/// SSM SendCommand's targets: the instance ids it names, or its targets' values; all
/// instances (`*`) stand for the account.
fn send_command_targets(r: &Value, into: &mut BTreeSet<String>) {
    let p = &r["requestParameters"];
    let mut ids: Vec<&Value> = p["instanceIds"].as_array().into_iter().flatten().collect();
    if ids.is_empty() {
        reach(p, "targets[].values[]", &mut ids);
    }
    if ids.len() == 1 && ids[0].as_str() == Some("*") {
        ids = vec![&r["recipientAccountId"]];
    }
    for v in ids {
        if !text(v).is_some_and(|t| into.insert(t)) {
            break;
        }
    }
}

/// The acting entity: the identity's ARN (or an Identity Center user's id); for AssumeRole,
/// the service, or the role behind an assumed role, that assumed it.
fn actor(r: &Value, source: &str, name: &str) -> Option<String> {
    let id = &r["userIdentity"];
    let s = |v: &Value| v.as_str().filter(|x| !x.is_empty()).map(String::from);
    if source == "sts.amazonaws.com" && name == "AssumeRole" {
        return match id["type"].as_str() {
            Some("AWSService") => s(&id["invokedBy"]),
            Some("AssumedRole") => s(&id["sessionContext"]["sessionIssuer"]["arn"]),
            _ => s(&id["arn"]),
        };
    }
    s(&id["arn"]).or_else(|| s(&id["onBehalfOf"]["userId"]))
}

/// An ARN's resource type (`role` in `arn:aws:iam::1:role/x`) and its service.
fn arn_parts(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let resource = parts.get(5)?;
    let kind = match resource.find('/') {
        Some(i) if i > 0 => &resource[..i],
        _ => resource,
    };
    Some((parts[2], kind))
}

const USER_TYPES: &[&str] = &[
    "assumed-role",
    "federated-user",
    "instance-profile",
    "mfa",
    "role",
    "serialNumber",
    "user",
];
const SERVICE_TYPES: &[&str] = &[
    "alarm",
    "cluster",
    "configuration-recorder",
    "db",
    "detector",
    "dhcp-options",
    "document",
    "file-system",
    "function",
    "global-cluster",
    "group",
    "ipset",
    "key",
    "loadbalancer",
    "log-group",
    "log-stream",
    "model",
    "mount-target",
    "network-acl",
    "network-interface",
    "parameter",
    "policy",
    "resolver-query-log-config",
    "rule",
    "rulegroup",
    "secret",
    "security-group",
    "session",
    "stack",
    "stack-set",
    "subnet",
    "table",
    "topic",
    "trail",
    "trust-anchor",
    "vpc",
    "webacl",
];
const SERVICE_PREFIXES: &[&str] = &[
    "sg-", "sgr-", "eni-", "vpc-", "subnet-", "acl-", "rtb-", "igw-", "nat-", "vpce-", "tgw-",
    "pcx-",
];

fn service_linked(x: &str) -> bool {
    x.contains("/AWSServiceRoleFor") || x.contains("/aws-service-role/")
}

/// Which kind of target an id is: `user`, `host`, `service` or `entity` (anything else).
fn target_kind(t: &str) -> &'static str {
    if let Some((service, kind)) = t.strip_prefix("arn:").and_then(|_| arn_parts(t)) {
        return if service_linked(t) {
            "service"
        } else if USER_TYPES.contains(&kind) {
            "user"
        } else if kind == "instance" {
            "host"
        } else if SERVICE_TYPES.contains(&kind) || service == "s3" {
            "service"
        } else {
            "entity"
        };
    }
    if t.len() == 20 && t.starts_with("AKIA") {
        "user"
    } else if t.starts_with("i-") {
        "host"
    } else if SERVICE_PREFIXES.iter().any(|p| t.starts_with(p)) {
        "service"
    } else {
        "entity"
    }
}

/// Which kind of entity the actor is.
fn actor_kind(r: &Value, a: &str) -> &'static str {
    let kind = r["userIdentity"]["type"].as_str().unwrap_or("");
    if kind == "AWSService" || service_linked(a) {
        return "service";
    }
    if ["AssumedRole", "IAMUser", "Root"].contains(&kind) {
        return "user";
    }
    match a.strip_prefix("arn:").and_then(|_| arn_parts(a)) {
        Some((_, "user" | "role" | "assumed-role" | "federated-user")) => "user",
        Some((_, "instance")) => "host",
        _ if a.starts_with("i-") => "host",
        _ => "entity",
    }
}

fn ids(v: &BTreeSet<String>) -> Value {
    json!(v.iter().collect::<Vec<_>>())
}

/// The related entities and targets named by the record's service tables.
fn related_and_targets(
    r: &Value,
    source: &str,
    name: &str,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut related = BTreeSet::new();
    for p in [
        "userIdentity.accessKeyId",
        "userIdentity.arn",
        "userIdentity.userName",
        "userIdentity.sessionContext.sessionIssuer.arn",
        "userIdentity.sessionContext.sessionIssuer.userName",
    ] {
        pick(r, &Each(p), &mut related);
    }
    if r["userIdentity"]["type"] == "IdentityCenterUser" {
        pick(
            r,
            &Each("userIdentity.onBehalfOf.identityStoreArn"),
            &mut related,
        );
    }
    pick(r, &RESOURCES, &mut related);
    let mut targets = BTreeSet::new();
    if let Some(svc) = SERVICES.iter().find(|s| s.source == source) {
        for p in svc.related {
            pick(r, p, &mut related);
        }
        for rule in svc.targets.iter().filter(|rule| named(rule, name)) {
            for p in rule.1 {
                pick(r, p, &mut targets);
            }
        }
    }
    if source == "ssm.amazonaws.com" && name == "SendCommand" {
        send_command_targets(r, &mut targets);
    }
    (related, targets)
}

/// Write the actor, targets and related entities of record `r` into `o`.
pub fn fields(o: &mut Map<String, Value>, r: &Value, source: &str, name: &str) {
    let (mut related, targets) = related_and_targets(r, source, name);
    if !targets.is_empty() {
        set(o, "target.entity.id", ids(&targets));
        let mut by_kind: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for t in &targets {
            by_kind.entry(target_kind(t)).or_default().insert(t.clone());
        }
        for (kind, of_kind) in &by_kind {
            let field = match *kind {
                "user" => "user.target.entity.id",
                "host" => "host.target.entity.id",
                "service" => "service.target.entity.id",
                _ => "entity.target.id",
            };
            set(o, field, ids(of_kind));
        }
        related.extend(targets);
    }
    if let Some(a) = actor(r, source, name) {
        set(o, "actor.entity.id", json!([a]));
        let field = match actor_kind(r, &a) {
            "user" => "user.entity.id",
            "host" => "host.entity.id",
            "service" => "service.entity.id",
            _ => "entity.id",
        };
        set(o, field, json!([a]));
    }
    if !related.is_empty() {
        set(o, "related.entity", ids(&related));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(record: &str) -> Value {
        let r: Value = serde_json::from_str(record).unwrap();
        let mut o = Map::new();
        let source = r["eventSource"].as_str().unwrap_or("").to_string();
        let name = r["eventName"].as_str().unwrap_or("").to_string();
        fields(&mut o, &r, &source, &name);
        Value::Object(o)
    }

    #[test]
    fn assume_role_by_a_role_names_the_role_behind_it_and_the_role_assumed() {
        let o = out(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s","accessKeyId":"ASIAX","sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::1:role/R","userName":"R"}}},"requestParameters":{"roleArn":"arn:aws:iam::1:role/T","roleSessionName":"s"}}"#,
        );
        assert_eq!(o["actor"]["entity"]["id"], json!(["arn:aws:iam::1:role/R"]));
        assert_eq!(o["user"]["entity"]["id"], json!(["arn:aws:iam::1:role/R"]));
        assert_eq!(
            o["target"]["entity"]["id"],
            json!(["arn:aws:iam::1:role/T"])
        );
        assert_eq!(
            o["user"]["target"]["entity"]["id"],
            json!(["arn:aws:iam::1:role/T"])
        );
        assert_eq!(
            o["related"]["entity"],
            json!([
                "ASIAX",
                "R",
                "arn:aws:iam::1:role/R",
                "arn:aws:iam::1:role/T",
                "arn:aws:sts::1:assumed-role/R/s",
                "s"
            ])
        );
    }

    #[test]
    fn targets_are_sorted_by_kind_and_chains_stop_at_a_gap() {
        let o = out(
            r#"{"eventSource":"ec2.amazonaws.com","eventName":"AuthorizeSecurityGroupIngress","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"},"requestParameters":{"groupId":"sg-1"},"responseElements":{"securityGroupRuleSet":{"items":[{"groupId":"sg-1","securityGroupRuleId":"sgr-9"},{"securityGroupRuleId":"sgr-8"}]}}}"#,
        );
        assert_eq!(
            o["target"]["entity"]["id"],
            json!(["sg-1", "sgr-8", "sgr-9"])
        );
        assert_eq!(
            o["service"]["target"]["entity"]["id"],
            json!(["sg-1", "sgr-8", "sgr-9"])
        );
        // The first item's group is known already (the request named it), so its rule id is
        // not added to the related set by that chain; it comes in as a target.
        assert_eq!(
            o["related"]["entity"],
            json!(["arn:aws:iam::1:user/u", "sg-1", "sgr-8", "sgr-9"])
        );
    }

    #[test]
    fn ssm_send_command_to_every_instance_targets_the_account() {
        let o = out(
            r#"{"eventSource":"ssm.amazonaws.com","eventName":"SendCommand","recipientAccountId":"111122223333","requestParameters":{"targets":[{"key":"InstanceIds","values":["*"]}]}}"#,
        );
        assert_eq!(o["entity"]["target"]["id"], json!(["111122223333"]));
        assert!(o.get("actor").is_none());
    }
}
