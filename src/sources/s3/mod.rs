//! `type = "s3"`: the CloudTrail objects already in a bucket under a prefix, optionally bounded
//! by the day in their key (`start_time` / `end_time`), read like files and resumable: the
//! backfill path (`trailship backfill` runs exactly this source).
//!
//! One object is one unit. Keys are taken in listing order (ListObjectsV2 sorts them); the
//! checkpoint keeps `after`, the last key up to which every selected object is settled
//! (delivered, set aside as bad input, or recorded as failed), and the keys that failed. A
//! restart reads the failed keys first, then lists again after `after`: objects in flight at a
//! crash are read again (duplicates, never loss). The source ends when the listing is read:
//! for objects still to come, use the `sqs` source.

use crate::aws::trail_keys as keys;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointStore;

use crate::core::ack::{UnitDone, UnitHandle};
use crate::core::run::Progress;
use crate::core::run::{SourceContext, SourceReport};
use crate::sources::util::kind::StartError;
use crate::sources::util::object::{KeyFilter, ObjectError, ObjectReader};

mod config;
mod listing;

use crate::telemetry;
use config::Bounds;
pub use config::{KIND, S3SourceConfig};
use listing::{ListError, Listed, Lister, count, feed, listing_failed};

/// The saved position of an S3 source.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    scope: String,
    /// Every selected key up to this one, in listing order, is settled.
    after: Option<String>,
    /// Keys whose events could not be delivered: read first at the next start.
    failed: Vec<String>,
}

pub fn spawn(
    cfg: S3SourceConfig,
    ctx: SourceContext,
) -> Result<JoinHandle<SourceReport>, StartError> {
    let keys = KeyFilter::new(&cfg.key_include, &cfg.key_exclude)?;
    let bounds = cfg.bounds()?;
    // Its own file: a backfill may take the name of a file source, whose checkpoint must stay.
    let store = CheckpointStore::open(&ctx.data_dir, &format!("{}.s3", ctx.name))
        .map_err(StartError::Checkpoint)?;
    let mut state: State = store
        .load()
        .map_err(StartError::Checkpoint)?
        .unwrap_or_default();
    if state.scope != cfg.scope() {
        if !state.scope.is_empty() {
            tracing::info!(source = %ctx.name, was = %state.scope, now = %cfg.scope(), "bucket, prefix or time range changed: starting from the beginning");
        }
        state = State {
            scope: cfg.scope(),
            ..State::default()
        };
    }
    Ok(tokio::spawn(run(cfg, ctx, keys, bounds, store, state)))
}

/// What became of one object's unit.
#[derive(Debug)]
struct ObjMeta {
    seq: u64,
    events: u64,
    error: Option<ObjectError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Done,
    /// Bad input, set aside (logged and counted).
    Skipped,
    /// Not delivered after every attempt: recorded in the checkpoint.
    Failed,
}

struct Slot {
    key: String,
    size: u64,
    /// Found by this run's listing (false: a failed key from the checkpoint).
    listed: bool,
    attempts: u32,
    settled: Option<Settled>,
}

/// How often the checkpoint is saved at most.
const SAVE_EVERY: Duration = Duration::from_millis(100);

struct Runner {
    cfg: Arc<S3SourceConfig>,
    name: Arc<str>,
    slots: BTreeMap<u64, Slot>,
    next_seq: u64,
    inflight: usize,
    /// Objects waiting for another attempt, with when.
    retries: VecDeque<(Instant, u64)>,
    state: State,
    dirty: bool,
    shutting: bool,
    /// False once the reader is dropped (nothing left to list or retry): a late failure is
    /// then recorded for the next start instead of retried.
    can_retry: bool,
    report: SourceReport,
    progress: Option<Arc<Progress>>,
    unit_tx: mpsc::UnboundedSender<UnitDone<ObjMeta>>,
}

impl Runner {
    fn add(&mut self, key: String, size: u64, listed: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.insert(
            seq,
            Slot {
                key,
                size,
                listed,
                attempts: 0,
                settled: None,
            },
        );
        seq
    }

