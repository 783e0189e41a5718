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
    let cfg = archive_and_siem(
        Pipeline::new(d.path()).set("shutdown_timeout", "10s"),
        &d.path().join("trail"),
        &archive,
        &switch.url,
    );
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    let start = Instant::now();
    // Every event reaches the archive while the SIEM is down.
    let deadline = start + Duration::from_secs(120);
    while ids_so_far(&archive).len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let archived = start.elapsed();
    let spill_bytes = segment_bytes(&d.path().join("data/buffers/siem"));
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
    // The spill names the trail files' records instead of copying them.
    let archive_bytes = std::fs::metadata(&archive).unwrap().len();
    assert!(
        spill_bytes * 100 < archive_bytes,
        "the spill holds {spill_bytes} bytes for {archive_bytes} bytes of events"
    );
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
        "measured: {} events; the archive had every one {:.1} s after start with the SIEM refusing connections ({spilled} spilled for the SIEM, in {spill_bytes} bytes of spill for {archive_bytes} bytes of events); the SIEM had every one {:.1} s after it came back, {siem_dups} duplicates; archive duplicates {archive_dups}",
        ids.len(),
        archived.as_secs_f64(),
        caught_up.as_secs_f64()
    );
}

/// Bytes of the segment files of a disk buffer.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// The eventIDs of a gzip trail file.
fn ids_of_trail_file(p: &std::path::Path) -> Vec<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(event_id)
        .collect()
}

/// What a spill names survives a kill -9: the restarted daemon reads the trail files again
/// for the SIEM. A trail file deleted meanwhile is lost for the SIEM only, and said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spill_reads_its_trail_files_again_after_a_kill_and_reports_a_deleted_one() {
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let (ids, _) = corpus::write_corpus(&trail, 10, RECORDS, 67);
    let archive = d.path().join("archive.ndjson");
    let cfg = archive_and_siem(Pipeline::new(d.path()), &trail, &archive, &switch.url);
    let mut p = spawn_daemon(&cfg, &d.path().join("first.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids_so_far(&archive).len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids_so_far(&archive).len(),
        ids.len(),
        "the archive has everything"
    );
    // Everything is in the spill once the file source has committed it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&p, libc::SIGKILL);
    let _ = p.wait();
    let gone = files_under(&trail).last().unwrap().clone();
    let gone_ids = ids_of_trail_file(&gone);
    std::fs::remove_file(&gone).unwrap();
    switch.set(true);
    let log = d.path().join("second.log");
    let mut p = spawn_daemon(&cfg, &log);
    let want: Vec<String> = ids
        .iter()
        .filter(|i| !gone_ids.contains(i))
        .cloned()
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().len() < want.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&p, libc::SIGTERM);
    let status = wait_exit(&mut p, 30);
    let siem = got.lock().unwrap().clone();
    // A kill -9 re-sends what was in flight: the SIEM's first batches (held in memory while it
    // was down) and the rest of their files (a file's position is its delivered prefix).
    let dups = assert_at_least_once(
        &siem,
        &want,
        2 * RECORDS,
        "the SIEM from its spill after a kill -9",
    );
    assert!(
        !siem.iter().any(|i| gone_ids.contains(i)),
        "the deleted file's records cannot have been read again"
    );
    let text = std::fs::read(&log).unwrap();
    let lost = counters(&text)
        .get("buffer_reread_lost_events_total{sink=\"siem\"}")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        lost,
        gone_ids.len() as u64,
        "{}",
        String::from_utf8_lossy(&text)
    );
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("cannot be read again from their file")
            && text.contains(&*gone.to_string_lossy()),
        "the loss is logged naming the file: {text}"
    );
    assert!(status.success(), "a daemon stops cleanly after such a loss");
    println!(
        "measured: {} events spilled as names; after a kill -9 the SIEM got {} of the {} left ({dups} duplicates); the {} of the deleted file were reported lost",
        ids.len(),
        siem.len(),
        want.len(),
        gone_ids.len()
    );
}

/// `p` with the trail files in `trail` going to a file archive and to an http SIEM at `siem`
/// (quick to give up connecting and to retry), written out.
fn archive_and_siem(
    p: Pipeline,
    trail: &std::path::Path,
    archive: &std::path::Path,
    siem: &str,
) -> std::path::PathBuf {
    p.file_source("trail", trail)
        .file_sink("archive", &["trail"], archive, keys! {})
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{siem}/in"),
                "connect_timeout" => "1s",
                "retry.max_backoff" => "1s",
            },
        )
        .write()
}
