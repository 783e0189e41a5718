//! Reading one file (on a blocking thread): detect its format, stream its records as events,
//! and cut them into units of work.
//!
//! A compressed file, or a `{"Records":[...]}` document, is read whole once it has settled (not
//! modified for `settle_time`), in units of up to `unit_events` records, each a range of record
//! numbers: it is read from its start again after a crash, but the records the checkpoint says
//! were delivered are skipped, not sent again. A plain NDJSON file is tailed: it is read from
//! the last committed offset to its last complete record, in units of up to `unit_events`
//! records, each a byte range.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::discover::Stat;
use crate::core::Fanout;
use crate::core::ack::{UnitDone, UnitHandle};
use crate::decode::{self, Compression, Item, ScanError, Scanner};
use crate::sources::util::emit::Emitter;

/// Bytes at the start of a file that identify it (with device and inode).
pub const HEAD_LEN: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read whole, once settled: compressed files and `{"Records":[...]}` documents.
    Whole,
    /// Tailed by byte offset: NDJSON.
    Tail,
}

/// Identifies a unit when it completes.
#[derive(Debug, Clone)]
pub struct UnitMeta {
    pub path: Arc<PathBuf>,
    pub generation: u64,
    pub mode: Mode,
    /// Tail: byte offsets. Whole: record numbers (from 0, the first record of the file).
    pub start: u64,
    pub end: u64,
    /// Whole: the file's size when this is its last unit (the file is done once every unit up
    /// to this one was delivered).
    pub last: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ReadJob {
    pub path: Arc<PathBuf>,
    pub generation: u64,
    pub start: u64,
    /// Records at the start of a whole file that were delivered (skipped, not sent again).
    pub skip: u64,
    /// The identity hash of the file's first bytes, when known: a mismatch means the path now
    /// holds another file.
    pub head: Option<(u64, u64)>,
    pub mode: Option<Mode>,
    /// None: do not wait for files to settle (`--once`).
    pub settle: Option<Duration>,
}

pub struct ReaderEnv {
    pub source: Arc<str>,
    pub out: Fanout,
    pub units: UnboundedSender<UnitDone<UnitMeta>>,
    pub cancel: Arc<AtomicBool>,
    pub max_record: usize,
    pub unit_events: usize,
}

#[derive(Debug)]
pub enum ReadEnd {
    Done {
        mode: Mode,
        stat: Stat,
        head: (u64, u64),
        /// Offset reached: the file size (whole) or the end of the last complete record (tail).
        end: u64,
        units: u64,
        events: u64,
        /// Records skipped as bad input (each counted and logged).
        skipped: u64,
        /// The stream ended inside a record (tail: wait for more; whole: truncated).
        incomplete: bool,
        /// A problem that stopped reading this file (after the events before it were sent).
        error: Option<(&'static str, String)>,
    },
    /// Not modified for long enough yet; try again at this time.
    NotSettled(SystemTime),
    /// Nothing but whitespace.
    Empty(Stat),
    Vanished,
    Unreadable(String),
    /// The path now holds a different file than the one the checkpoint describes.
    Replaced,
    Cancelled,
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// (length, hash) of the first `min(size, HEAD_LEN)` bytes, or of exactly `len` bytes.
fn head_of(f: &File, len: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok((len, fnv1a(&buf)))
}

pub fn read(job: &ReadJob, env: &ReaderEnv) -> ReadEnd {
    let f = match File::open(&*job.path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReadEnd::Vanished,
        Err(e) => return ReadEnd::Unreadable(e.to_string()),
    };
    match read_open(job, env, f) {
        Ok(end) => end,
        // Errors before any event was read: the file could not be read at all.
        Err(e) if e.kind() == io::ErrorKind::NotFound => ReadEnd::Vanished,
        Err(e) => ReadEnd::Unreadable(e.to_string()),
    }
}

fn read_open(job: &ReadJob, env: &ReaderEnv, f: File) -> io::Result<ReadEnd> {
    match open_scan(job, env, f)? {
        Ok(opened) => Ok(cut_units(job, env, opened)),
        Err(end) => Ok(end),
    }
}

/// A file ready to be read: its format decided, its scanner placed at `start`.
struct Opened {
    scanner: Scanner<Box<dyn io::Read + Send>>,
    mode: Mode,
    stat: Stat,
    head: (u64, u64),
    start: u64,
}

/// Check the file is still the one the checkpoint knows, sniff its compression and decide
/// how it is read (whole or tailed). Err: the read ends before any record (not settled yet,
/// empty, replaced, not a file).
fn open_scan(job: &ReadJob, env: &ReaderEnv, mut f: File) -> io::Result<Result<Opened, ReadEnd>> {
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Ok(Err(ReadEnd::Unreadable("not a regular file".into())));
    }
    let stat = Stat::of(&meta);
    if let Some((len, hash)) = job.head
        && job.start > 0
        && (stat.size < len || head_of(&f, len)?.1 != hash)
    {
        return Ok(Err(ReadEnd::Replaced));
    }
    let head = head_of(&f, stat.size.min(HEAD_LEN))?;
    let compression = decode::sniff(&mut f)?;
    let settled = |stat: &Stat| -> Option<SystemTime> {
        let settle = job.settle?;
        let ready_at = stat.mtime + settle;
        (SystemTime::now() < ready_at).then_some(ready_at)
    };
    let known = match compression {
        Compression::Gzip => Some(Mode::Whole),
        Compression::None => job.mode,
    };
    let start = if known == Some(Mode::Tail) {
        job.start
    } else {
        0
    };
    let mut scanner = Scanner::new(
        decode::open_decoded(f, compression, start)?,
        start,
        env.max_record,
    );
    // Too few bytes to tell a document from NDJSON yet: wait for the file to grow or settle.
    if known.is_none()
        && compression == Compression::None
        && stat.size < 64
        && let Some(at) = settled(&stat)
    {
        return Ok(Err(ReadEnd::NotSettled(at)));
    }
    let mode = match known {
        Some(Mode::Tail) => Mode::Tail,
        Some(Mode::Whole) | None => match scanner.starts_with_document() {
            Ok(None) => {
                return Ok(Err(match settled(&stat) {
                    Some(at) => ReadEnd::NotSettled(at),
                    None => ReadEnd::Empty(stat),
                }));
            }
            Ok(Some(doc)) if doc || compression == Compression::Gzip => Mode::Whole,
            Ok(Some(_)) => Mode::Tail,
            // A gzip stream that fails at once, or an unreadable file: the scan reports it
            // with the file's name.
            Err(_) => Mode::Whole,
        },
    };
    if mode == Mode::Whole
        && let Some(at) = settled(&stat)
    {
        return Ok(Err(ReadEnd::NotSettled(at)));
    }
    Ok(Ok(Opened {
        scanner,
        mode,
        stat,
        head,
        start,
    }))
}

/// The units of one read as they are cut: the current one, and where the next cut falls.
struct Cutter<'a> {
    job: &'a ReadJob,
    env: &'a ReaderEnv,
    mode: Mode,
    /// Records at the start of a whole file that were delivered before (not sent again).
    skip: u64,
    em: Emitter,
    unit: UnitHandle<UnitMeta>,
    units: u64,
    in_unit: usize,
    /// Records seen so far, skipped ones included.
    records: u64,
}

impl<'a> Cutter<'a> {
    fn new(job: &'a ReadJob, env: &'a ReaderEnv, mode: Mode, start: u64) -> Self {
        let skip = if mode == Mode::Whole { job.skip } else { 0 };
        let mut em = Emitter::new(
            env.source.clone(),
            env.out.clone(),
            job.path.display().to_string(),
        );
        // A whole file can be read again, numbered the same way, by a lagging sink's spill.
        if mode == Mode::Whole
            && let Ok(max_record) = u32::try_from(env.max_record)
        {
            em.rereadable(crate::core::event::Reread { max_record });
        }
        // Units start and end at a byte offset (tail) or a record number (whole).
        let first = if mode == Mode::Whole { skip } else { start };
        let unit = Self::unit_at(job, env, mode, first);
        Cutter {
            job,
            env,
            mode,
            skip,
            em,
            unit,
            units: 1,
            in_unit: 0,
            records: 0,
        }
    }

