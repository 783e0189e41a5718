//! Unit-of-work acknowledgements.
//!
//! A unit (one trail file, or a byte range of a growing NDJSON file) is created by its reader
//! with one pending share held by the reader itself. Every event read from it holds a share;
//! cloning an event for fan-out adds one. A share is resolved exactly once: `ack` (delivered, or
//! deliberately dropped by a filter) or `fail`. A share dropped without being resolved counts as
//! a failure, so an event lost to a panic, a cancelled task or a shutdown can never let its
//! unit be committed. When the last share is resolved, the unit's result goes to its source.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc::UnboundedSender;

/// What a source learns when one of its units is finished.
#[derive(Debug)]
pub struct UnitDone<M> {
    pub meta: M,
    /// Every event was delivered by every sink it was routed to, or dropped by a filter.
    pub delivered: bool,
}

/// Shares still out, and whether one of them failed.
struct Shares {
    pending: AtomicUsize,
    failed: AtomicBool,
}

impl Shares {
    fn one() -> Shares {
        Shares {
            pending: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
        }
    }
    fn add(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }
    /// Resolve one share; `Some(delivered)` when it was the last.
    fn resolve(&self, ok: bool) -> Option<bool> {
        if !ok {
            self.failed.store(true, Ordering::Release);
        }
        (self.pending.fetch_sub(1, Ordering::AcqRel) == 1)
            .then(|| !self.failed.load(Ordering::Acquire))
    }
}

struct Unit<M: Send + 'static> {
    shares: Shares,
    meta: Mutex<Option<M>>,
    notify: UnboundedSender<UnitDone<M>>,
}

trait Resolve: Send + Sync {
    fn resolve(&self, ok: bool);
    fn add(&self);
}

impl<M: Send + 'static> Resolve for Unit<M> {
    fn add(&self) {
        self.shares.add();
    }
    fn resolve(&self, ok: bool) {
        let Some(delivered) = self.shares.resolve(ok) else {
            return;
        };
        if let Some(meta) = self.meta.lock().ok().and_then(|mut m| m.take()) {
            // The source may already be gone (shutdown): nothing left to commit then.
            let _ = self.notify.send(UnitDone { meta, delivered });
        }
    }
}

/// One share of a unit, carried by an event. `AckToken::none()` is for events with no unit.
pub struct AckToken(Option<Arc<dyn Resolve>>);

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AckToken"
        } else {
            "AckToken(none)"
        })
    }
}

impl AckToken {
    pub fn none() -> Self {
        AckToken(None)
    }
    pub fn ack(mut self) {
        if let Some(u) = self.0.take() {
            u.resolve(true);
        }
    }
    pub fn fail(mut self) {
        if let Some(u) = self.0.take() {
            u.resolve(false);
        }
    }
}

type Report = Box<dyn FnOnce(bool) + Send>;

/// A share that reports its outcome before passing it on (see `AckToken::watch`).
struct Watched {
    shares: Shares,
    inner: Mutex<Option<(AckToken, Report)>>,
}

impl Resolve for Watched {
    fn add(&self) {
        self.shares.add();
    }
    fn resolve(&self, ok: bool) {
        let Some(delivered) = self.shares.resolve(ok) else {
            return;
        };
        if let Some((token, report)) = self.inner.lock().ok().and_then(|mut i| i.take()) {
            report(delivered);
            if delivered {
                token.ack();
            } else {
                token.fail();
            }
        }
    }
}

impl AckToken {
    /// This share, reporting to `report` whether it (and every copy made of it) was delivered,
    /// just before the outcome reaches the unit. `report` is called once.
    pub fn watch(self, report: impl FnOnce(bool) + Send + 'static) -> AckToken {
        AckToken(Some(Arc::new(Watched {
            shares: Shares::one(),
            inner: Mutex::new(Some((self, Box::new(report)))),
        })))
    }
}

impl Clone for AckToken {
    fn clone(&self) -> Self {
        if let Some(u) = &self.0 {
            u.add();
        }
        AckToken(self.0.clone())
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(u) = self.0.take() {
            u.resolve(false);
        }
    }
}

/// Something that hands out acknowledgement shares of a unit.
pub trait Mint {
    fn token(&self) -> AckToken;
}

/// A cloneable share-minter for a unit, for handing to another thread. It holds no share
/// itself: the unit completes when its `UnitHandle` is sealed and its tokens resolve.
pub struct UnitMinter<M: Send + 'static>(Arc<Unit<M>>);

