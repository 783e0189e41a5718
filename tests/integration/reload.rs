//! Config reload on the real binary: SIGHUP and --watch-config while events flow. Unchanged
//! components keep running (the source is never re-read: no duplicates), changed ones are
//! rebuilt after delivering what they hold, an invalid config is rejected and the old one
//! keeps running, and no event is lost.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::corpus;
use crate::common::*;

const FILES: usize = 40;
const PER_FILE: usize = 250;
/// A sink's rate limit behind a 64 MiB disk buffer.
fn limited(events_per_sec: i64) -> pipeline::Table {
    keys! {
        "rate_limit.events_per_sec" => events_per_sec,
        "buffer" => keys! { "type" => "disk", "max_size" => "64MiB" },
    }
}

/// Write FILES documents into `trail`, one every 100 ms; returns every eventID.
fn write_slowly(trail: &Path) -> std::thread::JoinHandle<Vec<String>> {
    let trail = trail.to_path_buf();
    std::thread::spawn(move || {
        let mut ids = Vec::new();
        for f in 0..FILES {
            let tmp = trail.join(".tmp");
            let recs = corpus::write_documents(&tmp, 1, PER_FILE, 1000 + f as u64, usize::MAX);
            // Appear whole: written aside, then renamed into the watched directory.
            std::fs::rename(
                tmp.join(format!("{}-0.json.gz", 1000 + f)),
                trail.join(format!("{f:03}.json.gz")),
            )
            .unwrap();
            ids.extend(corpus::ids(&recs));
            std::thread::sleep(Duration::from_millis(100));
        }
        ids
    })
}

/// The API on `port` and the source `trail` (gzip files under `d/trail`, polled every
/// 200 ms), with `shutdown_timeout` and `source_keys` added; the sinks come after.
fn config_with(d: &Path, port: u16, shutdown: &str, source_keys: pipeline::Table) -> Pipeline {
    let mut keys = keys! {
        "include" => vec![format!("{}/*.json.gz", d.join("trail").display())],
        "settle_time" => "200ms",
        "poll_interval" => "200ms",
    };
    pipeline::merge(&mut keys, source_keys);
    Pipeline::new(d)
        .set("shutdown_timeout", shutdown)
        .section("api", keys! { "address" => format!("127.0.0.1:{port}") })
        .source("trail", "file", keys)
}

fn config(d: &Path, port: u16) -> Pipeline {
    config_with(d, port, "20s", keys! {})
}

/// A file sink `name` of the trail writing `d/NAME.ndjson` in 100 ms batches, with `extra`.
fn file_sink(p: Pipeline, name: &str, d: &Path, extra: pipeline::Table) -> Pipeline {
    let mut keys = keys! { "batch.timeout" => "100ms" };
    pipeline::merge(&mut keys, extra);
    p.file_sink(name, &["trail"], &d.join(format!("{name}.ndjson")), keys)
}

fn metric(port: u16, line: &str) -> bool {
    http(port, "GET", "/metrics").is_some_and(|(_, m)| m.lines().any(|l| l == line))
}

/// Wait until one reload ended with `outcome` (applied, rejected).
fn wait_reloads(port: u16, outcome: &str, what: &str) {
    let line = format!("trailship_config_reloads_total{{outcome=\"{outcome}\"}} 1");
    wait_until(30, what, || metric(port, &line));
}

/// Wait until `file` holds `n` distinct events.
fn wait_delivered(file: &Path, n: usize, what: &str) {
    wait_until(90, what, || ids_so_far(file).len() >= n);
}

fn duplicates(ids: &[String]) -> usize {
    multiset(ids).values().map(|n| n - 1).sum()
}

fn stop(mut p: Child) {
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 60).success());
}

