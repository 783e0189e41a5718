//! `type = "file"`: CloudTrail files under directories, found by globs, watched with `notify`
//! and rescanned every `poll_interval` as a fallback (network filesystems, missed events).

pub mod discover;
pub mod reader;
pub mod tracker;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::discover::Matcher;
use self::reader::{ReadEnd, ReadJob, ReaderEnv, UnitMeta};
use self::tracker::{Note, Saved, Tracker};
use crate::checkpoint::journal::Journal;
use crate::config::{FieldError, units};
use crate::core::ack::UnitDone;
use crate::core::run::{SourceContext, SourceReport};
use crate::sources::util::integrity;
use crate::sources::util::kind::StartError;
use crate::telemetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// How often the checkpoint is saved when something other than a delivery changed it (a scan,
/// a reader's end) or a save failed; deliveries are committed at once (group commit).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

fn d_poll() -> Duration {
    Duration::from_secs(5)
}
fn d_settle() -> Duration {
    Duration::from_secs(2)
}
fn d_retry() -> Duration {
    Duration::from_secs(5)
}
fn d_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
fn d_max_record() -> u64 {
    crate::decode::DEFAULT_MAX_RECORD_BYTES as u64
}
fn d_unit_events() -> usize {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Globs of files to read (`**` crosses directories), e.g. "/data/AWSLogs/**/*.json.gz".
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `end`: on the very first start, skip what is already there.
    #[serde(default)]
    pub start_at: StartAt,
    /// Rescan interval, next to the filesystem watcher.
    #[serde(default = "d_poll", deserialize_with = "units::duration")]
    pub poll_interval: Duration,
    /// A compressed file or `{"Records"}` document is read once unmodified this long.
    #[serde(default = "d_settle", deserialize_with = "units::duration")]
    pub settle_time: Duration,
    /// First delay before re-reading a file whose events were not delivered (doubles, up to 5 min).
    #[serde(default = "d_retry", deserialize_with = "units::duration")]
    pub retry_delay: Duration,
    /// Files decoded at once (each on its own thread).
    #[serde(default = "d_concurrency")]
    pub max_concurrent_files: usize,
    /// A larger record is skipped (and reported).
    #[serde(default = "d_max_record", deserialize_with = "units::size")]
    pub max_record_bytes: u64,
    /// Records per unit of work when tailing NDJSON.
    #[serde(default = "d_unit_events")]
    pub unit_events: usize,
    /// Files not modified for this long are neither read nor tracked (and leave the
    /// checkpoint), which keeps a years-deep trail directory cheap. Unset: every file.
    #[serde(default, deserialize_with = "opt_duration")]
    pub ignore_older: Option<Duration>,
    /// `validate_digests` and its keys (taken out of the table first).
    #[serde(skip)]
    pub digests: integrity::DigestOptions,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

impl FileSourceConfig {
    pub fn check(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        if let Err(m) = Matcher::new(&self.include, &self.exclude, &cwd) {
            errs.push(FieldError::new(&["include"], m));
        }
        if self.max_concurrent_files == 0 {
            errs.push(FieldError::new(
                &["max_concurrent_files"],
                "must be at least 1",
            ));
        }
        if self.unit_events == 0 {
            errs.push(FieldError::new(&["unit_events"], "must be at least 1"));
        }
        if self.poll_interval.is_zero() {
            errs.push(FieldError::new(
                &["poll_interval"],
                "must be greater than zero",
            ));
        }
        errs
    }
}

pub fn spawn(
    cfg: FileSourceConfig,
    ctx: SourceContext,
) -> Result<JoinHandle<SourceReport>, StartError> {
    let cwd = std::env::current_dir().map_err(StartError::CurrentDir)?;
    let matcher = Matcher::new(&cfg.include, &cfg.exclude, &cwd)
        .map_err(|e| StartError::Setting(e.to_string()))?;
    let (store, saved) =
        Journal::open::<Saved>(&ctx.data_dir, &ctx.name).map_err(StartError::Checkpoint)?;
    let integrity = if cfg.digests.validate_digests {
        let keys = integrity::keys(&cfg.digests.public_keys).map_err(StartError::PublicKeys)?;
        let watches = matcher
            .roots()
            .iter()
            .map(|r| crate::integrity::Watch::new(r.clone(), keys.clone()))
            .collect();
        Some(integrity::spawn(
            ctx.name.clone(),
            integrity::Checks::Listing {
                watches,
                interval: cfg.digests.digest_check_interval,
            },
            cfg.digests
                .fetch_public_keys
                .then(crate::aws::AwsAccess::default),
            ctx.out.clone(),
            ctx.once,
            ctx.shutdown.clone(),
        ))
    } else {
        None
    };
    Ok(tokio::spawn(run(
        cfg, ctx, matcher, store, saved, integrity,
    )))
}

/// The filesystem watcher and the roots it watches. A root that does not exist yet is
/// watched from the first rescan that finds it.
struct Watch {
    watcher: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl Watch {
    fn new(wake: mpsc::Sender<()>) -> Option<Watch> {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Our own readers opening and closing files are no news.
            if let Ok(e) = &res
                && matches!(e.kind, notify::EventKind::Access(_))
            {
                return;
            }
            let _ = wake.try_send(());
        })
        .map_err(|e| tracing::warn!(error = %e, "filesystem watcher unavailable; relying on poll_interval"))
        .ok()?;
        Some(Watch {
            watcher,
            watched: HashSet::new(),
        })
    }

    fn add_roots(&mut self, matcher: &Matcher) {
        use notify::Watcher;
        for root in matcher.roots() {
            if self.watched.contains(root) || !root.exists() {
                continue;
            }
            match self.watcher.watch(root, notify::RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.insert(root.clone());
                }
                Err(e) => {
                    tracing::debug!(dir = %root.display(), error = %e, "not watched; found by rescans instead")
                }
            }
        }
    }
}

