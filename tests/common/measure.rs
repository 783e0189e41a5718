//! Run a process to completion and measure it: wall time, CPU seconds, peak RSS (wait4).
#![allow(dead_code)]

use std::process::Command;
use std::time::Instant;

pub struct Measure {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kib: i64,
    pub ok: bool,
    pub code: Option<i32>,
}

#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
pub fn measure(cmd: &mut Command) -> Measure {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI call with a zeroed, properly aligned rusage struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let wall = start.elapsed().as_secs_f64();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measure {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        ok: code == Some(0),
        code,
    }
}
