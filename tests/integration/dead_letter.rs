//! Dead letters: events a sink gives up on (refused for good, or out of retries) go to the sink
//! it names in `dead_letter`, with the error attached, and then count as delivered; when the
//! dead-letter sink fails too, the unit is not committed.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::corpus;
use crate::common::http_server::{Reply, Served, Server};
use crate::common::*;

const REFUSED: &str = "refused-by-the-collector";

fn pipeline(
    d: &std::path::Path,
    url: &str,
    extra: pipeline::Table,
    dlq_path: &std::path::Path,
    dlq_keys: pipeline::Table,
) -> std::path::PathBuf {
    let mut collector = keys! {
        "uri" => format!("{url}/in"),
        "dead_letter" => "rejected",
        "batch.max_events" => 1,
        "retry.initial_backoff" => "20ms",
        "retry.max_backoff" => "50ms",
    };
    pipeline::merge(&mut collector, extra);
    Pipeline::new(d)
        .file_source("trail", &d.join("trail"))
        .sink("collector", "http", &["trail"], collector)
        .file_sink("rejected", &[], dlq_path, dlq_keys)
        .write()
}

fn dead_letters(p: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_events_go_to_the_dead_letter_sink_and_their_units_commit() {
    let server = Server::start(Arc::new(|r: &Served| {
        if String::from_utf8_lossy(&r.body).contains(REFUSED) {
            Reply::json(
                400,
                json!({"error": "field [requestParameters] cannot be parsed"}),
            )
        } else {
            Reply::json(200, json!({"ok": true}))
        }
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let ids = corpus::ids(&corpus::write_documents(
        &d.path().join("trail"),
        2,
        20,
        21,
        usize::MAX,
    ));
    corpus::write_one(&d.path().join("trail/bad/0.json"), REFUSED);
    let dlq = d.path().join("dead-letters.ndjson");
    let cfg = pipeline(d.path(), &server.url, keys! {}, &dlq, keys! {});
    let o = run_once_ok(&cfg);
    let letters = dead_letters(&dlq);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let l = &letters[0];
    assert_eq!(
        l["eventID"], REFUSED,
        "the original record, with the failure added"
    );
    assert_eq!(l["trailship_dead_letter"]["sink"], "collector");
    assert_eq!(l["trailship_dead_letter"]["attempts"], 1);
    let err = l["trailship_dead_letter"]["error"].as_str().unwrap();
    assert!(
        err.contains("answered HTTP 400") && err.contains("cannot be parsed"),
        "{err}"
    );
    assert!(
        l["trailship_dead_letter"]["time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let delivered: Vec<String> = server
        .requests_to("/in")
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains(REFUSED))
        .map(|r| event_id(&serde_json::from_slice(&r.body).unwrap()))
        .collect();
    assert_same_ids(&delivered, &ids, "the others delivered");
    let c = counters(&o.stderr);
    assert_eq!(
        c.get("events_dead_lettered_total{component=\"collector\"}"),
        Some(&1)
    );
    // Committed: a second run reads nothing again.
    let before = server.requests.lock().unwrap().len();
    run_once_ok(&cfg);
    assert_eq!(server.requests.lock().unwrap().len(), before);
    assert_eq!(dead_letters(&dlq).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_out_of_retries_go_to_the_dead_letter_sink() {
    let server = Server::start(Arc::new(|_r: &Served| {
        Reply::json(503, json!({"error": "down"}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let ids = corpus::ids(&corpus::write_documents(
        &d.path().join("trail"),
        1,
        5,
        22,
        usize::MAX,
    ));
    let dlq = d.path().join("dead-letters.ndjson");
    let cfg = pipeline(
        d.path(),
        &server.url,
        keys! { "retry.max_retries" => 2 },
        &dlq,
        keys! {},
    );
    run_once_ok(&cfg);
    let letters = dead_letters(&dlq);
    let got: Vec<String> = letters.iter().map(event_id).collect();
    assert_same_ids(&got, &ids, "every event, after its retries");
    for l in &letters {
        assert_eq!(l["trailship_dead_letter"]["attempts"], 3);
        let err = l["trailship_dead_letter"]["error"].as_str().unwrap();
        assert!(
            err.starts_with("giving up after 3 attempts") && err.contains("HTTP 503"),
            "{err}"
        );
    }
    assert_eq!(server.requests_to("/in").len(), ids.len() * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_dead_letter_sink_fails_too_nothing_is_committed() {
    let server = Server::start(Arc::new(|_r: &Served| {
        Reply::json(400, json!({"error": "no"}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    corpus::write_documents(&d.path().join("trail"), 1, 3, 23, usize::MAX);
    // A path below a regular file cannot be created.
    std::fs::write(d.path().join("not-a-dir"), b"").unwrap();
    let cfg = pipeline(
        d.path(),
        &server.url,
        keys! {},
        &d.path().join("not-a-dir/dead-letters.ndjson"),
        keys! { "retry.max_retries" => 1, "retry.initial_backoff" => "20ms" },
    );
    let o = run_once(&cfg);
    expect_code(&o, 3);
}

#[test]
fn dead_letter_names_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let base = |a: pipeline::Table| {
        Pipeline::new(d.path())
            .source("t", "file", keys! { "include" => vec!["/tmp/x/**"] })
            .sink("a", "console", &["t"], a)
    };
    for (p, want) in [
        (
            base(keys! { "dead_letter" => "a" }),
            "sinks.a.dead_letter: a sink cannot be its own dead_letter",
        ),
        (
            base(keys! { "dead_letter" => "nope" }),
            "sinks.a.dead_letter: `nope` names no sink",
        ),
        (
            base(keys! { "dead_letter" => "b" }).sink(
                "b",
                "console",
                &[],
                keys! { "dead_letter" => "a" },
            ),
            "dead_letter cycle: a -> b -> a",
        ),
        (
            base(keys! {}).sink("c", "console", &[], keys! {}),
            "sinks.c: missing key `inputs`",
        ),
    ] {
        let cfg = p.write();
        let o = run_with_timeout(
            trailship(&["validate", "--config", cfg.to_str().unwrap()]),
            30,
        );
        expect_code(&o, 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{want} in {err}");
    }
}