    fn unit_at(job: &ReadJob, env: &ReaderEnv, mode: Mode, start: u64) -> UnitHandle<UnitMeta> {
        UnitHandle::new(
            UnitMeta {
                path: job.path.clone(),
                generation: job.generation,
                mode,
                start,
                end: start,
                last: None,
            },
            env.units.clone(),
        )
    }

    /// End the unit at `at` (its events sent on) and start the next there.
    fn cut(&mut self, at: u64) {
        self.unit.update(|m| m.end = at);
        self.em.flush();
        let next = Self::unit_at(self.job, self.env, self.mode, at);
        std::mem::replace(&mut self.unit, next).seal();
        self.units += 1;
        self.in_unit = 0;
    }

    fn record(&mut self, raw: bytes::Bytes) {
        self.records += 1;
        if self.records <= self.skip {
            return;
        }
        // A document has no boundaries between its records: cut before the next one.
        if self.mode == Mode::Whole && self.in_unit >= self.env.unit_events {
            self.cut(self.records - 1);
        }
        self.em.record_at(raw, &self.unit, self.records - 1);
        self.in_unit += 1;
    }

    fn boundary(&mut self, off: u64) {
        if self.mode == Mode::Tail && self.in_unit >= self.env.unit_events {
            self.cut(off);
        }
    }

