//! The normalize transform on the real binary over every recorded CloudTrail fixture: OCSF
//! output checked against the OCSF 1.1.0 rules (tests/common/ocsf.rs), ECS output against
//! expected values written here, and the routing header kept (sinks still key by it).

use serde_json::{Value, json};

use crate::common::*;

fn normalize_fixtures(d: &std::path::Path, schema: &str, path: &str) -> Vec<Value> {
    let cfg = Pipeline::new(d)
        .file_source_with(
            "trail",
            &fixtures(),
            keys! { "exclude" => vec!["**/digest/**", "**/README.md"] },
        )
        .transform(
            "norm",
            "normalize",
            &["trail"],
            keys! { "schema" => schema },
        )
        .file_sink("out", &["norm"], &d.join("out").join(path), keys! {})
        .write();
    run_once(&cfg);
    files_under(&d.join("out"))
        .iter()
        .flat_map(|f| {
            String::from_utf8_lossy(&read_maybe_gz(f))
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn by_uid<'a>(docs: &'a [Value], key: &str, id: &str) -> &'a Value {
    docs.iter()
        .find(|d| d.pointer(key).and_then(|v| v.as_str()) == Some(id))
        .unwrap_or_else(|| panic!("no document with {key} = {id}"))
}

#[test]
fn every_recorded_event_becomes_valid_ocsf() {
    let d = tempfile::tempdir().unwrap();
    let inputs = fixture_records(&fixtures());
    // Keyed and partitioned by the original record's header: {account_id} and eventTime's day.
    let docs = normalize_fixtures(d.path(), "ocsf", "{account_id}/%Y-%m-%d.ndjson");
    assert_eq!(docs.len(), inputs.len(), "one OCSF event per record");
    let (classes, invalid) = crate::common::ocsf::summary(&docs);
    let kinds: std::collections::BTreeSet<&String> = invalid.iter().flat_map(|(_, e)| e).collect();
    assert!(
        invalid.is_empty(),
        "{} of {} invalid; the violations: {kinds:#?}; e.g. {:?}",
        invalid.len(),
        docs.len(),
        &invalid[..invalid.len().min(3)]
    );
    // Every event with a source IP carries it as an observable.
    let with_ip: Vec<&Value> = docs
        .iter()
        .filter(|d| d["src_endpoint"]["ip"].is_string())
        .collect();
    let observed = with_ip
        .iter()
        .filter(|d| {
            d["observables"].as_array().into_iter().flatten().any(|o| {
                o["name"] == "src_endpoint.ip"
                    && o["type_id"] == 2
                    && o["value"] == d["src_endpoint"]["ip"]
            })
        })
        .count();
    assert_eq!(observed, with_ip.len());
    // The original eventIDs, one each.
    let uids: Vec<String> = docs
        .iter()
        .map(|d| {
            d["metadata"]["uid"]
                .as_str()
                .unwrap_or("<none>")
                .to_string()
        })
        .collect();
    let want: Vec<String> = inputs.iter().map(|(_, v)| event_id(v)).collect();
    assert_same_ids(&uids, &want, "metadata.uid");
    // Expected values for three recorded events, written from the records themselves.
    let del = by_uid(
        &docs,
        "/metadata/uid",
        "0c3bce40-9649-4435-9328-f244fed293b5",
    );
    assert_eq!(del["class_uid"], 6003);
    assert_eq!(del["activity_id"], 4);
    assert_eq!(del["type_uid"], 600304);
    assert_eq!(del["status"], "Failure");
    assert_eq!(del["status_code"], "BucketNotEmpty");
    assert_eq!(del["api"]["operation"], "DeleteBucket");
    assert_eq!(del["api"]["service"]["name"], "s3.amazonaws.com");
    assert_eq!(del["actor"]["user"]["name"], "bert-jan");
    assert_eq!(del["actor"]["user"]["type_id"], 1);
    assert_eq!(del["cloud"]["region"], "us-east-1");
    assert_eq!(del["resources"][0]["type"], "AWS::S3::Bucket");
    assert_eq!(del["time"], 1_688_990_885_000i64);
    let login = docs
        .iter()
        .find(|d| d["class_uid"] == 3002 && d["status"] == "Failure")
        .expect("a failed console sign-in");
    assert_eq!(login["activity_id"], 1);
    assert_eq!(login["activity_name"], "Logon");
    assert!(login["user"].is_object());
    let change = docs
        .iter()
        .find(|d| d["class_uid"] == 3001)
        .expect("an IAM account change");
    assert!(change["user"]["name"].is_string());
    // A file per account and day: the header survived normalization.
    let files: Vec<_> = files_under(&d.path().join("out"));
    assert!(
        files.iter().any(|f| f
            .to_string_lossy()
            .contains("/123837392027/2023-07-10.ndjson")),
        "{files:?}"
    );
    println!(
        "measured: {} recorded events normalized to OCSF 1.1.0, all valid against the v1.1.0 schema; by class: {classes:?}; {observed} with an IP observable",
        docs.len()
    );
}

#[test]
fn ecs_documents_carry_what_elastics_integration_writes() {
    let d = tempfile::tempdir().unwrap();
    let docs = normalize_fixtures(d.path(), "ecs", "out.ndjson");
    let inputs = fixture_records(&fixtures());
    assert_eq!(docs.len(), inputs.len());
    let del = by_uid(&docs, "/event/id", "0c3bce40-9649-4435-9328-f244fed293b5");
    assert_eq!(del["@timestamp"], "2023-07-10T12:08:05.000Z");
    assert_eq!(del["event"]["action"], "DeleteBucket");
    assert_eq!(del["event"]["provider"], "s3.amazonaws.com");
    assert_eq!(del["event"]["outcome"], "failure");
    assert_eq!(del["event"]["kind"], "event");
    assert_eq!(del["event"]["type"], serde_json::json!(["deletion"]));
    assert_eq!(del["event"]["category"], serde_json::json!(["file"]));
    assert_eq!(del["user"]["name"], "bert-jan");
    assert_eq!(del["cloud"]["account"]["id"], "123837392027");
    assert_eq!(del["aws"]["cloudtrail"]["error_code"], "BucketNotEmpty");
    assert_eq!(
        del["aws"]["cloudtrail"]["flattened"]["request_parameters"]["bucketName"],
        "stratus-red-team-ctes-bucket-qyxyekjbtk"
    );
    let original: Value = serde_json::from_str(del["event"]["original"].as_str().unwrap()).unwrap();
    assert_eq!(original["eventID"], "0c3bce40-9649-4435-9328-f244fed293b5");
    let login = docs
        .iter()
        .find(|d| d["event"]["action"] == "ConsoleLogin" && d["event"]["outcome"] == "failure")
        .expect("a failed console sign-in");
    assert_eq!(
        login["event"]["category"],
        serde_json::json!(["authentication"])
    );
    assert!(
        login["aws"]["cloudtrail"]["console_login"]["additional_eventdata"]["mfa_used"]
            .is_boolean()
    );
}

/// Records that test the edges of the mapping, as CloudTrail, its exporters and hostile
/// writers make them.
const EDGE_RECORDS: &[&str] = &[
    // CloudTrail Lake / Athena export time; an AWS service as the source; a big integer.
    r#"{"eventVersion":"1.08","eventTime":"2025-03-26 16:43:57.000000000","eventSource":"s3.amazonaws.com","eventName":"PutObject","awsRegion":"us-east-1","sourceIPAddress":"cloudformation.amazonaws.com","userIdentity":{"type":"AWSService","invokedBy":"cloudformation.amazonaws.com"},"requestParameters":{"n":123456789012345678901234567890},"eventID":"edge-1","recipientAccountId":"111122223333"}"#,
    // Epoch milliseconds; no userIdentity; no source address.
    r#"{"eventTime":1742999037000,"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"edge-2"}"#,
    // A time in no known form; null fields; a number where a string belongs.
    r#"{"eventTime":"yesterday","eventSource":null,"eventName":42,"userIdentity":null,"sourceIPAddress":"203.0.113.9","eventID":"edge-3"}"#,
    // Identity Center sign-in: the user name only in additionalEventData, the idp in onBehalfOf.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userIdentity":{"type":"IdentityCenterUser","accountId":"111122223333","onBehalfOf":{"userId":"9067a5ee-1234","identityStoreArn":"arn:aws:identitystore::111122223333:identitystore/d-1234567890"},"credentialId":"cred"},"additionalEventData":{"UserName":"alice@example.com","LoginTo":"https://console.aws.amazon.com/"},"responseElements":{"ConsoleLogin":"Success"},"eventID":"edge-4"}"#,
    // CreateUser: the new user's ids in the response; a resource known only by a prefix.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:01Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","sourceIPAddress":"AWS Internal","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/admin","accountId":"111122223333","userName":"admin"},"requestParameters":{"userName":"bob"},"responseElements":{"user":{"userName":"bob","userId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/bob"}},"resources":[{"ARNPrefix":"arn:aws:s3:::b/","type":"AWS::S3::Object"},{"type":"AWS::S3::Bucket"}],"eventID":"edge-5"}"#,
    // S3 DeleteObjects: a resource known only by a prefix, one by nothing but its type.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:02Z","eventSource":"s3.amazonaws.com","eventName":"DeleteObjects","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/admin","accountId":"111122223333","userName":"admin"},"resources":[{"ARNPrefix":"arn:aws:s3:::b/","type":"AWS::S3::Object"},{"type":"AWS::S3::Bucket"}],"eventID":"edge-6"}"#,
    // An assumed role whose session is named by an e-mail address; empty values Elastic drops.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:03Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.8","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:jo@example.com","arn":"arn:aws:sts::111122223333:assumed-role/Sso/jo@example.com","accountId":"111122223333","accessKeyId":"ASIAEXAMPLE","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/Sso","userName":"Sso"}}},"requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/Target","roleSessionName":"jo@example.com","policy":"","tags":[],"durationSeconds":"-"},"responseElements":{"assumedRoleUser":{"assumedRoleId":"AROAT:jo","arn":"arn:aws:sts::111122223333:assumed-role/Target/jo"}},"managementEvent":true,"eventID":"edge-7","recipientAccountId":"111122223333"}"#,
    // An Identity Center sign-in: the user named only in additionalEventData.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:04Z","eventSource":"signin.amazonaws.com","eventName":"UserAuthentication","eventType":"AwsServiceEvent","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.9","userIdentity":{"type":"IdentityCenterUser","accountId":"111122223333","onBehalfOf":{"userId":"9067a5ee-5678","identityStoreArn":"arn:aws:identitystore::111122223333:identitystore/d-1234567890"},"credentialId":"cred"},"additionalEventData":{"UserName":"sam@example.com","CredentialType":"PASSWORD"},"serviceEventDetails":{"CredentialChallenge":"Success","empty":""},"eventID":"edge-8","recipientAccountId":"111122223333"}"#,
    // IAM UpdateUser renames a user; AddUserToGroup names the group.
    r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:05Z","eventSource":"iam.amazonaws.com","eventName":"UpdateUser","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.2","userIdentity":{"type":"IAMUser","principalId":"AIDAADMIN","arn":"arn:aws:iam::111122223333:user/admin","accountId":"111122223333","userName":"admin"},"requestParameters":{"userName":"bob","newUserName":"robert","groupName":"ops"},"eventID":"edge-9"}"#,
];

fn normalize_edges(schema: &str) -> Vec<Value> {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("edge.ndjson"), EDGE_RECORDS.join("\n") + "\n").unwrap();
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &input)
        .transform(
            "norm",
            "normalize",
            &["trail"],
            keys! { "schema" => schema },
        )
        .file_sink("out", &["norm"], &d.path().join("out.ndjson"), keys! {})
        .write();
    run_once(&cfg);
    let text = std::fs::read_to_string(d.path().join("out.ndjson")).unwrap();
    // Integers beyond 64 bits come out as the record wrote them.
    assert!(
        text.contains(r#""n":123456789012345678901234567890"#),
        "{text}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn edge_records_become_valid_ocsf_with_every_time_form_read() {
    let docs = normalize_edges("ocsf");
    assert_eq!(docs.len(), EDGE_RECORDS.len(), "none passed raw, none lost");
    let (_, invalid) = crate::common::ocsf::summary(&docs);
    assert!(invalid.is_empty(), "{invalid:#?}");
    let by = |id: &str| by_uid(&docs, "/metadata/uid", id);
    // The validator applies the dictionary's own regexes and ranges: a bent copy fails.
    let mut bent = by("edge-6").clone();
    bent["actor"]["user"]["email_addr"] = json!("not an address");
    bent["src_endpoint"]["port"] = json!(70000);
    let errs = crate::common::ocsf::validate(&bent).join("\n");
    assert!(errs.contains("is not a email_t"), "{errs}");
    assert!(errs.contains("is not a port_t"), "{errs}");
    let lake = by("edge-1");
    assert_eq!(lake["time"], 1_743_007_437_000i64);
    assert_eq!(lake["time_dt"], "2025-03-26T16:43:57Z");
    assert_eq!(
        lake["src_endpoint"]["svc_name"],
        "cloudformation.amazonaws.com"
    );
    assert_eq!(
        lake["actor"]["user"]["name"],
        "cloudformation.amazonaws.com"
    );
    assert_eq!(by("edge-2")["time"], 1_742_999_037_000i64);
    assert_eq!(by("edge-2")["actor"]["user"]["type_id"], 0);
    // No time to read: the time it was normalized, the record's text kept.
    let bad = by("edge-3");
    assert!(bad.get("time_dt").is_none());
    assert_eq!(bad["metadata"]["processed_time"], bad["time"]);
    assert_eq!(bad["unmapped"]["eventTime"], "yesterday");
    assert!(bad["observables"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"name": "src_endpoint.ip", "type_id": 2, "type": "IP Address", "value": "203.0.113.9"})));
    let sso = by("edge-4");
    assert_eq!(sso["class_uid"], 3002);
    assert_eq!(sso["user"]["name"], "alice@example.com");
    assert_eq!(sso["actor"]["user"]["uid_alt"], "9067a5ee-1234");
    assert_eq!(
        sso["actor"]["idp"]["uid"],
        "arn:aws:identitystore::111122223333:identitystore/d-1234567890"
    );
    assert_eq!(
        sso["dst_endpoint"]["svc_name"],
        "https://console.aws.amazon.com/"
    );
    let made = by("edge-5");
    assert_eq!(made["class_uid"], 3001);
    assert_eq!(made["user"]["uid"], "arn:aws:iam::111122223333:user/bob");
    assert_eq!(made["user"]["uid_alt"], "AIDAEXAMPLE");
    // Account Change has no resources in OCSF 1.1.0: they stay under their CloudTrail name.
    assert!(made.get("resources").is_none());
    assert_eq!(
        made["unmapped"]["resources"][0]["ARNPrefix"],
        "arn:aws:s3:::b/"
    );
    assert_eq!(made["src_endpoint"]["svc_name"], "AWS Internal");
    let del = by("edge-6");
    assert_eq!(
        del["resources"],
        serde_json::json!([{"uid": "arn:aws:s3:::b/", "type": "AWS::S3::Object"}])
    );
    let obs = del["observables"].as_array().unwrap();
    for (name, value) in [
        ("actor.user.name", "admin"),
        ("actor.user.uid", "arn:aws:iam::111122223333:user/admin"),
        ("resources.uid", "arn:aws:s3:::b/"),
    ] {
        assert!(
            obs.iter().any(|o| o["name"] == name && o["value"] == value),
            "{name} in {obs:?}"
        );
    }
    let text = serde_json::to_string(&docs).unwrap();
    assert!(
        !text.contains("\"unknown\""),
        "no invented lower-case placeholders"
    );
}

