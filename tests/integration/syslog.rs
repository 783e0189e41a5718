//! The syslog sink against a real rsyslog: TCP and TLS with octet counting, UDP with RFC 3164,
//! CEF with newline framing, a receiver limit that must never mis-frame the stream, and a
//! receiver restart in the middle of a run.

use std::path::{Path, PathBuf};

use crate::common::corpus;
use crate::common::rsyslog::Rsyslog;
use crate::common::*;

/// A file source over `trail` into the given syslog sinks (each its own keys, besides type,
/// inputs and a quick retry).
fn syslog_pipeline(d: &Path, trail: &Path, sinks: &[(&str, pipeline::Table)]) -> PathBuf {
    let mut p = Pipeline::new(d)
        .set("shutdown_timeout", "20s")
        .file_source("trail", trail);
    for (name, own) in sinks {
        let mut keys = keys! { "retry.initial_backoff" => "100ms", "retry.max_backoff" => "1s" };
        pipeline::merge(&mut keys, own.clone());
        p = p.sink(name, "syslog", &["trail"], keys);
    }
    p.write()
}

/// A receiver's address on loopback.
fn at(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn write_trail(trail: &Path, files: usize, records: usize, seed: u64) -> Vec<String> {
    corpus::ids(&corpus::write_documents(
        trail,
        files,
        records,
        seed,
        usize::MAX,
    ))
}

fn write_trail_under(
    trail: &Path,
    files: usize,
    records: usize,
    seed: u64,
    max_len: usize,
) -> Vec<String> {
    corpus::ids(&corpus::write_documents(
        trail, files, records, seed, max_len,
    ))
}

/// eventIDs of received JSON messages; panics on anything unparseable (a mis-framed stream).
fn received_ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("not an intact record ({e}): {}", &l[..l.len().min(200)])
            });
            event_id(&v)
        })
        .collect()
}

#[test]
fn tcp_and_tls_deliver_every_event_intact() {
    let r = Rsyslog::start("256k");
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let ids = write_trail(&trail, 4, 500, 1);
    let cfg = syslog_pipeline(
        d.path(),
        &trail,
        &[
            ("plain", keys! { "address" => at(r.tcp) }),
            (
                "secure",
                keys! {
                    "address" => at(r.tls),
                    "protocol" => "tls",
                    "tls.ca_file" => pipeline::path(&r.ca()),
                },
            ),
        ],
    );
    run_once_ok(&cfg);
    for input in ["tcp", "tls"] {
        let got = r.wait_for(input, ids.len(), 20);
        assert_same_ids(&received_ids(&got), &ids, input);
    }
}

#[test]
fn udp_rfc3164_and_cef_with_newline_framing() {
    let r = Rsyslog::start("64k");
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    // UDP has no flow control: a modest number of datagrams of modest size (the receiver's
    // socket buffer is raised to 16 MiB; a real receiver must be sized for its peak too).
    let ids = write_trail_under(&trail, 1, 150, 2, 8000);
    let cfg = syslog_pipeline(
        d.path(),
        &trail,
        &[
            (
                "dgram",
                keys! {
                    "address" => at(r.udp),
                    "protocol" => "udp",
                    "format" => "rfc3164",
                    "facility" => "auth",
                },
            ),
            (
                "arcsight",
                keys! { "address" => at(r.tcp), "format" => "cef", "framing" => "newline" },
            ),
        ],
    );
    run_once_ok(&cfg);
    let got = r.wait_for("udp", ids.len(), 20);
    assert_same_ids(&received_ids(&got), &ids, "udp");
    let cef = r.wait_for("tcp", ids.len(), 20);
    let mut cef_ids = Vec::new();
    for line in &cef {
        assert!(line.starts_with("CEF:0|AWS|CloudTrail|"), "{line}");
        let id = line
            .split(' ')
            .find_map(|kv| kv.strip_prefix("externalId="))
            .unwrap_or_else(|| panic!("no externalId in {line}"));
        cef_ids.push(id.to_string());
        assert!(line.contains("outcome="), "{line}");
    }
    assert_same_ids(&cef_ids, &ids, "cef");
}

