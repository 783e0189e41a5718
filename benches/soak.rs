//! The soak run (on demand, not part of the test suite): `cargo bench --bench soak`. The release
//! binary runs as a daemon for `TRAILSHIP_SOAK_SECS` (600) while gzip trail files arrive at
//! about 2,000 events/s (8 files of 250 records a second) into a file archive and an `http`
//! SIEM that flaps (30 s refusing connections, 30 s up). Half way through the config is
//! reloaded (SIGHUP); 30 s later the daemon is killed (`kill -9`) and started again. At the end
//! the SIEM stays up until both sinks hold every event, and the run reports what was lost
//! (must be nothing), the duplicates per sink, and the daemon's RSS, sampled every second, over
//! the minute around 1/5 of the run and over its last minute (the restarted process by then):
//! each window spans one whole down-and-up cycle of the SIEM, so their peaks compare like with
//! like where two single samples would compare whatever phase each fell in.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http_server::{Reply, Served, Server};
use common::measure::rss_mib;
use common::switch::Switch;
use common::{Pipeline, corpus, keys};

const FILE_RECORDS: usize = 250;
const FILES_PER_SEC: u64 = 8;

fn config(dir: &Path, trail: &Path, siem: &str, backoff: &str) -> PathBuf {
    Pipeline::new(dir)
        .set("shutdown_timeout", "10s")
        .source(
            "trail",
            "file",
            keys! {
                "include" => vec![format!("{}/**/*.json.gz", trail.display())],
                "settle_time" => "200ms",
            },
        )
        .file_sink("archive", &["trail"], &dir.join("archive.ndjson"), keys! {})
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{siem}/in"),
                "connect_timeout" => "1s",
                "retry.max_backoff" => backoff,
            },
        )
        .write()
}

fn start(cfg: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trailship"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("daemon log"),
        )
        .spawn()
        .expect("start trailship")
}

fn signal(p: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(p.id() as libc::pid_t, sig);
    }
}

fn archive_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| common::event_id(&v))
        .collect()
}

fn report(what: &str, got: &[String], want: &HashSet<String>) -> bool {
    let seen: HashSet<&String> = got.iter().collect();
    let lost = want.iter().filter(|id| !seen.contains(id)).count();
    let dups = got.len().saturating_sub(seen.len());
    println!(
        "{what}: {} of {} events, {lost} lost, {dups} duplicates ({:.3}%)",
        seen.len(),
        want.len(),
        100.0 * dups as f64 / want.len().max(1) as f64
    );
    lost == 0
}

/// The peak and the median of the RSS samples taken in `from..to` seconds.
fn window(samples: &[(u64, f64)], from: u64, to: u64) -> (f64, f64) {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, r)| *r)
        .collect();
    v.sort_by(f64::total_cmp);
    let peak = v.last().copied().unwrap_or(0.0);
    (peak, v.get(v.len() / 2).copied().unwrap_or(0.0))
}

fn main() {
    let secs: u64 = std::env::var("TRAILSHIP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores; soak of {secs} s");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let (server, switch) = rt.block_on(async {
        let server = Server::start_unrecorded(Arc::new(move |r: &Served| {
            let mut g = g.lock().unwrap();
            for l in String::from_utf8_lossy(&r.body).lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                    g.push(common::event_id(&v));
                }
            }
            Reply::json(200, serde_json::json!({"ok": true}))
        }))
        .await;
        let switch = Switch::start(&server.url).await;
        (server, switch)
    });
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-soak");
    let _ = std::fs::remove_dir_all(&root);
    let files = (secs * FILES_PER_SEC) as usize;
    let (ids, _) = corpus::write_corpus(&root.join("corpus"), files, FILE_RECORDS, 11);
    let want: HashSet<String> = ids.into_iter().collect();
    let pending: Vec<PathBuf> = common::files_under(&root.join("corpus"));
    let trail = root.join("trail");
    std::fs::create_dir_all(&trail).expect("trail dir");
    let cfg = config(&root, &trail, &switch.url, "2s");
    let log = root.join("daemon.log");
    let mut p = start(&cfg, &log);
    let t0 = Instant::now();
    let (mut reloaded, mut killed) = (false, false);
    let (mut sampled, mut next_rss) = (0, 0);
    let mut rss: Vec<(u64, f64)> = Vec::new();
    for (i, f) in pending.iter().enumerate() {
        let at = t0 + Duration::from_millis(1000 * i as u64 / FILES_PER_SEC);
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let el = t0.elapsed().as_secs();
        // Down for the first 30 s of every minute.
        switch.set(el % 60 >= 30);
        if el >= sampled {
            sampled = el + 30;
            println!("{el} s: RSS {:.1} MiB", rss_mib(p.id()));
        }
        if el >= next_rss {
            next_rss = el + 1;
            rss.push((el, rss_mib(p.id())));
        }
        if !reloaded && el >= secs / 2 {
            reloaded = true;
            config(&root, &trail, &switch.url, "3s");
            signal(&p, libc::SIGHUP);
            println!("{el} s: reload (SIGHUP)");
        }
        if !killed && el >= secs / 2 + 30 {
            killed = true;
            signal(&p, libc::SIGKILL);
            let _ = p.wait();
            p = start(&cfg, &log);
            println!("{el} s: kill -9, started again");
        }
        std::fs::rename(f, trail.join(format!("f{i:06}.json.gz"))).expect("move a file in");
    }
    switch.set(true);
    let archive = root.join("archive.ndjson");
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let siem: HashSet<String> = got.lock().unwrap().iter().cloned().collect();
        if siem.len() >= want.len() && archive_ids(&archive).len() >= want.len() {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    signal(&p, libc::SIGTERM);
    let _ = p.wait();
    let early = window(&rss, (secs / 5).saturating_sub(30), secs / 5 + 30);
    let late = window(&rss, secs.saturating_sub(60), secs);
    println!(
        "RSS over {}..{} s: peak {:.1} MiB, median {:.1} MiB; over the last minute (the process \
         started after the kill): peak {:.1} MiB ({:+.1}%), median {:.1} MiB ({:+.1}%)",
        (secs / 5).saturating_sub(30),
        secs / 5 + 30,
        early.0,
        early.1,
        late.0,
        100.0 * (late.0 - early.0) / early.0.max(0.1),
        late.1,
        100.0 * (late.1 - early.1) / early.1.max(0.1),
    );
    let ok = report("archive", &archive_ids(&archive), &want)
        & report("siem", &got.lock().unwrap(), &want);
    drop(server);
    assert!(ok, "events were lost: see {}", log.display());
}
