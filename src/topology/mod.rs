//! Building and running the pipeline graph: bounded channels between components (a slow sink
//! slows its sources), fan-out with acknowledgement shares, orderly shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::buffer;
use crate::config::Config;
use crate::config::graph::{Node, resolve};
use crate::event::Event;
use crate::sources::{SourceContext, SourceReport};
use crate::transforms::{Batch, Transform};

/// Batches (of up to a few hundred events) a channel holds before its sender waits.
pub const CHANNEL_BATCHES: usize = 4;

/// The consumers of one output. Each gets every event; extra copies add acknowledgement shares.
#[derive(Clone, Default)]
pub struct Fanout {
    targets: Vec<mpsc::Sender<Batch>>,
}

impl Fanout {
    pub fn new(targets: Vec<mpsc::Sender<Batch>>) -> Self {
        Fanout { targets }
    }

    fn split(&self, batch: Batch) -> Vec<(usize, Batch)> {
        let n = self.targets.len();
        if n == 0 {
            // An output nobody consumes (an unused route): dropped by configuration.
            batch.into_iter().for_each(Event::ack);
            return Vec::new();
        }
        let mut out: Vec<(usize, Batch)> = (1..n).map(|i| (i, batch.clone())).collect();
        out.push((0, batch));
        out
    }

    /// Send to every consumer, waiting while a consumer is full. A consumer that is gone drops
    /// the batch, which fails its units (they are read again later).
    pub async fn send(&self, batch: Batch) {
        for (i, b) in self.split(batch) {
            let _ = self.targets[i].send(b).await;
        }
    }

    /// The same, from a blocking thread (file readers).
    pub fn send_blocking(&self, batch: Batch) {
        for (i, b) in self.split(batch) {
            let _ = self.targets[i].blocking_send(b);
        }
    }
}

pub struct Running {
    sources: Vec<(String, JoinHandle<SourceReport>)>,
    /// Disk buffers' writers and readers: awaited after the sources (they may still be
    /// replaying into their sinks, or saving their position).
    buffers: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
    pub shutdown: CancellationToken,
    pub hard_stop: CancellationToken,
}

async fn run_transform(
    mut t: Box<dyn Transform>,
    mut rx: mpsc::Receiver<Batch>,
    outs: Vec<Fanout>,
) {
    let mut bufs: Vec<Batch> = vec![Vec::new(); outs.len()];
    while let Some(batch) = rx.recv().await {
        t.process(batch, &mut bufs);
        send_all(&mut bufs, &outs).await;
    }
    loop {
        let again = t.finish(&mut bufs);
        send_all(&mut bufs, &outs).await;
        if !again {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_all(bufs: &mut [Batch], outs: &[Fanout]) {
    for (b, out) in bufs.iter_mut().zip(outs) {
        if !b.is_empty() {
            out.send(std::mem::take(b)).await;
        }
    }
}

/// Start every component of a checked config.
pub fn start(cfg: &Config, once: bool) -> Result<Running, String> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", cfg.data_dir.display()))?;
    let mut senders: BTreeMap<Node, Vec<(String, mpsc::Sender<Batch>)>> = BTreeMap::new();
    let mut receivers: BTreeMap<String, mpsc::Receiver<Batch>> = BTreeMap::new();
    let consumers = cfg
        .transforms
        .iter()
        .map(|(n, t)| (n, &t.inputs))
        .chain(cfg.sinks.iter().map(|(n, s)| (n, &s.inputs)));
    // Each sink's own input, for the sinks that name it as their dead_letter.
    let mut sink_inputs: BTreeMap<String, mpsc::Sender<Batch>> = BTreeMap::new();
    for (name, inputs) in consumers {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        receivers.insert(name.clone(), rx);
        if cfg.sinks.contains_key(name) {
            sink_inputs.insert(name.clone(), tx.clone());
        }
        for input in inputs {
            let node = resolve(cfg, input)?;
            let list = senders.entry(node).or_default();
            // The same consumer named twice for one output still gets each event once.
            if !list.iter().any(|(n, _)| n == name) {
                list.push((name.clone(), tx.clone()));
            }
        }
    }
    let mut fanout = |node: Node| {
        Fanout::new(
            senders
                .remove(&node)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, tx)| tx)
                .collect(),
        )
    };
    let shutdown = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let mut others = Vec::new();
    let mut buffers = Vec::new();
    for (name, s) in &cfg.sinks {
        let rx = receivers
            .remove(name)
            .ok_or_else(|| format!("sink {name}: no input channel"))?;
        let (rx, tasks) = buffer::attach(
            s.common.buffer.as_ref(),
            rx,
            buffer::Attach {
                sink: name.as_str().into(),
                data_dir: &cfg.data_dir,
                chunk_events: s.common.batch.max_events,
                once,
                shutdown: shutdown.clone(),
                hard_stop: hard_stop.clone(),
            },
        )?;
        buffers.extend(tasks);
        let mut common = s.common.clone();
        common.stop_pipeline = Some(shutdown.clone());
        if let Some(target) = &common.dead_letter {
            common.dead_letter_tx = Some(
                sink_inputs
                    .get(target)
                    .cloned()
                    .ok_or_else(|| format!("sink {name}: dead_letter `{target}` is no sink"))?,
            );
        }
        others.push(
            s.config
                .spawn(name.as_str().into(), rx, common)
                .map_err(|e| format!("sink {name}: {}", e.message))?,
        );
    }
    // Only the sinks that dead-letter into a sink hold its input now: it closes after them.
    drop(sink_inputs);
    for (name, t) in &cfg.transforms {
        let rx = receivers
            .remove(name)
            .ok_or_else(|| format!("transform {name}: no input channel"))?;
        let built = t
            .config
            .build(name, Some(&cfg.data_dir))
            .map_err(|e| format!("transform {name}: {}", e.message))?;
        let outs = t
            .config
            .outputs()
            .into_iter()
            .map(|o| fanout(Node::Transform(name.clone(), o)))
            .collect();
        others.push(tokio::spawn(run_transform(built, rx, outs)));
    }
    let mut sources = Vec::new();
    for (name, s) in &cfg.sources {
        let ctx = SourceContext {
            name: Arc::from(name.as_str()),
            out: fanout(Node::Source(name.clone())),
            data_dir: cfg.data_dir.clone(),
            once,
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
        };
        sources.push((
            name.clone(),
            s.config
                .spawn(ctx)
                .map_err(|e| format!("source {name}: {e}"))?,
        ));
    }
    Ok(Running {
        sources,
        buffers,
        others,
        shutdown,
        hard_stop,
    })
}

impl Running {
    /// Wait for the sources to finish (all their units resolved, checkpoints saved), then for
    /// transforms and sinks to drain (briefly: a stuck sink cannot hold the process).
    pub async fn wait(&mut self) -> Vec<(String, SourceReport)> {
        let mut reports = Vec::new();
        for (name, h) in self.sources.drain(..) {
            match h.await {
                Ok(r) => reports.push((name, r)),
                Err(e) => reports.push((
                    name,
                    SourceReport {
                        fatal: Some(format!("source task failed: {e}")),
                        ..Default::default()
                    },
                )),
            }
        }
        futures_join(self.buffers.drain(..).collect()).await;
        let rest = futures_join(self.others.drain(..).collect());
        let _ = tokio::time::timeout(Duration::from_secs(5), rest).await;
        reports
    }
}

async fn futures_join(hs: Vec<JoinHandle<()>>) {
    for h in hs {
        let _ = h.await;
    }
}
