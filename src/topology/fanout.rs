//! One output's consumers. The list is shared by the component that sends and the topology,
//! which holds it weakly: a reload changes the consumers under a running sender, and when the
//! sender finishes the list (and its channel ends) goes with it.

use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc;

use crate::event::Event;
use crate::transforms::Batch;

/// The consumers, and the component whose output this is (for the dropped-events counter).
#[derive(Default)]
pub struct Targets {
    component: String,
    list: RwLock<Vec<mpsc::Sender<Batch>>>,
}

#[derive(Clone, Default)]
pub struct Fanout {
    targets: Arc<Targets>,
}

impl Fanout {
    /// The output of `component`, with no consumers yet.
    pub fn named(component: &str) -> Self {
        Fanout {
            targets: Arc::new(Targets {
                component: component.to_string(),
                list: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The topology's handle: no reference that keeps the consumers' channels open.
    pub(super) fn downgrade(&self) -> Weak<Targets> {
        Arc::downgrade(&self.targets)
    }

    pub(super) fn upgrade(w: &Weak<Targets>) -> Option<Fanout> {
        w.upgrade().map(|targets| Fanout { targets })
    }

    /// Replace the consumers (a reload).
    pub(super) fn set(&self, targets: Vec<mpsc::Sender<Batch>>) {
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
            crate::telemetry::add(
                "events_dropped_total",
                &[("component", &self.targets.component)],
                batch.len() as u64,
            );
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
