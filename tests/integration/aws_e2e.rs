//! End to end on AWS APIs (moto): trail objects put in a bucket → S3's own notifications on a
//! queue → trailship → CloudWatch Logs (behind the strict, throttling proxy) and an S3
//! log-archive bucket; read both back and compare by eventID; the queue is empty afterwards.

use crate::cloudwatch_logs::strict_proxy;
use crate::common::corpus::{self, Gen};
use crate::common::moto::Moto;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_to_queue_to_cloudwatch_logs_and_s3() {
    let m = Moto::start();
    let url = crate::sqs::setup(&m).await;
    m.s3()
        .create_bucket()
        .bucket(crate::s3_sink::BUCKET)
        .send()
        .await
        .unwrap();
    let (proxy, violations) = strict_proxy(&m, 2, None).await;
    let now = chrono::Utc::now().timestamp();
    let mut g = Gen::starting_at(21, now - 3 * 3600, 3);
    let mut ids = Vec::new();
    for i in 0..6 {
        let (fids, doc) = g.document(300);
        ids.extend(fids);
        let key = format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/29/111122223333_CloudTrail_us-east-1_20261129T10{i:02}Z_{i:016}.json.gz"
        );
        crate::sqs::put(&m, &key, corpus::gzip(doc.as_bytes())).await;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = Pipeline::new(d.path())
        .source(
            "queue",
            "sqs",
            keys! {
                "queue_url" => url.clone(),
                "endpoint" => m.endpoint.clone(),
                "region" => "us-east-1",
            },
        )
        .sink(
            "cwl",
            "cloudwatch_logs",
            &["queue"],
            keys! {
                "group" => "/cloudtrail/{account_id}",
                "retention_days" => 30,
                "endpoint" => proxy.endpoint.clone(),
                "region" => "us-east-1",
                "retry.initial_backoff" => "50ms",
            },
        )
        .sink(
            "archive",
            "s3",
            &["queue"],
            keys! {
                "bucket" => crate::s3_sink::BUCKET,
                "endpoint" => m.endpoint.clone(),
                "region" => "us-east-1",
            },
        )
        .write();
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    assert!(violations.lock().unwrap().is_empty());

    let in_logs: Vec<String> = m
        .all_log_events()
        .await
        .iter()
        .map(|(_, _, msg)| event_id(&serde_json::from_str(msg).unwrap()))
        .collect();
    assert_same_ids(&in_logs, &ids, "CloudWatch Logs");
    let mut in_s3 = Vec::new();
    for (_, body) in crate::s3_sink::objects(&m).await {
        let doc: serde_json::Value = serde_json::from_slice(&gunzip(&body)).unwrap();
        in_s3.extend(doc["Records"].as_array().unwrap().iter().map(event_id));
    }
    assert_same_ids(&in_s3, &ids, "S3 archive");
    assert_eq!(crate::sqs::messages_left(&m, &url).await, (0, 0));
}