#[test]
fn edge_records_become_ecs_with_every_time_form_read() {
    let docs = normalize_edges("ecs");
    assert_eq!(docs.len(), EDGE_RECORDS.len(), "none passed raw, none lost");
    let by = |id: &str| by_uid(&docs, "/event/id", id);
    assert_eq!(by("edge-1")["@timestamp"], "2025-03-26T16:43:57.000Z");
    assert_eq!(by("edge-2")["@timestamp"], "2025-03-26T14:23:57.000Z");
    assert!(
        by("edge-3")["@timestamp"].is_string(),
        "the time it was normalized"
    );
    // As Elastic's pipeline writes them (its default.yml and its own pipeline tests).
    let made = by("edge-5");
    assert_eq!(made["user"]["target"]["id"], "AIDAEXAMPLE");
    assert_eq!(made["user"]["target"]["name"], "bob");
    assert_eq!(made["event"]["category"], json!(["iam"]));
    assert_eq!(made["event"]["type"], json!(["user", "creation"]));
    assert_eq!(
        made["related"]["user"],
        json!(["bob", "AIDAEXAMPLE", "admin"])
    );
    assert_eq!(made["target"]["entity"]["id"], json!(["bob"]));
    assert_eq!(made["entity"]["target"]["id"], json!(["bob"]));
    let role = by("edge-7");
    assert_eq!(role["user"]["name"], "Sso");
    assert_eq!(role["user"]["email"], "jo@example.com");
    assert_eq!(
        role["related"]["user"],
        json!(["jo@example.com", "jo", "AROAEXAMPLE:jo@example.com", "Sso"])
    );
    assert_eq!(
        role["actor"]["entity"]["id"],
        json!(["arn:aws:iam::111122223333:role/Sso"])
    );
    assert_eq!(
        role["target"]["entity"]["id"],
        json!(["arn:aws:iam::111122223333:role/Target"])
    );
    assert_eq!(role["aws"]["cloudtrail"]["management_event"], "true");
    let ct = &role["aws"]["cloudtrail"];
    assert_eq!(
        ct["flattened"]["request_parameters"],
        json!({"roleArn": "arn:aws:iam::111122223333:role/Target", "roleSessionName": "jo@example.com"})
    );
    assert!(
        !ct["request_parameters"]
            .as_str()
            .unwrap()
            .contains("policy=")
    );
    let sso = by("edge-8");
    assert_eq!(sso["user"]["name"], "sam@example.com");
    assert_eq!(sso["user"]["email"], "sam@example.com");
    assert_eq!(sso["user"]["id"], "9067a5ee-5678");
    assert_eq!(
        sso["aws"]["cloudtrail"]["flattened"]["service_event_details"],
        json!({"CredentialChallenge": "Success"})
    );
    assert_eq!(
        sso["aws"]["cloudtrail"]["service_event_details"],
        "{CredentialChallenge=Success}"
    );
    assert!(
        sso["related"]["entity"]
            .as_array()
            .unwrap()
            .contains(&json!(
                "arn:aws:identitystore::111122223333:identitystore/d-1234567890"
            ))
    );
    let renamed = by("edge-9");
    assert_eq!(renamed["user"]["changes"]["name"], "robert");
    assert_eq!(renamed["group"]["name"], "ops");
    assert_eq!(renamed["event"]["type"], json!(["user", "change"]));
    assert_eq!(
        renamed["related"]["user"],
        json!(["bob", "robert", "AIDAADMIN", "admin"])
    );
    // No category where Elastic has none, and its default type.
    let listed = by("edge-6");
    assert!(listed["event"].get("category").is_none());
    assert_eq!(listed["event"]["type"], json!(["info"]));
    assert_eq!(by("edge-2")["event"]["category"], json!(["host"]));
}