struct Loop {
    name: Arc<str>,
    tracker: Tracker,
    store: Arc<std::sync::Mutex<Journal>>,
    save_failing: bool,
    reported: HashSet<(String, String)>,
    events: u64,
    skipped_records: u64,
    ignore_older: Option<Duration>,
    watch: Option<Watch>,
}

impl Loop {
    /// Commit what changed to the checkpoint on a blocking thread (fsync must not stall the
    /// runtime): the changed entries appended to its journal, or every entry as a new base
    /// now and then and at a clean stop (`all`). A failing save (disk full, read-only) is
    /// logged once, counted each time, and retried (with every entry: the failed delta is in
    /// no file).
    async fn save(&mut self, all: bool) {
        let delta = self.tracker.delta();
        let wants_base = all
            || self
                .store
                .lock()
                .map_or(true, |j| j.wants_base(delta.len()));
        let base = wants_base.then(|| self.tracker.snapshot());
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || match store.lock() {
            Ok(mut j) => j.commit(&delta, base.as_ref()),
            Err(_) => Err(std::io::Error::other("the checkpoint's lock is poisoned")),
        })
        .await
        .unwrap_or_else(|e| {
            Err(std::io::Error::other(format!(
                "checkpoint writer task failed: {e}"
            )))
        });
        match res {
            Ok(()) => {
                if self.save_failing {
                    self.save_failing = false;
                    tracing::info!(source = %self.name, "checkpoint saved again");
                }
            }
            Err(e) => {
                telemetry::count(
                    "checkpoint_write_errors_total",
                    &[("component", &self.name)],
                );
                if !self.save_failing {
                    tracing::error!(source = %self.name, error = %e, "checkpoint not saved; positions stay in memory and saving is retried (a restart before it succeeds re-reads, never loses)");
                }
                self.save_failing = true;
                self.tracker.mark_dirty();
            }
        }
    }

    async fn rescan(&mut self, matcher: &Arc<Matcher>, skip_existing: bool) {
        if let Some(w) = &mut self.watch {
            w.add_roots(matcher);
        }
        let m = matcher.clone();
        let Ok((mut files, problems)) = tokio::task::spawn_blocking(move || m.scan()).await else {
            return;
        };
        if let Some(age) = self.ignore_older
            && let Some(cutoff) = std::time::SystemTime::now().checked_sub(age)
        {
            files.retain(|(p, st)| st.mtime >= cutoff || self.tracker.keep_when_old(p));
        }
        for (at, msg) in problems {
            if self.reported.insert((at.clone(), msg.clone())) {
                let reason = if msg == "symlink loop" {
                    "symlink_loop"
                } else {
                    "scan_error"
                };
                telemetry::bad_input(&self.name, reason);
                tracing::warn!(source = %self.name, path = %at, reason, error = %msg, "cannot scan here; skipped, the rest of the tree is read");
            }
        }
        for note in self.tracker.observe(&files, skip_existing) {
            tracing::info!(source = %self.name, "{note}");
        }
        telemetry::gauge(
            "files_tracked",
            &[("component", &self.name)],
            self.tracker.len() as f64,
        );
    }

    fn reader_done(&mut self, job: &ReadJob, end: &ReadEnd) {
        let file = job.path.display().to_string();
        match end {
            ReadEnd::Done {
                events,
                error,
                skipped,
                ..
            } => {
                self.events += events;
                self.skipped_records += skipped;
                telemetry::add(
                    "events_received_total",
                    &[("component", &self.name)],
                    *events,
                );
                telemetry::count("files_read_total", &[("component", &self.name)]);
                if let Some((reason, msg)) = error {
                    telemetry::bad_input(&self.name, reason);
                    tracing::error!(source = %self.name, file, reason, events_before = events, "{msg}; the {events} events before it are delivered, the file is not read again until it changes");
                }
            }
            ReadEnd::Empty(_) => {
                telemetry::bad_input(&self.name, "empty_file");
                tracing::warn!(source = %self.name, file, reason = "empty_file", "file is empty; skipped until it changes");
            }
            ReadEnd::Unreadable(msg) => {
                telemetry::bad_input(&self.name, "unreadable");
                tracing::error!(source = %self.name, file, reason = "unreadable", error = %msg, "cannot read file; skipped until it changes");
            }
            ReadEnd::Vanished => {
                tracing::debug!(source = %self.name, file, "file vanished before it was read")
            }
            ReadEnd::Replaced => {
                tracing::info!(source = %self.name, file, "the path holds a different file now; reading it from the start")
            }
            ReadEnd::NotSettled(_) | ReadEnd::Cancelled => {}
        }
        if let Note::Bad { reason } = self
            .tracker
            .reader_done(job, end, std::time::Instant::now())
        {
            tracing::debug!(source = %self.name, file, reason, "file set aside");
        }
    }

    /// Group commit: a resolved unit and those resolved meanwhile are committed together, now
    /// (a failing checkpoint is retried on the interval instead).
    async fn commit(
        &mut self,
        d: UnitDone<UnitMeta>,
        rx: &mut mpsc::UnboundedReceiver<UnitDone<UnitMeta>>,
    ) {
        self.unit_done(d);
        while let Ok(d) = rx.try_recv() {
            self.unit_done(d);
        }
        if !self.save_failing {
            self.save(false).await;
        }
    }

    fn unit_done(&mut self, d: UnitDone<UnitMeta>) {
        if !d.delivered {
            tracing::warn!(source = %self.name, file = %d.meta.path.display(), part = ?(d.meta.start..d.meta.end), unit = ?d.meta.mode, "events of this file were not all delivered; not committed, it will be read again");
        }
        if let Note::Bad { reason } =
            self.tracker
                .unit_done(&d.meta, d.delivered, std::time::Instant::now())
        {
            tracing::warn!(source = %self.name, file = %d.meta.path.display(), reason, "file had bad input; its good events are delivered and it is not read again until it changes");
        }
    }
}

