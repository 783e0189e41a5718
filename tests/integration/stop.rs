//! Every stop ends on time: SIGTERM → exit within `shutdown_timeout` + 2 s, a second signal →
//! exit within 2 s, whatever the pipeline is doing. What was not delivered stays uncommitted.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::moto::Moto;
use crate::common::*;

const SHUTDOWN: Duration = Duration::from_secs(3);

/// Send `sig` to the daemon and check it exits within `limit`; says how long it took.
fn stops_within(p: &mut Child, sig: i32, limit: Duration, what: &str) {
    signal(p, sig);
    let start = Instant::now();
    let status = wait_exit(p, limit.as_secs() + 30);
    let took = start.elapsed();
    println!("measured: {what}: exit after {took:?}");
    assert!(
        status.code().is_some(),
        "{what}: ended by a signal: {status:?}"
    );
    assert!(
        took <= limit,
        "{what}: exit after {took:?}, more than {limit:?}"
    );
}

/// The bound after the first signal.
const FIRST: Duration = Duration::from_secs(SHUTDOWN.as_secs() + 2);

/// A trail large enough to keep the readers busy, into a SIEM that refuses connections (its
/// only sink, so no spill): the readers end up blocked behind the SIEM's full channel.
fn blocked_behind_a_dead_siem(d: &std::path::Path) -> std::path::PathBuf {
    corpus::write_documents(&d.join("trail"), 30, 1000, 51, usize::MAX);
    Pipeline::new(d)
        .set("shutdown_timeout", "3s")
        .file_source("trail", &d.join("trail"))
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
    stops_within(
        &mut p,
        libc::SIGTERM,
        FIRST,
        "SIGTERM with readers blocked behind a dead SIEM",
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
    stops_within(
        &mut p,
        libc::SIGTERM,
        Duration::from_secs(2),
        "second signal",
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
    stops_within(
        &mut p,
        libc::SIGTERM,
        FIRST,
        "SIGTERM during a 20 s SQS long poll",
    );
}

fn dead_siem() -> pipeline::Table {
    keys! {
        "uri" => format!("http://127.0.0.1:{}/in", free_port()),
        "retry.max_backoff" => "500ms",
    }
}

#[test]
fn sigterm_during_a_backfill_ends_within_the_timeout() {
    let m = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02/";
    rt.block_on(async {
        m.s3()
            .create_bucket()
            .bucket("stop-trail")
            .send()
            .await
            .unwrap();
        let mut g = corpus::Gen::new(52);
        for i in 0..40 {
            let (_, doc) = g.document(500);
            let key =
                format!("{prefix}111122223333_CloudTrail_us-east-1_20261102T0000Z_{i:04}.json.gz");
            m.put_object("stop-trail", &key, corpus::gzip(doc.as_bytes()))
                .await;
        }
    });
    let d = tempfile::tempdir().unwrap();
    let cfg = Pipeline::new(d.path())
        .set("shutdown_timeout", "3s")
        .source(
            "trail",
            "file",
            keys! { "include" => vec!["/nonexistent/*"] },
        )
        .file_sink(
            "archive",
            &["trail"],
            &d.path().join("archive.ndjson"),
            keys! {},
        )
        .sink("siem", "http", &["trail"], dead_siem())
        .write();
    let log = d.path().join("backfill.log");
    let url = format!("s3://stop-trail/{prefix}");
    let mut c = trailship(&[
        "--log-format",
        "json",
        "backfill",
        &url,
        "--config",
        cfg.to_str().unwrap(),
        "--endpoint",
        &m.endpoint,
        "--region",
        "us-east-1",
    ]);
    m.apply(&mut c);
    let mut p = c
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    started(&log);
    stops_within(
        &mut p,
        libc::SIGTERM,
        FIRST,
        "SIGTERM during a backfill into a dead SIEM",
    );
}

#[test]
fn sigterm_during_a_reload_ends_within_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let cfg = blocked_behind_a_dead_siem(d.path());
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    started(&log);
    // The reload rebuilds the failing sink: retiring it waits for what it holds.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let changed = text.replace("max_backoff = \"500ms\"", "max_backoff = \"400ms\"");
    assert_ne!(text, changed, "the SIEM's table changes");
    std::fs::write(&cfg, changed).unwrap();
    signal(&p, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    stops_within(&mut p, libc::SIGTERM, FIRST, "SIGTERM during a reload");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("reload"), "a reload was started: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hanging_sink_and_a_full_disk_buffer_ends_within_the_timeout() {
    use crate::common::http_server::{Reply, Served, Server};
    // A SIEM that takes requests and never answers.
    let server = Server::start(std::sync::Arc::new(|_r: &Served| {
        Reply::json(200, serde_json::json!({})).after(Duration::from_secs(3600))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    corpus::write_documents(&d.path().join("trail"), 30, 1000, 53, usize::MAX);
    let cfg = Pipeline::new(d.path())
        .set("shutdown_timeout", "3s")
        .file_source("trail", &d.path().join("trail"))
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{}/in", server.url),
                "request_timeout" => "1h",
                "buffer" => keys! { "type" => "disk", "max_size" => "8MiB", "when_full" => "block" },
            },
        )
        .write();
    let log = d.path().join("daemon.log");
    let mut p = spawn_daemon(&cfg, &log);
    tokio::task::spawn_blocking(move || {
        wait_until(30, "the buffer full", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("disk buffer full")
        });
        std::thread::sleep(Duration::from_secs(1));
        stops_within(
            &mut p,
            libc::SIGTERM,
            FIRST,
            "SIGTERM with a hanging sink and a full disk buffer",
        );
    })
    .await
    .unwrap();
}
