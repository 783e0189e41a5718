//! One output's consumers. The list is shared by the component that sends and the topology,
//! which holds it weakly: a reload changes the consumers under a running sender, and when the
//! sender finishes the list (and its channel ends) goes with it.

use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::Batch;
use super::event::Event;

/// Told how many events an output nobody consumes dropped (the topology counts them).
pub type DropHook = Arc<dyn Fn(u64) + Send + Sync>;

/// The consumers, and what to tell when events are dropped for want of one.
#[derive(Default)]
pub struct Targets {
    on_dropped: Option<DropHook>,
    list: RwLock<Vec<mpsc::Sender<Batch>>>,
}

#[derive(Clone, Default)]
pub struct Fanout {
    targets: Arc<Targets>,
    /// A source's stop signal: a send still waiting for room when it fires gives its batch up
    /// (its units are not committed, so they are read again at the next start) instead of
    /// holding the stop up behind a consumer that does not take it.
    stop: Option<CancellationToken>,
}

impl Fanout {
    /// An output with no consumers yet; `on_dropped` hears of events sent while it has none.
    pub fn new(on_dropped: DropHook) -> Self {
        Fanout {
            targets: Arc::new(Targets {
                on_dropped: Some(on_dropped),
                list: RwLock::new(Vec::new()),
            }),
            stop: None,
        }
    }

    /// This output, giving up a send that waits for room once `stop` fires (a source's).
    pub fn until(self, stop: CancellationToken) -> Fanout {
        Fanout {
            stop: Some(stop),
            ..self
        }
    }

    /// The topology's handle: no reference that keeps the consumers' channels open.
    pub fn downgrade(&self) -> Weak<Targets> {
        Arc::downgrade(&self.targets)
    }

    pub fn upgrade(w: &Weak<Targets>) -> Option<Fanout> {
        w.upgrade().map(|targets| Fanout {
            targets,
            stop: None,
        })
    }

    /// Replace the consumers (a reload).
    pub fn set(&self, targets: Vec<mpsc::Sender<Batch>>) {
        if let Ok(mut t) = self.targets.list.write() {
            *t = targets;
        }
    }

    fn split(&self, batch: Batch) -> Vec<(mpsc::Sender<Batch>, Batch)> {
        let targets = match self.targets.list.read() {
            Ok(t) => t.clone(),
            Err(_) => Vec::new(),
        };
        let n = targets.len();
        if n == 0 {
            // An output nobody consumes (an unused route): dropped by configuration.
            if let Some(hook) = &self.targets.on_dropped {
                hook(batch.len() as u64);
            }
            batch.into_iter().for_each(Event::ack);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n);
        let mut it = targets.into_iter();
        let first = it.next();
        for t in it {
            out.push((t, batch.clone()));
        }
        if let Some(t) = first {
            out.push((t, batch));
        }
        out
    }

    /// Send to every consumer, waiting while a consumer is full (until the stop signal, if
    /// any). A consumer that is gone drops the batch, which fails its units (they are read
    /// again later).
    pub async fn send(&self, batch: Batch) {
        for (tx, b) in self.split(batch) {
            match &self.stop {
                None => {
                    let _ = tx.send(b).await;
                }
                Some(stop) => {
                    tokio::select! {
                        biased;
                        _ = tx.send(b) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    /// The same, from a blocking thread (file readers).
    pub fn send_blocking(&self, batch: Batch) {
        for (tx, b) in self.split(batch) {
            let b = match tx.try_send(b) {
                Ok(()) | Err(TrySendError::Closed(_)) => continue,
                Err(TrySendError::Full(b)) => b,
            };
            match (&self.stop, tokio::runtime::Handle::try_current()) {
                (Some(stop), Ok(rt)) => {
                    let given_up = rt.block_on(async {
                        tokio::select! {
                            biased;
                            _ = tx.send(b) => false,
                            _ = stop.cancelled() => true,
                        }
                    });
                    if given_up {
                        return;
                    }
                }
                _ => {
                    let _ = tx.blocking_send(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc::unbounded_channel;

    use super::*;
    use crate::core::ack::UnitHandle;
    use crate::core::event::test_data;

    /// A batch of `n` events of one unit, and where that unit's outcome arrives.
    fn unit_batch(
        n: usize,
    ) -> (
        Batch,
        tokio::sync::mpsc::UnboundedReceiver<crate::core::ack::UnitDone<()>>,
    ) {
        let (tx, rx) = unbounded_channel();
        let unit = UnitHandle::new((), tx);
        let batch = (0..n)
            .map(|_| Event::new(test_data(r#"{"eventID":"e"}"#), unit.token()))
            .collect();
        unit.seal();
        (batch, rx)
    }

    fn counting() -> (DropHook, Arc<AtomicU64>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        (
            Arc::new(move |n| {
                d.fetch_add(n, Ordering::SeqCst);
            }),
            dropped,
        )
    }

    #[tokio::test]
    async fn every_consumer_gets_every_event_and_the_unit_waits_for_all() {
        let (hook, dropped) = counting();
        let out = Fanout::new(hook);
        let (a_tx, mut a) = mpsc::channel(4);
        let (b_tx, mut b) = mpsc::channel(4);
        out.set(vec![a_tx, b_tx]);
        let (batch, mut done) = unit_batch(3);
        out.send(batch).await;
        let (ga, gb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert_eq!((ga.len(), gb.len()), (3, 3));
        ga.into_iter().for_each(Event::ack);
        assert!(
            done.try_recv().is_err(),
            "one consumer has not delivered yet"
        );
        gb.into_iter().for_each(Event::ack);
        assert!(done.recv().await.unwrap().delivered);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_output_nobody_consumes_drops_and_acknowledges_and_says_so() {
        let (hook, dropped) = counting();
        let out = Fanout::new(hook);
        let (batch, mut done) = unit_batch(5);
        out.send(batch).await;
        assert!(done.recv().await.unwrap().delivered);
        assert_eq!(dropped.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_consumer_that_is_gone_fails_the_unit_and_a_rewire_takes_effect_at_once() {
        let (hook, _) = counting();
        let out = Fanout::new(hook);
        let (gone_tx, gone) = mpsc::channel(4);
        drop(gone);
        out.set(vec![gone_tx]);
        let (batch, mut done) = unit_batch(2);
        out.send(batch).await;
        assert!(!done.recv().await.unwrap().delivered);
        // Rewired (a reload): the next batch reaches the new consumer only.
        let (new_tx, mut fresh) = mpsc::channel(4);
        out.set(vec![new_tx]);
        let (batch, _done) = unit_batch(1);
        out.send(batch).await;
        assert_eq!(fresh.recv().await.unwrap().len(), 1);
        // The topology's weak handle sees the same list while the sender lives, not after.
        let weak = out.downgrade();
        assert!(Fanout::upgrade(&weak).is_some());
        drop(out);
        assert!(Fanout::upgrade(&weak).is_none());
    }
}