async fn run(
    cfg: FileSourceConfig,
    ctx: SourceContext,
    matcher: Matcher,
    store: Journal,
    saved: Option<BTreeMap<String, Saved>>,
    integrity: Option<JoinHandle<()>>,
) -> SourceReport {
    let first_start = saved.is_none();
    let mut tracker = Tracker::new(saved.unwrap_or_default(), ctx.once);
    tracker.retry_delay = cfg.retry_delay;
    let mut lp = Loop {
        name: ctx.name.clone(),
        tracker,
        store: Arc::new(std::sync::Mutex::new(store)),
        save_failing: false,
        reported: HashSet::new(),
        events: 0,
        skipped_records: 0,
        ignore_older: cfg.ignore_older,
        watch: None,
    };
    let matcher = Arc::new(matcher);
    let (unit_tx, mut unit_rx) = mpsc::unbounded_channel::<UnitDone<UnitMeta>>();
    let cancel = Arc::new(AtomicBool::new(false));
    let env = Arc::new(ReaderEnv {
        source: ctx.name.clone(),
        out: ctx.out,
        units: unit_tx,
        cancel: cancel.clone(),
        max_record: usize::try_from(cfg.max_record_bytes).unwrap_or(usize::MAX),
        unit_events: cfg.unit_events,
    });
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    lp.watch = if ctx.once { None } else { Watch::new(wake_tx) };
    let settle = if ctx.once {
        None
    } else {
        Some(cfg.settle_time)
    };
    let mut readers: JoinSet<(ReadJob, ReadEnd)> = JoinSet::new();
    let mut poll = tokio::time::interval_at(Instant::now() + cfg.poll_interval, cfg.poll_interval);
    let mut ckpt = tokio::time::interval(CHECKPOINT_INTERVAL);
    let mut rescan_at: Option<Instant> = None;
    lp.rescan(&matcher, cfg.start_at == StartAt::End && first_start)
        .await;
    lp.save(false).await;
    tracing::info!(source = %ctx.name, roots = ?matcher.roots(), once = ctx.once, "file source started");
    loop {
        let free = cfg.max_concurrent_files.saturating_sub(readers.len());
        let jobs = lp.tracker.ready(std::time::Instant::now(), free, settle);
        if ctx.once && jobs.is_empty() && readers.is_empty() {
            // Everything is read: close the output so sinks flush now, then wait for acks.
            break;
        }
        for job in jobs {
            spawn_reader(&mut readers, job, env.clone());
        }
        // Wake for the earliest file waiting on its settle time or retry delay.
        let now = std::time::Instant::now();
        let wake = lp
            .tracker
            .next_wake()
            .filter(|t| *t > now)
            .map(|t| Instant::now() + (t - now));
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            Some(res) = readers.join_next(), if !readers.is_empty() => {
                if let Ok((job, end)) = res {
                    lp.reader_done(&job, &end);
                }
            }
            Some(d) = unit_rx.recv() => lp.commit(d, &mut unit_rx).await,
            _ = poll.tick() => lp.rescan(&matcher, false).await,
            // Let a burst of filesystem events settle into one rescan (without holding up
            // the commits meanwhile).
            Some(()) = wake_rx.recv(), if rescan_at.is_none() => {
                rescan_at = Some(Instant::now() + Duration::from_millis(50));
            }
            _ = tokio::time::sleep_until(rescan_at.unwrap_or_else(Instant::now)), if rescan_at.is_some() => {
                rescan_at = None;
                while wake_rx.try_recv().is_ok() {}
                lp.rescan(&matcher, false).await;
            }
            _ = ckpt.tick() => if lp.tracker.is_dirty() { lp.save(false).await },
        }
    }
    // Stop reading; what was read still completes and commits.
    cancel.store(true, Ordering::Relaxed);
    lp.drain(readers, unit_rx, env, &ctx.hard_stop).await;
    if let Some(h) = integrity {
        // With --once it checks once and ends; a daemon's stops at shutdown.
        let _ = h.await;
    }
    lp.report()
}

