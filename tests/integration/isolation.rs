//! Sinks are isolated: a SIEM that refuses connections does not hold up the archive beside it
//! (the SIEM spills to disk, by default, in a pipeline of more than one sink), and gets every
//! event once it is back; the archive gets no duplicates from its catch-up.

use std::time::{Duration, Instant};

use crate::common::http_server::siem_down;
use crate::common::*;

const FILES: usize = 40;
const RECORDS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_siem_holds_up_nothing_and_gets_everything_once_back() {
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    let (ids, _) = corpus::write_corpus(&d.path().join("trail"), FILES, RECORDS, 61);
    let archive = d.path().join("archive.ndjson");
    let cfg = Pipeline::new(d.path())
        .set("shutdown_timeout", "10s")
        .file_source("trail", &d.path().join("trail"))
        .file_sink("archive", &["trail"], &archive, keys! {})
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{}/in", switch.url),
                "connect_timeout" => "1s",
                "retry.max_backoff" => "1s",
            },
        )
        .write();
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    let start = Instant::now();
    // Every event reaches the archive while the SIEM is down.
    let deadline = start + Duration::from_secs(120);
    while ids_so_far(&archive).len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let archived = start.elapsed();
    let so_far = ids_so_far(&archive).len();
    assert_eq!(
        so_far,
        ids.len(),
        "the archive got {so_far} of {} events in {archived:?} while the SIEM was down",
        ids.len()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("spilling them to its disk buffer"),
        "the SIEM spilled: {text}"
    );
    assert!(got.lock().unwrap().is_empty(), "the SIEM was down");
    // Back: the SIEM catches up from its spill.
    switch.set(true);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(120);
    while got.lock().unwrap().len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = back.elapsed();
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let siem = got.lock().unwrap().clone();
    let siem_dups = assert_at_least_once(&siem, &ids, 0, "the SIEM after its outage");
    let archive_ids = complete_ids(&archive);
    let archive_dups = assert_at_least_once(&archive_ids, &ids, 0, "the archive");
    assert_eq!(archive_dups, 0, "the archive got duplicates");
    let spilled = counters(&std::fs::read(&log).unwrap())
        .get("buffer_spilled_events_total{sink=\"siem\"}")
        .copied()
        .unwrap_or(0);
    println!(
        "measured: {} events; the archive had every one {:.1} s after start with the SIEM refusing connections ({spilled} spilled for the SIEM); the SIEM had every one {:.1} s after it came back, {siem_dups} duplicates; archive duplicates {archive_dups}",
        ids.len(),
        archived.as_secs_f64(),
        caught_up.as_secs_f64()
    );
}
