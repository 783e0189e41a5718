//! The CloudWatch Logs sink against a real moto server behind a strict proxy that refuses any
//! PutLogEvents call AWS would refuse (moto itself checks only the order): count, bytes with
//! the 26-byte overhead, event size, order and the 24-hour span.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::corpus::{self, Gen};
use crate::common::moto::Moto;
use crate::common::proxy::{Action, Hook, Proxy, aws_error};
use crate::common::*;

const MAX_EVENTS: usize = 10_000;
const MAX_BYTES: usize = 1_048_576;
const OVERHEAD: usize = 26;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What AWS would say about a PutLogEvents body, or None when it would accept it.
fn aws_would_refuse(body: &Value) -> Option<String> {
    let events = body["logEvents"].as_array()?;
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Some(format!("{} events in one call", events.len()));
    }
    let mut bytes = 0;
    let mut last = i64::MIN;
    for e in events {
        let size = e["message"].as_str().unwrap_or("").len() + OVERHEAD;
        if size > MAX_BYTES {
            return Some(format!("event of {size} bytes"));
        }
        bytes += size;
        let ts = e["timestamp"].as_i64().unwrap_or(0);
        if ts < last {
            return Some("not in chronological order".into());
        }
        last = ts;
    }
    if bytes > MAX_BYTES {
        return Some(format!("{bytes} bytes in one call"));
    }
    let first = events[0]["timestamp"].as_i64().unwrap_or(0);
    if last - first > DAY_MS {
        return Some(format!("call spans {} ms", last - first));
    }
    None
}

/// A proxy refusing what AWS refuses (recording it), throttling the first `throttle` calls,
/// and denying CreateLogGroup for `deny_group` (a role allowed to create streams only).
pub(crate) async fn strict_proxy(
    m: &Moto,
    throttle: usize,
    deny_group: Option<&str>,
) -> (Proxy, Arc<Mutex<Vec<String>>>) {
    let deny_group = deny_group.map(str::to_string);
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let v = violations.clone();
    let seen = Arc::new(Mutex::new(0usize));
    let hook: Hook = Arc::new(move |target, body| {
        if target.ends_with(".CreateLogGroup")
            && deny_group.as_deref() == body["logGroupName"].as_str()
        {
            return aws_error(
                400,
                "AccessDeniedException",
                "not authorized to perform: logs:CreateLogGroup",
            );
        }
        if !target.ends_with(".PutLogEvents") {
            return Action::Forward(None, None);
        }
        if let Some(why) = aws_would_refuse(body) {
            v.lock().unwrap().push(why.clone());
            return aws_error(400, "InvalidParameterException", &why);
        }
        let mut n = seen.lock().unwrap();
        *n += 1;
        if *n <= throttle {
            return aws_error(400, "ThrottlingException", "Rate exceeded");
        }
        Action::Forward(None, None)
    });
    (Proxy::start(&m.endpoint, hook).await, violations)
}

/// A record with its eventTime set to `unix_secs` and, when `pad > 0`, a field that makes it
/// about `pad` bytes larger.
fn record_at(g: &mut Gen, unix_secs: i64, pad: usize) -> (String, String) {
    let (id, json) = g.record();
    let mut v: Value = serde_json::from_str(&json).unwrap();
    let t = chrono::DateTime::from_timestamp(unix_secs, 0).unwrap();
    v["eventTime"] = t.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    if pad > 0 {
        v["requestParameters"] = serde_json::json!({ "policyDocument": "x".repeat(pad) });
    }
    (id, v.to_string())
}

/// Write records (shuffled: the sink must order them) as one gzip CloudTrail file.
fn write_doc(path: &Path, mut records: Vec<String>, seed: u64) {
    fastrand::Rng::with_seed(seed).shuffle(&mut records);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let doc = format!("{{\"Records\":[{}]}}", records.join(","));
    std::fs::write(path, corpus::gzip(doc.as_bytes())).unwrap();
}

/// A file source reading `trail` into the sink `cwl`, with `sink_keys` added.
fn cwl(d: &Path, trail: &Path, endpoint: &str, sink_keys: pipeline::Table) -> Pipeline {
    let mut keys = keys! {
        "endpoint" => endpoint,
        "region" => "us-east-1",
        "retry.initial_backoff" => "50ms",
        "retry.max_backoff" => "500ms",
    };
    pipeline::merge(&mut keys, sink_keys);
    Pipeline::new(d)
        .file_source("trail", trail)
        .sink("cwl", "cloudwatch_logs", &["trail"], keys)
}