    fn launch(&mut self, seq: u64, reader: &Arc<ObjectReader>) {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        slot.attempts += 1;
        self.inflight += 1;
        let unit = UnitHandle::new(
            ObjMeta {
                seq,
                events: 0,
                error: None,
            },
            self.unit_tx.clone(),
        );
        let (reader, bucket, key) = (reader.clone(), self.cfg.bucket.clone(), slot.key.clone());
        tokio::spawn(async move {
            match reader.read(&bucket, &key, &unit).await {
                Ok(n) => {
                    unit.update(|m| m.events = n);
                    unit.seal();
                }
                Err(e) => {
                    unit.update(|m| m.error = Some(e));
                    unit.abandon();
                }
            }
        });
    }

    fn settle(&mut self, d: UnitDone<ObjMeta>) {
        self.inflight = self.inflight.saturating_sub(1);
        let name = self.name.clone();
        self.report.events += d.meta.events;
        telemetry::add(
            "events_received_total",
            &[("component", &name)],
            d.meta.events,
        );
        if let Some(p) = &self.progress {
            Progress::add(&p.events, d.meta.events);
        }
        let max_attempts = self.cfg.max_attempts;
        let Some(slot) = self.slots.get_mut(&d.meta.seq) else {
            return;
        };
        let url = format!("s3://{}/{}", self.cfg.bucket, slot.key);
        let settled = if d.delivered {
            self.report.units_committed += 1;
            Settled::Done
        } else if let Some(ObjectError::Poison { reason, detail }) = &d.meta.error {
            self.report.bad_inputs += 1;
            telemetry::bad_input(&name, reason);
            tracing::error!(source = %name, object = %url, reason, "{detail}; object set aside, the others go on");
            Settled::Skipped
        } else if self.shutting {
            // Left unsettled: the checkpoint stays before it, so the next start reads it.
            return;
        } else {
            let why = match &d.meta.error {
                Some(ObjectError::Retry(m)) => m.clone(),
                _ => "its events were not all delivered".into(),
            };
            if slot.attempts < max_attempts && self.can_retry {
                let delay = Duration::from_secs(1 << slot.attempts.min(6));
                tracing::warn!(source = %name, object = %url, attempt = slot.attempts, retry_in_s = delay.as_secs(), "{why}; reading it again");
                self.retries.push_back((Instant::now() + delay, d.meta.seq));
                return;
            }
            self.report.units_failed += 1;
            tracing::error!(source = %name, object = %url, attempts = slot.attempts, "{why}; giving up for this run: recorded in the checkpoint and read first at the next start");
            if let Some(p) = &self.progress {
                Progress::add(&p.failed_objects, 1);
            }
            Settled::Failed
        };
        if settled != Settled::Failed
            && let Some(p) = &self.progress
        {
            Progress::add(&p.done_objects, 1);
            Progress::add(&p.done_bytes, slot.size);
        }
        slot.settled = Some(settled);
        if !slot.listed && settled != Settled::Failed {
            let key = slot.key.clone();
            self.state.failed.retain(|k| *k != key);
            self.dirty = true;
        }
        self.advance();
    }

    /// Move `after` over the settled keys at the front.
    fn advance(&mut self) {
        while let Some(e) = self.slots.first_entry() {
            let Some(settled) = e.get().settled else {
                break;
            };
            let slot = e.remove();
            if slot.listed {
                if settled == Settled::Failed && !self.state.failed.contains(&slot.key) {
                    self.state.failed.push(slot.key.clone());
                }
                self.state.after = Some(slot.key);
                self.dirty = true;
            }
        }
    }

    fn due_retry(&mut self) -> Option<u64> {
        let now = Instant::now();
        let i = self.retries.iter().position(|(t, _)| *t <= now)?;
        self.retries.remove(i).map(|(_, s)| s)
    }