    /// Seal the last unit, ending at `end` (a whole file's last unit carries its size).
    fn finish(mut self, end: u64) -> (u64, u64, u64) {
        let (mode, records, skip) = (self.mode, self.records, self.skip);
        self.unit.update(|m| {
            if mode == Mode::Whole {
                m.end = records.max(skip);
                m.last = Some(end);
            } else {
                m.end = end;
            }
        });
        let skipped = self.em.finish();
        self.unit.seal();
        (self.units, self.em.events, skipped)
    }
}

/// Stream the records as events, cut into units of `unit_events` at record boundaries: byte
/// ranges of a tailed file, record ranges of a whole one (whose first `job.skip` records are
/// skipped: they were delivered before).
fn cut_units(job: &ReadJob, env: &ReaderEnv, o: Opened) -> ReadEnd {
    let Opened {
        mut scanner,
        mode,
        stat,
        head,
        start,
    } = o;
    let mut c = Cutter::new(job, env, mode, start);
    let mut boundary = start;
    let mut incomplete = false;
    let mut error = None;
    loop {
        if env.cancel.load(Ordering::Relaxed) {
            let Cutter { em, unit, .. } = c;
            drop(em);
            unit.abandon();
            return ReadEnd::Cancelled;
        }
        match scanner.next_item() {
            Ok(None) => {
                // Only whitespace after the last record: consumed too.
                boundary = scanner.offset();
                break;
            }
            Ok(Some(Item::Record(raw))) => c.record(raw),
            // Already reported when the records around it were delivered.
            Ok(Some(Item::Skipped { .. })) if c.records < c.skip => {}
            Ok(Some(Item::Skipped { reason, detail })) => c.em.skip(reason, detail),
            Ok(Some(Item::Digest)) => c.em.digest(),
            Ok(Some(Item::Boundary(off))) => {
                boundary = off;
                c.boundary(off);
            }
            Err(ScanError::Incomplete { .. }) if mode == Mode::Tail => {
                incomplete = true;
                break;
            }
            Err(e) => {
                incomplete = matches!(e, ScanError::Incomplete { .. });
                error = Some((e.reason(), e.to_string()));
                break;
            }
        }
    }
    let end = if mode == Mode::Whole {
        stat.size
    } else {
        boundary
    };
    let (units, events, skipped) = c.finish(end);
    ReadEnd::Done {
        mode,
        stat,
        head,
        end,
        units,
        events,
        skipped,
        incomplete,
        error,
    }
}
