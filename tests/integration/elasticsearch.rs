//! The Elasticsearch/OpenSearch sink against an in-test `_bulk` server that answers per item as
//! Elasticsearch does: 201 created, 409 version conflict for an `_id` already there, 429
//! rejected execution, 400 mapping errors; plus a data stream written with SigV4.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::corpus::{self, Gen};
use crate::common::http_server::{Handler, Reply, Served, Server};
use crate::common::*;

const UNMAPPABLE: &str = "does-not-fit-the-mapping";

#[derive(Default)]
struct Es {
    /// (index, _id) → document.
    docs: HashMap<(String, String), Value>,
    /// Ids refused once with 429.
    throttled: HashSet<String>,
    items_received: usize,
    conflicts: usize,
}

fn bulk(state: Arc<Mutex<Es>>) -> Handler {
    Arc::new(move |r: &Served| {
        if !r.uri.starts_with("/_bulk") {
            return Reply::json(404, json!({"error": "no handler"}));
        }
        let mut s = state.lock().unwrap();
        let text = String::from_utf8(r.body.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            s.items_received += 1;
            let action: Value = serde_json::from_str(pair[0]).unwrap();
            let doc: Value = serde_json::from_str(pair[1]).unwrap();
            let create = &action["create"];
            let index = create["_index"].as_str().unwrap().to_string();
            let id = create["_id"].as_str().unwrap().to_string();
            let (status, error) = if s.docs.contains_key(&(index.clone(), id.clone())) {
                s.conflicts += 1;
                (
                    409,
                    Some(
                        json!({"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists")}),
                    ),
                )
            } else if id == UNMAPPABLE {
                (
                    400,
                    Some(
                        json!({"type": "document_parsing_exception", "reason": "[1:15] failed to parse field [requestParameters] of type [keyword]"}),
                    ),
                )
            } else if s.items_received.is_multiple_of(4) && s.throttled.insert(id.clone()) {
                (
                    429,
                    Some(
                        json!({"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}),
                    ),
                )
            } else {
                s.docs.insert((index.clone(), id.clone()), doc);
                (201, None)
            };
            errors |= error.is_some();
            let mut item = json!({"_index": index, "_id": id, "status": status});
            if let Some(e) = error {
                item["error"] = e;
            }
            items.push(json!({ "create": item }));
        }
        Reply::json(200, json!({"took": 3, "errors": errors, "items": items}))
    })
}

fn es_pipeline(
    d: &std::path::Path,
    trail: &std::path::Path,
    sink_keys: pipeline::Table,
) -> std::path::PathBuf {
    let mut keys = keys! { "retry.initial_backoff" => "50ms", "batch.max_events" => 300 };
    pipeline::merge(&mut keys, sink_keys);
    Pipeline::new(d)
        .file_source("trail", trail)
        .sink("es", "elasticsearch", &["trail"], keys)
        .write()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_items_retried_alone_conflicts_count_as_delivered_mapping_errors_fail_alone() {
    let state: Arc<Mutex<Es>> = Arc::default();
    let server = Server::start(bulk(state.clone())).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let records = corpus::write_documents(&trail, 3, 400, 12, usize::MAX);
    let ids = corpus::ids(&records);
    let times: HashMap<String, String> = records
        .iter()
        .map(|(id, r)| {
            let v: Value = serde_json::from_str(r).unwrap();
            (id.clone(), v["eventTime"].as_str().unwrap().to_string())
        })
        .collect();
    corpus::write_one(&trail.join("bad/0.json"), UNMAPPABLE);
    // Some events are already in the index (delivered before a crash): 409, delivered.
    {
        let mut s = state.lock().unwrap();
        for id in ids.iter().step_by(50) {
            let day = &times[id][..10].replace('-', ".");
            s.docs
                .insert((format!("cloudtrail-{day}"), id.clone()), json!({}));
        }
    }
    let key_file = d.path().join("es.key");
    std::fs::write(
        &key_file,
        "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n",
    )
    .unwrap();
    let cfg = es_pipeline(
        d.path(),
        &trail,
        keys! {
            "endpoints" => vec![server.url.clone()],
            "auth" => keys! { "strategy" => "api_key", "key_file" => pipeline::path(&key_file) },
        },
    );
    let o = run_once(&cfg);
    expect_code(&o, 3);
    assert!(
        logs(&o.stderr).iter().any(|l| l["event_id"] == UNMAPPABLE
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("document_parsing_exception"))),
        "the mapping error is reported with its reason"
    );
    let s = state.lock().unwrap();
    let mut stored: Vec<String> = s.docs.keys().map(|(_, id)| id.clone()).collect();
    stored.sort();
    assert_same_ids(&stored, &ids, "each event indexed exactly once");
    // Every index follows the default template from eventTime.
    for ((index, id), _) in s.docs.iter() {
        assert_eq!(
            index,
            &format!("cloudtrail-{}", times[id][..10].replace('-', "."))
        );
    }
    assert!(!s.throttled.is_empty());
    assert_eq!(
        s.items_received,
        ids.len() + 1 + s.throttled.len(),
        "each document sent once, plus once more for each 429 item: only failed items are retried"
    );
    assert_eq!(s.conflicts, ids.len().div_ceil(50));
    let reqs = server.requests_to("/_bulk");
    assert!(reqs.iter().all(|r| {
        r.gzip
            && r.header("authorization")
                .is_some_and(|a| a.starts_with("ApiKey "))
    }));
    println!(
        "measured: {} events, {} bulk requests, {} items sent ({} retried after 429, {} conflicts counted as delivered)",
        ids.len(),
        reqs.len(),
        s.items_received,
        s.throttled.len(),
        s.conflicts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_stream_documents_get_timestamps_and_sigv4_signatures() {
    let state: Arc<Mutex<Es>> = Arc::default();
    let server = Server::start(bulk(state.clone())).await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    std::fs::create_dir_all(&trail).unwrap();
    let (ids, doc) = Gen::new(13).document(50);
    std::fs::write(trail.join("0.json"), doc).unwrap();
    let cfg = es_pipeline(
        d.path(),
        &trail,
        keys! {
            "endpoints" => vec!["http://127.0.0.1:1".to_string(), server.url.clone()],
            "data_stream" => "logs-aws.cloudtrail-default",
            "compression" => "none",
            "auth" => keys! { "strategy" => "aws", "region" => "eu-west-1" },
        },
    );
    let mut c = once_cmd(&cfg);
    c.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let o = run_with_timeout(c, 120);
    expect_code(&o, 0);
    let s = state.lock().unwrap();
    let mut stored = Vec::new();
    for ((index, id), doc) in s.docs.iter() {
        assert_eq!(index, "logs-aws.cloudtrail-default");
        assert_eq!(
            doc["@timestamp"], doc["eventTime"],
            "@timestamp from eventTime"
        );
        stored.push(id.clone());
    }
    assert_same_ids(&stored, &ids, "data stream");
    // The first endpoint refuses connections: the batch went to the next one.
    let reqs = server.requests_to("/_bulk");
    assert!(!reqs.is_empty());
    for r in &reqs {
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && auth.contains("/eu-west-1/es/aws4_request")
                && auth.contains("SignedHeaders=")
                && auth.contains("Signature="),
            "{auth}"
        );
        assert!(r.header("x-amz-date").is_some());
        assert!(r.header("x-amz-content-sha256").is_some());
    }
}

#[test]
fn a_sink_that_cannot_start_stops_the_pipeline() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    corpus::write_documents(&trail, 1, 10, 16, usize::MAX);
    // SigV4 needs a region; none is configured or in the environment.
    let cfg = es_pipeline(
        d.path(),
        &trail,
        keys! {
            "endpoints" => vec!["http://127.0.0.1:1"],
            "auth" => keys! { "strategy" => "aws" },
        },
    );
    let mut c = daemon_cmd(&cfg);
    c.env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", d.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let o = run_with_timeout(c, 60);
    expect_code(&o, 1);
    assert!(
        logs(&o.stderr).iter().any(|l| l["sink"] == "es"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("no AWS region"))),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Nothing was committed: the same source into a file sink reads all of it.
    let out = d.path().join("out.ndjson");
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .file_sink("out", &["trail"], &out, keys! {})
        .write_as("file.toml");
    run_once_ok(&cfg);
    assert_eq!(
        output_ids(&out).len(),
        10,
        "nothing was committed by the failed start"
    );
}
