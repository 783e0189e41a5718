//! No secret reaches a log: every sink kind that talks to an endpoint fails its sends (the
//! endpoint refuses connections, or answers 401 and 500) with secrets planted in the URL's
//! userinfo and query, in tokens and keys, and in the AWS credentials; no line of what the
//! run printed holds any of them.

use std::sync::Arc;

use serde_json::json;

use crate::common::http_server::{Reply, Served, Server};
use crate::common::*;

const SECRETS: &[&str] = &[
    "PwInUserinfo1",
    "QueryKey2",
    "BearerTok3",
    "HecTok4",
    "EsApiKey5",
    "AwsSecret6",
    "TokenAsUser7",
];

/// The sinks, each pointed at `base` (`http://127.0.0.1:PORT`) with secrets in its settings.
fn sinks(base: &str) -> Vec<(&'static str, pipeline::Table)> {
    let with_user = |user: &str| base.replacen("http://", &format!("http://{user}@"), 1);
    vec![
        (
            "http",
            keys! {
                "uri" => format!("{}/in?api_key=QueryKey2&tenant=t", with_user("collector:PwInUserinfo1")),
                "auth" => keys! { "strategy" => "bearer", "token" => "BearerTok3" },
            },
        ),
        (
            "splunk_hec",
            keys! { "endpoint" => with_user("TokenAsUser7"), "token" => "HecTok4" },
        ),
        (
            "elasticsearch",
            keys! {
                "endpoints" => vec![with_user("elastic:PwInUserinfo1")],
                "auth" => keys! { "strategy" => "api_key", "key" => "EsApiKey5" },
            },
        ),
        (
            "s3",
            keys! {
                "bucket" => "b",
                "endpoint" => format!("{}/?x-token=QueryKey2", with_user("aws:PwInUserinfo1")),
                "region" => "us-east-1",
            },
        ),
        (
            "cloudwatch_logs",
            keys! {
                "group" => "g",
                "endpoint" => with_user("aws:PwInUserinfo1"),
                "region" => "us-east-1",
            },
        ),
        (
            "eventbridge",
            keys! { "endpoint" => with_user("aws:PwInUserinfo1"), "region" => "us-east-1" },
        ),
    ]
}

fn run_failing(base: &str, what: &str) {
    for (kind, mut keys) in sinks(base) {
        let d = tempfile::tempdir().unwrap();
        let trail = d.path().join("trail");
        corpus::write_documents(&trail, 1, 5, 40, usize::MAX);
        pipeline::merge(
            &mut keys,
            keys! {
                "retry.max_duration" => "2s",
                "retry.initial_backoff" => "100ms",
                "retry.max_backoff" => "500ms",
            },
        );
        let cfg = Pipeline::new(d.path())
            .file_source("trail", &trail)
            .sink("out", kind, &["trail"], keys)
            .write();
        let mut c = once_cmd(&cfg);
        c.env("AWS_ACCESS_KEY_ID", "AKIDPLANTED")
            .env("AWS_SECRET_ACCESS_KEY", "AwsSecret6")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let o = run_with_timeout(c, 120);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_ne!(
            o.status.code(),
            Some(0),
            "{kind} ({what}) cannot deliver:\n{printed}"
        );
        assert!(
            printed.contains("***") || !printed.contains("127.0.0.1"),
            "{kind} ({what}): where it sent is still said, masked:\n{printed}"
        );
        for line in printed.lines() {
            for s in SECRETS {
                assert!(!line.contains(s), "{kind} ({what}) printed {s}:\n{line}");
            }
        }
    }
}

#[test]
fn secrets_never_reach_a_log_when_the_endpoint_refuses_connections() {
    run_failing(&format!("http://127.0.0.1:{}", free_port()), "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_a_log_when_the_endpoint_answers_errors() {
    for status in [401, 500] {
        let server = Server::start(Arc::new(move |_r: &Served| {
            Reply::json(status, json!({"error": "no", "text": "no", "code": 3}))
        }))
        .await;
        let base = server.url.clone();
        tokio::task::spawn_blocking(move || run_failing(&base, &format!("HTTP {status}")))
            .await
            .unwrap();
    }
}

/// A daemon with every network sink failing at once, its API on: neither `/metrics` nor
/// `/ready` (which names failing sinks) nor any log line holds a planted secret.
#[test]
fn secrets_never_reach_metrics_or_ready() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    corpus::write_documents(&trail, 2, 50, 41, usize::MAX);
    let port = free_port();
    let mut p = Pipeline::new(d.path())
        .set("shutdown_timeout", "2s")
        .section(
            "api",
            keys! { "address" => format!("127.0.0.1:{port}"), "stuck_after" => "1s" },
        )
        .file_source("trail", &trail);
    for (kind, keys) in sinks(&format!("http://127.0.0.1:{}", free_port())) {
        p = p.sink(kind, kind, &["trail"], keys);
    }
    let cfg = p.write();
    let log = d.path().join("daemon.log");
    let mut c = daemon_cmd(&cfg);
    c.env("AWS_ACCESS_KEY_ID", "AKIDPLANTED")
        .env("AWS_SECRET_ACCESS_KEY", "AwsSecret6")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = c.spawn().unwrap();
    wait_until(60, "the API and a failed send", || {
        http(port, "GET", "/health").is_some()
            && std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("will retry")
    });
    // Past `stuck_after`, so that /ready names the failing sinks.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, metrics) = http(port, "GET", "/metrics").expect("/metrics answers");
    let (status, ready) = http(port, "GET", "/ready").expect("/ready answers");
    signal(&child, libc::SIGTERM);
    wait_exit(&mut child, 30);
    assert!(
        metrics.contains("trailship_sink_retries_total"),
        "the sinks failed and retried:\n{metrics}"
    );
    assert_eq!(status, 503, "failing sinks make /ready fail: {ready}");
    let printed = std::fs::read_to_string(&log).unwrap();
    for (what, text) in [
        ("/metrics", &metrics),
        ("/ready", &ready),
        ("the log", &printed),
    ] {
        for line in text.lines() {
            for s in SECRETS {
                assert!(!line.contains(s), "{what} holds {s}:\n{line}");
            }
        }
    }
}
