//! Fault injection on the real binary: a sink that is down (503, then refusing connections,
//! then hanging) and comes back; a sink far slower than the input; a data_dir with no space
//! left. Each test prints what it measured.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::corpus;
use crate::common::http_server::{Reply, Served, Server};
use crate::common::measure::measure;
use crate::common::switch::Switch;
use crate::common::*;

fn http_pipeline(d: &std::path::Path, uri: &str, mut extra: pipeline::Table) -> std::path::PathBuf {
    extra.insert("uri".into(), uri.into());
    Pipeline::new(d)
        .set("shutdown_timeout", "30s")
        .file_source("trail", &d.join("trail"))
        .sink("siem", "http", &["trail"], extra)
        .write()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_outage_503_then_refused_then_hanging_then_back_loses_nothing() {
    // 0: 503, 1: (switch off), 2: hang, 3: healthy.
    let phase = Arc::new(AtomicU8::new(0));
    let p = phase.clone();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let server = Server::start(Arc::new(move |r: &Served| match p.load(Ordering::SeqCst) {
        0 => Reply::json(503, json!({"error": "maintenance"})),
        2 => Reply::json(200, json!({})).after(Duration::from_secs(3600)),
        _ => {
            let mut g = g.lock().unwrap();
            for l in String::from_utf8_lossy(&r.body).lines() {
                g.push(event_id(&serde_json::from_str(l).unwrap()));
            }
            Reply::json(200, json!({"ok": true}))
        }
    }))
    .await;
    let switch = Switch::start(&server.url).await;
    let d = tempfile::tempdir().unwrap();
    let ids = corpus::ids(&corpus::write_documents(
        &d.path().join("trail"),
        20,
        250,
        31,
        usize::MAX,
    ));
    let cfg = http_pipeline(
        d.path(),
        &format!("{}/in", switch.url),
        // Long enough that a loaded CI machine does not time out an answered request (which
        // would be sent again: a duplicate), short enough to time out within the hang phase.
        keys! {
            "request_timeout" => "4s",
            "connect_timeout" => "1s",
            "retry.max_backoff" => "4s",
        },
    );
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    let phase_len = Duration::from_secs(6);
    let start = Instant::now();
    tokio::time::sleep(phase_len).await;
    // Cut the connections while the server still answers 503, so nothing half-accepted.
    switch.set(false);
    phase.store(1, Ordering::SeqCst);
    tokio::time::sleep(phase_len).await;
    phase.store(2, Ordering::SeqCst);
    switch.set(true);
    tokio::time::sleep(phase_len).await;
    let during = server.requests.lock().unwrap().len();
    phase.store(3, Ordering::SeqCst);
    let outage = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = start.elapsed() - outage;
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
    let got = got.lock().unwrap().clone();
    let extra = assert_at_least_once(&got, &ids, 0, "after the outage");
    // No hot loop: 4 batches in flight, each backing off exponentially up to 4 s.
    assert!(
        during <= 60,
        "{during} requests reached the server during the outage"
    );
    let retries = counters(&std::fs::read(d.path().join("daemon.log")).unwrap())
        .get("sink_retries_total{component=\"siem\"}")
        .copied()
        .unwrap_or(0);
    println!(
        "measured: {} events; outage {:.0} s (503, refused, hanging); {during} requests reached the server during it, {retries} retries in all; every event delivered {:.1} s after recovery; {extra} duplicates",
        ids.len(),
        outage.as_secs_f64(),
        recovery.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_sink_with_20x_the_buffered_input_keeps_memory_flat() {
    let received = Arc::new(AtomicUsize::new(0));
    let r = received.clone();
    // 50 ms per batch, one at a time.
    let server = Server::start_unrecorded(Arc::new(move |req: &Served| {
        r.fetch_add(
            req.body.iter().filter(|c| **c == b'\n').count(),
            Ordering::Relaxed,
        );
        Reply::json(200, json!({"ok": true})).after(Duration::from_millis(50))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    // What the pipeline holds at once: 4 batches on each of 2 channels + 1 in preparation +
    // 1 in flight, of 500 events: ~5,000 events. The input is 20 times that.
    let records = corpus::write_documents(&d.path().join("trail"), 100, 1000, 32, usize::MAX);
    let input_bytes: usize = records.iter().map(|(_, r)| r.len()).sum();
    let cfg = http_pipeline(
        d.path(),
        &format!("{}/in", server.url),
        keys! { "batch.max_events" => 500, "concurrency" => 1 },
    );
    let m = tokio::task::spawn_blocking(move || {
        measure(
            trailship(&["run", "--once", "--config", cfg.to_str().unwrap()])
                .env("TRAILSHIP_LOG", "warn"),
        )
    })
    .await
    .unwrap();
    assert!(m.ok, "exit {:?}", m.code);
    assert_eq!(received.load(Ordering::Relaxed), records.len());
    let rss_mib = m.max_rss_kib as f64 / 1024.0;
    println!(
        "measured: {} events ({:.0} MB) through a sink taking 50 ms per 500-event batch: {:.1} s, peak RSS {rss_mib:.1} MiB",
        records.len(),
        input_bytes as f64 / 1e6,
        m.wall
    );
    // The input (130 MB of records) never sits in memory: the source waits for the sink.
    assert!(rss_mib < 80.0, "peak RSS {rss_mib:.1} MiB");
}

/// A size-limited tmpfs, unmounted on drop (the tests run as root on this kind of machine).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            o.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fill a file system: write until it says no space is left.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn data_dir_full_commits_nothing_then_recovers_when_space_returns() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let _fs = Tmpfs::mount(&data, "256k");
    std::fs::create_dir_all(data.join("checkpoints")).unwrap();
    fill(&data.join("filler"));
    let ids = corpus::ids(&corpus::write_documents(
        &d.path().join("trail"),
        5,
        200,
        33,
        usize::MAX,
    ));
    let out = d.path().join("out.ndjson");
    let cfg = file_pipeline(
        d.path(),
        "trail",
        &pipeline::below(&d.path().join("trail")),
        keys! {},
        &out,
        keys! { "batch.timeout" => "50ms" },
    );
    let log = d.path().join("daemon.log");
    let checkpoint = data.join("checkpoints/trail.json");
    let delivered = || complete_ids(&out).len();

    // Disk full: everything is delivered, nothing can be committed.
    let mut p = spawn_daemon(&cfg, &log);
    wait_until(30, "first delivery", || delivered() >= ids.len());
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("checkpoint not saved"), "{text}");
    assert!(!checkpoint.exists());
    // A crash now loses nothing: the restart reads everything again (duplicates).
    signal(&p, libc::SIGKILL);
    let _ = p.wait();
    let mut p = spawn_daemon(&cfg, &log);
    wait_until(30, "delivery after the crash", || {
        delivered() >= 2 * ids.len()
    });

    // Space returns: the positions are saved, and a restart reads nothing again.
    std::fs::remove_file(data.join("filler")).unwrap();
    wait_until(10, "the checkpoint saved once space returned", || {
        checkpoint.exists()
    });
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("checkpoint saved again")
    );
    run_once_ok(&cfg);
    let got = output_ids(&out);
    let extra = assert_at_least_once(&got, &ids, ids.len(), "across the full disk");
    println!(
        "measured: {} events, data_dir full (256 KiB tmpfs): delivered, nothing committed; kill -9 then restart: {extra} delivered twice (all of them), none lost; space back: checkpoint saved, the next run read nothing again",
        ids.len()
    );
}
