//! Disk buffers on the real binary: a SIEM that is down while 100,000 events are taken off an
//! SQS queue into the buffer, a kill -9, a restart with the SIEM back; damaged segments; a full
//! buffer holding the sources back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::corpus;
use crate::common::http_server::{collector, siem_down};
use crate::common::moto::Moto;
use crate::common::*;
use crate::sqs::{messages_left, put, setup};

fn segments_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

async fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn siem_down_100k_events_buffered_to_disk_queue_emptied_restart_all_arrive() {
    let m = Moto::start();
    let url = setup(&m).await;
    let mut g = corpus::Gen::new(61);
    let mut ids = Vec::new();
    for i in 0..100 {
        let (fids, doc) = g.document(1000);
        ids.extend(fids);
        put(
            &m,
            &format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/29/obj{i:03}.json.gz"),
            corpus::gzip(doc.as_bytes()),
        )
        .await;
    }
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let cfg = Pipeline::new(d.path())
        .source(
            "queue",
            "sqs",
            keys! {
                "queue_url" => url.clone(),
                "endpoint" => m.endpoint.clone(),
                "region" => "us-east-1",
                "visibility_timeout" => 60,
                "concurrency" => 4,
            },
        )
        .sink(
            "siem",
            "http",
            &["queue"],
            keys! {
                "uri" => format!("{}/in", switch.url),
                "connect_timeout" => "1s",
                "retry.max_backoff" => "2s",
                "buffer" => keys! { "type" => "disk", "max_size" => "1GiB" },
            },
        )
        .write();
    let run = |log: &str| {
        let mut c = daemon_cmd(&cfg);
        m.apply(&mut c);
        c.stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let t0 = Instant::now();
    let mut p = run("first.log");
    // Every message is deleted while the SIEM is down: the events are on disk.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (visible, hidden) = messages_left(&m, &url).await;
        if visible == 0 && hidden == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue not emptied: {visible} visible, {hidden} in flight"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let buffered_in = t0.elapsed();
    let buffer_dir = data.join("buffers/siem");
    let on_disk = segments_bytes(&buffer_dir);
    assert!(got.lock().unwrap().is_empty());
    // The harshest restart.
    signal(&p, libc::SIGKILL);
    wait_exit(&mut p, 10);
    switch.set(true);
    let t1 = Instant::now();
    let mut p = run("second.log");
    wait_for(240, "every buffered event delivered", || {
        got.lock().unwrap().len() >= ids.len()
    })
    .await;
    let delivered_in = t1.elapsed();
    // Let the position settle, then stop cleanly: the delivered segments are deleted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let got = got.lock().unwrap().clone();
    // moto's ReceiveMessage is not atomic across concurrent receivers: under load it can hand
    // one message to two of them (the object is then buffered twice). At most one per receiver.
    let dups = assert_at_least_once(&got, &ids, 4 * 1000, "after the restart");
    let left = segments_bytes(&buffer_dir);
    assert!(
        left < 1 << 20,
        "{left} bytes of delivered segments still on disk"
    );
    assert_eq!(messages_left(&m, &url).await, (0, 0));
    println!(
        "measured: 100 objects / {} events taken off SQS into the disk buffer with the SIEM down in {:.1} s ({:.1} MB on disk); kill -9; SIEM back; all delivered {:.1} s after the restart; {dups} duplicates; {left} bytes of segments left",
        ids.len(),
        buffered_in.as_secs_f64(),
        on_disk as f64 / 1e6,
        delivered_in.as_secs_f64()
    );
}

fn file_to_http(d: &Path, uri: &str, buffer: pipeline::Table, extra: pipeline::Table) -> PathBuf {
    let mut keys = keys! {
        "uri" => uri,
        "connect_timeout" => "1s",
        "retry.max_backoff" => "1s",
        "buffer" => buffer,
    };
    pipeline::merge(&mut keys, extra);
    Pipeline::new(d)
        .file_source("trail", &d.join("trail"))
        .sink("siem", "http", &["trail"], keys)
        .write()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_segment_loses_only_the_damaged_records_and_a_torn_tail_nothing() {
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 3, 200, 62, usize::MAX);
    let cfg = file_to_http(
        d.path(),
        &format!("{}/in", switch.url),
        keys! { "type" => "disk", "max_size" => "64MiB" },
        keys! { "retry.max_duration" => "2s" },
    );
    // One-shot with the SIEM down: everything is buffered (the files are committed), the sink
    // gives up, the events stay in the buffer, and the run says so (exit 3).
    let o = run_once(&cfg);
    expect_code(&o, 3);
    assert!(got.lock().unwrap().is_empty());
    let segs = segment_files(&d.path().join("data/buffers/siem"));
    let seg = segs
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut bytes = std::fs::read(seg).unwrap();
    // Flip one byte inside the 301st record's JSON, and leave a torn record at the end (a
    // write that a crash cut short).
    let starts: Vec<usize> = memchr::memmem::find_iter(&bytes, b"TSb1").collect();
    let hit = starts[300] + 40;
    bytes[hit] ^= 0x20;
    let torn = bytes[starts[10]..starts[11]].to_vec();
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(seg, &bytes).unwrap();
    switch.set(true);
    let o = run_once(&cfg);
    // One record lost to the damage: reported, counted, and the run is not a success.
    expect_code(&o, 3);
    let c = counters(&o.stderr);
    assert_eq!(
        c.get("buffer_damaged_regions_total{sink=\"siem\"}"),
        Some(&2),
        "{c:?}"
    );
    let damaged: Vec<_> = logs(&o.stderr)
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("damaged bytes"))
        })
        .collect();
    assert_eq!(damaged.len(), 2, "one report per damaged region");
    let got_now = got.lock().unwrap().clone();
    let want = corpus::ids(&records);
    let lost: Vec<_> = want.iter().filter(|id| !got_now.contains(id)).collect();
    assert_eq!(
        lost.len(),
        1,
        "only the damaged record is missing: {lost:?}"
    );
    assert_eq!(got_now.len(), want.len() - 1, "no duplicates");
    // Nothing left: a third run sends nothing and succeeds.
    let before = got_now.len();
    let o = run_once(&cfg);
    expect_code(&o, 0);
    assert_eq!(got.lock().unwrap().len(), before);
    println!(
        "measured: 600 events buffered, one byte flipped in record 301 and half a record appended: {} delivered, 1 lost (reported), {} damaged regions reported; {before} events before the third run, none after",
        want.len() - 1,
        damaged.len()
    );
}

