//! Every stop ends on time: SIGTERM → exit within `shutdown_timeout` + 2 s, a second signal →
//! exit within 2 s, whatever the pipeline is doing. What was not delivered stays uncommitted.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::moto::Moto;
use crate::common::*;

const SHUTDOWN: Duration = Duration::from_secs(3);

/// Wait for the daemon to exit; how long it took.
fn exit_time(child: &mut Child, limit: Duration) -> Duration {
    let start = Instant::now();
    let status = wait_exit(child, limit.as_secs() + 30);
    assert!(status.code().is_some(), "ended by a signal: {status:?}");
    start.elapsed()
}

/// A trail large enough to keep the readers busy, into an archive and a SIEM that refuses
/// connections (no buffer): the readers end up blocked behind the SIEM's full channel.
fn blocked_behind_a_dead_siem(d: &std::path::Path) -> std::path::PathBuf {
    corpus::write_documents(&d.join("trail"), 30, 1000, 51, usize::MAX);
    Pipeline::new(d)
        .set("shutdown_timeout", "3s")
        .file_source("trail", &d.join("trail"))
        .file_sink("archive", &["trail"], &d.join("archive.ndjson"), keys! {})
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("http://127.0.0.1:{}/in", free_port()),
                "retry.max_backoff" => "500ms",
            },
        )
        .write()
}

fn started(log: &std::path::Path) {
    wait_until(30, "a failed send", || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("will retry")
    });
    // Long enough for every channel to fill and the readers to block.
    std::thread::sleep(Duration::from_secs(2));
}

#[test]
fn sigterm_with_readers_blocked_behind_a_failing_sink_ends_within_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let cfg = blocked_behind_a_dead_siem(d.path());
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    started(&log);
    signal(&p, libc::SIGTERM);
    let took = exit_time(&mut p, SHUTDOWN + Duration::from_secs(2));
    println!("measured: SIGTERM with readers blocked behind a dead SIEM: exit after {took:?}");
    assert!(
        took <= SHUTDOWN + Duration::from_secs(2),
        "exit {took:?} after SIGTERM (shutdown_timeout {SHUTDOWN:?})"
    );
    // Nothing undelivered was committed: a run with a working SIEM reads the files again.
    let ckpt =
        std::fs::read_to_string(d.path().join("data/checkpoints/trail.json")).unwrap_or_default();
    let committed = ckpt.matches("\"done\":true").count();
    assert_eq!(
        committed, 0,
        "a file was committed that the SIEM never got: {ckpt}"
    );
}

#[test]
fn a_second_signal_ends_within_two_seconds() {
    let d = tempfile::tempdir().unwrap();
    let cfg = blocked_behind_a_dead_siem(d.path());
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    started(&log);
    signal(&p, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    signal(&p, libc::SIGTERM);
    let took = exit_time(&mut p, Duration::from_secs(2));
    println!("measured: second signal: exit after {took:?}");
    assert!(
        took <= Duration::from_secs(2),
        "exit {took:?} after the second signal"
    );
}

#[test]
fn sigterm_during_an_sqs_long_poll_ends_at_once() {
    let m = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(crate::sqs::setup(&m));
    let d = tempfile::tempdir().unwrap();
    let cfg = to_file(
        d.path(),
        "queue",
        "sqs",
        keys! {
            "queue_url" => url,
            "endpoint" => m.endpoint.clone(),
            "region" => "us-east-1",
            "wait_time" => 20,
        },
        keys! {},
    )
    .set("shutdown_timeout", "3s")
    .write();
    let log = d.path().join("daemon.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut c = daemon_cmd(&cfg);
    m.apply(&mut c);
    let mut p = c
        .stdout(std::process::Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    wait_until(30, "the source started", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("sqs source started")
    });
    std::thread::sleep(Duration::from_secs(1));
    signal(&p, libc::SIGTERM);
    let took = exit_time(&mut p, SHUTDOWN + Duration::from_secs(2));
    println!("measured: SIGTERM during a 20 s SQS long poll: exit after {took:?}");
    assert!(took <= SHUTDOWN + Duration::from_secs(2), "exit {took:?}");
}
