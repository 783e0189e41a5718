//! The S3 source and `trailship backfill` against a real moto server: day bounds from the key,
//! resuming from the checkpoint, bad objects set aside, kill -9 mid-backfill, progress bar.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::corpus::{self, Gen};
use crate::common::moto::Moto;
use crate::common::*;

const BUCKET: &str = "trail-bucket";
const PREFIX: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/";

/// Put `per_day` objects of `records` records for each November day in `days`; returns the
/// eventIDs by day.
async fn put_days(
    m: &Moto,
    days: std::ops::RangeInclusive<u32>,
    per_day: usize,
    records: usize,
    g: &mut Gen,
) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for day in days {
        let mut ids = Vec::new();
        for i in 0..per_day {
            let (fids, doc) = g.document(records);
            ids.extend(fids);
            let key = format!(
                "{PREFIX}2026/11/{day:02}/111122223333_CloudTrail_us-east-1_202611{day:02}T{:02}{:02}Z_{i:016}.json.gz",
                i / 12,
                (i % 12) * 5
            );
            put(m, &key, corpus::gzip(doc.as_bytes())).await;
        }
        out.push((day, ids));
    }
    out
}

async fn put(m: &Moto, key: &str, body: Vec<u8>) {
    m.put_object(BUCKET, key, body).await;
}

/// A pipeline whose SQS source the backfill replaces (taking its endpoint), into a file.
fn pipeline_with_queue(d: &Path, m: &Moto) -> PathBuf {
    to_file(
        d,
        "queue",
        "sqs",
        keys! {
            "queue_url" => format!("{}/123456789012/unused", m.endpoint),
            "endpoint" => m.endpoint.clone(),
            "region" => "us-east-1",
        },
        keys! {},
    )
    .write()
}

