//! What the file source knows about each file: identity, committed offset, units in flight,
//! retry and bad-input state. Pure bookkeeping (no I/O), so it is tested on its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::discover::Stat;
use super::reader::{Mode, ReadEnd, ReadJob, UnitMeta};

/// What is persisted per file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    pub dev: u64,
    pub ino: u64,
    /// (length, hash) of the first bytes.
    pub head: Option<(u64, u64)>,
    pub mode: Option<Mode>,
    /// Everything before this offset was delivered (tail), or the file size when done (whole).
    pub committed: u64,
    /// Whole files not done yet: the records from the start that were delivered (a restart
    /// reads the file again and skips them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records: u64,
    pub done: bool,
    /// Why the file was set aside; it is read again only when it changes.
    pub bad: Option<String>,
    /// (size, mtime in ms) when it was set aside.
    pub bad_stamp: Option<(u64, u64)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Saved {
    /// Whether there is anything to keep about the file.
    fn worth_keeping(&self) -> bool {
        self.committed > 0 || self.records > 0 || self.done || self.bad.is_some()
    }
}

#[derive(Debug)]
struct FileState {
    saved: Saved,
    /// Its entry is in the checkpoint (the last commit wrote it).
    persisted: bool,
    generation: u64,
    read_to: u64,
    reading: bool,
    /// Units created minus units resolved (may dip below zero until the reader reports).
    open_units: i64,
    /// Delivered units not yet contiguous with the committed position: start → (end, the
    /// file's size if it is a whole file's last unit).
    completed: BTreeMap<u64, (u64, Option<u64>)>,
    failed: bool,
    attempts: u32,
    retry_at: Option<Instant>,
    /// A bad-input reason reported by the reader, applied once its unit resolves.
    pending_bad: Option<String>,
    stat: Option<Stat>,
    seen: bool,
}

impl FileState {
    /// Take in a scan's view of this file: a new file at the path, a file changed since it was
    /// set aside, truncated or rewritten. True if the saved state changed.
    fn refresh(&mut self, path: &Path, stat: &Stat, notes: &mut Vec<String>) -> bool {
        self.seen = true;
        self.stat = Some(*stat);
        let mut dirty = false;
        if self.saved.dev != stat.dev || self.saved.ino != stat.ino {
            if self.saved.dev != 0 || self.saved.ino != 0 {
                notes.push(format!(
                    "{} is a new file (device/inode changed); reading it from the start",
                    path.display()
                ));
            }
            if self.idle() {
                self.reset(*stat);
                dirty = true;
            }
            return dirty;
        }
        if let Some(b) = self.saved.bad_stamp
            && b != stamp(stat)
            && self.idle()
        {
            dirty = true;
            if self.saved.mode == Some(Mode::Tail) && stat.size >= self.saved.committed {
                // A tailed file (e.g. its last line was cut): go on from where it was.
                notes.push(format!(
                    "{} changed since it was set aside; reading on from byte {}",
                    path.display(),
                    self.saved.committed
                ));
                self.saved.bad = None;
                self.saved.bad_stamp = None;
                self.read_to = self.saved.committed;
            } else {
                notes.push(format!(
                    "{} changed since it was set aside; reading it again",
                    path.display()
                ));
                self.reset(*stat);
                return dirty;
            }
        }
        match self.saved.mode {
            Some(Mode::Tail) if stat.size < self.saved.committed && self.idle() => {
                notes.push(format!(
                    "{} was truncated (size {} < offset {}); reading it from the start",
                    path.display(),
                    stat.size,
                    self.saved.committed
                ));
                self.reset(*stat);
                dirty = true;
            }
            Some(Mode::Whole)
                if self.saved.done && self.saved.committed != stat.size && self.idle() =>
            {
                notes.push(format!(
                    "{} was rewritten after it was read; reading it again",
                    path.display()
                ));
                self.reset(*stat);
                dirty = true;
            }
            _ => {}
        }
        dirty
    }

