//! `trailship top` against a running binary: the table per component (source, transform,
//! sink) with rates, errors and lag; on a pseudo-terminal (as over SSH) it redraws in place.

use std::process::Stdio;
use std::time::Duration;

use crate::common::corpus;
use crate::common::*;

/// A daemon with the API on, a filter between source and sink, and its trail being fed.
fn running() -> (tempfile::TempDir, u16, std::process::Child) {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    std::fs::create_dir_all(&trail).unwrap();
    let port = free_port();
    let include = format!("{}/*", trail.display());
    let cfg = Pipeline::new(d.path())
        .section("api", keys! { "address" => format!("127.0.0.1:{port}") })
        .source(
            "trail",
            "file",
            keys! {
                "include" => vec![include],
                "settle_time" => "100ms",
                "poll_interval" => "100ms",
            },
        )
        .transform(
            "writes",
            "filter",
            &["trail"],
            keys! { "read_only" => false },
        )
        .file_sink(
            "archive",
            &["writes"],
            &d.path().join("out.ndjson"),
            keys! { "batch.timeout" => "100ms" },
        )
        .write();
    let p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    wait_ready(port);
    let t = trail.clone();
    std::thread::spawn(move || {
        for f in 0..30 {
            corpus::write_documents(&t, 1, 200, 500 + f, usize::MAX);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (d, port, p)
}

#[test]
fn top_prints_a_row_per_component_with_rates() {
    let (_d, port, p) = running();
    let o = run_with_timeout(
        trailship(&[
            "top",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--interval",
            "700ms",
            "--iterations",
            "3",
        ]),
        30,
    );
    expect_code(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("{out}");
    assert!(!out.contains('\x1b'), "no escape codes outside a terminal");
    let tables: Vec<&str> = out
        .split("trailship top: ")
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tables.len(), 3, "{out}");
    let last = tables[2];
    assert!(last.contains("COMPONENT") && last.contains("OUT/s") && last.contains("LAG"));
    let row = |name: &str| {
        last.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (src, tr, sink) = (row("trail"), row("writes"), row("archive"));
    assert_eq!(src[1], "source");
    assert_eq!(tr[1], "transform");
    assert_eq!(sink[1], "sink");
    // Events flow at a few hundred to a few thousand per second: some table shows a rate.
    let rated = tables.iter().any(|t| {
        t.lines().filter(|l| l.starts_with("archive")).any(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|v| v != "0.0" && v != "-")
        })
    });
    assert!(rated, "{out}");
    assert_eq!(sink[8], "no", "the sink is not failing: {sink:?}");
    // The filter drops the read-only events on purpose, and says so.
    let m = http(port, "GET", "/metrics").unwrap().1;
    assert!(
        m.lines()
            .any(|l| l.starts_with("trailship_events_dropped_total{component=\"writes\"} ")),
        "{m}"
    );
    assert_ne!(sink[7], "-", "the sink reports a lag: {sink:?}");
    stop(p);
}

fn stop(mut p: std::process::Child) {
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
}

#[test]
fn top_redraws_in_place_on_a_terminal() {
    let (_d, port, p) = running();
    // `script` gives top a pseudo-terminal, as an SSH session does.
    let cmd = format!(
        "{} top --url http://127.0.0.1:{port} --interval 300ms",
        bin()
    );
    let mut s = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    signal(&s, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let _ = s.kill();
    let o = s.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let redraws = out.matches("\x1b[H\x1b[2J").count();
    assert!(redraws >= 3, "{redraws} redraws: {out:?}");
    assert!(out.contains("archive"), "{out:?}");
    stop(p);
}

#[test]
fn top_says_when_it_cannot_reach_the_api() {
    let port = free_port();
    let o = run_with_timeout(
        trailship(&[
            "top",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--iterations",
            "1",
        ]),
        30,
    );
    expect_code(&o, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}/metrics")), "{err}");
}

/// The daemon returns freed memory to the system on jemalloc's background thread: there are
/// such threads only when jemalloc read the options built into the binary (`src/main.rs`).
#[test]
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
fn a_daemon_purges_freed_memory_in_the_background() {
    let (_d, _port, p) = running();
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", p.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    stop(p);
    assert!(names.iter().any(|n| n == "jemalloc_bg_thd"), "{names:?}");
}