#[test]
fn sighup_rebuilds_only_what_changed_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::create_dir_all(d.join("trail")).unwrap();
    let port = free_port();
    let cfg = d.join("p.toml");
    // `slow` is rate-limited, so it holds events in flight (and in its disk buffer) when it is
    // rebuilt; its successor takes the buffer's directory over.
    let v1 = file_sink(
        file_sink(config(d, port), "archive", d, keys! {}),
        "slow",
        d,
        limited(1500),
    );
    v1.write();
    let log = d.join("daemon.log");
    let p = spawn_daemon(&cfg, &log);
    wait_ready(port);
    let writer = write_slowly(&d.join("trail"));
    std::thread::sleep(Duration::from_millis(1200));
    // v2: archive and the source unchanged; slow changed (a faster limit); copy added.
    let v2 = file_sink(config(d, port), "archive", d, keys! {});
    let v2 = file_sink(file_sink(v2, "slow", d, limited(5000)), "copy", d, keys! {});
    v2.write();
    signal(&p, libc::SIGHUP);
    wait_reloads(port, "applied", "the reload applied");
    // An invalid config: rejected, v2 keeps running.
    std::fs::write(&cfg, format!("{}\n[sinks.broken\n", v2.text())).unwrap();
    signal(&p, libc::SIGHUP);
    wait_reloads(port, "rejected", "the broken config rejected");
    let want = writer.join().unwrap();
    let total = want.len();
    for sink in ["archive", "slow"] {
        let file = d.join(format!("{sink}.ndjson"));
        wait_delivered(&file, total, &format!("{sink} has every event"));
    }
    // The source was never restarted: each event read once.
    wait_until(30, "every event counted once by the source", || {
        metric(
            port,
            &format!("trailship_events_received_total{{component=\"trail\"}} {total}"),
        )
    });
    let archive = output_ids(&d.join("archive.ndjson"));
    let slow = output_ids(&d.join("slow.ndjson"));
    let copy = output_ids(&d.join("copy.ndjson"));
    eprintln!(
        "reload: {total} events; archive {} ({} dup), slow {} ({} dup), copy {} (added mid-run)",
        archive.len(),
        duplicates(&archive),
        slow.len(),
        duplicates(&slow),
        copy.len()
    );
    assert_same_ids(&archive, &want, "the unchanged sink");
    assert_same_ids(&slow, &want, "the sink rebuilt mid-run");
    assert_eq!(duplicates(&copy), 0);
    assert!(
        copy.len() >= PER_FILE && copy.len() < total,
        "the added sink gets what arrives after the reload: {}",
        copy.len()
    );
    let last_file = corpus::ids(&corpus::write_documents(
        &d.join("again"),
        1,
        PER_FILE,
        1000 + FILES as u64 - 1,
        usize::MAX,
    ));
    let got: std::collections::BTreeSet<_> = copy.iter().collect();
    assert!(last_file.iter().all(|id| got.contains(id)));
    stop(p);
    let text = std::fs::read(&log).unwrap();
    let reloaded = logs(&text)
        .into_iter()
        .find(|l| {
            l["message"].as_str() == Some("config reloaded; unchanged components kept running")
        })
        .expect("a reload log line");
    assert_eq!(reloaded["changed"].as_str(), Some("[\"sink slow\"]"));
    assert_eq!(reloaded["added"].as_str(), Some("[\"sink copy\"]"));
    assert_eq!(reloaded["removed"].as_str(), Some("[]"));
    assert!(
        logs(&text)
            .iter()
            .any(|l| l["message"].as_str()
                == Some("reload rejected; the running pipeline is unchanged")),
        "{}",
        String::from_utf8_lossy(&text)
    );
}