    async fn save(&mut self, store: &Arc<CheckpointStore>) {
        if !self.dirty {
            return;
        }
        let data = serde_json::to_value(&self.state).unwrap_or_default();
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.save(&data)).await {
            Ok(Ok(())) => self.dirty = false,
            Ok(Err(e)) => {
                tracing::error!(source = %self.name, error = %e, "cannot save the checkpoint; will retry (a restart now would read objects again)")
            }
            Err(e) => tracing::error!(source = %self.name, error = %e, "checkpoint task failed"),
        }
    }
}

/// `validate_digests`: the digests under the prefix, checked now and then (once with --once).
fn digest_checks(
    cfg: &S3SourceConfig,
    ctx: &SourceContext,
    s3: &aws_sdk_s3::Client,
) -> Option<JoinHandle<()>> {
    use crate::sources::util::integrity;
    if !cfg.digests.validate_digests {
        return None;
    }
    let keys = match integrity::keys(&cfg.digests.public_keys) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(source = %ctx.name, error = %e, "digest validation is off: cannot read the public keys");
            return None;
        }
    };
    let watch = crate::integrity::Watch::s3(
        s3.clone(),
        cfg.bucket.clone(),
        cfg.prefix.clone(),
        keys,
        tokio::runtime::Handle::current(),
    );
    Some(integrity::spawn(
        ctx.name.clone(),
        integrity::Checks::Listing {
            watches: vec![watch],
            interval: cfg.digests.digest_check_interval,
        },
        cfg.digests.fetch_public_keys.then(|| cfg.aws.clone()),
        ctx.out.clone(),
        ctx.once,
        ctx.shutdown.clone(),
    ))
}

async fn run(
    cfg: S3SourceConfig,
    ctx: SourceContext,
    keys: KeyFilter,
    bounds: Bounds,
    store: CheckpointStore,
    state: State,
) -> SourceReport {
    let cfg = Arc::new(cfg);
    let s3 = cfg.aws.s3().await;
    let integrity = digest_checks(&cfg, &ctx, &s3);
    let (list_rx, lister) = start_listing(&s3, &cfg, keys, bounds, &state, &ctx);
    tracing::info!(source = %ctx.name, bucket = %cfg.bucket, prefix = %cfg.prefix, after = ?state.after, failed_before = state.failed.len(), "s3 source started");
    let (unit_tx, unit_rx) = mpsc::unbounded_channel();
    let mut r = Runner {
        cfg: cfg.clone(),
        name: ctx.name.clone(),
        slots: BTreeMap::new(),
        next_seq: 0,
        inflight: 0,
        retries: VecDeque::new(),
        dirty: false,
        shutting: false,
        can_retry: true,
        report: SourceReport::default(),
        progress: ctx.progress.clone(),
        unit_tx,
        state,
    };
    // Failed keys from the last run come first.
    let mut queued: VecDeque<u64> = VecDeque::new();
    for k in r.state.failed.clone() {
        let seq = r.add(k, 0, false);
        queued.push_back(seq);
    }
    let mut lp = Loop {
        reader: Some(Arc::new(ObjectReader {
            source: ctx.name.clone(),
            out: ctx.out,
            s3,
            max_record: usize::try_from(cfg.max_record_bytes).unwrap_or(usize::MAX),
        })),
        queued,
        list_rx,
        listing_open: true,
        lister,
        lister_done: false,
        unit_rx,
        store: Arc::new(store),
        shutdown: ctx.shutdown,
        hard_stop: ctx.hard_stop,
    };
    r.serve(&mut lp).await;
    r.finish_listing(&mut lp).await;
    r.save(&lp.store).await;
    if let Some(h) = integrity {
        let _ = h.await;
    }
    tracing::info!(source = %r.name, events = r.report.events, objects_done = r.report.units_committed, objects_failed = r.report.units_failed, bad_objects = r.report.bad_inputs, after = ?r.state.after, "s3 source finished");
    r.report
}

