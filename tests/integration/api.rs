//! The HTTP API on the real binary: /health, /ready, /metrics in the Prometheus text format,
//! and the errors of a bad or busy address.

use crate::common::corpus;
use crate::common::*;

#[test]
fn health_ready_and_metrics() {
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 4, 250, 111, usize::MAX);
    let port = free_port();
    let cfg = to_file_pipeline(
        d.path(),
        "trail",
        &format!(
            "type = \"file\"\ninclude = [\"{}/*\"]",
            toml_path(&d.path().join("trail"))
        ),
        "",
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[api]\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    wait_until(30, "the API answers /ready", || {
        http(port, "GET", "/ready").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(http(port, "GET", "/health"), Some((200, "ok\n".into())));
    wait_until(60, "every event delivered", || {
        output_ids(&d.path().join("out.ndjson")).len() >= records.len()
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
    assert_eq!(http(port, "GET", "/nope").map(|(s, _)| s), Some(404));
    assert_eq!(http(port, "POST", "/health").map(|(s, _)| s), Some(405));
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
}

#[test]
fn a_bad_or_busy_address_stops_start_up() {
    let d = tempfile::tempdir().unwrap();
    let cfg = to_file_pipeline(
        d.path(),
        "trail",
        "type = \"file\"\ninclude = [\"/nonexistent/*\"]",
        "",
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
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
