//! The disk buffer's writer: a blocking thread that appends the sink's input to the current
//! segment and fsyncs it, then acknowledges those events to their sources. Batches that are
//! waiting together share one fsync (group commit).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::disk::{Frontier, Shared};
use super::{BufferError, WhenFull, segment};
use crate::core::Batch;
use crate::core::event::Event;
use crate::telemetry;

/// Events one group commit takes at most.
const GROUP_EVENTS: usize = 20_000;

pub struct Writer {
    shared: Arc<Shared>,
    file: File,
    segment: u64,
    /// Durable length of the current segment.
    len: u64,
    when_full: WhenFull,
    hard_stop: CancellationToken,
    buf: Vec<u8>,
    /// Events encoded in `buf`, acknowledged once it is durable.
    pending: Vec<Event>,
}

/// Consecutive records of one rereadable file, gathered into a run record.
struct RunOf {
    first: u32,
    max_record: u32,
    crc: crc32fast::Hasher,
    bytes: u64,
    events: Vec<Event>,
}

/// Records a run record names at most (a replayed run is read into memory at once).
const RUN_MAX: usize = 4096;

impl RunOf {
    fn start(e: Event, n: u32, max_record: u32) -> RunOf {
        let mut r = RunOf {
            first: n,
            max_record,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
            events: Vec::new(),
        };
        r.push(e);
        r
    }
    fn extends(&self, e: &Event, n: u32) -> bool {
        let last = &self.events[self.events.len() - 1];
        self.events.len() < RUN_MAX
            && Arc::ptr_eq(&last.data.origin, &e.data.origin)
            && Some(n) == last.data.record.and_then(|l| l.checked_add(1))
    }
    fn push(&mut self, e: Event) {
        self.crc.update(&e.data.raw);
        self.bytes += e.data.raw.len() as u64;
        self.events.push(e);
    }
}

fn create_segment(shared: &Shared, id: u64) -> Result<File, BufferError> {
    let path = segment::path(&shared.dir, id);
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|source| BufferError::CreateSegment {
            sink: shared.sink.to_string(),
            path: path.clone(),
            source,
        })?;
    // The new name must survive a crash as well as its contents.
    File::open(&shared.dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| BufferError::SyncDir {
            sink: shared.sink.to_string(),
            dir: shared.dir.clone(),
            source,
        })?;
    Ok(f)
}

impl Writer {
    pub fn create(
        shared: Arc<Shared>,
        segment: u64,
        when_full: WhenFull,
        hard_stop: CancellationToken,
    ) -> Result<Writer, BufferError> {
        let file = create_segment(&shared, segment)?;
        Ok(Writer {
            shared,
            file,
            segment,
            len: 0,
            when_full,
            hard_stop,
            buf: Vec::with_capacity(1 << 20),
            pending: Vec::new(),
        })
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Batch>, frontier: watch::Sender<Frontier>) {
        while let Some(first) = rx.blocking_recv() {
            let mut n = first.len();
            self.add(first, &frontier);
            while n < GROUP_EVENTS
                && let Ok(b) = rx.try_recv()
            {
                n += b.len();
                self.add(b, &frontier);
            }
            self.commit(&frontier);
            self.shared.taken.fetch_add(n as u64, Ordering::AcqRel);
        }
        frontier.send_modify(|f| f.closed = true);
    }

    /// Encode a batch into the pending group, waiting for room (or refusing) when full. In a
    /// spill that rereads, consecutive records of a rereadable file become one run record.
    fn add(&mut self, batch: Batch, frontier: &watch::Sender<Frontier>) {
        let mut run: Option<RunOf> = None;
        for e in batch {
            if self.shared.reread
                && let (Some(n), Some(rr)) = (e.data.record, e.data.origin.reread)
            {
                match &mut run {
                    Some(r) if r.extends(&e, n) => r.push(e),
                    _ => {
                        if let Some(r) = run.replace(RunOf::start(e, n, rr.max_record)) {
                            self.put_run(r, frontier);
                        }
                    }
                }
                continue;
            }
            if let Some(r) = run.take() {
                self.put_run(r, frontier);
            }
            self.put(e, frontier);
        }
        if let Some(r) = run {
            self.put_run(r, frontier);
        }
    }

    /// One event, its bytes copied.
    fn put(&mut self, e: Event, frontier: &watch::Sender<Frontier>) {
        let (source, location, raw) = (&e.data.origin.source, &e.data.origin.location, &e.data.raw);
        let n = segment::encoded_len(source, location, raw) as u64;
        if n > self.shared.max_size / 2 || n > segment::MAX_PAYLOAD as u64 {
            tracing::error!(sink = %self.shared.sink, bytes = n, location = %location, "event larger than half the disk buffer's max_size: not buffered, not acknowledged (its source offers it again; raise max_size)");
            telemetry::count("buffer_refused_total", &[("sink", &self.shared.sink)]);
            e.fail();
            return;
        }
        if !self.room_for(n, frontier) {
            telemetry::count("buffer_dropped_total", &[("sink", &self.shared.sink)]);
            e.fail();
            return;
        }
        segment::encode(&mut self.buf, source, location, raw);
        self.pending.push(e);
    }

