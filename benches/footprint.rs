//! The daemon's footprint, for sizing requests and limits (README "Run on Kubernetes"):
//! `cargo bench --bench footprint` runs the release binary as a daemon (file source watching a
//! directory → filter → file sink, API on, disk buffer on the sink) and reads its RSS and CPU
//! from /proc while it is idle, while files arrive at a steady 2,000 events/s (8 files of 250
//! records a second), and through a burst of 100,000 events dropped at once.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::measure::rss_mib;
use common::{Pipeline, corpus, keys};

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0)
}

struct Phase {
    peak_rss: f64,
    cpu: f64,
    wall: f64,
}

/// Sample the daemon every 200 ms while `work` runs (and `settle` longer).
fn observe(pid: u32, settle: Duration, work: impl FnOnce()) -> Phase {
    let start = Instant::now();
    let cpu0 = cpu_secs(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(rss_mib(pid));
            std::thread::sleep(Duration::from_millis(200));
        }
        peak
    });
    work();
    std::thread::sleep(settle);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak_rss = sampler.join().unwrap_or(0.0);
    Phase {
        peak_rss,
        cpu: cpu_secs(pid) - cpu0,
        wall: start.elapsed().as_secs_f64(),
    }
}

fn lines(p: &Path) -> usize {
    std::fs::read(p)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

fn daemon(dir: &Path, trail: &Path) -> Child {
    let cfg = Pipeline::new(dir)
        .section(
            "api",
            keys! { "address" => format!("127.0.0.1:{}", common::free_port()) },
        )
        .source(
            "trail",
            "file",
            keys! {
                "include" => vec![format!("{}/**/*.json.gz", trail.display())],
                "settle_time" => "200ms",
            },
        )
        .transform("all", "filter", &["trail"], keys! { "event_type" => "*" })
        .file_sink(
            "archive",
            &["all"],
            &dir.join("out.ndjson"),
            keys! { "buffer" => keys! { "type" => "disk", "max_size" => "256MiB" } },
        )
        .write();
    Command::new(env!("CARGO_BIN_EXE_trailship"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .expect("start trailship")
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-footprint");
    let _ = std::fs::remove_dir_all(&root);
    let src = root.join("corpus");
    let (ids, _) = corpus::write_corpus(&src, 800, 250, 7);
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = common::files_under(&src);
        f.sort();
        f
    };
    let trail = root.join("trail");
    std::fs::create_dir_all(&trail).unwrap();
    let mut p = daemon(&root, &trail);
    let pid = p.id();
    std::thread::sleep(Duration::from_secs(3));
    if let Ok(Some(status)) = p.try_wait() {
        panic!(
            "trailship exited ({status}): see {}",
            root.join("daemon.log").display()
        );
    }
    let idle = observe(pid, Duration::from_secs(10), || {});
    println!(
        "idle: RSS {:.1} MiB, CPU {:.2}% of a core",
        idle.peak_rss,
        100.0 * idle.cpu / idle.wall
    );
    // Steady: 8 files of 250 a second for 40 s (320 files, 80,000 events).
    let (steady_files, burst_files) = files.split_at(320);
    let out = root.join("out.ndjson");
    let steady = observe(pid, Duration::from_secs(2), || {
        let t0 = Instant::now();
        for (i, f) in steady_files.iter().enumerate() {
            let at = t0 + Duration::from_millis(125 * i as u64);
            if let Some(d) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            std::fs::copy(f, trail.join(format!("s{i:04}.json.gz"))).unwrap();
        }
    });
    println!(
        "steady 2,000 events/s: peak RSS {:.1} MiB, CPU {:.1}% of a core ({} of 80,000 delivered)",
        steady.peak_rss,
        100.0 * steady.cpu / steady.wall,
        lines(&out)
    );
    // Burst: the remaining 480 files (120,000 events) at once.
    let want = ids.len();
    let burst = observe(pid, Duration::ZERO, || {
        for (i, f) in burst_files.iter().enumerate() {
            std::fs::copy(f, trail.join(format!("b{i:04}.json.gz"))).unwrap();
        }
        let t0 = Instant::now();
        while lines(&out) < want && t0.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    println!(
        "burst of 120,000 events: peak RSS {:.1} MiB, CPU {:.2} s over {:.1} s ({} of {} delivered)",
        burst.peak_rss,
        burst.cpu,
        burst.wall,
        lines(&out),
        want
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = p.wait();
}
