//! What one checkpoint commit of the file source costs as the number of tracked files grows.
//! The source appends what changed to its journal (`checkpoint::journal::Journal`: JSON lines,
//! fdatasync) and rewrites the whole base (temporary file, fsync, rename, fsync the directory)
//! only once the journal has grown past twice the entries. Measured: a commit of 8 changed
//! entries (a group commit of a few units), and the base rewrite with what it costs per
//! change amortized. `cargo bench --bench checkpoint`; `TRAILSHIP_BENCH_FILES=10000,100000`
//! to choose the sizes.

use std::collections::BTreeMap;
use std::time::Instant;

use trailship::checkpoint::journal::Journal;
use trailship::sources::file::reader::Mode;
use trailship::sources::file::tracker::Saved;

fn tracked(n: usize) -> BTreeMap<String, Saved> {
    (0..n)
        .map(|i| {
            (
                format!(
                    "/var/log/cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/{:02}/{:02}/111122223333_CloudTrail_us-east-1_2026{:02}{:02}T{:04}Z_{i:016x}.json.gz",
                    i % 12 + 1,
                    i % 28 + 1,
                    i % 12 + 1,
                    i % 28 + 1,
                    i % 2400
                ),
                Saved {
                    dev: 2049,
                    ino: 1_000_000 + i as u64,
                    head: Some((256, 0x9e37_79b9_7f4a_7c15 ^ i as u64)),
                    mode: Some(Mode::Whole),
                    committed: 4096 + i as u64,
                    records: 0,
                    done: true,
                    bad: None,
                    bad_stamp: None,
                },
            )
        })
        .collect()
}

fn main() {
    let sizes: Vec<usize> = std::env::var("TRAILSHIP_BENCH_FILES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores");
    let dir = tempfile::tempdir().expect("temp dir");
    for n in sizes {
        let mut map = tracked(n);
        let name = format!("bench-{n}");
        let (mut journal, _) = Journal::open::<Saved>(dir.path(), &name).expect("journal");
        let t = Instant::now();
        journal.commit(&[], Some(&map)).expect("base");
        let base = t.elapsed().as_secs_f64();
        let base_size =
            std::fs::metadata(dir.path().join("checkpoints").join(format!("{name}.json")))
                .map_or(0, |m| m.len());
        let keys: Vec<String> = map.keys().cloned().collect();
        let mut times = Vec::new();
        for c in 0..200usize {
            let changes: Vec<(String, Option<Saved>)> = (0..8)
                .map(|k| {
                    let key = &keys[(c * 8 + k) * 7919 % keys.len()];
                    let s = map.get_mut(key).expect("tracked");
                    s.committed += 1;
                    (key.clone(), Some(s.clone()))
                })
                .collect();
            assert!(
                !journal.wants_base(changes.len()),
                "no rewrite within 200 commits"
            );
            let t = Instant::now();
            journal.commit(&changes, None).expect("commit");
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let every = 2 * n + 4096;
        println!(
            "{n} tracked files: a commit of 8 changes median {:.2} ms (p99 {:.2}, max {:.2}) of 200; the base ({:.1} MB) rewritten in {:.0} ms every {every} changes ({:.3} ms per change amortized)",
            times[100] * 1e3,
            times[198] * 1e3,
            times[199] * 1e3,
            base_size as f64 / 1e6,
            base * 1e3,
            base * 1e3 / every as f64,
        );
    }
}
