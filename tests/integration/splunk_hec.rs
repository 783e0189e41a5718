//! The Splunk HEC sink against an in-test server that follows HEC's documented protocol: token
//! auth, gzip, concatenated event envelopes, error codes (busy, invalid data format with
//! invalid-event-number), channels and indexer acknowledgement polling, slow answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::corpus;
use crate::common::http_server::{Handler, Reply, Served, Server};
use crate::common::*;

const TOKEN: &str = "5a3c7d2e-0b1f-4c88-9e21-7a6f0d4e9b13";
const INVALID: &str = "splunk-refuses-this";

#[derive(Default)]
struct Hec {
    /// Event envelopes Splunk indexed.
    indexed: Vec<Value>,
    busy_left: usize,
    busy_sent: usize,
    next_ack: u64,
    /// ackId → times polled.
    polls: HashMap<u64, u32>,
    requests: usize,
}

fn hec(state: Arc<Mutex<Hec>>) -> Handler {
    Arc::new(move |r: &Served| {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        let slow = if s.requests.is_multiple_of(5) {
            Duration::from_millis(300)
        } else {
            Duration::ZERO
        };
        if r.header("authorization") != Some(&format!("Splunk {TOKEN}")) {
            return Reply::json(403, json!({"text": "Invalid token", "code": 4}));
        }
        if r.header("x-splunk-request-channel").is_none() {
            return Reply::json(400, json!({"text": "Data channel is missing", "code": 10}));
        }
        if r.uri.starts_with("/services/collector/ack") {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let mut acks = serde_json::Map::new();
            for id in body["acks"].as_array().unwrap() {
                let id = id.as_u64().unwrap();
                let n = s.polls.entry(id).or_default();
                *n += 1;
                // Indexers acknowledge on the second poll.
                acks.insert(id.to_string(), json!(*n >= 2));
            }
            return Reply::json(200, json!({ "acks": acks }));
        }
        if !r.uri.starts_with("/services/collector/event") {
            return Reply::json(
                404,
                json!({"text": "The requested URL was not found on this server.", "code": 404}),
            );
        }
        if s.busy_left > 0 {
            s.busy_left -= 1;
            s.busy_sent += 1;
            return Reply::json(503, json!({"text": "Server is busy", "code": 9}));
        }
        let events: Vec<Value> = serde_json::Deserializer::from_slice(&r.body)
            .into_iter::<Value>()
            .map(|v| v.unwrap())
            .collect();
        if events.is_empty() {
            return Reply::json(400, json!({"text": "No data", "code": 5}));
        }
        for (i, e) in events.iter().enumerate() {
            if e.get("event").is_none() {
                return Reply::json(
                    400,
                    json!({"text": "Event field is required", "code": 12, "invalid-event-number": i}),
                );
            }
            if e["event"]["eventID"] == INVALID {
                // Splunk has indexed the events before the invalid one.
                s.indexed.extend(events[..i].iter().cloned());
                return Reply::json(
                    400,
                    json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}),
                );
            }
        }
        s.indexed.extend(events);
        s.next_ack += 1;
        Reply::json(
            200,
            json!({"text": "Success", "code": 0, "ackId": s.next_ack}),
        )
        .after(slow)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_invalid_events_and_acknowledgement_as_hec_documents_them() {
    let state = Arc::new(Mutex::new(Hec {
        busy_left: 3,
        ..Default::default()
    }));
    let server = Server::start(hec(state.clone())).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let ids = corpus::ids(&corpus::write_documents(&trail, 3, 400, 11, usize::MAX));
    corpus::write_one(&trail.join("bad/0.json"), INVALID);
    let token_file = d.path().join("hec.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .sink(
            "splunk",
            "splunk_hec",
            &["trail"],
            keys! {
                "endpoint" => server.url.clone(),
                "token_file" => pipeline::path(&token_file),
                "index" => "aws",
                "ack" => true,
                "ack_poll_interval" => "100ms",
                "retry.initial_backoff" => "100ms",
                "batch.max_events" => 250,
            },
        )
        .write();
    let o = run_once(&cfg);
    expect_code(&o, 3);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains(TOKEN), "the token never appears in logs");
    assert!(
        logs(&o.stderr).iter().any(|l| l["event_id"] == INVALID
            && l["error"].as_str().is_some_and(|e| e.contains("code 6"))),
        "the refused event is reported with HEC's code"
    );

    let s = state.lock().unwrap();
    assert_eq!(s.busy_sent, 3);
    let got: Vec<String> = s.indexed.iter().map(|e| event_id(&e["event"])).collect();
    // Events indexed before the invalid one in its request are sent again: at most a batch.
    let extra = assert_at_least_once(&got, &ids, 250, "indexed by HEC");
    assert!(!got.iter().any(|i| i == INVALID));
    for e in &s.indexed {
        assert_eq!(e["sourcetype"], "aws:cloudtrail");
        assert_eq!(e["index"], "aws");
        let t = chrono::DateTime::parse_from_rfc3339(e["event"]["eventTime"].as_str().unwrap())
            .unwrap()
            .timestamp() as f64;
        assert_eq!(e["time"].as_f64(), Some(t), "time is the eventTime");
    }
    // Every batch waited for its acknowledgement (each ackId polled until true).
    assert!(
        !s.polls.is_empty() && s.polls.values().all(|n| *n >= 2),
        "{:?}",
        s.polls
    );
    let events = server.requests_to("/services/collector/event");
    assert!(events.iter().all(|r| r.gzip), "gzip by default");
    let channels: std::collections::HashSet<_> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.header("x-splunk-request-channel")
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(channels.len(), 1, "one channel per sink");
    println!(
        "measured: {} events, {} requests, 3 busy answers, {extra} sent again after the invalid event",
        ids.len(),
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_never_acknowledged_are_sent_again_and_not_counted_as_delivered() {
    let acks = Arc::new(Mutex::new(0u64));
    let a = acks.clone();
    let server = Server::start(Arc::new(move |r: &Served| {
        if r.uri.starts_with("/services/collector/ack") {
            // The indexers never confirm.
            return Reply::json(200, json!({"acks": {"1": false, "2": false}}));
        }
        let mut n = a.lock().unwrap();
        *n += 1;
        Reply::json(200, json!({"text": "Success", "code": 0, "ackId": *n}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    corpus::write_documents(&trail, 1, 20, 15, usize::MAX);
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .sink(
            "splunk",
            "splunk_hec",
            &["trail"],
            keys! {
                "endpoint" => server.url.clone(),
                "token" => TOKEN,
                "ack" => true,
                "ack_timeout" => "500ms",
                "ack_poll_interval" => "100ms",
                "retry.max_retries" => 1,
                "retry.initial_backoff" => "50ms",
            },
        )
        .write();
    let o = run_once(&cfg);
    expect_code(&o, 3);
    assert_eq!(
        server.requests_to("/services/collector/event").len(),
        2,
        "sent, not acknowledged, sent again, then given up"
    );
    assert!(
        logs(&o.stderr).iter().any(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains("not confirmed"))),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