impl<M: Send + 'static> Mint for UnitMinter<M> {
    fn token(&self) -> AckToken {
        self.0.add();
        AckToken(Some(self.0.clone() as Arc<dyn Resolve>))
    }
}

/// The reader's handle on a unit it is filling.
pub struct UnitHandle<M: Send + 'static> {
    unit: Arc<Unit<M>>,
    sealed: bool,
}

impl<M: Send + 'static> UnitHandle<M> {
    pub fn new(meta: M, notify: UnboundedSender<UnitDone<M>>) -> Self {
        UnitHandle {
            unit: Arc::new(Unit {
                shares: Shares::one(),
                meta: Mutex::new(Some(meta)),
                notify,
            }),
            sealed: false,
        }
    }

    /// A share for one more event of this unit.
    pub fn token(&self) -> AckToken {
        self.minter().token()
    }

    /// A minter for another thread; the handle must outlive its use (seal after it is done).
    pub fn minter(&self) -> UnitMinter<M> {
        UnitMinter(self.unit.clone())
    }

    /// Update the unit's metadata before sealing (e.g. its end offset).
    pub fn update(&self, f: impl FnOnce(&mut M)) {
        if let Ok(mut m) = self.unit.meta.lock()
            && let Some(m) = m.as_mut()
        {
            f(m);
        }
    }

    /// The reader has emitted everything of this unit; it completes when its events do.
    pub fn seal(mut self) {
        self.sealed = true;
        self.unit.resolve(true);
    }

    /// The reader gave up on this unit (cancelled): it will not be committed.
    pub fn abandon(mut self) {
        self.sealed = true;
        self.unit.resolve(false);
    }
}

impl<M: Send + 'static> Mint for UnitHandle<M> {
    fn token(&self) -> AckToken {
        UnitHandle::token(self)
    }
}

impl<M: Send + 'static> Drop for UnitHandle<M> {
    fn drop(&mut self) {
        if !self.sealed {
            self.unit.resolve(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    #[test]
    fn watched_share_reports_then_passes_the_outcome_on() {
        let (tx, mut rx) = unbounded_channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let u = UnitHandle::new((), tx);
        let s = seen.clone();
        let w = u.token().watch(move |ok| s.lock().unwrap().push(ok));
        let copy = w.clone();
        u.seal();
        w.ack();
        assert!(seen.lock().unwrap().is_empty());
        copy.fail();
        assert_eq!(*seen.lock().unwrap(), vec![false]);
        assert!(!rx.try_recv().unwrap().delivered);
        // Dropped unresolved: a failure, reported too.
        let (tx, mut rx) = unbounded_channel();
        let u = UnitHandle::new((), tx);
        let s = seen.clone();
        drop(u.token().watch(move |ok| s.lock().unwrap().push(ok)));
        u.seal();
        assert_eq!(*seen.lock().unwrap(), vec![false, false]);
        assert!(!rx.try_recv().unwrap().delivered);
    }

    #[test]
    fn completes_when_all_shares_resolved() {
        let (tx, mut rx) = unbounded_channel();
        let u = UnitHandle::new(7u32, tx);
        let a = u.token();
        let b = a.clone();
        u.seal();
        assert!(rx.try_recv().is_err());
        a.ack();
        assert!(rx.try_recv().is_err());
        b.ack();
        let d = rx.try_recv().unwrap();
        assert_eq!(d.meta, 7);
        assert!(d.delivered);
    }

    #[test]
    fn one_failure_fails_the_unit() {
        let (tx, mut rx) = unbounded_channel();
        let u = UnitHandle::new((), tx);
        let a = u.token();
        let b = u.token();
        u.seal();
        a.fail();
        b.ack();
        assert!(!rx.try_recv().unwrap().delivered);
    }

    #[test]
    fn dropped_share_is_a_failure() {
        let (tx, mut rx) = unbounded_channel();
        let u = UnitHandle::new((), tx);
        drop(u.token());
        u.seal();
        assert!(!rx.try_recv().unwrap().delivered);
    }

    #[test]
    fn empty_unit_completes_on_seal_and_dropped_handle_fails() {
        let (tx, mut rx) = unbounded_channel();
        UnitHandle::new(1, tx.clone()).seal();
        assert!(rx.try_recv().unwrap().delivered);
        drop(UnitHandle::new(2, tx));
        assert!(!rx.try_recv().unwrap().delivered);
    }
}
