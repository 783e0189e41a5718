//! `buffer = { type = "disk" }`: the directory `data_dir/buffers/SINK/`, locked by one process,
//! holding numbered segment files and the delivered position; a writer thread that appends and
//! fsyncs, and a reader task that replays into the sink and deletes what is delivered.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::reader::{self, Reader};
use super::writer::Writer;
use super::{Attach, BufferError, WhenFull, segment};
use crate::checkpoint::CheckpointStore;
use crate::core::Batch;

/// The writer's durable end: segments before `segment` are complete; `segment` is readable up
/// to `len`. `closed`: the writer has stopped (its input closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frontier {
    pub segment: u64,
    pub len: u64,
    pub closed: bool,
}

/// What the writer and the reader share.
pub struct Shared {
    pub sink: Arc<str>,
    pub dir: PathBuf,
    /// Bytes of segment files on disk.
    pub used: AtomicU64,
    pub max_size: u64,
    /// The size at which the writer starts a new segment.
    pub segment_size: u64,
    /// Events the writer has taken from its input (written or refused): a spilling sink
    /// compares it with what it spilled.
    pub taken: AtomicU64,
    /// The reader has read everything written so far (the writer clears it on each commit).
    pub caught_up: AtomicBool,
    /// Spilled records of rereadable files are named (run records), not copied.
    pub reread: bool,
    /// Where the writer says it is full and waiting (`/ready`).
    pub health: Arc<crate::core::run::Health>,
    /// Held for the life of the buffer: one process per buffer directory.
    _lock: File,
}

/// Segments of an eighth of the buffer (1–64 MiB): delivered space is freed a segment at a
/// time, so a full buffer frees space well before it is empty.
fn segment_size(max_size: u64) -> u64 {
    (max_size / 8).clamp(1 << 20, 64 << 20)
}

fn open(
    dir: &Path,
    sink: &Arc<str>,
    max_size: u64,
    health: Arc<crate::core::run::Health>,
) -> Result<(Shared, Vec<u64>), BufferError> {
    let ctx = |what: &str, source: std::io::Error| BufferError::Dir {
        sink: sink.to_string(),
        dir: dir.to_path_buf(),
        what: what.to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| ctx("cannot create the directory", e))?;
    let lock = File::create(dir.join("lock")).map_err(|e| ctx("cannot create its lock file", e))?;
    lock.try_lock().map_err(|source| BufferError::Locked {
        sink: sink.to_string(),
        dir: dir.to_path_buf(),
        source,
    })?;
    let ids = segment::list(dir).map_err(|e| ctx("cannot list it", e))?;
    let mut used = 0;
    for id in &ids {
        let p = segment::path(dir, *id);
        used += fs::metadata(&p)
            .map_err(|e| ctx(&format!("cannot read {}", p.display()), e))?
            .len();
    }
    Ok((
        Shared {
            sink: sink.clone(),
            dir: dir.to_path_buf(),
            used: AtomicU64::new(used),
            max_size,
            segment_size: segment_size(max_size),
            taken: AtomicU64::new(0),
            caught_up: AtomicBool::new(used == 0),
            reread: false,
            health,
            _lock: lock,
        },
        ids,
    ))
}

pub fn spawn(
    rx: mpsc::Receiver<Batch>,
    max_size: u64,
    when_full: WhenFull,
    at: Attach<'_>,
) -> Result<(mpsc::Receiver<Batch>, Vec<JoinHandle<()>>), BufferError> {
    let (out_tx, out_rx) = mpsc::channel(crate::core::CHANNEL_BATCHES);
    let (_, tasks) = spawn_into(rx, max_size, when_full, false, at, out_tx)?;
    Ok((out_rx, tasks))
}

/// A disk buffer whose reader replays into `out` (which others may send to as well);
/// `reread`: records of rereadable files are named, not copied (a spill).
pub fn spawn_into(
    rx: mpsc::Receiver<Batch>,
    max_size: u64,
    when_full: WhenFull,
    reread: bool,
    at: Attach<'_>,
    out_tx: mpsc::Sender<Batch>,
) -> Result<(Arc<Shared>, Vec<JoinHandle<()>>), BufferError> {
    let dir = at.data_dir.join("buffers").join(&*at.sink);
    let (mut shared, ids) = open(&dir, &at.sink, max_size, at.health.clone())?;
    shared.reread = reread;
    let shared = Arc::new(shared);
    let labels = [("sink", &*at.sink)];
    crate::telemetry::gauge("buffer_max_bytes", &labels, max_size as f64);
    let weak = Arc::downgrade(&shared);
    crate::telemetry::gauge_fn(
        "buffer_bytes",
        &labels,
        Box::new(move || {
            Some(
                weak.upgrade()?
                    .used
                    .load(std::sync::atomic::Ordering::Relaxed) as f64,
            )
        }),
    );
    let store = CheckpointStore::at(dir.join("position.json"));
    let saved = reader::load_position(&store, &at.sink)?;
    // A new segment for this run, after everything on disk and the saved position.
    let first_new = ids
        .last()
        .copied()
        .max(saved.map(|p| p.segment))
        .map_or(1, |l| l + 1);
    let writer = Writer::create(shared.clone(), first_new, when_full, at.hard_stop.clone())?;
    let (frontier_tx, frontier_rx) = watch::channel(Frontier {
        segment: first_new,
        len: 0,
        closed: false,
    });
    let reader = Reader::new(shared.clone(), store, saved, ids, frontier_rx, out_tx, at);
    let w = tokio::task::spawn_blocking(move || writer.run(rx, frontier_tx));
    let r = tokio::spawn(reader.run());
    Ok((shared, vec![w, r]))
}
