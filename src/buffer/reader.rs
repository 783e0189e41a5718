//! The disk buffer's reader: replays segments into the sink in chunks (each chunk one unit of
//! work), keeps the delivered position (the start of the oldest chunk not yet delivered) in
//! `position.json`, deletes segments wholly before it, and reads failed chunks again after a
//! delay. A restart resumes at the saved position: what was delivered after it is sent again
//! (duplicates), nothing before it is lost.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BufferError;
use super::disk::{Frontier, Shared};
use super::reread::{Lost, Rereader};
use super::segment::{self, Item};
use crate::checkpoint::CheckpointStore;
use crate::core::Batch;
use crate::core::ack::{UnitDone, UnitHandle};
use crate::core::event::{Event, EventData, Origin, parse_header};
use crate::core::run::Outcome;
use crate::telemetry;

/// Bytes read from a segment at once (a record larger than this is read whole).
const WINDOW: usize = 1 << 20;
const SAVE_EVERY: Duration = Duration::from_millis(50);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// A place in the buffer: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

/// The saved delivered position, if any.
pub fn load_position(store: &CheckpointStore, sink: &str) -> Result<Option<Pos>, BufferError> {
    store.load().map_err(|e| BufferError::Position {
        sink: sink.to_string(),
        message: e.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Sent,
    /// Failed; read again at this time.
    Waiting(Instant),
    /// Failed in a `--once` run: stays on disk for the next start.
    Left,
}

struct Chunk {
    start: Pos,
    end: u64,
    events: usize,
    attempts: u32,
    state: State,
}

pub struct Reader {
    shared: Arc<Shared>,
    store: CheckpointStore,
    /// Segment ids on disk that may still hold undelivered records, oldest first.
    segments: Vec<u64>,
    /// The segments found at start (ids may have gaps), and the first this run writes (from
    /// there on they follow one another).
    found: Vec<u64>,
    first_new: u64,
    frontier: watch::Receiver<Frontier>,
    out: mpsc::Sender<Batch>,
    chunk_events: usize,
    once: bool,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    /// Where left-behind events and damage are reported (the pipeline's outcome).
    outcome: Arc<Outcome>,
    cursor: Pos,
    chunks: BTreeMap<u64, Chunk>,
    next_id: u64,
    done_tx: mpsc::UnboundedSender<UnitDone<u64>>,
    done_rx: mpsc::UnboundedReceiver<UnitDone<u64>>,
    saved: Option<Pos>,
    last_save: Instant,
    /// The file the last run record was read from, kept open (see `reread`).
    rereader: Option<Rereader>,
}

/// One read of a segment range.
struct Chunked {
    window: Bytes,
    items: Vec<Item>,
    used: u64,
    /// The records of its run records, read again, in their order.
    runs: Vec<Result<Vec<Bytes>, Lost>>,
}

impl Reader {
    /// `at`: the sink's chunk size, `--once`, and the stop signals.
    pub fn new(
        shared: Arc<Shared>,
        store: CheckpointStore,
        saved: Option<Pos>,
        segments: Vec<u64>,
        frontier: watch::Receiver<Frontier>,
        out: mpsc::Sender<Batch>,
        at: super::Attach<'_>,
    ) -> Reader {
        let first = segments
            .first()
            .copied()
            .unwrap_or(frontier.borrow().segment);
        // Resume at the saved position; segments before it were delivered (their deletion
        // was cut short). No position: everything on disk is replayed.
        let cursor = match saved {
            Some(p) if p.segment >= first => p,
            _ => Pos {
                segment: first,
                offset: 0,
            },
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let first_new = frontier.borrow().segment;
        let mut r = Reader {
            shared,
            store,
            found: segments.clone(),
            first_new,
            segments,
            frontier,
            out,
            chunk_events: at.chunk_events.clamp(1, 10_000),
            once: at.once,
            shutdown: at.shutdown,
            hard_stop: at.hard_stop,
            outcome: at.outcome,
            cursor,
            chunks: BTreeMap::new(),
            next_id: 0,
            done_tx,
            done_rx,
            saved,
            last_save: Instant::now(),
            rereader: Some(Rereader::default()),
        };
        r.track(cursor.segment);
        r.delete_before(cursor.segment);
        let backlog = r.shared.used.load(Ordering::Acquire);
        if backlog > 0 {
            tracing::info!(sink = %r.shared.sink, bytes = backlog, segment = cursor.segment, offset = cursor.offset, "disk buffer holds events from before the restart: replaying them");
        }
        r
    }

    /// Remember a segment the cursor has reached, for deletion once delivered.
    fn track(&mut self, id: u64) {
        if let Err(i) = self.segments.binary_search(&id) {
            self.segments.insert(i, id);
        }
    }

    pub async fn run(mut self) {
        loop {
            while let Ok(d) = self.done_rx.try_recv() {
                self.settle(d);
            }
            self.advance(false);
            if self.hard_stop.is_cancelled() {
                break;
            }
            let stopping = !self.once && self.shutdown.is_cancelled();
            let sent = self.count(|s| s == State::Sent);
            if stopping && sent == 0 {
                break;
            }
            if !stopping {
                match self.next_work().await {
                    Ok(Some(batch)) => {
                        tokio::select! {
                            r = self.out.send(batch) => if r.is_err() {
                                // The sink is gone (it could not start): stop.
                                break;
                            },
                            _ = self.hard_stop.cancelled() => break,
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(sink = %self.shared.sink, error = %e, "cannot read the disk buffer; trying again in 1 s");
                        telemetry::count(
                            "buffer_read_errors_total",
                            &[("sink", &self.shared.sink)],
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
                if self.once && self.drained() && sent == 0 {
                    break;
                }
            }
            let wake = self
                .next_due()
                .unwrap_or_else(|| Instant::now() + SAVE_EVERY);
            tokio::select! {
                d = self.done_rx.recv() => if let Some(d) = d { self.settle(d) },
                r = self.frontier.changed(), if !stopping => if r.is_err() {
                    // The writer is gone without closing (it panicked): nothing new comes.
                    tokio::time::sleep(SAVE_EVERY).await;
                },
                _ = tokio::time::sleep_until(wake) => {},
                _ = self.shutdown.cancelled(), if !self.once && !stopping => {},
                _ = self.hard_stop.cancelled() => {},
            }
        }
        let left: usize = self
            .chunks
            .values()
            .filter(|c| c.state != State::Sent)
            .map(|c| c.events)
            .sum();
        if left > 0 {
            self.outcome.left_behind(left as u64);
            tracing::warn!(sink = %self.shared.sink, events = left, "events the sink did not take stay in the disk buffer; they are sent at the next start");
        }
        self.advance(true);
    }

    fn count(&self, f: impl Fn(State) -> bool) -> usize {
        self.chunks.values().filter(|c| f(c.state)).count()
    }

    /// Everything the writer wrote (and it has stopped) has been read.
    fn drained(&self) -> bool {
        let f = *self.frontier.borrow();
        f.closed && self.cursor.segment == f.segment && self.cursor.offset >= f.len
    }

    fn next_due(&self) -> Option<Instant> {
        self.chunks
            .values()
            .filter_map(|c| match c.state {
                State::Waiting(t) => Some(t),
                _ => None,
            })
            .min()
    }

    fn settle(&mut self, d: UnitDone<u64>) {
        let once = self.once;
        let Some(c) = self.chunks.get_mut(&d.meta) else {
            return;
        };
        if d.delivered {
            self.chunks.remove(&d.meta);
            return;
        }
        c.attempts += 1;
        if once {
            c.state = State::Left;
            return;
        }
        let delay = RETRY_FIRST
            .saturating_mul(1 << c.attempts.min(10))
            .min(RETRY_MAX);
        tracing::warn!(sink = %self.shared.sink, events = c.events, segment = c.start.segment, offset = c.start.offset, retry_in_s = delay.as_secs(), "events from the disk buffer were not delivered; sending them again later");
        c.state = State::Waiting(Instant::now() + delay);
    }

    /// Move the delivered position, delete what is wholly before it, save it now and then.
    fn advance(&mut self, force: bool) {
        let pos = self.chunks.values().next().map_or(self.cursor, |c| c.start);
        self.delete_before(pos.segment);
        if self.saved == Some(pos) || (!force && self.last_save.elapsed() < SAVE_EVERY) {
            return;
        }
        match self.store.save(&pos) {
            Ok(()) => {
                self.saved = Some(pos);
                self.last_save = Instant::now();
            }
            Err(e) => {
                // Not fatal: an older position only means more duplicates after a crash.
                tracing::warn!(sink = %self.shared.sink, error = %e, "cannot save the disk buffer position; trying again");
                self.last_save = Instant::now();
            }
        }
    }

    fn delete_before(&mut self, segment: u64) {
        while let Some(&id) = self.segments.first() {
            if id >= segment {
                break;
            }
            let path = segment::path(&self.shared.dir, id);
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.shared.used.fetch_sub(len, Ordering::AcqRel);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(sink = %self.shared.sink, segment = %path.display(), error = %e, "cannot delete a delivered buffer segment; trying again later");
                    return;
                }
            }
            self.segments.remove(0);
        }
    }

    /// The next batch to send: a failed chunk whose time has come, else new records.
    async fn next_work(&mut self) -> Result<Option<Batch>, BufferError> {
        let now = Instant::now();
        let due = self.chunks.iter().find_map(|(id, c)| match c.state {
            State::Waiting(t) if t <= now => Some(*id),
            _ => None,
        });
        if let Some(id) = due {
            let Some(c) = self.chunks.get(&id) else {
                return Ok(None);
            };
            let (start, end) = (c.start, c.end);
            let read = self.read(start, end, usize::MAX).await?;
            let batch = self.events(id, read, start.segment);
            if let Some(c) = self.chunks.get_mut(&id) {
                c.state = State::Sent;
            }
            return Ok(Some(batch));
        }
        loop {
            let f = *self.frontier.borrow();
            let Pos { segment, offset } = self.cursor;
            let (limit, closed) = if segment < f.segment {
                let path = segment::path(&self.shared.dir, segment);
                match std::fs::metadata(&path) {
                    Ok(m) => (m.len(), true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, true),
                    Err(source) => return Err(BufferError::Read { path, source }),
                }
            } else {
                (f.len, false)
            };
            if offset >= limit {
                if !closed {
                    self.shared.caught_up.store(true, Ordering::Release);
                    return Ok(None);
                }
                // The end of a complete segment: on to the next one on disk.
                let next = self
                    .found
                    .iter()
                    .copied()
                    .find(|id| *id > segment)
                    .unwrap_or((segment + 1).max(self.first_new))
                    .min(f.segment);
                self.cursor = Pos {
                    segment: next,
                    offset: 0,
                };
                self.track(next);
                continue;
            }
            let read = self.read(self.cursor, limit, self.chunk_events).await?;
            if read.used == 0 {
                return Err(BufferError::Short {
                    path: segment::path(&self.shared.dir, segment),
                    offset,
                    end: limit,
                });
            }
            let start = self.cursor;
            self.cursor.offset += read.used;
            let id = self.next_id;
            self.next_id += 1;
            let batch = self.events(id, read, segment);
            if batch.is_empty() {
                continue;
            }
            self.chunks.insert(
                id,
                Chunk {
                    start,
                    end: self.cursor.offset,
                    events: batch.len(),
                    attempts: 0,
                    state: State::Sent,
                },
            );
            return Ok(Some(batch));
        }
    }

    /// Read a range of a segment (and the records its run records name) on a blocking thread.
    async fn read(&mut self, start: Pos, limit: u64, max: usize) -> Result<Chunked, BufferError> {
        let dir = self.shared.dir.clone();
        let mut rr = self.rereader.take().unwrap_or_default();
        let (rr, read) = tokio::task::spawn_blocking(move || {
            let read = read_range_blocking(&dir, start, limit, max, &mut rr);
            (rr, read)
        })
        .await
        .map_err(|e| BufferError::ReadTask(e.to_string()))?;
        self.rereader = Some(rr);
        read
    }

    /// The events of a read, as one unit; damaged bytes and lost runs are reported.
    fn events(&self, id: u64, read: Chunked, segment: u64) -> Batch {
        let unit = UnitHandle::new(id, self.done_tx.clone());
        let mut out = Vec::with_capacity(read.items.len());
        let mut origins: HashMap<(&[u8], &[u8]), Arc<Origin>> = HashMap::new();
        let mut runs = read.runs.into_iter();
        for item in &read.items {
            let (offset, payload, run) = match item {
                Item::Record {
                    offset,
                    payload,
                    run,
                } => (*offset, payload, *run),
                Item::Damaged { offset, len } => {
                    self.damaged(segment, *offset, *len, "checksum");
                    continue;
                }
            };
            let p = &read.window[payload.clone()];
            let Some(parts) = segment::parts(p) else {
                self.damaged(segment, offset, payload.len() as u64, "record layout");
                continue;
            };
            let key = (&p[parts.source.clone()], &p[parts.location.clone()]);
            let origin = origins
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Origin {
                        source: String::from_utf8_lossy(key.0).into(),
                        location: String::from_utf8_lossy(key.1).into_owned(),
                        trace: Default::default(),
                        reread: None,
                    })
                })
                .clone();
            let raws = if run {
                if segment::Run::from_bytes(&p[parts.raw.clone()]).is_none() {
                    self.damaged(segment, offset, payload.len() as u64, "run layout");
                    continue;
                }
                match runs.next() {
                    Some(Ok(raws)) => raws,
                    Some(Err(lost)) => {
                        self.lost_run(&origin.location, &p[parts.raw.clone()], &lost);
                        continue;
                    }
                    None => continue,
                }
            } else {
                vec![
                    read.window
                        .slice(payload.start + parts.raw.start..payload.end),
                ]
            };
            for raw in raws {
                let Ok(header) = parse_header(&raw) else {
                    self.damaged(segment, offset, payload.len() as u64, "not a JSON record");
                    continue;
                };
                let data = EventData {
                    raw,
                    header,
                    record: None,
                    origin: origin.clone(),
                };
                out.push(Event::new(data, unit.token()));
            }
        }
        unit.seal();
        out
    }

    fn lost_run(&self, file: &str, run: &[u8], lost: &Lost) {
        let Some(run) = segment::Run::from_bytes(run) else {
            return;
        };
        let (first, count) = (run.first, run.count);
        tracing::error!(sink = %self.shared.sink, file, first_record = first, records = count, reason = %lost, "records the spill named cannot be read again from their file: they are lost for this sink (the other sinks had them; do not delete or rewrite trail files a lagging sink still needs, or set `reread = false` on its spill)");
        telemetry::add(
            "buffer_reread_lost_events_total",
            &[("sink", &self.shared.sink)],
            u64::from(count),
        );
        self.outcome.damaged_region();
    }

    fn damaged(&self, segment: u64, offset: u64, len: u64, what: &str) {
        let path = segment::path(&self.shared.dir, segment);
        tracing::error!(sink = %self.shared.sink, segment = %path.display(), offset, bytes = len, check = what, "damaged bytes in the disk buffer skipped: the records in them are lost, the ones around them are delivered");
        telemetry::add(
            "buffer_damaged_bytes_total",
            &[("sink", &self.shared.sink)],
            len,
        );
        telemetry::count(
            "buffer_damaged_regions_total",
            &[("sink", &self.shared.sink)],
        );
        self.outcome.damaged_region();
    }
}

/// Read records of `segment` from `start` up to `limit` (at most `max_items` events, a run
/// record counting its records). `limit` is the end of a complete segment or the writer's
/// durable length: whole records end there.
fn read_range_blocking(
    dir: &Path,
    start: Pos,
    limit: u64,
    max_items: usize,
    rr: &mut Rereader,
) -> Result<Chunked, BufferError> {
    let path = segment::path(dir, start.segment);
    let ctx = |source: std::io::Error| BufferError::Read {
        path: path.clone(),
        source,
    };
    let mut f = File::open(&path).map_err(ctx)?;
    f.seek(SeekFrom::Start(start.offset)).map_err(ctx)?;
    let avail = limit.saturating_sub(start.offset) as usize;
    let mut want = avail.min(WINDOW);
    let mut buf = Vec::new();
    loop {
        if buf.len() < want {
            let have = buf.len();
            buf.resize(want, 0);
            let mut got = have;
            while got < want {
                match f.read(&mut buf[got..]).map_err(ctx)? {
                    0 => break,
                    n => got += n,
                }
            }
            buf.truncate(got);
        }
        let complete = buf.len() >= avail || buf.len() < want;
        let d = segment::decode(&buf, start.offset, complete, max_items);
        match d.need {
            Some(n) if !complete => want = n.max(want * 2).min(avail),
            _ => {
                let mut chunk = Chunked {
                    window: Bytes::from(buf),
                    items: d.items,
                    used: d.used as u64,
                    runs: Vec::new(),
                };
                resolve_runs(&mut chunk, start.offset, max_items, rr)?;
                return Ok(chunk);
            }
        }
    }
}

/// Cut the chunk where its events (a run record counting its records) would pass `max`
/// (keeping at least one record), then read its run records' records again.
fn resolve_runs(
    chunk: &mut Chunked,
    base: u64,
    max: usize,
    rr: &mut Rereader,
) -> Result<(), BufferError> {
    let run_at = |payload: &std::ops::Range<usize>| {
        let p = &chunk.window[payload.clone()];
        let parts = segment::parts(p)?;
        let run = segment::Run::from_bytes(&p[parts.raw.clone()])?;
        Some((
            String::from_utf8_lossy(&p[parts.location]).into_owned(),
            run,
        ))
    };
    let mut events = 0usize;
    let mut keep = chunk.items.len();
    let mut runs = Vec::new();
    for (i, item) in chunk.items.iter().enumerate() {
        let run = match item {
            Item::Record {
                payload, run: true, ..
            } => run_at(payload),
            _ => None,
        };
        let n = match (item, &run) {
            (Item::Damaged { .. }, _) => 0,
            (_, Some((_, r))) => r.count as usize,
            (_, None) => 1,
        };
        if i > 0 && events + n > max {
            keep = i;
            break;
        }
        events += n;
        runs.extend(run);
    }
    if keep < chunk.items.len() {
        let offset = match &chunk.items[keep] {
            Item::Record { offset, .. } | Item::Damaged { offset, .. } => *offset,
        };
        chunk.items.truncate(keep);
        chunk.used = offset - base;
    }
    for (path, run) in runs {
        let got = rr.records(&path, run).map_err(|e| BufferError::Reread {
            file: path.clone().into(),
            source: e,
        })?;
        chunk.runs.push(got);
    }
    Ok(())
}
