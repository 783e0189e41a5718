//! The normalize transform on the real binary over every recorded CloudTrail fixture: OCSF
//! output checked against the OCSF 1.1.0 rules (tests/common/ocsf.rs), ECS output against
//! expected values written here, and the routing header kept (sinks still key by it).

use serde_json::Value;

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
    let mut invalid = Vec::new();
    let mut classes = std::collections::BTreeMap::new();
    for doc in &docs {
        let errs = crate::common::ocsf::validate(doc);
        if !errs.is_empty() {
            invalid.push((doc["metadata"]["uid"].clone(), errs));
        }
        *classes
            .entry(doc["class_uid"].as_i64().unwrap_or(0))
            .or_insert(0) += 1;
    }
    assert!(
        invalid.is_empty(),
        "{} invalid, e.g. {:?}",
        invalid.len(),
        &invalid[..invalid.len().min(3)]
    );
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
        "measured: {} recorded events normalized to OCSF 1.1.0, all valid; by class: {classes:?}",
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
