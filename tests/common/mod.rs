//! Helpers shared by the integration tests: the real binary, temp dirs, fixtures read
//! independently of trailship's own decoder, output readers, process control.
#![allow(dead_code)]

pub mod corpus;
pub mod http_server;
pub mod measure;
pub mod moto;
pub mod ocsf;
pub mod pipeline;
pub mod proxy;
pub mod rsyslog;
pub mod switch;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use pipeline::Pipeline;
pub(crate) use pipeline::keys;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_trailship")
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudtrail")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Decompress (possibly several) gzip members.
pub fn gunzip(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn read_maybe_gz(p: &Path) -> Vec<u8> {
    let raw = std::fs::read(p).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(&raw)
    } else {
        raw
    }
}

/// Every record of the fixture files (not digests), parsed with serde_json — independently of
/// trailship's decoder — as (file, record).
pub fn fixture_records(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        files_under(dir)
    };
    let mut out = Vec::new();
    for p in files {
        let data = read_maybe_gz(&p);
        let text = String::from_utf8(data).unwrap();
        if p.to_string_lossy().ends_with(".ndjson") {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                out.push((p.clone(), serde_json::from_str(line).unwrap()));
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(recs) = v.get("Records").and_then(|r| r.as_array()) {
                out.extend(recs.iter().map(|r| (p.clone(), r.clone())));
            }
        }
    }
    out
}

pub fn event_id(v: &serde_json::Value) -> String {
    v.get("eventID")
        .and_then(|x| x.as_str())
        .unwrap_or("<none>")
        .to_string()
}

/// eventIDs of the complete lines of a file a sink may be writing now, or that a killed
/// process left (its last line may be partial).
pub fn complete_ids(file: &Path) -> Vec<String> {
    let text = std::fs::read(file).unwrap_or_default();
    let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&text[..end])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| event_id(&v))
        .collect()
}

/// Distinct eventIDs in a file a sink may be writing now.
pub fn ids_so_far(file: &Path) -> std::collections::BTreeSet<String> {
    complete_ids(file).into_iter().collect()
}

/// eventIDs of all NDJSON lines of the files under `dir` (or the file `dir`).
pub fn output_ids(dir: &Path) -> Vec<String> {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        files_under(dir)
    };
    let mut ids = Vec::new();
    for f in files {
        let text = String::from_utf8(read_maybe_gz(&f)).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", f.display()));
            ids.push(event_id(&v));
        }
    }
    ids.sort();
    ids
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Ids of `want` that `got` holds fewer times.
fn short_of<'a>(
    got: &BTreeMap<String, usize>,
    want: &'a BTreeMap<String, usize>,
) -> Vec<&'a String> {
    want.iter()
        .filter(|(k, n)| got.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect()
}

/// Assert two id lists hold the same ids the same number of times; on failure, say how
/// many are missing or extra and show a few (not thousands of ids).
pub fn assert_same_ids(got: &[String], want: &[String], what: &str) {
    let (g, w) = (multiset(got), multiset(want));
    let missing: Vec<_> = w
        .iter()
        .filter(|(k, n)| g.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<_> = g
        .iter()
        .filter(|(k, n)| w.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} ids, {} wanted; {} missing (e.g. {:?}), {} extra or repeated (e.g. {:?})",
        got.len(),
        want.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
    );
}

/// At-least-once: every wanted id is there at least as often as wanted, and the extra copies
/// (redeliveries) are at most `max_extra`. Returns the number of extra copies.
pub fn assert_at_least_once(
    got: &[String],
    want: &[String],
    max_extra: usize,
    what: &str,
) -> usize {
    let (g, w) = (multiset(got), multiset(want));
    let missing: Vec<_> = w
        .iter()
        .filter(|(k, n)| g.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    let foreign: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && foreign.is_empty(),
        "{what}: {} missing (e.g. {:?}), {} not in the input (e.g. {:?})",
        missing.len(),
        &missing[..missing.len().min(5)],
        foreign.len(),
        &foreign[..foreign.len().min(5)],
    );
    let extra = got.len() - want.len();
    assert!(
        extra <= max_extra,
        "{what}: {extra} extra copies, at most {max_extra} expected"
    );
    extra
}