fn backfill(m: &Moto, cfg: &Path, extra: &[&str]) -> std::process::Output {
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let mut args = vec![
        "--log-format",
        "json",
        "backfill",
        url.as_str(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut c = trailship(&args);
    m.apply(&mut c);
    run_with_timeout(c, 120)
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_reads_the_days_asked_for_sets_bad_objects_aside_and_resumes() {
    let m = Moto::start();
    m.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut g = Gen::new(3);
    let days = put_days(&m, 1..=5, 4, 50, &mut g).await;
    // Not CloudTrail, inside the range: set aside, the rest goes on.
    put(
        &m,
        &format!("{PREFIX}2026/11/02/notes.txt"),
        b"not json at all".to_vec(),
    )
    .await;
    // A digest inside the range: not events, skipped.
    put(
        &m,
        &format!("{PREFIX}2026/11/02/CloudTrail-Digest/x.json.gz"),
        b"{}".to_vec(),
    )
    .await;
    let d = tempfile::tempdir().unwrap();
    let cfg = pipeline_with_queue(d.path(), &m);
    let out = d.path().join("out.ndjson");

    let o = backfill(
        &m,
        &cfg,
        &["--since", "2026-11-02", "--until", "2026-11-04"],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "bad input found: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: Vec<String> = days
        .iter()
        .filter(|(d, _)| (2..=3).contains(d))
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    assert_same_ids(&output_ids(&out), &want, "days 2 and 3");
    assert!(logs(&o.stderr).iter().any(|l| {
        l["reason"] == "not_cloudtrail"
            && l["object"]
                .as_str()
                .is_some_and(|o| o.ends_with("notes.txt"))
    }));
    assert!(
        d.path().join("data/checkpoints/queue.s3.json").exists(),
        "the backfill's checkpoint has its own file"
    );

    // Again: nothing new, nothing read twice (the bad object stays set aside).
    let o = backfill(
        &m,
        &cfg,
        &["--since", "2026-11-02", "--until", "2026-11-04"],
    );
    expect_code(&o, 0);
    assert_eq!(output_ids(&out), sorted(want.clone()));

    // An object delivered later on the same day (its key sorts after the others): only it
    // is read.
    let (new_ids, doc) = g.document(10);
    put(
        &m,
        &format!(
            "{PREFIX}2026/11/03/111122223333_CloudTrail_us-east-1_20261103T2355Z_zzzz.json.gz"
        ),
        corpus::gzip(doc.as_bytes()),
    )
    .await;
    let o = backfill(
        &m,
        &cfg,
        &["--since", "2026-11-02", "--until", "2026-11-04"],
    );
    expect_code(&o, 0);
    let mut all = want;
    all.extend(new_ids);
    assert_same_ids(&output_ids(&out), &all, "the late object once");

    // Another range is another backfill: day 5 only.
    let o = backfill(&m, &cfg, &["--since", "2026-11-05"]);
    expect_code(&o, 0);
    let day5 = &days.iter().find(|(d, _)| *d == 5).unwrap().1;
    let got = multiset(&output_ids(&out));
    assert!(day5.iter().all(|i| got.get(i) == Some(&1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_backfill_then_resume_loses_nothing() {
    let m = Moto::start();
    m.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut g = Gen::new(9);
    let ids: Vec<String> = put_days(&m, 1..=6, 20, 150, &mut g)
        .await
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.ndjson");
    let cfg = to_file(
        d.path(),
        "archive",
        "s3",
        keys! {
            "bucket" => BUCKET,
            "prefix" => PREFIX,
            "endpoint" => m.endpoint.clone(),
            "region" => "us-east-1",
            "concurrency" => 4,
        },
        keys! { "batch.max_events" => 200 },
    )
    .write();
    let log = d.path().join("daemon.log");
    let mut kills = 0;
    for threshold in [1u64, 400_000, 1_200_000] {
        let mut c = daemon_cmd(&cfg);
        m.apply(&mut c);
        let mut p = c
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_until(60, "output to grow", || {
            std::fs::metadata(&out).is_ok_and(|x| x.len() >= threshold)
                || p.try_wait().ok().flatten().is_some()
        });
        if p.try_wait().unwrap().is_none() {
            signal(&p, libc::SIGKILL);
            kills += 1;
        }
        let _ = p.wait();
    }
    let o = m.run_once(&cfg);
    expect_code(&o, 0);
    let got = output_ids(&out);
    let mset = multiset(&got);
    assert!(
        ids.iter().all(|i| mset.contains_key(i)),
        "an event was lost"
    );
    assert_eq!(mset.len(), ids.len(), "nothing but the input");
    let dups = got.len() - ids.len();
    // At most the objects in flight (concurrency 4) plus those settled in the last
    // checkpoint interval (100 ms), per kill.
    assert!(
        dups <= kills * 12 * 150,
        "{dups} duplicates after {kills} kills"
    );
    println!(
        "measured: {} events in 120 objects, {kills} kill -9, {} delivered, {dups} duplicates",
        ids.len(),
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_shows_progress_on_a_terminal() {
    let m = Moto::start();
    m.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut g = Gen::new(4);
    put_days(&m, 1..=2, 5, 40, &mut g).await;
    let d = tempfile::tempdir().unwrap();
    let cfg = pipeline_with_queue(d.path(), &m);
    // `script` gives the command a pseudo-terminal, as a person at a shell would.
    let cmd = format!(
        "{} backfill s3://{BUCKET}/{PREFIX} --since 2026-11-01 --config {}",
        bin(),
        cfg.display()
    );
    let mut c = Command::new("script");
    c.args(["-qefc", &cmd, "/dev/null"])
        .env_remove("TRAILSHIP_LOG");
    m.apply(&mut c);
    let o = run_with_timeout(c, 120);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("objects 10/10"), "{screen}");
    assert!(screen.contains("events 400"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(
        !screen.contains("s3 source started"),
        "only warnings and errors under the bar: {screen}"
    );
    assert_eq!(output_ids(&d.path().join("out.ndjson")).len(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_is_reported_at_once() {
    let m = Moto::start();
    let d = tempfile::tempdir().unwrap();
    let cfg = pipeline_with_queue(d.path(), &m);
    let started = std::time::Instant::now();
    let o = backfill(&m, &cfg, &[]);
    expect_code(&o, 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "not retried for long"
    );
    assert!(
        logs(&o.stderr)
            .iter()
            .any(|l| l["error"].as_str().is_some_and(
                |e| e.contains("listing s3://trail-bucket/") && e.contains("NoSuchBucket")
            )),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
