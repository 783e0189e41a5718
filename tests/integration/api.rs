//! The HTTP API on the real binary: /health, /ready, /metrics in the Prometheus text format,
//! and the errors of a bad or busy address.

use crate::common::corpus;
use crate::common::*;

#[test]
fn health_ready_and_metrics() {
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 4, 250, 111, usize::MAX);
    let port = free_port();
    let cfg = trail_pipeline(d.path())
        .section("api", keys! { "address" => format!("127.0.0.1:{port}") })
        .write();
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    wait_ready(port);
    assert_eq!(http(port, "GET", "/health"), Some((200, "ok\n".into())));
    wait_until(60, "every event delivered", || {
        complete_ids(&d.path().join("out.ndjson")).len() >= records.len()
    });
    // The file source counts a file's events when it has finished it, which may be after the
    // sink delivered them: the counter is live, so wait for it.
    let want = format!(
        "trailship_events_received_total{{component=\"trail\"}} {}",
        records.len()
    );
    wait_until(30, "the received counter to reach every event", || {
        http(port, "GET", "/metrics").is_some_and(|(_, m)| m.contains(&want))
    });
    let (status, metrics) = http(port, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE trailship_events_received_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "trailship_events_received_total{{component=\"trail\"}} {}",
            records.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("trailship_events_sent_total{component=\"out\"}"),
        "{metrics}"
    );
    let bytes_in = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trailship_bytes_received_total{component=\"trail\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(bytes_in.is_some_and(|b| b > 100_000), "{metrics}");
    assert_eq!(http(port, "GET", "/nope").map(|(s, _)| s), Some(404));
    assert_eq!(http(port, "POST", "/health").map(|(s, _)| s), Some(405));
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
}

#[test]
fn a_bad_or_busy_address_stops_start_up() {
    let d = tempfile::tempdir().unwrap();
    // The text itself: the error must name the line the address is on.
    let text = to_file(
        d.path(),
        "trail",
        "file",
        keys! { "include" => vec!["/nonexistent/*"] },
        keys! {},
    )
    .text();
    let cfg = d.path().join("p.toml");
    let bad = format!("{text}\n[api]\naddress = \"localhost:x\"\n");
    let line = bad.lines().position(|l| l.starts_with("address")).unwrap() + 1;
    std::fs::write(&cfg, &bad).unwrap();
    let o = run_with_timeout(
        trailship(&["validate", "--config", cfg.to_str().unwrap()]),
        30,
    );
    expect_code(&o, 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(":{line}: api.address")),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!("{text}\n[api]\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let o = run_once(&cfg);
    expect_code(&o, 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot listen"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The value of one series in a /metrics answer (`name{labels}` exactly as printed).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_fails_while_a_sink_is_stuck_and_the_gauges_say_why() {
    use crate::common::http_server::{Reply, Served, Server};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let server = Server::start(Arc::new(move |_r: &Served| {
        if u.load(Ordering::SeqCst) {
            Reply::json(200, serde_json::json!({"ok": true}))
        } else {
            Reply::json(503, serde_json::json!({"error": "down"}))
        }
    }))
    .await;
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    std::fs::create_dir_all(&trail).unwrap();
    // Every event ten minutes old: the lag gauge should say so.
    let base = chrono::Utc::now().timestamp() - 600;
    let mut g = corpus::Gen::starting_at(5, base, 1);
    for f in 0..4 {
        let (_, doc) = g.document(250);
        std::fs::write(trail.join(format!("{f}.json")), doc).unwrap();
    }
    let port = free_port();
    let cfg = Pipeline::new(d.path())
        .section(
            "api",
            keys! { "address" => format!("127.0.0.1:{port}"), "stuck_after" => "1s" },
        )
        .source(
            "trail",
            "file",
            keys! { "include" => vec![format!("{}/*.json", trail.display())] },
        )
        .sink(
            "siem",
            "http",
            &["trail"],
            keys! {
                "uri" => format!("{}/ingest", server.url),
                "batch.max_events" => 100,
                "retry.initial_backoff" => "50ms",
                "retry.max_backoff" => "200ms",
                "buffer" => keys! { "type" => "disk", "max_size" => "8MiB" },
            },
        )
        .write();
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    let ready = move || http(port, "GET", "/ready");
    tokio::task::spawn_blocking(move || {
        wait_until(30, "/ready to name the stuck sink", || {
            ready().is_some_and(|(s, b)| s == 503 && b.contains("sink siem failing for"))
        })
    })
    .await
    .unwrap();
    let m = http(port, "GET", "/metrics").unwrap().1;
    assert!(
        value(&m, "trailship_sink_failing_seconds{component=\"siem\"}").unwrap() > 1.0,
        "{m}"
    );
    assert!(
        value(&m, "trailship_buffer_bytes{sink=\"siem\"}").unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(
        value(&m, "trailship_buffer_max_bytes{sink=\"siem\"}"),
        Some(8_388_608.0)
    );
    assert_eq!(
        value(&m, "trailship_files_tracked{component=\"trail\"}"),
        Some(4.0)
    );
    assert!(
        value(
            &m,
            "trailship_sink_request_duration_seconds_count{component=\"siem\"}"
        )
        .unwrap()
            > 0.0
    );
    assert!(value(&m, "trailship_sink_retries_total{component=\"siem\"}").unwrap() > 0.0);
    assert!(m.contains("# TYPE trailship_sink_request_duration_seconds histogram"));
    assert!(m.contains("trailship_build_info{version=\""));

    up.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        wait_until(60, "every event delivered and /ready back", || {
            http(port, "GET", "/metrics").is_some_and(|(_, m)| {
                value(&m, "trailship_events_sent_total{component=\"siem\"}") == Some(1000.0)
            }) && http(port, "GET", "/ready").is_some_and(|(s, _)| s == 200)
        })
    })
    .await
    .unwrap();
    let m = http(port, "GET", "/metrics").unwrap().1;
    assert_eq!(
        value(&m, "trailship_sink_failing_seconds{component=\"siem\"}"),
        Some(0.0)
    );
    let lag = value(
        &m,
        "trailship_source_lag_seconds{component=\"trail\",sink=\"siem\"}",
    )
    .unwrap();
    assert!((590.0..720.0).contains(&lag), "lag {lag}");
    assert!(value(&m, "trailship_bytes_sent_total{component=\"siem\"}").unwrap() > 100_000.0);
    assert!(value(&m, "trailship_batches_sent_total{component=\"siem\"}").unwrap() >= 10.0);
    assert!(
        value(
            &m,
            "trailship_sink_delivery_duration_seconds_count{component=\"siem\"}"
        )
        .unwrap()
            >= 10.0
    );
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
}