    /// A run of records, named instead of copied.
    fn put_run(&mut self, r: RunOf, frontier: &watch::Sender<Frontier>) {
        let origin = r.events[0].data.origin.clone();
        let n = segment::run_len(&origin.source, &origin.location) as u64;
        if !self.room_for(n, frontier) {
            telemetry::count("buffer_dropped_total", &[("sink", &self.shared.sink)]);
            r.events.into_iter().for_each(Event::fail);
            return;
        }
        let run = segment::Run {
            first: r.first,
            count: r.events.len() as u32,
            max_record: r.max_record,
            crc: r.crc.finalize(),
            bytes: r.bytes,
        };
        segment::encode_run(&mut self.buf, &origin.source, &origin.location, run);
        self.pending.extend(r.events);
    }

    fn full(&self, n: u64) -> bool {
        self.shared.used.load(Ordering::Acquire) + self.buf.len() as u64 + n > self.shared.max_size
    }

    /// Whether `n` more bytes fit. Blocking: commit what is pending, start a new segment (so
    /// the current one can be deleted once delivered) and wait for the reader to free space.
    fn room_for(&mut self, n: u64, frontier: &watch::Sender<Frontier>) -> bool {
        if !self.full(n) {
            return true;
        }
        if self.when_full == WhenFull::DropNewest {
            return false;
        }
        self.commit(frontier);
        if self.len > 0 {
            self.roll(frontier);
        }
        let mut warned = false;
        let mut room = true;
        while self.full(n) {
            if self.hard_stop.is_cancelled() {
                room = false;
                break;
            }
            if !warned {
                tracing::warn!(sink = %self.shared.sink, max_size = self.shared.max_size, "disk buffer full: waiting for the sink to deliver (sources are held back)");
                telemetry::count("buffer_full_total", &[("sink", &self.shared.sink)]);
                self.shared.health.buffer_full(&self.shared.sink, true);
                warned = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if warned {
            self.shared.health.buffer_full(&self.shared.sink, false);
            if room {
                tracing::info!(sink = %self.shared.sink, "disk buffer has room again: taking events");
            }
        }
        room
    }

    /// Make the pending group durable, then acknowledge it.
    fn commit(&mut self, frontier: &watch::Sender<Frontier>) {
        if self.pending.is_empty() {
            return;
        }
        let res = self
            .file
            .write_all(&self.buf)
            .and_then(|_| self.file.sync_data());
        let events = std::mem::take(&mut self.pending);
        let bytes = self.buf.len() as u64;
        self.buf.clear();
        match res {
            Ok(()) => {
                self.shared.caught_up.store(false, Ordering::Release);
                self.len += bytes;
                self.shared.used.fetch_add(bytes, Ordering::AcqRel);
                let (segment, len) = (self.segment, self.len);
                frontier.send_modify(|f| {
                    f.segment = segment;
                    f.len = len;
                });
                telemetry::add(
                    "buffer_events_written_total",
                    &[("sink", &self.shared.sink)],
                    events.len() as u64,
                );
                events.into_iter().for_each(Event::ack);
                self.maybe_roll(frontier);
            }
            Err(e) => {
                let path = segment::path(&self.shared.dir, self.segment);
                tracing::error!(sink = %self.shared.sink, segment = %path.display(), events = events.len(), error = %e, "cannot write the disk buffer: these events are not acknowledged (their sources offer them again)");
                telemetry::add(
                    "buffer_write_errors_total",
                    &[("sink", &self.shared.sink)],
                    1,
                );
                drop(events);
                // Cut what part of the write landed, so the segment stays whole records.
                if self.file.set_len(self.len).is_err() {
                    self.roll(frontier);
                }
            }
        }
    }

    /// Close the current segment and start the next.
    fn roll(&mut self, frontier: &watch::Sender<Frontier>) {
        match create_segment(&self.shared, self.segment + 1) {
            Ok(f) => {
                self.file = f;
                self.segment += 1;
                self.len = 0;
                let segment = self.segment;
                frontier.send_modify(|f| {
                    f.segment = segment;
                    f.len = 0;
                });
            }
            Err(e) => tracing::error!(error = %e, "keeping the current buffer segment"),
        }
    }

    /// Start a new segment when the current one has reached its size.
    fn maybe_roll(&mut self, frontier: &watch::Sender<Frontier>) {
        if self.len >= self.shared.segment_size {
            self.roll(frontier);
        }
    }
}
