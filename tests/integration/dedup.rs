//! The dedup transform on the real binary: repeats dropped, IDs kept across restarts
//! (`persist`), and never a loss when the copy let through is not delivered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::corpus;
use crate::common::http_server::{Reply, Served, Server};
use crate::common::*;

fn document(dir: &std::path::Path, name: &str, records: &[(String, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    let body = records
        .iter()
        .map(|(_, r)| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        dir.join(name),
        corpus::gzip(format!("{{\"Records\":[{body}]}}").as_bytes()),
    )
    .unwrap();
}

fn records(seed: u64, n: usize) -> Vec<(String, String)> {
    let mut g = corpus::Gen::new(seed);
    (0..n).map(|_| g.record()).collect()
}

fn config(d: &std::path::Path, persist: bool) -> std::path::PathBuf {
    Pipeline::new(d)
        .file_source("trail", &d.join("trail"))
        .transform(
            "once",
            "dedup",
            &["trail"],
            keys! { "window" => "1h", "persist" => persist },
        )
        .file_sink("out", &["once"], &d.join("out.ndjson"), keys! {})
        .write()
}

#[test]
fn repeats_within_the_window_are_dropped_and_remembered_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let a = records(71, 200);
    let mut b: Vec<(String, String)> = a[..100].to_vec();
    b.extend(records(72, 100));
    // CloudTrail delivering some events twice, in two files.
    document(&trail, "a.json.gz", &a);
    document(&trail, "b.json.gz", &b);
    let cfg = config(d.path(), true);
    let o = run_once_ok(&cfg);
    let mut want = corpus::ids(&a);
    want.extend(corpus::ids(&b[100..]));
    assert_same_ids(
        &output_ids(&d.path().join("out.ndjson")),
        &want,
        "one copy of each",
    );
    let c = counters(&o.stderr);
    assert_eq!(
        c.get("dedup_dropped_total{component=\"once\"}"),
        Some(&100),
        "{c:?}"
    );
    // The same events again in a new file, after a restart: remembered from the saved state.
    document(&trail, "c.json.gz", &a);
    let o = run_once_ok(&cfg);
    assert_same_ids(
        &output_ids(&d.path().join("out.ndjson")),
        &want,
        "nothing new",
    );
    let c = counters(&o.stderr);
    assert_eq!(
        c.get("dedup_dropped_total{component=\"once\"}"),
        Some(&200),
        "{c:?}"
    );
    println!(
        "measured: 400 records with 100 repeated across files: 300 delivered once; after a restart (persist), 200 repeats in a new file dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_is_not_dropped_when_the_copy_let_through_was_not_delivered() {
    // The receiver refuses the first two requests (400: not retried). The first copy of each event is
    // let through and given up on (its file is read again); the second copy, in another file,
    // was dropped as a repeat meanwhile. The re-read must pass, or those events are lost.
    let start = Instant::now();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = refused.clone();
    let server = Server::start_unrecorded(Arc::new(move |r: &Served| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return Reply::json(400, json!({"error": "not now"}));
        }
        let mut g = g.lock().unwrap();
        for l in String::from_utf8_lossy(&r.body).lines() {
            g.push(event_id(&serde_json::from_str(l).unwrap()));
        }
        Reply::json(200, json!({}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let a = records(73, 100);
    document(&trail, "a.json.gz", &a);
    document(&trail, "b.json.gz", &a);
    let cfg = Pipeline::new(d.path())
        .file_source_with("trail", &trail, keys! { "retry_delay" => "1s" })
        .transform("once", "dedup", &["trail"], keys! {})
        .sink(
            "siem",
            "http",
            &["once"],
            keys! { "uri" => format!("{}/in", server.url) },
        )
        .write();
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    let want = corpus::ids(&a);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = got.lock().unwrap().clone();
        if want.iter().all(|id| have.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events lost behind a dropped repeat"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
    let got = got.lock().unwrap().clone();
    let dups = assert_at_least_once(&got, &want, want.len(), "after the failures");
    println!(
        "measured: 100 events in two files, receiver refusing the first 2 requests: all 100 delivered after {:.1} s, {dups} duplicates",
        took.as_secs_f64()
    );
}
