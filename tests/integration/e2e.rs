//! End to end: real CloudTrail fixtures → route/filter → file and console sinks.

use std::path::Path;

use crate::common::*;

fn read_only(v: &serde_json::Value) -> Option<bool> {
    match v.get("readOnly") {
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    copy_dir(&fixtures(), &trail);
    (d, trail)
}

#[test]
fn route_separates_read_and_write_events_byte_for_byte() {
    let (d, trail) = setup();
    let out = d.path().join("out");
    let at = |p: &str| out.join(p);
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .transform(
            "rw",
            "route",
            &["trail"],
            keys! {
                "routes.read.read_only" => true,
                "routes.write.read_only" => false,
            },
        )
        .file_sink(
            "reads",
            &["rw.read"],
            &at("read/%Y/%m/{account_id}.ndjson"),
            keys! {},
        )
        .file_sink(
            "writes",
            &["rw.write"],
            &at("write/events.ndjson"),
            keys! {},
        )
        .file_sink("other", &["rw._unmatched"], &at("other.ndjson"), keys! {})
        .write();
    run_once_ok(&cfg);

    let recs = fixture_records(&trail);
    let want = |f: &dyn Fn(Option<bool>) -> bool| {
        sorted(
            recs.iter()
                .filter(|(_, r)| f(read_only(r)))
                .map(|(_, r)| event_id(r))
                .collect(),
        )
    };
    let reads = output_ids(&out.join("read"));
    let writes = output_ids(&out.join("write"));
    let other = output_ids(&out.join("other.ndjson"));
    assert!(
        reads.len() > 100 && writes.len() > 100,
        "reads {} writes {}",
        reads.len(),
        writes.len()
    );
    assert_eq!(reads, want(&|r| r == Some(true)));
    assert_eq!(writes, want(&|r| r == Some(false)));
    assert_eq!(other, want(&|r| r.is_none()));
    println!(
        "measured: {} records in, read {}, write {}, neither {}",
        recs.len(),
        reads.len(),
        writes.len(),
        other.len()
    );

    // Byte-faithful: each event from the compact (as delivered) files is written exactly as it
    // stood in its file.
    let mut checked = 0;
    for f in files_under(&trail.join("invictus")) {
        let src = String::from_utf8(read_maybe_gz(&f)).unwrap();
        for sink_file in files_under(&out) {
            for line in std::fs::read_to_string(&sink_file).unwrap().lines() {
                let id = event_id(&serde_json::from_str(line).unwrap());
                if src.contains(&format!("\"eventID\":\"{id}\"")) {
                    assert!(src.contains(line), "not byte-for-byte: {line}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "checked {checked}");

    // Paths come from eventTime and recipientAccountId (records without eventTime, like
    // OTRF's, are filed under the time they were processed).
    let parts = files_under(&out.join("read"));
    assert!(
        parts.contains(&out.join("read/2023/07/123837392027.ndjson")),
        "{parts:?}"
    );
    for f in &parts {
        let rel = f
            .strip_prefix(out.join("read"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let acct = v["recipientAccountId"].as_str().unwrap_or("unknown");
            assert!(rel.ends_with(&format!("/{acct}.ndjson")), "{rel}: {acct}");
            if let Some(t) = v["eventTime"].as_str() {
                assert!(
                    rel.starts_with(&format!("{}/{}/", &t[..4], &t[5..7])),
                    "{rel}: {t}"
                );
            }
        }
    }
    // A second run reads nothing new.
    let o2 = run_once(&cfg);
    assert_eq!(o2.status.code(), Some(0));
    assert_eq!(output_ids(&out.join("read")), reads);
}

#[test]
fn filter_writes_cloudtrail_gzip_documents() {
    let (d, trail) = setup();
    let out = d.path().join("out");
    let include = vec![
        format!("{}/**/*.json.gz", trail.display()),
        format!("{}/stratus/*.json", trail.display()),
    ];
    let cfg = Pipeline::new(d.path())
        .source("trail", "file", keys! { "include" => include })
        .transform(
            "mgmt_writes",
            "filter",
            &["trail"],
            keys! {
                "category" => "management",
                "exclude.event_name" => vec!["Describe*", "List*", "Get*"],
            },
        )
        .file_sink(
            "archive",
            &["mgmt_writes"],
            &out.join("%Y/%m/%d/{region}.json.gz"),
            keys! {
                "encoding" => "cloudtrail",
                "compression" => "gzip",
                "batch.max_events" => 7,
            },
        )
        .write();
    run_once_ok(&cfg);
    let recs: Vec<_> = fixture_records(&trail)
        .into_iter()
        .filter(|(p, _)| {
            p.to_string_lossy().ends_with(".json.gz") || p.starts_with(trail.join("stratus"))
        })
        .collect();
    let expected = sorted(
        recs.iter()
            .filter(|(_, r)| {
                let name = r["eventName"].as_str().unwrap_or("");
                let data = r.get("eventCategory").and_then(|c| c.as_str()) == Some("Data")
                    || r.get("managementEvent") == Some(&serde_json::Value::Bool(false));
                !data
                    && !["Describe", "List", "Get"]
                        .iter()
                        .any(|p| name.starts_with(p))
            })
            .map(|(_, r)| event_id(r))
            .collect(),
    );
    let mut got = Vec::new();
    let files = files_under(&out);
    for f in &files {
        let doc: serde_json::Value = serde_json::from_slice(&read_maybe_gz(f)).unwrap();
        got.extend(doc["Records"].as_array().unwrap().iter().map(event_id));
    }
    assert_eq!(sorted(got), expected);
    // Several batches per region-day: later ones got their own files (x.1.json.gz, ...).
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".1.json.gz")),
        "{files:?}"
    );
}

fn run_default(dir: &Path, envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = trailship(&["run", "--once"]);
    c.current_dir(dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    run_with_timeout(c, 60)
}

#[test]
fn default_pipeline_prints_the_example_trail() {
    let d = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
        d.path(),
    );
    let o = run_default(d.path(), &[]);
    expect_code(&o, 0);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 95);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["eventID"].is_string() && v["eventTime"].as_str().unwrap().starts_with("2023-07-10T"),
            "{l}"
        );
    }
    // Checkpoints in ./.trailship: a second run prints nothing.
    let o = run_default(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    // TRAILSHIP_TRAIL_DIR and TRAILSHIP_DATA_DIR override the defaults.
    let data = d.path().join("elsewhere");
    let o = run_default(
        d.path(),
        &[
            (
                "TRAILSHIP_TRAIL_DIR",
                fixtures().join("stratus").to_str().unwrap(),
            ),
            ("TRAILSHIP_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().lines().count(),
        fixture_records(&fixtures().join("stratus")).len()
    );
    assert!(data.join("checkpoints/trail.json").exists());
}

#[test]
fn categories_route_insight_network_and_data_events() {
    let (d, trail) = setup();
    let out = d.path().join("out");
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .transform(
            "kind",
            "route",
            &["trail"],
            keys! {
                "routes.insight.category" => "insight",
                "routes.network.category" => "network_activity",
                "routes.data.category" => "data",
                "routes.errors.error" => true,
            },
        )
        .file_sink(
            "insight",
            &["kind.insight"],
            &out.join("insight.ndjson"),
            keys! {},
        )
        .file_sink(
            "network",
            &["kind.network"],
            &out.join("network.ndjson"),
            keys! {},
        )
        .file_sink("data", &["kind.data"], &out.join("data.ndjson"), keys! {})
        .sink("errors", "console", &["kind.errors"], keys! {})
        .write();
    let o = run_once_ok(&cfg);
    // 5 Insight events in the AWS docs examples, 6 network activity events from Panther.
    assert_eq!(output_ids(&out.join("insight.ndjson")).len(), 5);
    assert_eq!(output_ids(&out.join("network.ndjson")).len(), 6);
    let data = output_ids(&out.join("data.ndjson"));
    let recs = fixture_records(&trail);
    // Data events: eventCategory "Data" (the S3 object reads recorded by OTRF); the S3
    // GetObject calls in Panther's fixtures are network activity events (VPC endpoint).
    let want_data = sorted(
        recs.iter()
            .filter(|(_, r)| r["eventCategory"] == "Data")
            .map(|(_, r)| event_id(r))
            .collect(),
    );
    assert_eq!(data, want_data);
    assert_eq!(data.len(), 9);
    let errors = String::from_utf8(o.stdout).unwrap().lines().count();
    assert_eq!(
        errors,
        recs.iter()
            .filter(|(_, r)| r.get("errorCode").is_some_and(|e| !e.is_null()))
            .count()
    );
}

#[test]
fn ignore_older_skips_old_files() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    copy_dir(&fixtures().join("stratus"), &trail);
    let old = trail.join("aws.defense-evasion.cloudtrail-stop.json");
    let ten_days = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(ten_days)
        .unwrap();
    let out = d.path().join("out.ndjson");
    let cfg = file_pipeline(
        d.path(),
        "trail",
        &format!("{}/*.json", trail.display()),
        keys! { "ignore_older" => "1d" },
        &out,
        keys! {},
    );
    run_once_ok(&cfg);
    let all = fixture_records(&trail);
    let want = sorted(
        all.iter()
            .filter(|(p, _)| *p != old)
            .map(|(_, r)| event_id(r))
            .collect(),
    );
    assert!(want.len() < all.len());
    assert_eq!(output_ids(&out), want);
    let ckpt = std::fs::read_to_string(d.path().join("data/checkpoints/trail.json")).unwrap();
    assert!(
        !ckpt.contains("cloudtrail-stop"),
        "old files are not tracked"
    );
}

#[test]
fn once_ends_when_its_input_is_delivered_not_at_the_batch_timeout() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let records = corpus::write_documents(&trail, 2, 60, 31, usize::MAX);
    let out = d.path().join("out");
    // Batches that would wait a minute: the last, partial ones go out when the input ends,
    // straight from the source and through a transform.
    let slow = || keys! { "batch.timeout" => "60s", "batch.max_events" => 100_000 };
    let cfg = Pipeline::new(d.path())
        .file_source("trail", &trail)
        .transform(
            "writes",
            "filter",
            &["trail"],
            keys! { "event_type" => "*" },
        )
        .file_sink("direct", &["trail"], &out.join("direct.ndjson"), slow())
        .file_sink(
            "filtered",
            &["writes"],
            &out.join("filtered.ndjson"),
            slow(),
        )
        .write();
    let started = std::time::Instant::now();
    let o = run_with_timeout(once_cmd(&cfg), 120);
    let took = started.elapsed();
    expect_code(&o, 0);
    let want = sorted(corpus::ids(&records));
    assert_eq!(output_ids(&out.join("direct.ndjson")), want);
    assert_eq!(output_ids(&out.join("filtered.ndjson")), want);
    assert!(
        took < std::time::Duration::from_secs(30),
        "a --once run of 120 events took {took:?}: it waited for the 60 s batch timeout"
    );
}
