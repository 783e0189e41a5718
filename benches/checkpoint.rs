//! What one checkpoint commit of the file source costs as the number of tracked files grows:
//! the source writes the whole map of every file it tracks (`Saved` per path) through
//! `CheckpointStore::save` (write a temporary file, fsync, rename, fsync the directory).
//! `cargo bench --bench checkpoint`; set `TRAILSHIP_BENCH_FILES=10000,100000` to choose.

use std::collections::BTreeMap;
use std::time::Instant;

use trailship::checkpoint::CheckpointStore;
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
        let map = tracked(n);
        let store = CheckpointStore::open(dir.path(), &format!("bench-{n}")).expect("store");
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            store.save(&map).expect("save");
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
        println!(
            "{n} tracked files: one commit writes {:.1} MB, median {:.1} ms (min {:.1}, max {:.1}) of 5",
            size as f64 / 1e6,
            times[2] * 1e3,
            times[0] * 1e3,
            times[4] * 1e3
        );
    }
}