/// Sample the buffer's size on disk every 20 ms for `d`; the largest seen.
async fn peak_bytes(dir: &Path, d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(segments_bytes(dir));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_buffer_holds_the_sources_back_and_never_grows_past_max_size() {
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    // About 21 MB of records for an 8 MiB buffer.
    let records = corpus::write_documents(&d.path().join("trail"), 16, 1000, 63, usize::MAX);
    let cfg = file_to_http(
        d.path(),
        &format!("{}/in", switch.url),
        keys! { "type" => "disk", "max_size" => "8MiB", "when_full" => "block" },
        keys! {},
    );
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    let dir = d.path().join("data/buffers/siem");
    let peak_down = peak_bytes(&dir, Duration::from_secs(6)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("disk buffer full"), "{text}");
    assert!(got.lock().unwrap().is_empty());
    switch.set(true);
    let t = Instant::now();
    let want = corpus::ids(&records);
    let mut peak_up = 0;
    while got.lock().unwrap().len() < want.len() {
        assert!(t.elapsed() < Duration::from_secs(120), "not all delivered");
        peak_up = peak_up.max(segments_bytes(&dir));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = t.elapsed();
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let got = got.lock().unwrap().clone();
    let dups = assert_at_least_once(&got, &want, 0, "through a full buffer");
    let peak = peak_down.max(peak_up);
    assert!(peak <= 8 << 20, "buffer reached {peak} bytes");
    println!(
        "measured: {} events ({:.1} MB) through an 8 MiB disk buffer, SIEM down 6 s: peak {:.2} MiB on disk, sources held back, all delivered {:.1} s after the SIEM came back; {dups} duplicates",
        want.len(),
        records.iter().map(|(_, r)| r.len()).sum::<usize>() as f64 / 1e6,
        peak as f64 / (1 << 20) as f64,
        drained.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_newest_never_holds_up_the_other_sinks_and_the_refused_events_come_again() {
    let (_server, got, switch) = siem_down().await;
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 16, 1000, 64, usize::MAX);
    let want = corpus::ids(&records);
    let archive = d.path().join("archive.ndjson");
    let cfg = Pipeline::new(d.path())
        .file_source_with(
            "trail",
            &d.path().join("trail"),
            keys! { "retry_delay" => "1s" },
        )
        .file_sink("archive", &["trail"], &archive, keys! {})
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{}/in", switch.url),
                "connect_timeout" => "1s",
                "retry.max_backoff" => "1s",
                "buffer" => keys! {
                    "type" => "disk",
                    "max_size" => "8MiB",
                    "when_full" => "drop_newest",
                },
            },
        )
        .write();
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    // The archive gets every event while the SIEM is down and its buffer full.
    let t = Instant::now();
    wait_for(60, "the archive has every event", || {
        let ids = ids_so_far(&archive);
        want.iter().all(|id| ids.contains(id))
    })
    .await;
    let archived_in = t.elapsed();
    assert!(segments_bytes(&d.path().join("data/buffers/siem")) <= 8 << 20);
    switch.set(true);
    let t = Instant::now();
    wait_for(120, "the SIEM has every event", || {
        let g = got.lock().unwrap();
        let set: std::collections::HashSet<&String> = g.iter().collect();
        want.iter().all(|id| set.contains(id))
    })
    .await;
    let siem_in = t.elapsed();
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let text = std::fs::read(&log).unwrap();
    let dropped = counters(&text)
        .get("buffer_dropped_total{sink=\"siem\"}")
        .copied()
        .unwrap_or(0);
    assert!(dropped > 0, "the buffer never filled");
    let got = got.lock().unwrap().clone();
    // A file partly buffered before the buffer filled is read again whole: what it had put in
    // the buffer arrives twice, and the archive gets the file again at each offer (the price
    // of never holding the other sinks up).
    let siem_dups = assert_at_least_once(&got, &want, want.len(), "at the SIEM");
    let archive_dups = assert_at_least_once(
        &output_ids(&archive),
        &want,
        4 * want.len(),
        "in the archive",
    );
    println!(
        "measured: {} events, SIEM down, 8 MiB drop_newest buffer: the archive had them all in {:.1} s; {dropped} refused by the full buffer, offered again by the source; the SIEM had them all {:.1} s after it came back; duplicates: archive {archive_dups}, SIEM {siem_dups}",
        want.len(),
        archived_in.as_secs_f64(),
        siem_in.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_moments_then_restart_delivers_the_input_set_to_every_sink() {
    let (server, got) = collector().await;
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 40, 500, 65, usize::MAX);
    let want = corpus::ids(&records);
    let archive = d.path().join("archive.ndjson");
    // Two sinks: a file archive (no buffer) and a SIEM behind a disk buffer, slower than the
    // source, so every kill finds events in every stage: read, buffered, in flight.
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &d.path().join("trail"))
        .file_sink(
            "archive",
            &["trail"],
            &archive,
            keys! { "batch.max_events" => 1000 },
        )
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{}/in", server.url),
                "batch.max_events" => 500,
                "rate_limit.events_per_sec" => 8000,
                "buffer" => keys! { "type" => "disk", "max_size" => "256MiB" },
            },
        )
        .write();
    let mut rng = fastrand::Rng::with_seed(65);
    let kills = 4;
    let mut moments = Vec::new();
    let mut after = Vec::new();
    for k in 0..kills {
        let mut p = spawn_daemon(&cfg, &d.path().join(format!("run{k}.log")));
        let ms = rng.u64(300..1500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        signal(&p, libc::SIGKILL);
        wait_exit(&mut p, 10);
        moments.push(ms);
        after.push((complete_ids(&archive).len(), got.lock().unwrap().len()));
    }
    let mut p = spawn_daemon(&cfg, &d.path().join("last.log"));
    wait_for(120, "every event in both sinks", || {
        let a = ids_so_far(&archive);
        let g = got.lock().unwrap();
        let s: std::collections::HashSet<&String> = g.iter().collect();
        want.iter().all(|id| a.contains(id) && s.contains(id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let a_ids = output_ids(&archive);
    let s_ids = got.lock().unwrap().clone();
    // Duplicates per kill: what was in the pipeline and not yet committed. For the archive,
    // the units (files of 500) filling the channels (4 batches), its batch being cut and the
    // one being written (1,000 each) — about 5,000. The SIEM gets those again through its
    // buffer, plus the buffer's own replay window (its channel, batch and 4 batches in
    // flight, of 500) — about 5,000 more.
    let a_dups = assert_at_least_once(&a_ids, &want, kills * 5_000, "archive");
    let s_dups = assert_at_least_once(&s_ids, &want, kills * 10_000, "siem");
    println!(
        "measured: {} events, kill -9 at {moments:?} ms of each run ({kills} kills), then a clean run; delivered so far after each kill (archive, siem): {after:?}; duplicates per kill: archive {:.0} ({:.2} batches of 1000), siem {:.0} ({:.2} batches of 500)",
        want.len(),
        a_dups as f64 / kills as f64,
        a_dups as f64 / kills as f64 / 1000.0,
        s_dups as f64 / kills as f64,
        s_dups as f64 / kills as f64 / 500.0,
    );
}