/// Count of each id.
pub fn multiset(ids: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in ids {
        *m.entry(i.clone()).or_default() += 1;
    }
    m
}

pub fn trailship(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("TRAILSHIP_LOG")
        .env_remove("TRAILSHIP_TRAIL_DIR")
        .env_remove("TRAILSHIP_DATA_DIR");
    c
}

/// Run to completion, with a deadline.
pub fn run_with_timeout(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trailship");
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(mut p) = out_pipe {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(mut p) = err_pipe {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = t_err.join().unwrap_or_default();
            panic!(
                "trailship did not finish in {secs}s; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// `trailship run --once --log-format json --config CFG`, not started.
pub fn once_cmd(cfg: &Path) -> Command {
    trailship(&[
        "run",
        "--once",
        "--log-format",
        "json",
        "--config",
        cfg.to_str().unwrap(),
    ])
}

/// `trailship run --once --log-format json --config CFG`, to completion.
pub fn run_once(cfg: &Path) -> Output {
    run_with_timeout(once_cmd(cfg), 120)
}

/// Assert a finished run's exit status, showing its stderr otherwise.
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `run_once`, asserting exit status 0 (stderr shown otherwise).
pub fn run_once_ok(cfg: &Path) -> Output {
    let o = run_once(cfg);
    expect_code(&o, 0);
    o
}

/// A file source `name` reading `include` (plus `source_keys`) into a file sink `out` writing
/// `sink_path` (plus `sink_keys`), with a 20 s shutdown timeout; data in `dir/data`.
pub fn file_pipeline(
    dir: &Path,
    name: &str,
    include: &str,
    mut source_keys: pipeline::Table,
    sink_path: &Path,
    sink_keys: pipeline::Table,
) -> PathBuf {
    source_keys.insert("include".into(), vec![include].into());
    Pipeline::new(dir)
        .set("shutdown_timeout", "20s")
        .source(name, "file", source_keys)
        .file_sink("out", &[name], sink_path, sink_keys)
        .write()
}

/// A pipeline from the source `name` of `kind` (with `source_keys`) into a file sink `out`
/// writing `dir/out.ndjson` in 100 ms batches (plus `sink_keys`); data in `dir/data`.
pub fn to_file(
    dir: &Path,
    name: &str,
    kind: &str,
    source_keys: pipeline::Table,
    sink_keys: pipeline::Table,
) -> Pipeline {
    let mut sink_keys = sink_keys;
    sink_keys
        .entry("batch")
        .or_insert_with(|| pipeline::Value::Table(pipeline::Table::new()))
        .as_table_mut()
        .map(|b| b.entry("timeout").or_insert("100ms".into()));
    Pipeline::new(dir)
        .source(name, kind, source_keys)
        .file_sink("out", &[name], &dir.join("out.ndjson"), sink_keys)
}

/// `to_file` with a file source `trail` reading `dir/trail/*`.
pub fn trail_pipeline(dir: &Path) -> Pipeline {
    let include = format!("{}/*", dir.join("trail").display());
    to_file(
        dir,
        "trail",
        "file",
        keys! { "include" => vec![include] },
        keys! {},
    )
}

/// `trailship run --log-format json --config CFG` (a daemon), not started.
pub fn daemon_cmd(cfg: &Path) -> Command {
    trailship(&[
        "run",
        "--log-format",
        "json",
        "--config",
        cfg.to_str().unwrap(),
    ])
}

/// A daemon (`trailship run`), its stderr to a file.
pub fn spawn_daemon(cfg: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    daemon_cmd(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon")
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// Wait until `f` holds, or panic after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// JSON log lines of a run.
pub fn logs(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The counters printed in the final log line.
pub fn counters(stderr: &[u8]) -> BTreeMap<String, u64> {
    logs(stderr)
        .iter()
        .rev()
        .find_map(|l| {
            l.get("counters")
                .and_then(|c| c.as_str())
                .map(|s| serde_json::from_str(s).unwrap())
        })
        .unwrap_or_default()
}

pub fn toml_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "\\\\")
}

/// One HTTP/1.1 request; (status, body).
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until the API on `port` answers /ready with 200.
pub fn wait_ready(port: u16) {
    wait_until(30, "the API answers /ready", || {
        http(port, "GET", "/ready").is_some_and(|(s, _)| s == 200)
    });
}
