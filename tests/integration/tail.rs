//! Growing files: NDJSON is tailed by byte offset through appends, partial lines, truncation
//! and rotation; a gzip file still being written waits for its settle time.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn line(id: &str) -> String {
    format!(
        "{{\"eventVersion\":\"1.08\",\"eventTime\":\"2026-11-02T10:00:00Z\",\"eventName\":\"GetUser\",\"eventID\":\"{id}\"}}\n"
    )
}

fn append(p: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

fn daemon_config(d: &Path, include: &str, mut extra: pipeline::Table) -> std::path::PathBuf {
    std::fs::create_dir_all(d.join("in")).unwrap();
    let include = format!("{}/{include}", d.join("in").display());
    extra.entry("poll_interval").or_insert("200ms".into());
    file_pipeline(
        d,
        "logs",
        &include,
        extra,
        &d.join("out.ndjson"),
        keys! { "batch.timeout" => "50ms" },
    )
}

fn ids(d: &Path) -> Vec<String> {
    if d.join("out.ndjson").exists() {
        output_ids(&d.join("out.ndjson"))
    } else {
        Vec::new()
    }
}

fn expect(d: &Path, want: &[&str], what: &str) {
    let want = sorted(want.iter().map(|s| s.to_string()).collect());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ids(d) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: want {want:?}, have {:?}",
            ids(d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tails_ndjson_through_appends_partial_lines_truncation_and_rotation() {
    let d = tempfile::tempdir().unwrap();
    let cfg = daemon_config(d.path(), "*.ndjson*", keys! {});
    let app = d.path().join("in/app.ndjson");
    append(&app, &(line("a1") + &line("a2") + &line("a3")));
    let mut child = spawn_daemon(&cfg, &d.path().join("d.log"));
    expect(d.path(), &["a1", "a2", "a3"], "first lines");
    // Append, including a line written in two parts.
    let l5 = line("a5");
    append(&app, &(line("a4") + &l5[..20]));
    expect(d.path(), &["a1", "a2", "a3", "a4"], "complete lines only");
    std::thread::sleep(Duration::from_millis(300));
    append(&app, &l5[20..]);
    expect(
        d.path(),
        &["a1", "a2", "a3", "a4", "a5"],
        "the completed line",
    );
    // copytruncate: the file starts over, shorter.
    std::fs::write(&app, line("b1")).unwrap();
    expect(
        d.path(),
        &["a1", "a2", "a3", "a4", "a5", "b1"],
        "after truncation",
    );
    // rename rotation: app.ndjson -> app.ndjson.1, a new app.ndjson.
    std::fs::rename(&app, d.path().join("in/app.ndjson.1")).unwrap();
    append(&app, &(line("c1") + &line("c2")));
    append(&d.path().join("in/app.ndjson.1"), &line("b2"));
    expect(
        d.path(),
        &["a1", "a2", "a3", "a4", "a5", "b1", "b2", "c1", "c2"],
        "after rotation, no re-reads",
    );
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, 30).code(), Some(0));
    // Restart: positions were saved, nothing is read twice; new lines are picked up.
    append(&app, &line("c3"));
    let mut child = spawn_daemon(&cfg, &d.path().join("d2.log"));
    expect(
        d.path(),
        &["a1", "a2", "a3", "a4", "a5", "b1", "b2", "c1", "c2", "c3"],
        "after restart",
    );
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, 30).code(), Some(0));
}

#[test]
fn gzip_being_written_waits_for_settle_time() {
    let d = tempfile::tempdir().unwrap();
    let cfg = daemon_config(d.path(), "**/*.gz", keys! { "settle_time" => "1s" });
    let records: Vec<String> = (0..300)
        .map(|i| line(&format!("g{i}")).trim_end().to_string())
        .collect();
    let gz = corpus::gzip(format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes());
    let mut child = spawn_daemon(&cfg, &d.path().join("d.log"));
    let p = d.path().join("in/slow.json.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    append(&p, "");
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(&gz[gz.len() / 2..]).unwrap();
    drop(f);
    let want: Vec<String> = sorted((0..300).map(|i| format!("g{i}")).collect());
    wait_until(20, "all 300 events", || ids(d.path()) == want);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, 30).code(), Some(0));
    let log = String::from_utf8_lossy(&std::fs::read(d.path().join("d.log")).unwrap()).to_string();
    assert!(!log.contains("truncated"), "{log}");
}

#[test]
fn start_at_end_skips_what_is_already_there() {
    let d = tempfile::tempdir().unwrap();
    let cfg = daemon_config(d.path(), "*.ndjson", keys! { "start_at" => "end" });
    let app = d.path().join("in/app.ndjson");
    append(&app, &(line("old1") + &line("old2")));
    std::fs::write(d.path().join("in/old.ndjson"), line("old3")).unwrap();
    let mut child = spawn_daemon(&cfg, &d.path().join("d.log"));
    wait_until(20, "checkpoint", || {
        d.path().join("data/checkpoints/logs.json").exists()
    });
    append(&app, &line("new1"));
    std::fs::write(d.path().join("in/new.ndjson"), line("new2")).unwrap();
    expect(d.path(), &["new1", "new2"], "only new lines and files");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, 30).code(), Some(0));
}

#[test]
fn the_watcher_finds_new_files_between_polls() {
    let d = tempfile::tempdir().unwrap();
    // Polls are 5 minutes apart: only the filesystem watcher can find these in time.
    let cfg = daemon_config(d.path(), "**/*.ndjson", keys! { "poll_interval" => "5m" });
    let mut child = spawn_daemon(&cfg, &d.path().join("d.log"));
    wait_until(20, "checkpoint", || {
        d.path().join("data/checkpoints/logs.json").exists()
    });
    std::fs::create_dir_all(d.path().join("in/sub")).unwrap();
    append(
        &d.path().join("in/sub/new.ndjson"),
        &(line("w1") + &line("w2")),
    );
    expect(d.path(), &["w1", "w2"], "files found by the watcher");
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, 30).code(), Some(0));
}

#[test]
fn ignore_older_keeps_the_offset_of_a_quiet_tailed_file() {
    let d = tempfile::tempdir().unwrap();
    let cfg = daemon_config(d.path(), "*.ndjson", keys! { "ignore_older" => "1h" });
    let app = d.path().join("in/app.ndjson");
    append(&app, &(line("q1") + &line("q2")));
    run_once_ok(&cfg);
    // The file goes quiet for longer than ignore_older, then gets a new line.
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&app)
        .unwrap()
        .set_modified(old)
        .unwrap();
    run_once_ok(&cfg);
    append(&app, &line("q3"));
    run_once_ok(&cfg);
    assert_eq!(
        ids(d.path()),
        vec!["q1", "q2", "q3"],
        "q1 and q2 are not read again"
    );
}
