//! Bad input: each kind gets a clear log line naming the file and reason, a counter, is not
//! retried forever, and never costs the good events around it.

use std::io::Write;
use std::path::Path;

use crate::common::measure::measure;
use crate::common::*;

fn rec(id: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2026-11-02T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"GetUser","awsRegion":"us-east-1","eventID":"{id}","readOnly":true,"recipientAccountId":"111122223333"}}"#
    )
}

fn doc(ids: &[&str]) -> String {
    format!(
        "{{\"Records\":[{}]}}",
        ids.iter().map(|i| rec(i)).collect::<Vec<_>>().join(",")
    )
}

fn config(d: &Path, trail: &Path) -> std::path::PathBuf {
    file_pipeline(
        d,
        "trail",
        &pipeline::below(trail),
        keys! {},
        &d.join("out/events.ndjson"),
        keys! {},
    )
}

/// Log lines (JSON) that name `file` and carry `reason`.
fn reported(stderr: &[u8], file: &Path, reason: &str) -> bool {
    let f = file.display().to_string();
    logs(stderr).iter().any(|l| {
        l["reason"] == reason
            && (l["file"] == f.as_str() || l["path"].as_str().is_some_and(|p| p.starts_with(&f)))
    })
}

#[test]
fn every_kind_of_bad_file_is_reported_and_good_events_survive() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("trail");
    std::fs::create_dir_all(t.join("dir")).unwrap();
    // Good neighbours.
    std::fs::copy(
        fixtures().join(
            "invictus/218007301253_CloudTrail_us-east-1_20230710T1145Z_7xgocspSowgK0Gto.json.gz",
        ),
        t.join("good.json.gz"),
    )
    .unwrap();
    std::fs::write(t.join("good.json"), doc(&["good-1", "good-2"])).unwrap();
    // Truncated gzip: cut in the middle of the compressed stream.
    let gz = corpus::gzip(
        doc(&(0..200)
            .map(|i| format!("trunc-{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>())
        .as_bytes(),
    );
    std::fs::write(t.join("truncated.json.gz"), &gz[..gz.len() / 2]).unwrap();
    // Corrupt CRC: every record decodes, the trailer does not match.
    let mut crc = corpus::gzip(doc(&["crc-1", "crc-2"]).as_bytes());
    let n = crc.len();
    crc[n - 8] ^= 0xff;
    std::fs::write(t.join("badcrc.json.gz"), &crc).unwrap();
    // Gzip magic, then garbage.
    std::fs::write(
        t.join("garbage.json.gz"),
        [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3,
        ],
    )
    .unwrap();
    std::fs::write(t.join("notjson.json"), "hello, this is not JSON\n").unwrap();
    std::fs::write(t.join("norecords.json"), r#"{"foo": {"bar": [1, 2]}}"#).unwrap();
    std::fs::write(
        t.join("recordsobject.json"),
        r#"{"Records": {"eventID": "x"}}"#,
    )
    .unwrap();
    std::fs::write(
        t.join("mixed.json"),
        format!(
            r#"{{"Records":[5,{},"str",{},[1]]}}"#,
            rec("mixed-1"),
            rec("mixed-2")
        ),
    )
    .unwrap();
    let mut utf = Vec::new();
    writeln!(utf, "{}", rec("utf-1")).unwrap();
    utf.extend_from_slice(b"{\"eventID\":\"utf-bad\",\"eventName\":\"\xff\xfe\"}\n");
    writeln!(utf, "{}", rec("utf-2")).unwrap();
    writeln!(utf, "{{\"eventID\":\"broken-line\",").unwrap();
    writeln!(utf, "{}", rec("utf-3")).unwrap();
    std::fs::write(t.join("badutf8.ndjson"), utf).unwrap();
    std::fs::write(t.join("empty.json"), b"").unwrap();
    std::os::unix::fs::symlink(&t, t.join("dir/loop")).unwrap();

    let cfg = config(d.path(), &t);
    let o = run_once(&cfg);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(4),
        "exit 4: delivered, but bad input was found\n{err}"
    );

    let got = output_ids(&d.path().join("out/events.ndjson"));
    let m = multiset(&got);
    for id in [
        "good-1", "good-2", "crc-1", "crc-2", "mixed-1", "mixed-2", "utf-1", "utf-2", "utf-3",
    ] {
        assert_eq!(m.get(id), Some(&1), "{id} delivered once\n{err}");
    }
    assert!(!m.contains_key("utf-bad") && !m.contains_key("broken-line"));
    let good_gz = fixture_records(&fixtures().join("invictus"))
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("7xgocsp"))
        .count();
    let trunc = got.iter().filter(|i| i.starts_with("trunc-")).count();
    assert_eq!(got.len(), 9 + good_gz + trunc, "nothing else delivered");
    assert!(trunc < 200, "the truncated file was not complete");

    for (file, reason) in [
        ("truncated.json.gz", "truncated"),
        ("badcrc.json.gz", "corrupt_gzip"),
        ("garbage.json.gz", "corrupt_gzip"),
        ("notjson.json", "not_json"),
        ("norecords.json", "no_records"),
        ("recordsobject.json", "records_not_array"),
        ("mixed.json", "record_not_object"),
        ("badutf8.ndjson", "invalid_utf8"),
        ("badutf8.ndjson", "invalid_json"),
        ("empty.json", "empty_file"),
        ("dir/loop", "symlink_loop"),
    ] {
        assert!(
            reported(&o.stderr, &t.join(file), reason),
            "{file}: {reason} not reported\n{err}"
        );
    }
    let c = counters(&o.stderr);
    for reason in [
        "truncated",
        "corrupt_gzip",
        "not_json",
        "no_records",
        "records_not_array",
        "record_not_object",
        "invalid_utf8",
        "empty_file",
        "symlink_loop",
    ] {
        let key = format!("bad_input_total{{component=\"trail\",reason=\"{reason}\"}}");
        assert!(
            c.get(&key).copied().unwrap_or(0) >= 1,
            "counter {key} in {c:?}"
        );
    }
    assert_eq!(
        c.get("bad_input_total{component=\"trail\",reason=\"record_not_object\"}"),
        Some(&3)
    );

    // Not retried forever: a second run reads nothing and reports nothing new.
    // (The symlink loop is still in the tree, so it is reported again; no file is.)
    let o2 = run_once(&cfg);
    expect_code(&o2, 4);
    let again: Vec<_> = logs(&o2.stderr)
        .into_iter()
        .filter(|l| l.get("reason").is_some())
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["reason"], "symlink_loop");
    assert_eq!(output_ids(&d.path().join("out/events.ndjson")), got);
    std::fs::remove_file(t.join("dir/loop")).unwrap();
    // ... until the file changes.
    std::fs::write(t.join("empty.json"), doc(&["late-1"])).unwrap();
    run_once_ok(&cfg);
    assert_eq!(
        multiset(&output_ids(&d.path().join("out/events.ndjson"))).get("late-1"),
        Some(&1)
    );
}