#[test]
fn a_message_over_the_receivers_limit_fails_alone_and_never_misframes() {
    // rsyslog's default limit: 8 KiB.
    let r = Rsyslog::start("8k");
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    // Records well under the limit (the corpus has a long tail of large ones).
    let ids = write_trail_under(&trail.join("ok"), 2, 300, 3, 7000);
    let big = format!(
        r#"{{"Records":[{{"eventVersion":"1.08","eventTime":"2026-11-29T10:00:00Z","eventID":"too-big","requestParameters":{{"policy":"{}"}}}}]}}"#,
        "x".repeat(12_000)
    );
    std::fs::create_dir_all(trail.join("big")).unwrap();
    std::fs::write(trail.join("big/0.json"), big).unwrap();
    let cfg = syslog_pipeline(
        d.path(),
        &trail,
        &[(
            "siem",
            keys! { "address" => at(r.tcp), "max_message_size" => "8KiB" },
        )],
    );
    let o = run_once(&cfg);
    expect_code(&o, 3);
    assert!(
        logs(&o.stderr).iter().any(|l| l["event_id"] == "too-big"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("over max_message_size"))),
        "the oversized event is reported with its reason"
    );
    let got = r.wait_for("tcp", ids.len(), 20);
    assert_same_ids(&received_ids(&got), &ids, "every other event, intact");
}

#[test]
fn reconnects_when_the_receiver_restarts_and_loses_nothing() {
    let mut r = Rsyslog::start("256k");
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let mut ids = write_trail(&trail, 1, 400, 4);
    let cfg = syslog_pipeline(
        d.path(),
        &trail,
        &[("siem", keys! { "address" => at(r.tcp) })],
    );
    let mut p = spawn_daemon(&cfg, &d.path().join("daemon.log"));
    let first = r.wait_for("tcp", ids.len(), 30);
    assert_eq!(first.len(), ids.len(), "first file delivered");
    // The receiver goes away (the connection stays open on our side), new events arrive, then
    // it comes back on the same port.
    r.stop();
    ids.extend(write_trail(&trail, 1, 400, 5));
    std::thread::sleep(std::time::Duration::from_secs(2));
    r.restart();
    let got = r.wait_for("tcp", ids.len(), 60);
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, 30).success());
    let extra = assert_at_least_once(&received_ids(&got), &ids, 400, "across a receiver restart");
    println!(
        "measured: {} events, receiver restarted once, {extra} delivered twice",
        ids.len()
    );
}

#[test]
fn client_certificates_and_unverified_tls() {
    let r = Rsyslog::start("256k");
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let ids = write_trail(&trail, 1, 100, 6);
    let (crt, key) = r.client_cert();
    let cfg = syslog_pipeline(
        d.path(),
        &trail,
        &[
            // Mutual TLS: the receiver requires a certificate from its CA.
            (
                "mutual",
                keys! {
                    "address" => at(r.mtls),
                    "protocol" => "tls",
                    "tls.ca_file" => pipeline::path(&r.ca()),
                    "tls.crt_file" => pipeline::path(&crt),
                    "tls.key_file" => pipeline::path(&key),
                },
            ),
            // No CA given and verification off: the test CA is in no system store.
            (
                "unverified",
                keys! { "address" => at(r.tls), "protocol" => "tls", "tls.verify" => false },
            ),
        ],
    );
    let o = run_once_ok(&cfg);
    assert!(
        logs(&o.stderr).iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("tls.verify = false"))),
        "turning verification off is logged"
    );
    assert_same_ids(
        &received_ids(&r.wait_for("mtls", ids.len(), 20)),
        &ids,
        "mutual TLS",
    );
    assert_same_ids(
        &received_ids(&r.wait_for("tls", ids.len(), 20)),
        &ids,
        "unverified TLS",
    );

    // Without the client certificate the receiver refuses the session; with verification on
    // and no CA file, the system roots do not know the test CA. Neither delivers anything.
    let d2 = tempfile::tempdir().unwrap();
    let trail2 = d2.path().join("trail");
    write_trail(&trail2, 1, 10, 7);
    for keys in [
        keys! {
            "address" => at(r.mtls),
            "protocol" => "tls",
            "tls.ca_file" => pipeline::path(&r.ca()),
            "retry.max_retries" => 1,
        },
        keys! { "address" => at(r.tls), "protocol" => "tls", "retry.max_retries" => 1 },
    ] {
        let _ = std::fs::remove_dir_all(d2.path().join("data"));
        let cfg = syslog_pipeline(d2.path(), &trail2, &[("refused", keys)]);
        let o = run_once(&cfg);
        expect_code(&o, 3);
    }
    assert_eq!(
        r.received("mtls").len(),
        ids.len(),
        "nothing more arrived without a certificate"
    );
}