/// Read one file on a blocking thread; a panic in the reader is that file's error, not the
/// source's.
fn spawn_reader(readers: &mut JoinSet<(ReadJob, ReadEnd)>, job: ReadJob, env: Arc<ReaderEnv>) {
    readers.spawn_blocking(move || {
        let end =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader::read(&job, &env)))
                .unwrap_or_else(|_| {
                    ReadEnd::Unreadable(
                        "internal error while reading (panic); please report it".into(),
                    )
                });
        (job, end)
    });
}

impl Loop {
    /// Wait for the readers still running, then for the units in flight to be acknowledged
    /// (or a hard stop), and save the checkpoint.
    async fn drain(
        &mut self,
        mut readers: JoinSet<(ReadJob, ReadEnd)>,
        mut unit_rx: mpsc::UnboundedReceiver<UnitDone<UnitMeta>>,
        env: Arc<ReaderEnv>,
        hard_stop: &CancellationToken,
    ) {
        loop {
            tokio::select! {
                res = readers.join_next() => match res {
                    Some(Ok((job, end))) => self.reader_done(&job, &end),
                    Some(Err(_)) => {}
                    None => break,
                },
                // A reader that cannot finish (its disk hangs) does not hold the stop.
                _ = hard_stop.cancelled() => break,
            }
        }
        drop(env);
        while self.tracker.in_flight() {
            tokio::select! {
                d = unit_rx.recv() => match d {
                    Some(d) => self.unit_done(d),
                    None => break,
                },
                _ = hard_stop.cancelled() => break,
            }
        }
        self.save(true).await;
    }

    fn report(&self) -> SourceReport {
        let totals = self.tracker.totals.clone();
        let unresolved = u64::from(self.tracker.in_flight());
        tracing::info!(source = %self.name, events = self.events, units_committed = totals.units_committed, units_failed = totals.units_failed, bad_files = totals.bad_files, skipped_records = self.skipped_records, "file source stopped");
        SourceReport {
            events: self.events,
            units_committed: totals.units_committed,
            units_failed: totals.units_failed,
            bad_inputs: totals.bad_files + self.skipped_records + self.reported.len() as u64,
            units_unresolved: unresolved,
            fatal: None,
        }
    }
}

/// The `file` source kind (registered in `sources::KINDS`).
pub const KIND: crate::sources::util::kind::SourceKind = crate::sources::util::kind::SourceKind {
    name: "file",
    keys: &[],
    parse: |table, digests| {
        crate::config::from_table::<FileSourceConfig>(table)
            .map(|c| std::sync::Arc::new(FileSourceConfig { digests, ..c }) as _)
    },
};

impl crate::sources::util::kind::SourceParts for FileSourceConfig {
    fn check_own(&self) -> Vec<crate::config::FieldError> {
        self.check()
    }
    fn digests(&self) -> &crate::sources::util::integrity::DigestOptions {
        &self.digests
    }
    fn start(self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError> {
        spawn(self, ctx)
    }
}
