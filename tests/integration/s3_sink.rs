//! The S3 sink against a real moto server: CloudTrail's own layout and format by default,
//! objects never mixing accounts or regions, encryption headers, multipart uploads.

use std::path::Path;

use crate::common::moto::Moto;
use crate::common::*;

pub(crate) const BUCKET: &str = "log-archive";

pub(crate) async fn objects(m: &Moto) -> Vec<(String, Vec<u8>)> {
    let s3 = m.s3();
    let list = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let mut out = Vec::new();
    for o in list.contents.unwrap_or_default() {
        let key = o.key.unwrap();
        let body = s3
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        out.push((key, body));
    }
    out
}

/// A file source reading `trail` into an S3 sink with `sink_keys` (besides type, inputs,
/// bucket, endpoint, region).
fn s3_pipeline(
    d: &Path,
    trail: &Path,
    m: &Moto,
    mut sink_keys: pipeline::Table,
) -> std::path::PathBuf {
    sink_keys.extend(keys! {
        "bucket" => BUCKET,
        "endpoint" => m.endpoint.clone(),
        "region" => "us-east-1",
    });
    Pipeline::new(d)
        .set("shutdown_timeout", "20s")
        .file_source("trail", trail)
        .sink("out", "s3", &["trail"], sink_keys)
        .write()
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudtrail_layout_per_account_and_region_with_encryption() {
    let m = Moto::start();
    m.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    copy_dir(&fixtures().join("invictus"), &trail.join("invictus"));
    copy_dir(&fixtures().join("stratus"), &trail.join("stratus"));
    let cfg = s3_pipeline(
        d.path(),
        &trail,
        &m,
        keys! { "server_side_encryption" => "AES256", "batch.timeout" => "200ms" },
    );
    let o = m.run_once(&cfg);
    expect_code(&o, 0);

    let objs = objects(&m).await;
    assert!(objs.len() > 5, "{} objects", objs.len());
    let mut got = Vec::new();
    for (key, body) in &objs {
        // AWSLogs/{account}/CloudTrail/{region}/YYYY/MM/DD/{account}_CloudTrail_{region}_YYYYMMDDTHHMMZ_{uuid}.json.gz
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 8, "{key}");
        assert_eq!((parts[0], parts[2]), ("AWSLogs", "CloudTrail"), "{key}");
        let (acct, region) = (parts[1], parts[3]);
        let name = parts[7];
        assert!(
            name.starts_with(&format!(
                "{acct}_CloudTrail_{region}_{}{}{}T",
                parts[4], parts[5], parts[6]
            )) && name.ends_with(".json.gz"),
            "{key}"
        );
        assert_eq!(
            name.len(),
            format!("{acct}_CloudTrail_{region}_20230710T1145Z_").len() + 16 + ".json.gz".len(),
            "{key}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&gunzip(body)).unwrap();
        for r in doc["Records"].as_array().unwrap() {
            assert_eq!(
                r["recipientAccountId"].as_str().unwrap_or("unknown"),
                acct,
                "{key}"
            );
            assert_eq!(
                r["awsRegion"].as_str().unwrap_or("unknown"),
                region,
                "{key}"
            );
            got.push(event_id(r));
        }
        let head = m
            .s3()
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption.map(|s| s.as_str().to_string()),
            Some("AES256".to_string()),
            "{key}"
        );
    }
    let want = sorted(
        fixture_records(&trail)
            .iter()
            .map(|(_, r)| event_id(r))
            .collect(),
    );
    assert_eq!(sorted(got), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_go_up_in_parts() {
    let m = Moto::start();
    m.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let (ids, bytes) = corpus::write_corpus(&trail, 12, 1000, 3);
    assert!(bytes > 12 << 20);
    let cfg = s3_pipeline(
        d.path(),
        &trail,
        &m,
        keys! {
            "key" => "big/{uuid}.ndjson",
            "encoding" => "ndjson",
            "compression" => "none",
            "multipart_threshold" => "6MiB",
            "part_size" => "5MiB",
            "batch.max_bytes" => "64MiB",
            "batch.timeout" => "2s",
        },
    );
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    let objs = objects(&m).await;
    assert!(
        objs.iter().any(|(_, b)| b.len() > 6 << 20),
        "at least one object over the multipart threshold"
    );
    let mut got = Vec::new();
    for (_, body) in &objs {
        for line in std::str::from_utf8(body).unwrap().lines() {
            got.push(event_id(&serde_json::from_str(line).unwrap()));
        }
    }
    assert_eq!(sorted(got), sorted(ids));
    // No multipart upload left behind.
    let left = m
        .s3()
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(left.uploads.unwrap_or_default().is_empty());
}