fn cwl_pipeline(
    d: &Path,
    trail: &Path,
    endpoint: &str,
    sink_keys: pipeline::Table,
) -> std::path::PathBuf {
    cwl(d, trail, endpoint, sink_keys).write()
}

fn ids_of(events: &[(String, String, String)]) -> Vec<String> {
    sorted(
        events
            .iter()
            .map(|(_, _, m)| event_id(&serde_json::from_str(m).unwrap()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_obey_every_putlogevents_rule_and_refused_events_never_count_as_delivered() {
    let m = Moto::start();
    let (proxy, violations) = strict_proxy(&m, 0, None).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let now = chrono::Utc::now().timestamp();
    let mut g = Gen::new(41);
    let mut good = Vec::new();
    // 30,000 small records (as a filter or a normalizer may leave them) within ~21 hours: at
    // ~60 bytes each, the count rule cuts calls at 10,000 before the byte rule does.
    let mut t = now - 40 * 3600;
    for f in 0..6 {
        let mut recs = Vec::new();
        for i in 0..5000 {
            t += fastrand::i64(0..5);
            let id = format!("dense-{f}-{i}");
            let time = chrono::DateTime::from_timestamp(t, 0).unwrap();
            recs.push(format!(
                "{{\"eventTime\":\"{}\",\"eventID\":\"{id}\"}}",
                time.format("%Y-%m-%dT%H:%M:%SZ")
            ));
            good.push(id);
        }
        write_doc(&trail.join(format!("dense/{f}.json.gz")), recs, f);
    }
    // 600 events over three days: the 24-hour rule cuts calls.
    let mut recs = Vec::new();
    for i in 0..600 {
        let (id, r) = record_at(&mut g, now - 4 * 86_400 + i * 432, 0);
        good.push(id);
        recs.push(r);
    }
    write_doc(&trail.join("spread/0.json.gz"), recs, 7);
    // 30 events of ~120 KB: the byte rule cuts calls (8 fit in 1 MiB).
    let mut recs = Vec::new();
    for i in 0..30 {
        let (id, r) = record_at(&mut g, now - 30 * 3600 + i * 60, 120_000);
        good.push(id);
        recs.push(r);
    }
    write_doc(&trail.join("large/0.json.gz"), recs, 8);
    // What CloudWatch refuses: too old, too new (two: moto reports only the last one), and
    // one event over the maximum size. Their file is not committed.
    let mut recs = Vec::new();
    let mut refused = Vec::new();
    for (when, pad) in [
        (now - 20 * 86_400, 0),
        (now - 19 * 86_400, 0),
        (now - 18 * 86_400, 0),
        (now + 86_400, 0),
        (now + 86_400 + 60, 0),
        (now - 3600, 1_100_000),
    ] {
        let (id, r) = record_at(&mut g, when, pad);
        refused.push(id);
        recs.push(r);
    }
    write_doc(&trail.join("refused/0.json.gz"), recs, 9);

    let cfg = cwl_pipeline(
        d.path(),
        &trail,
        &proxy.endpoint,
        keys! {
            "group" => "/cloudtrail/all",
            "stream" => "everything",
            "retention_days" => 7,
            "batch.max_events" => 100000,
            "batch.max_bytes" => "64MiB",
            "batch.timeout" => "2s",
        },
    );
    let o = m.run_once(&cfg);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(3),
        "refused events leave their file undelivered: {stderr}"
    );

    assert_eq!(*violations.lock().unwrap(), Vec::<String>::new());
    let calls = proxy.calls_of("PutLogEvents");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| c.body["logEvents"].as_array().map_or(0, |a| a.len()))
        .collect();
    let bytes = |c: &crate::common::proxy::Call| -> usize {
        c.body["logEvents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().len() + OVERHEAD)
            .sum()
    };
    let span = |c: &crate::common::proxy::Call| -> i64 {
        let a = c.body["logEvents"].as_array().unwrap();
        a.last().unwrap()["timestamp"].as_i64().unwrap() - a[0]["timestamp"].as_i64().unwrap()
    };
    assert!(
        sizes.contains(&MAX_EVENTS),
        "a call cut at 10,000 events: {sizes:?}"
    );
    assert!(
        calls.iter().any(|c| bytes(c) > MAX_BYTES - 130_000),
        "a call cut by bytes"
    );
    assert!(
        calls.iter().any(|c| span(c) > DAY_MS - 3_600_000),
        "a call cut by the 24-hour rule"
    );
    println!(
        "PutLogEvents calls: {} (events per call {:?})",
        calls.len(),
        sizes
    );

    // Read back: every good event exactly once, none of the refused.
    let got = m.all_log_events().await;
    assert!(
        got.iter()
            .all(|(g, s, _)| g == "/cloudtrail/all" && s == "everything")
    );
    assert_eq!(ids_of(&got), sorted(good));
    let c = counters(&o.stderr);
    let rejected = |reason: &str| {
        c.get(&format!(
            "cloudwatch_logs_rejected_events_total{{component=\"cwl\",reason=\"{reason}\"}}"
        ))
        .copied()
        .unwrap_or(0)
    };
    assert_eq!(
        (
            rejected("too_old"),
            rejected("too_new"),
            rejected("too_large")
        ),
        (3, 2, 1),
        "{c:?}"
    );
    let logged = logs(&o.stderr);
    assert!(
        logged.iter().any(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains("maximum CloudWatch Logs event size"))),
        "the oversized event is reported with its reason"
    );
    // The group was created with its retention.
    let groups = m.logs().describe_log_groups().send().await.unwrap();
    let g = &groups.log_groups.unwrap()[0];
    assert_eq!(g.retention_in_days, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_calls_are_retried_and_groups_and_streams_created_per_account_and_region() {
    let m = Moto::start();
    // One group exists already, and the role may not create groups: its streams are created
    // all the same.
    let (proxy, violations) = strict_proxy(&m, 4, Some("/cloudtrail/111122223333")).await;
    m.logs()
        .create_log_group()
        .log_group_name("/cloudtrail/111122223333")
        .send()
        .await
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let now = chrono::Utc::now().timestamp();
    let mut g = Gen::starting_at(5, now - 6 * 3600, 3);
    let mut ids = Vec::new();
    for f in 0..4 {
        let (fids, doc) = g.document(500);
        ids.extend(fids);
        let p = trail.join(format!("{f}.json.gz"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, corpus::gzip(doc.as_bytes())).unwrap();
    }
    let cfg = cwl_pipeline(
        d.path(),
        &trail,
        &proxy.endpoint,
        keys! { "group" => "/cloudtrail/{account_id}" },
    );
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    assert!(violations.lock().unwrap().is_empty());
    let throttled = proxy
        .calls_of("PutLogEvents")
        .iter()
        .filter(|c| c.status == 400)
        .count();
    assert!(throttled >= 4, "{throttled}");
    let got = m.all_log_events().await;
    // Exactly once each: a throttled call was not accepted, so resending it duplicates nothing.
    assert_eq!(ids_of(&got), sorted(ids));
    for (group, stream, msg) in &got {
        let v: Value = serde_json::from_str(msg).unwrap();
        let (acct, region) = (
            v["recipientAccountId"].as_str().unwrap(),
            v["awsRegion"].as_str().unwrap(),
        );
        assert_eq!(group, &format!("/cloudtrail/{acct}"));
        assert_eq!(stream, &format!("{acct}_CloudTrail_{region}"));
    }
    assert!(
        proxy
            .calls_of("CreateLogGroup")
            .iter()
            .any(|c| c.status == 400),
        "the denied group creation was tried"
    );
    // No DescribeLogStreams per batch: the sink never lists streams.
    assert!(proxy.calls_of("DescribeLogStreams").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_and_oversized_events_go_to_the_dead_letter_sink() {
    let m = Moto::start();
    let (proxy, violations) = strict_proxy(&m, 0, None).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let now = chrono::Utc::now().timestamp();
    let mut g = Gen::new(43);
    let (mut good, mut recs) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let (id, r) = record_at(&mut g, now - 3600 + i, 0);
        good.push(id);
        recs.push(r);
    }
    let (old, r) = record_at(&mut g, now - 30 * 86_400, 0);
    recs.push(r);
    let (big, r) = record_at(&mut g, now - 60, 1_100_000);
    recs.push(r);
    write_doc(&trail.join("0.json.gz"), recs, 1);
    let dlq = d.path().join("dead.ndjson");
    let cfg = cwl(
        d.path(),
        &trail,
        &proxy.endpoint,
        keys! { "group" => "/cloudtrail/all", "dead_letter" => "rejected" },
    )
    .file_sink("rejected", &[], &dlq, keys! {})
    .write();
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    assert!(violations.lock().unwrap().is_empty());
    assert_eq!(ids_of(&m.all_log_events().await), sorted(good));
    let letters: Vec<Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let why = |id: &str| {
        letters
            .iter()
            .find(|l| l["eventID"] == id)
            .map(|l| {
                l["trailship_dead_letter"]["error"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap_or_default()
    };
    assert_eq!(letters.len(), 2);
    assert!(why(&old).contains("too old"), "{}", why(&old));
    assert!(
        why(&big).contains("maximum CloudWatch Logs event size"),
        "{}",
        why(&big)
    );
}