    fn new(stat: Option<Stat>) -> Self {
        FileState {
            saved: Saved {
                dev: stat.map_or(0, |s| s.dev),
                ino: stat.map_or(0, |s| s.ino),
                head: None,
                mode: None,
                committed: 0,
                records: 0,
                done: false,
                bad: None,
                bad_stamp: None,
            },
            persisted: false,
            generation: next_generation(),
            read_to: 0,
            reading: false,
            open_units: 0,
            completed: BTreeMap::new(),
            failed: false,
            attempts: 0,
            retry_at: None,
            pending_bad: None,
            stat,
            seen: true,
        }
    }

    fn idle(&self) -> bool {
        !self.reading && self.open_units <= 0
    }

    fn reset(&mut self, stat: Stat) {
        let persisted = self.persisted;
        *self = FileState::new(Some(stat));
        self.persisted = persisted;
        self.generation = next_generation();
    }

    /// Take in a delivered unit and move the committed position over every delivered unit
    /// that now follows it: bytes of a tailed file, records of a whole one (done once its last
    /// unit is reached).
    fn delivered(&mut self, meta: &UnitMeta) {
        self.completed.insert(meta.start, (meta.end, meta.last));
        match meta.mode {
            Mode::Tail => {
                while let Some((end, _)) = self.completed.remove(&self.saved.committed) {
                    self.saved.committed = end;
                }
            }
            Mode::Whole => {
                while let Some((end, last)) = self.completed.remove(&self.saved.records) {
                    self.saved.records = end;
                    if let Some(size) = last {
                        self.saved.committed = size;
                        self.saved.records = 0;
                        self.saved.done = true;
                        self.completed.clear();
                        break;
                    }
                }
            }
        }
    }
}

/// Generations are unique in the process, so a unit of a file that was replaced at the same
/// path can never be taken for a unit of its successor.
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn stamp(s: &Stat) -> (u64, u64) {
    let ms = s
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (s.size, ms)
}

/// Counts for reports and the `--once` exit status.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub units_committed: u64,
    pub units_failed: u64,
    pub bad_files: u64,
}

pub struct Tracker {
    /// Boxed: the table then holds two words per slot (it keeps up to half its slots empty),
    /// not a whole state (measured: README, "Soak").
    files: HashMap<Arc<PathBuf>, Box<FileState>>,
    /// Old path → new path of renamed files, for reports still in flight.
    renamed: HashMap<Arc<PathBuf>, Arc<PathBuf>>,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub totals: Totals,
    dirty: bool,
    /// Files whose state changed since the last `delta`, and the removed ones it had written.
    touched: HashSet<Arc<PathBuf>>,
    removed: Vec<Arc<PathBuf>>,
    once: bool,
}

/// What changed when a reader or unit reported, for logging by the caller.
#[derive(Debug, PartialEq)]
pub enum Note {
    None,
    Bad { reason: String },
}

impl Tracker {
    pub fn new(saved: BTreeMap<String, Saved>, once: bool) -> Self {
        let files = saved
            .into_iter()
            .map(|(p, s)| {
                let mut st = FileState::new(None);
                st.read_to = s.committed;
                st.saved = s;
                st.seen = false;
                st.persisted = true;
                (Arc::new(PathBuf::from(p)), Box::new(st))
            })
            .collect();
        Tracker {
            files,
            renamed: HashMap::new(),
            retry_delay: Duration::from_secs(5),
            max_retry_delay: Duration::from_secs(300),
            totals: Totals::default(),
            dirty: false,
            touched: HashSet::new(),
            removed: Vec::new(),
            once,
        }
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Every file's entry worth keeping (for a checkpoint's base); `delta` starts afresh.
    pub fn snapshot(&mut self) -> BTreeMap<String, Saved> {
        self.dirty = false;
        self.touched.clear();
        self.removed.clear();
        self.files
            .values_mut()
            .for_each(|s| s.persisted = s.saved.worth_keeping());
        self.files
            .iter()
            .filter(|(_, s)| s.persisted)
            .map(|(p, s)| (p.display().to_string(), s.saved.clone()))
            .collect()
    }

