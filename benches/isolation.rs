//! Sink isolation on the release binary (on demand): `cargo bench --bench isolation`.
//!
//! A corpus of 500 gzip files × 1,000 records (TRAILSHIP_BENCH_FILES / _RECORDS change it) goes
//! into a file archive, alone and beside an `http` SIEM that refuses connections (no `buffer`
//! configured, so it spills), seven rounds of each, alternating. The time is from the daemon's
//! start until its `/metrics` counts every event as sent by the archive (polled every 20 ms,
//! nothing else read while it runs); the archive's `batch.timeout` is 20 ms so that its last
//! partial batch does not wait out the default 500 ms, which would round every time up to it. Prints each round, the medians, their ratio, and the
//! spill's size on disk at that moment.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Pipeline, corpus, keys};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(work: &Path, trail: &Path, api: u16, siem: Option<u16>) -> PathBuf {
    let mut p = Pipeline::new(work)
        .section("api", keys! { "address" => format!("127.0.0.1:{api}") })
        .file_source("trail", trail)
        .file_sink(
            "archive",
            &["trail"],
            &work.join("archive.ndjson"),
            keys! { "batch.timeout" => "20ms" },
        );
    if let Some(port) = siem {
        p = p.sink(
            "siem",
            "http",
            &["trail"],
            keys! { "uri" => format!("http://127.0.0.1:{port}/in"), "connect_timeout" => "1s" },
        );
    }
    p.write()
}

/// `trailship_events_sent_total{component="archive"}` from the API, if it answers.
fn sent(api: u16) -> Option<u64> {
    let (_, body) = common::http(api, "GET", "/metrics")?;
    body.lines()
        .find(|l| {
            l.starts_with("trailship_events_sent_total{") && l.contains("component=\"archive\"")
        })?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn dir_bytes(dir: &Path) -> u64 {
    common::files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

fn round(root: &Path, trail: &Path, events: u64, dead: bool) -> (f64, u64) {
    let work = root.join(if dead { "beside" } else { "alone" });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    // The last round's archive written back first, so that it does not share this one's time.
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
    let api = common::free_port();
    let cfg = config(&work, trail, api, dead.then(common::free_port));
    let t0 = Instant::now();
    let mut p: Child = Command::new(env!("CARGO_BIN_EXE_trailship"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trailship");
    while sent(api).unwrap_or(0) < events {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the archive never got everything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    let spill = dir_bytes(&work.join("data"));
    common::signal(&p, libc::SIGKILL);
    let _ = p.wait();
    (secs, spill)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (files, records) = (
        env_or("TRAILSHIP_BENCH_FILES", 500),
        env_or("TRAILSHIP_BENCH_RECORDS", 1000),
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-isolation");
    let corpus_dir = root.join(format!("c{files}x{records}"));
    let marker = corpus_dir.join("bytes");
    let bytes: u64 = match std::fs::read_to_string(&marker).map(|b| b.trim().parse()) {
        Ok(Ok(b)) => b,
        _ => {
            let _ = std::fs::remove_dir_all(&corpus_dir);
            let (_, b) = corpus::write_corpus(&corpus_dir, files, records, 42);
            std::fs::write(&marker, b.to_string()).expect("marker");
            b
        }
    };
    let trail = corpus_dir.join("AWSLogs");
    let events = (files * records) as u64;
    println!(
        "machine: {cores} cores; {files} files × {records} records ({:.0} MB uncompressed)",
        bytes as f64 / 1e6
    );
    let (mut alone, mut beside) = (vec![], vec![]);
    for i in 0..7 {
        let (a, _) = round(&root, &trail, events, false);
        let (b, spill) = round(&root, &trail, events, true);
        println!("round {i}: alone {a:.2} s, beside a dead SIEM {b:.2} s (data_dir {spill} bytes)");
        alone.push(a);
        beside.push(b);
    }
    let (a, b) = (median(alone), median(beside));
    println!(
        "median: alone {a:.2} s, beside a dead SIEM {b:.2} s: {:.2}× the rate alone",
        a / b
    );
}
