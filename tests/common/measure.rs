//! Run a process to completion and measure it: wall time, CPU seconds, peak RSS.
//!
//! The process is started by GNU time (`/usr/bin/time`), which forks it from its own small
//! process and reports its rusage. Measuring a child of the test process directly (wait4)
//! would be wrong: Rust spawns with vfork semantics, and at exec the kernel records the
//! *parent's* peak RSS into the child's `ru_maxrss` — so a test process holding a few hundred
//! MB (other tests running in parallel) would show up as the child's peak.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Instant;

pub struct Measure {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kib: i64,
    pub ok: bool,
    pub code: Option<i32>,
}

/// Run `cmd` (its program, arguments, environment and directory; output discarded).
pub fn measure(cmd: &mut Command) -> Measure {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M %U %S", "-o"])
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let start = Instant::now();
    let status = timed
        .status()
        .expect("/usr/bin/time (Debian package `time`; scripts/test.sh installs it)");
    let wall = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    // GNU time writes "Command exited with non-zero status N" before the figures then.
    let figures: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(figures.len(), 3, "GNU time report: {text:?}");
    let code = status.code();
    Measure {
        wall,
        cpu: figures[1] + figures[2],
        max_rss_kib: figures[0] as i64,
        ok: code == Some(0),
        code,
    }
}

/// A running process's resident set size now, in MiB (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