    /// The entries that changed since the last `delta` or `snapshot` (none: removed), for a
    /// checkpoint's journal: O(what changed).
    pub fn delta(&mut self) -> Vec<(String, Option<Saved>)> {
        self.dirty = false;
        let mut out: Vec<(String, Option<Saved>)> = self
            .removed
            .drain(..)
            .map(|p| (p.display().to_string(), None))
            .collect();
        for p in std::mem::take(&mut self.touched) {
            let Some(s) = self.files.get_mut(&p) else {
                continue;
            };
            if s.saved.worth_keeping() {
                out.push((p.display().to_string(), Some(s.saved.clone())));
                s.persisted = true;
            } else if s.persisted {
                out.push((p.display().to_string(), None));
                s.persisted = false;
            }
        }
        out
    }

    /// A file's state changed.
    fn touch(&mut self, key: &Arc<PathBuf>) {
        self.dirty = true;
        self.touched.insert(key.clone());
    }

    /// A file is no longer tracked.
    fn forget(&mut self, key: &Arc<PathBuf>) {
        self.dirty = true;
        if let Some(s) = self.files.remove(key)
            && s.persisted
        {
            self.removed.push(key.clone());
        }
    }

    /// Apply a directory scan. `skip_existing` (start_at = end, first start): files already
    /// there are taken as read up to their current size.
    /// Files tracked now.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn observe(&mut self, scan: &[(PathBuf, Stat)], skip_existing: bool) -> Vec<String> {
        let mut notes = Vec::new();
        for s in self.files.values_mut() {
            s.seen = false;
        }
        self.follow_renames(scan, &mut notes);
        for (path, stat) in scan {
            // A key is allocated for a new file only: a rescan of a deep tree allocates
            // nothing per file it already tracks.
            if !self.files.contains_key(path) {
                let key = Arc::new(path.clone());
                let mut st = FileState::new(Some(*stat));
                if skip_existing {
                    st.saved.mode = Some(Mode::Tail);
                    st.saved.committed = stat.size;
                    st.read_to = stat.size;
                }
                self.files.insert(key.clone(), Box::new(st));
                if skip_existing {
                    self.touch(&key);
                }
            }
            if let Some(st) = self.files.get_mut(path)
                && st.refresh(path, stat, &mut notes)
                && let Some((key, _)) = self.files.get_key_value(path)
            {
                let key = key.clone();
                self.touch(&key);
            }
        }
        // Forget files that are gone and have nothing in flight.
        let gone: Vec<Arc<PathBuf>> = self
            .files
            .iter()
            .filter(|(_, s)| !s.seen && s.idle())
            .map(|(p, _)| p.clone())
            .collect();
        gone.iter().for_each(|p| self.forget(p));
        notes
    }

    /// Renames (rotation) first: a file now at an untracked path, tracked under a path that
    /// no longer holds it, keeps its state.
    fn follow_renames(&mut self, scan: &[(PathBuf, Stat)], notes: &mut Vec<String>) {
        let in_scan: HashMap<&PathBuf, (u64, u64)> =
            scan.iter().map(|(p, st)| (p, (st.dev, st.ino))).collect();
        let mut by_id: HashMap<(u64, u64), Arc<PathBuf>> = self
            .files
            .iter()
            .filter(|(p, s)| in_scan.get(&***p) != Some(&(s.saved.dev, s.saved.ino)))
            .map(|(p, s)| ((s.saved.dev, s.saved.ino), p.clone()))
            .collect();
        for (path, stat) in scan {
            if self.files.contains_key(path) {
                continue;
            }
            if let Some(old) = by_id.remove(&(stat.dev, stat.ino))
                && let Some(mut st) = self.files.remove(&old)
            {
                if st.persisted {
                    self.removed.push(old.clone());
                    st.persisted = false;
                }
                notes.push(format!(
                    "{} was renamed to {}; continuing at byte {}",
                    old.display(),
                    path.display(),
                    st.saved.committed
                ));
                // Units and readers still in flight report under the old path.
                let new = Arc::new(path.clone());
                self.renamed.retain(|_, to| *to != old);
                self.renamed.insert(old, new.clone());
                self.files.insert(new.clone(), st);
                self.touch(&new);
            }
        }
    }

    fn wants_read(&self, s: &FileState, now: Instant) -> bool {
        if s.reading || s.saved.bad.is_some() || s.retry_at.is_some_and(|t| t > now) || !s.seen {
            return false;
        }
        if s.failed && (s.open_units > 0 || self.once) {
            return false;
        }
        let size = s.stat.map_or(0, |st| st.size);
        match s.saved.mode {
            None => true,
            // A whole file is read again only after its unit resolved (and failed).
            Some(Mode::Whole) => !s.saved.done && s.open_units <= 0,
            Some(Mode::Tail) => size > s.read_to || s.failed,
        }
    }

    /// Files to read now, at most `limit`, oldest name first (CloudTrail names sort by time).
    pub fn ready(&mut self, now: Instant, limit: usize, settle: Option<Duration>) -> Vec<ReadJob> {
        if limit == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<(&Arc<PathBuf>, &FileState)> = self
            .files
            .iter()
            .filter(|(_, s)| self.wants_read(s, now))
            .map(|(p, s)| (p, &**s))
            .collect();
        // Only the first `limit` are needed: select them, then order those (by raw bytes,
        // which is much cheaper than comparing paths component by component).
        use std::os::unix::ffi::OsStrExt;
        let by_name = |a: &(&Arc<PathBuf>, &FileState), b: &(&Arc<PathBuf>, &FileState)| {
            a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes())
        };
        if candidates.len() > limit {
            candidates.select_nth_unstable_by(limit, by_name);
            candidates.truncate(limit);
        }
        candidates.sort_unstable_by(by_name);
        let mut jobs: Vec<ReadJob> = candidates
            .into_iter()
            .take(limit)
            .map(|(p, s)| ReadJob {
                path: p.clone(),
                generation: s.generation,
                start: s.read_to,
                skip: s.saved.records,
                head: s.saved.head,
                mode: s.saved.mode,
                settle,
            })
            .collect();
        for j in &jobs {
            if let Some(s) = self.files.get_mut(&j.path) {
                if s.failed {
                    // Start again from the last committed offset.
                    s.failed = false;
                    s.read_to = s.saved.committed;
                    s.completed.clear();
                }
                s.reading = true;
            }
        }
        // Jobs were built before a failed file was rewound: fix their start offsets.
        jobs.iter_mut().for_each(|j| {
            if let Some(s) = self.files.get(&j.path) {
                j.start = s.read_to;
            }
        });
        jobs
    }

    /// A reader finished.
    /// The state a report is about: by path (or the path it was renamed to) and generation.
    fn lookup(&mut self, path: &Arc<PathBuf>, generation: u64) -> Option<Arc<PathBuf>> {
        if self
            .files
            .get(path)
            .is_some_and(|s| s.generation == generation)
        {
            return Some(path.clone());
        }
        let to = self.renamed.get(path)?;
        self.files
            .get(to)
            .is_some_and(|s| s.generation == generation)
            .then(|| to.clone())
    }

    pub fn reader_done(&mut self, job: &ReadJob, end: &ReadEnd, now: Instant) -> Note {
        let Some(key) = self.lookup(&job.path, job.generation) else {
            return Note::None;
        };
        let Some(s) = self.files.get_mut(&key) else {
            return Note::None;
        };
        s.reading = false;
        self.dirty = true;
        self.touched.insert(key.clone());
        match end {
            ReadEnd::Done {
                mode,
                stat,
                head,
                end,
                units,
                incomplete,
                error,
                ..
            } => {
                s.open_units += *units as i64;
                s.saved.mode = Some(*mode);
                if s.saved.head.is_none() || job.start == 0 {
                    s.saved.head = Some(*head);
                }
                s.stat = Some(*stat);
                s.read_to = *end;
                if let Some((reason, msg)) = error {
                    s.pending_bad = Some(format!("{reason}: {msg}"));
                    s.saved.bad_stamp = Some(stamp(stat));
                } else if *incomplete && self.once {
                    s.pending_bad = Some("truncated: the file ends inside a record".into());
                    s.saved.bad_stamp = Some(stamp(stat));
                }
                Self::settle_bad(s, &mut self.totals)
            }
            ReadEnd::NotSettled(at) => {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                s.retry_at = Some(now + wait);
                Note::None
            }
            ReadEnd::Empty(stat) => {
                s.saved.bad = Some("empty_file: the file is empty".into());
                s.saved.bad_stamp = Some(stamp(stat));
                self.totals.bad_files += 1;
                Note::Bad {
                    reason: "empty_file".into(),
                }
            }
            ReadEnd::Unreadable(msg) => {
                let st = s.stat.unwrap_or(Stat {
                    dev: 0,
                    ino: 0,
                    size: 0,
                    mtime: SystemTime::UNIX_EPOCH,
                });
                s.saved.bad = Some(format!("unreadable: {msg}"));
                s.saved.bad_stamp = Some(stamp(&st));
                self.totals.bad_files += 1;
                Note::Bad {
                    reason: "unreadable".into(),
                }
            }
            ReadEnd::Vanished => {
                self.forget(&key);
                Note::None
            }
            ReadEnd::Replaced => {
                if let Some(st) = s.stat {
                    s.reset(st);
                }
                Note::None
            }
            ReadEnd::Cancelled => Note::None,
        }
    }

    /// A unit resolved.
    pub fn unit_done(&mut self, meta: &UnitMeta, delivered: bool, now: Instant) -> Note {
        let Some(key) = self.lookup(&meta.path, meta.generation) else {
            return Note::None;
        };
        let Some(s) = self.files.get_mut(&key) else {
            return Note::None;
        };
        s.open_units -= 1;
        self.dirty = true;
        self.touched.insert(key.clone());
        if delivered {
            self.totals.units_committed += 1;
            if !s.failed {
                s.attempts = 0;
            }
            s.delivered(meta);
        } else {
            self.totals.units_failed += 1;
            // One read is one attempt, however many of its units failed.
            if !s.failed {
                s.attempts += 1;
                let delay = self
                    .retry_delay
                    .saturating_mul(1 << s.attempts.min(10))
                    .min(self.max_retry_delay);
                s.retry_at = Some(now + delay);
            }
            s.failed = true;
            // Not committed: a bad-input verdict waits for a delivered read.
            s.pending_bad = None;
        }
        Self::settle_bad(s, &mut self.totals)
    }

    fn settle_bad(s: &mut FileState, totals: &mut Totals) -> Note {
        if s.idle()
            && !s.failed
            && let Some(reason) = s.pending_bad.take()
        {
            let short = reason.split(':').next().unwrap_or("bad_input").to_string();
            s.saved.bad = Some(reason);
            totals.bad_files += 1;
            return Note::Bad { reason: short };
        }
        Note::None
    }

    /// Whether a file's state must be kept even when it is older than `ignore_older`: a tailed
    /// file may grow again (dropping its offset would re-read it from the start), and a file
    /// with work left is not finished. Whole files that are done can be forgotten.
    pub fn keep_when_old(&self, path: &PathBuf) -> bool {
        self.files
            .get(path)
            .is_some_and(|s| s.saved.mode == Some(Mode::Tail) || !s.saved.done || !s.idle())
    }

    /// The earliest time a file waits for (settle time, retry delay), if any.
    pub fn next_wake(&self) -> Option<Instant> {
        self.files
            .values()
            .filter(|s| s.saved.bad.is_none() && !s.reading)
            .filter_map(|s| s.retry_at)
            .min()
    }

    /// Any units still unresolved.
    pub fn in_flight(&self) -> bool {
        self.files.values().any(|s| !s.idle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, size: u64) -> Stat {
        Stat {
            dev: 1,
            ino,
            size,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        }
    }

    fn meta(job: &ReadJob, start: u64, end: u64) -> UnitMeta {
        UnitMeta {
            path: job.path.clone(),
            generation: job.generation,
            mode: Mode::Tail,
            start,
            end,
            last: None,
        }
    }

    /// A whole file's unit of records `start..end`; `last`: the file's size if it is the last.
    fn part(job: &ReadJob, start: u64, end: u64, last: Option<u64>) -> UnitMeta {
        UnitMeta {
            mode: Mode::Whole,
            last,
            ..meta(job, start, end)
        }
    }

    fn done(mode: Mode, st: Stat, end: u64, units: u64) -> ReadEnd {
        ReadEnd::Done {
            mode,
            stat: st,
            head: (1, 1),
            end,
            units,
            events: 1,
            skipped: 0,
            incomplete: false,
            error: None,
        }
    }

    #[test]
    fn tail_commits_in_order_and_resumes() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        let now = Instant::now();
        let p = PathBuf::from("/x/a.ndjson");
        t.observe(&[(p.clone(), stat(5, 300))], false);
        let jobs = t.ready(now, 8, None);
        assert_eq!(jobs.len(), 1);
        let j = jobs[0].clone();
        t.reader_done(&j, &done(Mode::Tail, stat(5, 300), 300, 3), now);
        // Units complete out of order: commit only advances over contiguous ranges.
        t.unit_done(&meta(&j, 100, 200), true, now);
        assert_eq!(t.snapshot().len(), 0);
        t.unit_done(&meta(&j, 0, 100), true, now);
        assert_eq!(t.snapshot()[&p.display().to_string()].committed, 200);
        t.unit_done(&meta(&j, 200, 300), true, now);
        assert_eq!(t.snapshot()[&p.display().to_string()].committed, 300);
        // Growth gives a job from 300; truncation resets to 0.
        t.observe(&[(p.clone(), stat(5, 350))], false);
        let j2 = t.ready(now, 8, None);
        assert_eq!(j2[0].start, 300);
        t.reader_done(&j2[0], &done(Mode::Tail, stat(5, 350), 350, 1), now);
        t.unit_done(&meta(&j2[0], 300, 350), true, now);
        t.observe(&[(p.clone(), stat(5, 10))], false);
        let j3 = t.ready(now, 8, None);
        assert_eq!(j3[0].start, 0);
    }

    #[test]
    fn failed_unit_rewinds_after_delay() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        let now = Instant::now();
        let p = PathBuf::from("/x/a.ndjson");
        t.observe(&[(p.clone(), stat(5, 200))], false);
        let j = t.ready(now, 8, None)[0].clone();
        t.reader_done(&j, &done(Mode::Tail, stat(5, 200), 200, 2), now);
        t.unit_done(&meta(&j, 0, 100), true, now);
        t.unit_done(&meta(&j, 100, 200), false, now);
        assert!(
            t.ready(now, 8, None).is_empty(),
            "waits for the retry delay"
        );
        let later = now + Duration::from_secs(3600);
        let j2 = t.ready(later, 8, None);
        assert_eq!(j2[0].start, 100);
    }

    #[test]
    fn whole_file_done_bad_and_rotation() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        let now = Instant::now();
        let a = PathBuf::from("/x/a.json.gz");
        let b = PathBuf::from("/x/b.json.gz");
        t.observe(&[(a.clone(), stat(1, 50)), (b.clone(), stat(2, 60))], false);
        let jobs = t.ready(now, 8, None);
        assert_eq!(jobs.len(), 2);
        t.reader_done(&jobs[0], &done(Mode::Whole, stat(1, 50), 50, 1), now);
        t.unit_done(&part(&jobs[0], 0, 1, Some(50)), true, now);
        let bad = ReadEnd::Done {
            mode: Mode::Whole,
            stat: stat(2, 60),
            head: (1, 1),
            end: 60,
            units: 1,
            events: 3,
            skipped: 0,
            incomplete: true,
            error: Some(("truncated", "cut".into())),
        };
        assert_eq!(t.reader_done(&jobs[1], &bad, now), Note::None);
        assert_eq!(
            t.unit_done(&part(&jobs[1], 0, 3, Some(60)), true, now),
            Note::Bad {
                reason: "truncated".into()
            }
        );
        assert!(t.ready(now, 8, None).is_empty());
        assert!(!t.in_flight());
        // b changes: read again. a is renamed to c: its state moves along, nothing re-read.
        let c = PathBuf::from("/x/c.json.gz");
        t.observe(&[(c.clone(), stat(1, 50)), (b.clone(), stat(2, 70))], false);
        let jobs = t.ready(now, 8, None);
        assert_eq!(jobs.len(), 1);
        assert_eq!(*jobs[0].path, b);
    }

    #[test]
    fn a_whole_file_commits_its_delivered_records_and_a_restart_skips_them() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        let now = Instant::now();
        let p = PathBuf::from("/x/a.json.gz");
        let key = p.display().to_string();
        t.observe(&[(p.clone(), stat(1, 900))], false);
        let j = t.ready(now, 8, None)[0].clone();
        assert_eq!(j.skip, 0);
        // Three units of 100 records; the second is delivered first.
        t.unit_done(&part(&j, 100, 200, None), true, now);
        assert!(t.delta().is_empty(), "nothing contiguous yet");
        t.unit_done(&part(&j, 0, 100, None), true, now);
        let d = t.delta();
        assert_eq!(d.len(), 1);
        let saved = d[0].1.clone().unwrap();
        assert_eq!((saved.records, saved.done), (200, false));
        // A restart with that state reads the file again, skipping 200 records.
        let mut r = Tracker::new([(key.clone(), saved)].into(), false);
        r.observe(&[(p.clone(), stat(1, 900))], false);
        let j2 = r.ready(now, 8, None)[0].clone();
        assert_eq!((j2.start, j2.skip), (0, 200));
        r.reader_done(&j2, &done(Mode::Whole, stat(1, 900), 900, 1), now);
        r.unit_done(&part(&j2, 200, 300, Some(900)), true, now);
        let d = r.delta();
        let saved = d[0].1.clone().unwrap();
        assert_eq!((saved.committed, saved.records, saved.done), (900, 0, true));
        assert!(r.ready(now, 8, None).is_empty());
        // The file goes: its entry is removed from the checkpoint.
        r.observe(&[], false);
        assert_eq!(r.delta(), vec![(key, None)]);
        assert!(r.delta().is_empty());
    }

    #[test]
    fn a_read_whose_units_fail_is_one_attempt_however_many_failed() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        t.retry_delay = Duration::from_secs(1);
        let now = Instant::now();
        let p = PathBuf::from("/x/a.json.gz");
        t.observe(&[(p.clone(), stat(1, 900))], false);
        let j = t.ready(now, 8, None)[0].clone();
        t.reader_done(&j, &done(Mode::Whole, stat(1, 900), 900, 5), now);
        for k in 0..4 {
            t.unit_done(&part(&j, k * 100, (k + 1) * 100, None), false, now);
        }
        // A unit of the same read delivered after them does not reset the backoff either.
        t.unit_done(&part(&j, 400, 500, Some(900)), true, now);
        // First attempt: 1 s doubled once, not four times.
        assert!(
            t.ready(now + Duration::from_millis(1900), 8, None)
                .is_empty()
        );
        assert_eq!(t.ready(now + Duration::from_millis(2100), 8, None).len(), 1);
    }

    #[test]
    fn tail_file_set_aside_resumes_from_its_offset() {
        let mut t = Tracker::new(BTreeMap::new(), true);
        let now = Instant::now();
        let p = PathBuf::from("/x/a.ndjson");
        t.observe(&[(p.clone(), stat(5, 150))], false);
        let j = t.ready(now, 8, None)[0].clone();
        let cut = ReadEnd::Done {
            mode: Mode::Tail,
            stat: stat(5, 150),
            head: (1, 1),
            end: 100,
            units: 1,
            events: 2,
            skipped: 0,
            incomplete: true,
            error: None,
        };
        t.reader_done(&j, &cut, now);
        assert_eq!(
            t.unit_done(&meta(&j, 0, 100), true, now),
            Note::Bad {
                reason: "truncated".into()
            }
        );
        assert!(t.ready(now, 8, None).is_empty());
        let mut grown = stat(5, 180);
        grown.mtime += Duration::from_secs(1);
        t.observe(&[(p, grown)], false);
        assert_eq!(t.ready(now, 8, None)[0].start, 100);
    }

    #[test]
    fn skip_existing_and_saved_state() {
        let mut t = Tracker::new(BTreeMap::new(), false);
        let p = PathBuf::from("/x/a.ndjson");
        t.observe(&[(p.clone(), stat(5, 300))], true);
        assert!(t.ready(Instant::now(), 8, None).is_empty());
        let snap = t.snapshot();
        let mut t2 = Tracker::new(snap, false);
        t2.observe(&[(p.clone(), stat(5, 400))], false);
        assert_eq!(t2.ready(Instant::now(), 8, None)[0].start, 300);
        // same path, new inode: from the start
        let mut t3 = Tracker::new(t.snapshot(), false);
        t3.observe(&[(p, stat(9, 400))], false);
        assert_eq!(t3.ready(Instant::now(), 8, None)[0].start, 0);
    }
}
