//! The generic HTTP sink against an in-test collector: 5xx and 429 retried (Retry-After
//! honoured), other 4xx permanent, bearer auth, custom headers, JSON-array bodies, gzip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::corpus::Gen;
use crate::common::http_server::{Reply, Served, Server};
use crate::common::*;

fn pipeline(
    d: &std::path::Path,
    sink_keys: pipeline::Table,
    events: usize,
) -> (std::path::PathBuf, Vec<String>) {
    let trail = d.join("trail");
    std::fs::create_dir_all(&trail).unwrap();
    let (ids, doc) = Gen::new(14).document(events);
    std::fs::write(trail.join("0.json"), doc).unwrap();
    let mut keys = keys! { "retry.initial_backoff" => "50ms" };
    pipeline::merge(&mut keys, sink_keys);
    let cfg = Pipeline::new(d)
        .file_source("trail", &trail)
        .sink("collector", "http", &["trail"], keys)
        .write();
    (cfg, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_5xx_and_429_honouring_retry_after() {
    // Answered in this order (popped from the end): 503, 502, 429 with Retry-After, 200.
    let answers = Arc::new(Mutex::new(vec![
        Reply::json(429, json!({"error": "slow down"})).header("retry-after", "1"),
        Reply::json(502, json!({"error": "bad gateway"})),
        Reply::json(503, json!({"error": "down"})),
    ]));
    let a = answers.clone();
    let server = Server::start(Arc::new(move |_r: &Served| {
        a.lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| Reply::json(200, json!({"ok": true})))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let (cfg, ids) = pipeline(
        d.path(),
        keys! {
            "uri" => format!("{}/ingest", server.url),
            "encoding" => "json_array",
            "compression" => "gzip",
            "headers.X-Tenant" => "security",
            "auth" => keys! { "strategy" => "bearer", "token" => "${COLLECTOR_TOKEN}" },
            "batch.max_events" => 1000,
        },
        200,
    );
    let mut c = once_cmd(&cfg);
    c.env("COLLECTOR_TOKEN", "tok-123");
    let o = run_with_timeout(c, 120);
    expect_code(&o, 0);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("tok-123"));
    let reqs = server.requests_to("/ingest");
    assert_eq!(reqs.len(), 4, "503, 502, 429, then delivered");
    let wait = reqs[3].at - reqs[2].at;
    assert!(
        wait >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {wait:?}"
    );
    let last = &reqs[3];
    assert_eq!(last.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(last.header("x-tenant"), Some("security"));
    assert_eq!(last.header("content-type"), Some("application/json"));
    assert!(last.gzip);
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    let got: Vec<String> = body.as_array().unwrap().iter().map(event_id).collect();
    assert_same_ids(&got, &ids, "one JSON array");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_error_is_permanent_and_not_retried() {
    let server = Server::start(Arc::new(|_r: &Served| {
        Reply::json(400, json!({"error": "schema mismatch"}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let (cfg, _) = pipeline(
        d.path(),
        keys! { "uri" => format!("{}/ingest", server.url) },
        20,
    );
    let o = run_once(&cfg);
    expect_code(&o, 3);
    assert_eq!(
        server.requests_to("/ingest").len(),
        1,
        "a 400 is not retried"
    );
    assert!(
        logs(&o.stderr).iter().any(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains("answered HTTP 400") && e.contains("not retried"))),
        "the error names the endpoint, the status and that it is not retried"
    );
    let ndjson = &server.requests_to("/ingest")[0];
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(String::from_utf8_lossy(&ndjson.body).lines().count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_holds_the_sinks_average_rate() {
    let server = Server::start(Arc::new(|_r: &Served| {
        Reply::json(200, json!({"ok": true}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let (cfg, ids) = pipeline(
        d.path(),
        keys! {
            "uri" => format!("{}/ingest", server.url),
            "rate_limit.events_per_sec" => 100,
            "batch.max_events" => 50,
            "batch.timeout" => "10ms",
        },
        300,
    );
    run_once_ok(&cfg);
    let reqs = server.requests_to("/ingest");
    let got: Vec<String> = reqs
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .map(|l| event_id(&serde_json::from_str(l).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_same_ids(&got, &ids, "all delivered");
    // 300 events at 100/s with a burst of 100: the last batch of 50 may start only after
    // (300 - 50 - 100) / 100 = 1.5 s.
    let span = reqs.last().unwrap().at - reqs[0].at;
    assert!(span >= Duration::from_millis(1400), "{span:?}");
    println!("measured: 300 events at rate_limit 100/s took {span:?} from first to last request");
}

/// A receiver that takes 50 ms per request and answers 503 to anything beyond 3 at once.
async fn overloaded_above_three() -> (
    Server,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let busy = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let (b, r, dl) = (busy.clone(), refused.clone(), delivered.clone());
    let server = Server::start_unrecorded(Arc::new(move |req: &Served| {
        // Requests are answered after their delay; count them as busy for that long.
        if b.fetch_add(1, Ordering::SeqCst) >= 3 {
            b.fetch_sub(1, Ordering::SeqCst);
            r.fetch_add(1, Ordering::SeqCst);
            return Reply::json(503, json!({"error": "overloaded"}));
        }
        dl.fetch_add(
            req.body.iter().filter(|c| **c == b'\n').count(),
            Ordering::SeqCst,
        );
        let b = b.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.fetch_sub(1, Ordering::SeqCst);
        });
        Reply::json(200, json!({"ok": true})).after(Duration::from_millis(50))
    }))
    .await;
    (server, refused, delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adaptive_concurrency_finds_what_the_receiver_takes() {
    use std::sync::atomic::Ordering;
    let mut refused_by = Vec::new();
    for concurrency in [pipeline::Value::from(16), pipeline::Value::from("adaptive")] {
        let (server, refused, delivered) = overloaded_above_three().await;
        let d = tempfile::tempdir().unwrap();
        let (cfg, ids) = pipeline(
            d.path(),
            keys! {
                "uri" => format!("{}/in", server.url),
                "concurrency" => concurrency.clone(),
                "batch.max_events" => 20,
                "batch.timeout" => "10ms",
                "retry.max_backoff" => "200ms",
            },
            2000,
        );
        run_once_ok(&cfg);
        assert_eq!(delivered.load(Ordering::SeqCst), ids.len(), "{concurrency}");
        refused_by.push((concurrency, refused.load(Ordering::SeqCst)));
    }
    println!(
        "measured: 503 answers for 100 batches to a receiver taking 3 at once: {refused_by:?}"
    );
    let (fixed, adaptive) = (refused_by[0].1, refused_by[1].1);
    assert!(
        adaptive * 3 < fixed,
        "adaptive concurrency backs off: {adaptive} refusals against {fixed} with 16 in flight"
    );
}
