//! The EventBridge sink against a real moto server (bus → rule → SQS queue, read back), behind
//! a proxy that checks every PutEvents call against AWS's limits and fails entries one by one:
//! throttled entries must be resent alone, refused ones never counted as delivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::corpus::{self, Gen};
use crate::common::moto::Moto;
use crate::common::proxy::{Action, Hook, Proxy};
use crate::common::*;

const PERMANENT: &str = "refused-by-eventbridge";

/// Entry size as EventBridge counts it.
fn entry_size(e: &Value) -> usize {
    let s = |k: &str| e[k].as_str().map_or(0, str::len);
    (if e.get("Time").is_some() { 14 } else { 0 }) + s("Source") + s("DetailType") + s("Detail")
}

fn detail_id(e: &Value) -> String {
    let d: Value = serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap();
    event_id(&d)
}

#[derive(Default)]
struct Seen {
    violations: Vec<String>,
    /// eventID → entries forwarded to moto.
    forwarded: BTreeMap<String, usize>,
    /// eventIDs failed once with ThrottlingException.
    throttled: HashSet<String>,
    entries_sent: usize,
}

/// Check each call, throttle every third entry the first time it is seen, refuse one always;
/// forward the rest and answer with per-entry results in the caller's order.
fn partial_failures(seen: Arc<Mutex<Seen>>) -> Hook {
    Arc::new(move |target, body| {
        if !target.ends_with(".PutEvents") {
            return Action::Forward(None, None);
        }
        let entries = body["Entries"].as_array().cloned().unwrap_or_default();
        let mut s = seen.lock().unwrap();
        s.entries_sent += entries.len();
        let total: usize = entries.iter().map(entry_size).sum();
        if entries.len() > 10 || total >= 256 * 1024 {
            s.violations
                .push(format!("{} entries, {total} bytes", entries.len()));
        }
        let mut fail: Vec<Option<(&str, &str)>> = Vec::new();
        let mut keep = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let id = detail_id(e);
            let f = if id == PERMANENT {
                Some(("InvalidArgument", "Parameter Detail is not valid."))
            } else if i % 3 == 1 && s.throttled.insert(id.clone()) {
                Some(("ThrottlingException", "Rate exceeded"))
            } else {
                *s.forwarded.entry(id).or_default() += 1;
                keep.push(e.clone());
                None
            };
            fail.push(f);
        }
        let after = move |status: u16, answer: Value| {
            let mut ok = answer["Entries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter();
            let merged: Vec<Value> = fail
                .iter()
                .map(|f| match f {
                    Some((code, msg)) => json!({"ErrorCode": code, "ErrorMessage": msg}),
                    None => ok.next().unwrap_or(json!({})),
                })
                .collect();
            let failed = merged
                .iter()
                .filter(|e| e.get("ErrorCode").is_some())
                .count();
            (
                status,
                json!({"FailedEntryCount": failed, "Entries": merged}),
            )
        };
        Action::Forward(Some(json!({"Entries": keep})), Some(Box::new(after)))
    })
}

async fn queue_for_rule(m: &Moto) -> String {
    let sqs = m.sqs();
    let url = sqs
        .create_queue()
        .queue_name("bus-target")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let eb = m.events();
    eb.put_rule()
        .name("cloudtrail")
        .event_pattern(r#"{"source":["trailship.cloudtrail"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("cloudtrail")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

async fn drain(m: &Moto, url: &str) -> Vec<Value> {
    let sqs = m.sqs();
    let mut out = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for msg in msgs {
            out.push(serde_json::from_str(msg.body.as_deref().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(msg.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_entries_are_retried_alone_and_refused_ones_never_count_as_delivered() {
    let m = Moto::start();
    let url = queue_for_rule(&m).await;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let proxy = Proxy::start(&m.endpoint, partial_failures(seen.clone())).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    std::fs::create_dir_all(trail.join("bad")).unwrap();
    let mut g = Gen::new(77);
    let mut good = Vec::new();
    // moto routes each entry through its rules in ~0.1 s: a few dozen events are enough.
    for f in 0..3 {
        let (ids, doc) = g.document(20);
        good.extend(ids);
        std::fs::write(
            trail.join(format!("{f}.json.gz")),
            corpus::gzip(doc.as_bytes()),
        )
        .unwrap();
    }
    // Refused: one entry EventBridge answers InvalidArgument for, one over 256 KiB.
    let big = format!(
        r#"{{"eventVersion":"1.08","eventTime":"2026-11-29T10:00:00Z","eventID":"too-big","eventType":"AwsApiCall","requestParameters":{{"policy":"{}"}}}}"#,
        "x".repeat(300_000)
    );
    let doc = format!(
        r#"{{"Records":[{{"eventVersion":"1.08","eventTime":"2026-11-29T10:00:00Z","eventID":"{PERMANENT}","eventType":"AwsApiCall"}},{big}]}}"#
    );
    std::fs::write(trail.join("bad/0.json"), doc).unwrap();
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .sink(
            "bus",
            "eventbridge",
            &["trail"],
            keys! {
                "endpoint" => proxy.endpoint.clone(),
                "region" => "us-east-1",
                "retry.initial_backoff" => "50ms",
                "retry.max_backoff" => "200ms",
            },
        )
        .write();
    let o = m.run_once(&cfg);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the refused events' file is not delivered: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    {
        let s = seen.lock().unwrap();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert!(!s.throttled.is_empty());
        // Every good entry reached EventBridge exactly once: retries resent only failed entries.
        assert!(s.forwarded.values().all(|n| *n == 1), "{:?}", s.forwarded);
        assert_eq!(
            s.entries_sent,
            good.len() + s.throttled.len() + 1,
            "entries sent = each good one once + each throttled one again + the refused one once"
        );
        println!(
            "PutEvents: {} entries sent for {} events, {} throttled and resent alone",
            s.entries_sent,
            good.len(),
            s.throttled.len()
        );
    }

    let delivered = drain(&m, &url).await;
    let ids: Vec<String> = delivered.iter().map(|e| event_id(&e["detail"])).collect();
    assert_eq!(sorted(ids), sorted(good));
    for e in &delivered {
        assert_eq!(e["source"], "trailship.cloudtrail");
        let want = match e["detail"]["eventType"].as_str() {
            Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
            Some("AwsCloudTrailInsight") => "AWS Insight via CloudTrail",
            _ => "AWS API Call via CloudTrail",
        };
        assert_eq!(e["detail-type"], want);
        let t = e["detail"]["eventTime"].as_str().unwrap();
        assert_eq!(e["time"].as_str().unwrap(), t, "Time is the eventTime");
    }
    let c = counters(&o.stderr);
    let rejected = |r: &str| {
        c.get(&format!(
            "eventbridge_rejected_events_total{{component=\"bus\",reason=\"{r}\"}}"
        ))
        .copied()
    };
    assert_eq!(rejected("too_large"), Some(1), "{c:?}");
    assert_eq!(rejected("InvalidArgument"), Some(1), "{c:?}");
}