/// Resume after the checkpoint (or skip ahead to the start day below a region folder) and
/// start the listing that feeds the runner, plus the one that counts for the progress display.
fn start_listing(
    s3: &aws_sdk_s3::Client,
    cfg: &Arc<S3SourceConfig>,
    keys: KeyFilter,
    bounds: Bounds,
    state: &State,
    ctx: &SourceContext,
) -> (mpsc::Receiver<Listed>, JoinHandle<Result<(), ListError>>) {
    let mut start_after = state.after.clone();
    if let Some(s) = bounds.0
        && keys::is_region_level(&cfg.prefix)
    {
        let skip = keys::start_after(&cfg.prefix, s);
        if start_after.as_ref().is_none_or(|a| *a < skip) {
            start_after = Some(skip);
        }
    }
    let lister = |k| Lister::new(s3.clone(), cfg.clone(), k, bounds, start_after.clone());
    if let Some(p) = &ctx.progress {
        Progress::add(&p.listed_objects, state.failed.len() as u64);
        tokio::spawn(count(lister(keys.clone()), p.clone(), ctx.shutdown.clone()));
    }
    let (list_tx, list_rx) = mpsc::channel::<Listed>(256);
    let handle = tokio::spawn(feed(lister(keys), list_tx, ctx.shutdown.clone()));
    (list_rx, handle)
}

/// What the runner's loop reads from and writes to.
struct Loop {
    /// Dropped once nothing more will be read, so the sinks flush what they hold.
    reader: Option<Arc<ObjectReader>>,
    /// Keys to read before the listing's (the checkpoint's failed ones).
    queued: VecDeque<u64>,
    list_rx: mpsc::Receiver<Listed>,
    listing_open: bool,
    lister: JoinHandle<Result<(), ListError>>,
    lister_done: bool,
    unit_rx: mpsc::UnboundedReceiver<UnitDone<ObjMeta>>,
    store: Arc<CheckpointStore>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
}

impl Runner {
    /// Read objects up to the concurrency until the listing, the queue and the retries are
    /// spent and nothing is in flight (or a stop).
    async fn serve(&mut self, lp: &mut Loop) {
        let mut save_tick = tokio::time::interval(SAVE_EVERY);
        let mut last_save = Instant::now();
        loop {
            self.launch_ready(lp);
            let idle = !lp.listing_open && lp.queued.is_empty() && self.retries.is_empty();
            if idle || self.shutting {
                // Nothing more will be read: let the sinks flush what they hold now.
                lp.reader = None;
                self.can_retry = false;
            }
            if self.inflight == 0 && (idle || self.shutting) {
                return;
            }
            let next_retry = self.retries.iter().map(|(t, _)| *t).min();
            let want_more =
                lp.listing_open && !self.shutting && self.inflight < self.cfg.concurrency;
            tokio::select! {
                l = lp.list_rx.recv(), if want_more => match l {
                    Some(l) => {
                        let seq = self.add(l.key, l.size, true);
                        if let Some(rd) = &lp.reader {
                            self.launch(seq, rd);
                        }
                    }
                    None => lp.listing_open = false,
                },
                Some(d) = lp.unit_rx.recv() => {
                    self.settle(d);
                    // Save soon after the position moves: a crash re-reads at most the objects
                    // in flight and those settled in the last SAVE_EVERY.
                    if self.dirty && last_save.elapsed() >= SAVE_EVERY {
                        self.save(&lp.store).await;
                        last_save = Instant::now();
                    }
                }
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() && !self.shutting => {}
                res = &mut lp.lister, if !lp.lister_done => {
                    lp.lister_done = true;
                    if let Some(e) = listing_failed(res) {
                        tracing::error!(source = %self.name, error = %e, "cannot list the bucket; stopping after the objects in flight");
                        self.report.fatal = Some(e);
                        lp.listing_open = false;
                    }
                }
                _ = lp.shutdown.cancelled(), if !self.shutting => {
                    self.shutting = true;
                    self.retries.clear();
                }
                _ = lp.hard_stop.cancelled() => {
                    self.report.units_unresolved = self.inflight as u64;
                    return;
                }
                _ = save_tick.tick() => self.save(&lp.store).await,
            }
        }
    }