#[test]
fn unreadable_file_is_reported_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("trail");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("good.json"), doc(&["ok-1"])).unwrap();
    std::fs::write(t.join("secret.json"), doc(&["hidden-1"])).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        t.join("secret.json"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let cfg = config(d.path(), &t);
    let mut cmd;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // root reads everything: run trailship as nobody, the way it runs in production.
        for p in [d.path(), &t] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::set_permissions(t.join("good.json"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "run",
            "--once",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&cfg);
    } else {
        cmd = once_cmd(&cfg);
    }
    let o = run_with_timeout(cmd, 60);
    expect_code(&o, 4);
    assert!(
        reported(&o.stderr, &t.join("secret.json"), "unreadable"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        output_ids(&d.path().join("out/events.ndjson")),
        vec!["ok-1".to_string()]
    );
}

#[test]
fn huge_record_and_gzip_bomb_stay_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("trail");
    std::fs::create_dir_all(&t).unwrap();
    // 160 MB uncompressed (a 150 MB record) in a ~150 KB gzip file.
    let f = std::fs::File::create(t.join("bomb.json.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::best());
    write!(
        enc,
        "{{\"Records\":[{},{{\"eventID\":\"huge\",\"pad\":\"",
        rec("before")
    )
    .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..150 {
        enc.write_all(&chunk).unwrap();
    }
    write!(enc, "\"}},{}", rec("after")).unwrap();
    // then 10 MB of whitespace between records, and a final record
    let ws = vec![b' '; 1 << 20];
    for _ in 0..10 {
        enc.write_all(&ws).unwrap();
    }
    write!(enc, ",{}]}}", rec("last")).unwrap();
    enc.finish().unwrap();

    let cfg = config(d.path(), &t);
    let m = measure(
        trailship(&["run", "--once", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert_eq!(
        m.code,
        Some(4),
        "a record over max_record_bytes is bad input"
    );
    assert_eq!(
        output_ids(&d.path().join("out/events.ndjson")),
        vec!["after".to_string(), "before".into(), "last".into()]
    );
    println!(
        "measured: 160 MB gzip bomb processed with peak RSS {:.1} MiB in {:.2} s",
        m.max_rss_kib as f64 / 1024.0,
        m.wall
    );
    assert!(m.max_rss_kib < 128 * 1024, "peak RSS {} KiB", m.max_rss_kib);
}

#[test]
fn files_deleted_while_being_read_cost_no_other_events() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    corpus::write_corpus(&trail, 40, 2000, 11);
    let files: Vec<_> = files_under(&trail);
    let out = d.path().join("out/events.ndjson");
    let cfg = file_pipeline(
        d.path(),
        "trail",
        &pipeline::below(&trail),
        keys! { "max_concurrent_files" => 1 },
        &out,
        keys! {},
    );
    let mut child = once_cmd(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(60, "first events", || {
        std::fs::metadata(&out)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
    // Delete every other file while the run is going: some are being read, some not yet.
    let (gone, kept): (Vec<_>, Vec<_>) = files.iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let kept_ids: Vec<String> = kept
        .iter()
        .flat_map(|(_, p)| fixture_records(p))
        .map(|(_, r)| event_id(&r))
        .collect();
    for (_, p) in &gone {
        std::fs::remove_file(p).unwrap();
    }
    let status = wait_exit(&mut child, 120);
    let mut err = Vec::new();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(
        !logs(&err).iter().any(|l| l["level"] == "ERROR"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    let got = output_ids(&out);
    let m = multiset(&got);
    assert!(
        kept_ids.iter().all(|i| m.get(i) == Some(&1)),
        "every event of every remaining file, once"
    );
    assert!(m.values().all(|n| *n == 1), "no duplicates");
    println!(
        "measured: {} events delivered, {} from the {} files that were not deleted",
        got.len(),
        kept_ids.len(),
        kept.len()
    );
}
