//! `trailship lookup` on the real binary: who deleted a bucket (real recorded CloudTrail data),
//! a generated corpus checked against an independent count, an unreadable file, an S3 prefix
//! on moto, and the progress line on a pseudo-terminal.

use std::process::Command;

use crate::common::corpus;
use crate::common::moto::Moto;
use crate::common::*;

fn lookup(args: &[&str]) -> std::process::Output {
    let mut c = trailship(&["lookup"]);
    c.args(args);
    run_with_timeout(c, 120)
}

fn json_ids(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| event_id(&serde_json::from_str(l).unwrap()))
        .collect()
}

#[test]
fn who_deleted_this_bucket() {
    let trail = fixtures();
    let o = lookup(&[
        trail.to_str().unwrap(),
        "--event-name",
        "DeleteBucket",
        "--resource-name",
        "stratus-red-team-ctes-bucket-qyxyekjbtk",
    ]);
    expect_code(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two events:\n{out}");
    assert!(lines[0].starts_with("TIME"), "{out}");
    for (l, id) in lines[1..].iter().zip([
        "0c3bce40-9649-4435-9328-f244fed293b5",
        "d6b83ae2-b5f0-40e6-8079-8311b8934faf",
    ]) {
        assert!(l.contains("bert-jan") && l.contains("DeleteBucket"), "{l}");
        assert!(out.contains(id), "{out}");
    }
    // The first attempt failed: --error finds only it.
    let o = lookup(&[
        trail.to_str().unwrap(),
        "--event-name",
        "DeleteBucket",
        "--resource-name",
        "arn:aws:s3:::stratus-red-team-ctes-bucket-qyxyekjbtk",
        "--error",
        "--format",
        "json",
    ]);
    expect_code(&o, 0);
    assert_eq!(json_ids(&o), vec!["0c3bce40-9649-4435-9328-f244fed293b5"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("1 events matched"), "{stderr}");
}

#[test]
fn a_generated_trail_matches_an_independent_count_and_a_bad_file_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let trail = d.path().join("trail");
    let records = corpus::write_documents(&trail, 40, 500, 81, usize::MAX);
    // The expected answers, from the records themselves.
    let parsed: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, r)| serde_json::from_str(r).unwrap())
        .collect();
    let name = parsed[7]["eventName"].as_str().unwrap().to_string();
    let want_name: Vec<String> = parsed
        .iter()
        .filter(|v| v["eventName"] == name.as_str())
        .map(event_id)
        .collect();
    let want_denied: Vec<String> = parsed
        .iter()
        .filter(|v| v["errorCode"] == "AccessDenied" && v["readOnly"] == false)
        .map(event_id)
        .collect();
    assert!(!want_name.is_empty() && !want_denied.is_empty());
    // A damaged file among them: reported, skipped, the rest still searched.
    std::fs::write(trail.join("zz-broken.json.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    let o = lookup(&[
        trail.to_str().unwrap(),
        "--event-name",
        &name,
        "--format",
        "json",
        "--threads",
        "4",
    ]);
    expect_code(&o, 4);
    assert_same_ids(&json_ids(&o), &want_name, "by event name");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("zz-broken.json.gz") && stderr.contains("skipped"),
        "{stderr}"
    );
    std::fs::remove_file(trail.join("zz-broken.json.gz")).unwrap();
    let o = lookup(&[
        trail.to_str().unwrap(),
        "--error",
        "AccessDenied",
        "--read-only",
        "false",
        "--format",
        "json",
    ]);
    expect_code(&o, 0);
    assert_same_ids(&json_ids(&o), &want_denied, "denied writes");
    println!(
        "measured: 20,000 generated events in 40 files: {} by eventName, {} denied writes, as counted independently; a damaged file reported and skipped (exit 4). {}",
        want_name.len(),
        want_denied.len(),
        stderr.lines().last().unwrap_or("")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_prefix_on_moto() {
    let m = Moto::start();
    m.s3().create_bucket().bucket("trail").send().await.unwrap();
    let mut by_day = Vec::new();
    for day in 1..=3u32 {
        // 100 events within the key's day (2026-11-DD from 00:00 UTC, under 60 s apart).
        let base = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        let (ids, doc) = corpus::Gen::starting_at(82 + u64::from(day), base, 60).document(100);
        by_day.push(ids);
        m.put_object(
            "trail",
            &format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/{day:02}/f{day}.json.gz"),
            corpus::gzip(doc.as_bytes()),
        )
        .await;
    }
    let mut c = trailship(&[
        "lookup",
        "s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/",
        "--endpoint",
        &m.endpoint,
        "--aws-region",
        "us-east-1",
        "--format",
        "json",
        "--since",
        "2026-11-02",
    ]);
    m.apply(&mut c);
    let o = tokio::task::spawn_blocking(move || run_with_timeout(c, 120))
        .await
        .unwrap();
    expect_code(&o, 0);
    let want: Vec<String> = by_day[1..].concat();
    assert_same_ids(&json_ids(&o), &want, "events from 2026-11-02 on");
}

#[test]
fn progress_is_drawn_on_a_terminal() {
    let trail = fixtures();
    let cmd = format!(
        "{} lookup {} --event-name DeleteBucket",
        bin(),
        trail.display()
    );
    let mut c = Command::new("script");
    c.args(["-qefc", &cmd, "/dev/null"]);
    let o = run_with_timeout(c, 60);
    assert_eq!(o.status.code(), Some(0));
    let screen = String::from_utf8_lossy(&o.stdout);
    // The progress line: "N/N files E events, M matched".
    assert!(
        screen.contains(" files ") && screen.contains(" events, "),
        "{screen}"
    );
    // Without a terminal: no progress line.
    let o = lookup(&[trail.to_str().unwrap(), "--event-name", "DeleteBucket"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains(" events, "), "{stderr}");
}