#[test]
fn watch_config_restarts_a_changed_source_from_its_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::create_dir_all(d.join("trail")).unwrap();
    let port = free_port();
    let cfg = d.join("p.toml");
    file_sink(config(d, port), "archive", d, keys! {}).write();
    let log = std::fs::File::create(d.join("daemon.log")).unwrap();
    let p = trailship(&[
        "run",
        "--log-format",
        "json",
        "--watch-config",
        "--config",
        cfg.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    wait_ready(port);
    let writer = write_slowly(&d.join("trail"));
    std::thread::sleep(Duration::from_millis(1500));
    // The source's own table changes: it stops after delivering its files in flight, and its
    // successor continues from the checkpoint. Written as editors do: a new file renamed over.
    let v2 = config_with(d, port, "20s", keys! { "poll_interval" => "300ms" });
    file_sink(v2, "archive", d, keys! {}).write_as("p.toml.new");
    std::fs::rename(d.join("p.toml.new"), &cfg).unwrap();
    wait_reloads(port, "applied", "the edited config applied");
    let want = writer.join().unwrap();
    wait_delivered(
        &d.join("archive.ndjson"),
        want.len(),
        "every event delivered",
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = output_ids(&d.join("archive.ndjson"));
    eprintln!(
        "source reload: {} events, {} delivered, {} duplicates",
        want.len(),
        got.len(),
        duplicates(&got)
    );
    // The old source committed what it delivered before it ended: at most the file it was
    // reading when stopped is read again.
    assert_at_least_once(&got, &want, PER_FILE, "across a source rebuild");
    stop(p);
}

#[test]
fn a_rebuilt_filter_and_a_removed_sink_lose_nothing_downstream() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::create_dir_all(d.join("trail")).unwrap();
    let port = free_port();
    let cfg = d.join("p.toml");
    let filtered = |p: Pipeline, extra: pipeline::Table| {
        let mut keys = keys! { "read_only" => false };
        pipeline::merge(&mut keys, extra);
        p.transform("writes", "filter", &["trail"], keys).file_sink(
            "changes",
            &["writes"],
            &d.join("changes.ndjson"),
            keys! { "batch.timeout" => "100ms" },
        )
    };
    let v1 = file_sink(config(d, port), "archive", d, keys! {});
    filtered(file_sink(v1, "extra", d, keys! {}), keys! {}).write();
    let p = spawn_daemon(&cfg, &d.join("daemon.log"));
    wait_ready(port);
    let writer = write_slowly(&d.join("trail"));
    std::thread::sleep(Duration::from_millis(1500));
    // The filter's table changes (the same events pass: every eventType), `extra` goes.
    let v2 = file_sink(config(d, port), "archive", d, keys! {});
    filtered(v2, keys! { "event_type" => "*" }).write();
    signal(&p, libc::SIGHUP);
    wait_reloads(port, "applied", "the reload applied");
    let want = writer.join().unwrap();
    wait_delivered(
        &d.join("archive.ndjson"),
        want.len(),
        "the archive has every event",
    );
    std::thread::sleep(Duration::from_millis(800));
    stop(p);
    let archive = output_ids(&d.join("archive.ndjson"));
    assert_same_ids(&archive, &want, "the unchanged sink");
    // What the filter passes: exactly the events with readOnly false, across its rebuild.
    let mut writes = Vec::new();
    let mut all = Vec::new();
    for line in std::fs::read_to_string(d.join("archive.ndjson"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        all.push(event_id(&v));
        if v["readOnly"] == false {
            writes.push(event_id(&v));
        }
    }
    let changes = output_ids(&d.join("changes.ndjson"));
    eprintln!(
        "filter rebuild: {} events, {} writes passed, {} delivered to the filtered sink",
        all.len(),
        writes.len(),
        changes.len()
    );
    assert!(!writes.is_empty());
    assert_same_ids(&changes, &writes, "the sink behind the rebuilt filter");
    // The removed sink got what arrived before the reload, nothing after, and no duplicates.
    let extra = output_ids(&d.join("extra.ndjson"));
    assert!(
        !extra.is_empty() && extra.len() < want.len(),
        "{}",
        extra.len()
    );
    assert_eq!(duplicates(&extra), 0);
}

/// eventIDs in the NDJSON bodies a server accepted (200).
fn accepted(server: &crate::common::http_server::Server) -> Vec<String> {
    server
        .requests_to("/ingest")
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| event_id(&v))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_sink_repointed_by_reload_delivers_everything() {
    use crate::common::http_server::{Reply, Served, Server};
    use std::sync::Arc;
    let down = Server::start(Arc::new(|_r: &Served| {
        Reply::json(503, serde_json::json!({"error": "down"}))
    }))
    .await;
    let up = Server::start(Arc::new(|_r: &Served| {
        Reply::json(200, serde_json::json!({"ok": true}))
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let want = corpus::ids(&corpus::write_documents(
        &d.join("trail"),
        4,
        250,
        90,
        usize::MAX,
    ));
    let port = free_port();
    let cfg = d.join("p.toml");
    // A short shutdown_timeout: the stuck sink is stopped hard 2 s into the reload.
    let siem = |url: &str| {
        config_with(d, port, "2s", keys! { "retry_delay" => "300ms" }).sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{url}/ingest"),
                "retry.initial_backoff" => "50ms",
                "retry.max_backoff" => "200ms",
            },
        )
    };
    siem(&down.url).write();
    let p = spawn_daemon(&cfg, &d.join("daemon.log"));
    tokio::task::spawn_blocking(move || {
        wait_until(30, "the sink stuck", || {
            http(port, "GET", "/metrics").is_some_and(|(_, m)| {
                m.lines().any(|l| {
                    l.strip_prefix("trailship_sink_retries_total{component=\"siem\"} ")
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|n| n >= 3)
                })
            })
        })
    })
    .await
    .unwrap();
    // The operator fixes the URL and reloads.
    siem(&up.url).write();
    signal(&p, libc::SIGHUP);
    let want_n = want.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ids_set(&accepted(&up)).len() < want_n {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {} of {want_n}",
            ids_set(&accepted(&up)).len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = accepted(&up);
    eprintln!(
        "repointed sink: {} events, {} accepted by the new endpoint ({} duplicates), {} requests refused by the old",
        want_n,
        got.len(),
        duplicates(&got),
        down.requests_to("/ingest").len()
    );
    // What the old sink held when it was stopped is read again: duplicates possible, no loss.
    assert_at_least_once(&got, &want, want_n, "after repointing a failing sink");
    tokio::task::spawn_blocking(move || stop(p)).await.unwrap();
}

fn ids_set(ids: &[String]) -> std::collections::BTreeSet<&String> {
    ids.iter().collect()
}
