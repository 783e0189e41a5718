//! One output's consumers. The list is shared by the component that sends and the topology,
//! which holds it weakly: a reload changes the consumers under a running sender, and when the
//! sender finishes the list (and its channel ends) goes with it.

use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc;

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
}

impl Fanout {
    /// An output with no consumers yet; `on_dropped` hears of events sent while it has none.
    pub fn new(on_dropped: DropHook) -> Self {
        Fanout {
            targets: Arc::new(Targets {
                on_dropped: Some(on_dropped),
                list: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The topology's handle: no reference that keeps the consumers' channels open.
    pub fn downgrade(&self) -> Weak<Targets> {
        Arc::downgrade(&self.targets)
    }

    pub fn upgrade(w: &Weak<Targets>) -> Option<Fanout> {
        w.upgrade().map(|targets| Fanout { targets })
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

    /// Send to every consumer, waiting while a consumer is full. A consumer that is gone drops
    /// the batch, which fails its units (they are read again later).
    pub async fn send(&self, batch: Batch) {
        for (tx, b) in self.split(batch) {
            let _ = tx.send(b).await;
        }
    }

    /// The same, from a blocking thread (file readers).
    pub fn send_blocking(&self, batch: Batch) {
        for (tx, b) in self.split(batch) {
            let _ = tx.blocking_send(b);
        }
    }
}