    /// Start due retries, then queued keys, up to the concurrency.
    fn launch_ready(&mut self, lp: &mut Loop) {
        if self.shutting {
            return;
        }
        let Some(rd) = lp.reader.clone() else { return };
        while self.inflight < self.cfg.concurrency {
            let Some(seq) = self.due_retry().or_else(|| lp.queued.pop_front()) else {
                break;
            };
            self.launch(seq, &rd);
        }
    }

    /// The listing may have ended (its channel closed) before its result was read: a failed
    /// listing must not pass for an empty one.
    async fn finish_listing(&mut self, lp: &mut Loop) {
        if lp.lister_done {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(5), &mut lp.lister).await {
            Ok(res) => {
                if let Some(e) = listing_failed(res) {
                    tracing::error!(source = %self.name, error = %e, "cannot list the bucket");
                    self.report.fatal = Some(e);
                }
            }
            Err(_) => lp.lister.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> (Runner, mpsc::UnboundedReceiver<UnitDone<ObjMeta>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cfg: S3SourceConfig = toml::from_str("bucket = \"b\"\nmax_attempts = 2").unwrap();
        (
            Runner {
                cfg: Arc::new(cfg),
                name: "s".into(),
                slots: BTreeMap::new(),
                next_seq: 0,
                inflight: 0,
                retries: VecDeque::new(),
                state: State::default(),
                dirty: false,
                shutting: false,
                can_retry: true,
                report: SourceReport::default(),
                progress: None,
                unit_tx: tx,
            },
            rx,
        )
    }

    fn done(seq: u64, delivered: bool, error: Option<ObjectError>) -> UnitDone<ObjMeta> {
        UnitDone {
            meta: ObjMeta {
                seq,
                events: 1,
                error,
            },
            delivered,
        }
    }

    #[test]
    fn checkpoint_moves_only_over_settled_keys_in_order() {
        let (mut r, _rx) = runner();
        for k in ["a", "b", "c", "d"] {
            let s = r.add(k.into(), 1, true);
            r.slots.get_mut(&s).unwrap().attempts = 1;
            r.inflight += 1;
        }
        r.settle(done(1, true, None));
        assert_eq!(r.state.after, None, "a is still in flight");
        r.settle(done(0, true, None));
        assert_eq!(r.state.after.as_deref(), Some("b"));
        // c: poison, set aside; d: undelivered, retried once, then failed.
        r.settle(done(
            2,
            false,
            Some(ObjectError::Poison {
                reason: "not_cloudtrail",
                detail: "x".into(),
            }),
        ));
        assert_eq!(r.state.after.as_deref(), Some("c"));
        r.settle(done(3, false, None));
        assert_eq!(r.retries.len(), 1);
        assert_eq!(r.state.after.as_deref(), Some("c"));
        r.slots.get_mut(&3).unwrap().attempts = 2;
        r.settle(done(3, false, None));
        assert_eq!(r.state.after.as_deref(), Some("d"));
        assert_eq!(r.state.failed, vec!["d".to_string()]);
        assert_eq!(
            (
                r.report.units_committed,
                r.report.bad_inputs,
                r.report.units_failed
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn a_failed_key_from_before_leaves_the_list_once_delivered() {
        let (mut r, _rx) = runner();
        r.state.failed = vec!["old".into()];
        let s = r.add("old".into(), 0, false);
        r.slots.get_mut(&s).unwrap().attempts = 1;
        r.settle(done(s, true, None));
        assert!(r.state.failed.is_empty());
        assert_eq!(
            r.state.after, None,
            "an old key never moves the listing position"
        );
    }

    #[test]
    fn unsettled_at_shutdown_keeps_the_position() {
        let (mut r, _rx) = runner();
        let a = r.add("a".into(), 1, true);
        r.slots.get_mut(&a).unwrap().attempts = 1;
        r.shutting = true;
        r.settle(done(a, false, None));
        assert_eq!(r.state.after, None);
        assert!(r.state.failed.is_empty());
    }
}
