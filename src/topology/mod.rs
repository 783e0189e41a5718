//! Building and running the pipeline graph: bounded channels between components (a slow sink
//! slows its sources), fan-out with acknowledgement shares, orderly shutdown, and reloads that
//! rebuild only what changed (`reload`).

pub mod config;
mod error;
pub mod graph;
mod reload;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use self::config::{Config, DEFAULT_CONFIG, SinkSpec, SourceSpec, TransformSpec};
pub use self::error::TopologyError;
use self::graph::Node;
pub use self::reload::Changes;
use crate::buffer;
use crate::core::Batch;
pub use crate::core::Fanout;
use crate::core::run::{Health, Outcome, Progress};
use crate::sinks::SinkWiring;
use crate::sources::{SourceContext, SourceReport};
use crate::telemetry;
use crate::transforms::Transform;

pub use crate::core::CHANNEL_BATCHES;

use crate::core::fanout::Targets;

/// A running source and its own stop signals (children of the pipeline's).
struct SourceRun {
    stop: CancellationToken,
    hard: CancellationToken,
    handle: JoinHandle<SourceReport>,
}

/// A running transform or sink: its input (held here so a reload can wire new senders to
/// it), its tasks, and its own stop signals.
struct ConsumerRun {
    tx: Option<mpsc::Sender<Batch>>,
    /// A sink's disk buffer tasks: awaited after the sources (they may still be replaying
    /// into their sink, or saving their position).
    buffer: Vec<JoinHandle<()>>,
    task: Option<JoinHandle<()>>,
    stop: CancellationToken,
    hard: CancellationToken,
}

impl ConsumerRun {
    fn idle(tx: mpsc::Sender<Batch>, parent: &Running) -> ConsumerRun {
        ConsumerRun {
            tx: Some(tx),
            buffer: Vec::new(),
            task: None,
            stop: parent.shutdown.child_token(),
            hard: parent.hard_stop.child_token(),
        }
    }

    fn handles(self) -> (Vec<JoinHandle<()>>, Option<JoinHandle<()>>) {
        (self.buffer, self.task)
    }
}

pub struct Running {
    cfg: Config,
    once: bool,
    outputs: BTreeMap<Node, Weak<Targets>>,
    sources: BTreeMap<String, SourceRun>,
    transforms: BTreeMap<String, ConsumerRun>,
    sinks: BTreeMap<String, ConsumerRun>,
    /// Tasks of components a reload removed, still finishing.
    retired: Vec<JoinHandle<()>>,
    /// Reports of sources a reload stopped.
    retired_reports: Vec<(String, SourceReport)>,
    pub shutdown: CancellationToken,
    pub hard_stop: CancellationToken,
    /// What sinks and buffers report back (sinks not started, events left behind, damage).
    pub outcome: Arc<Outcome>,
    /// What `/ready` reads (shared with the API).
    pub health: Arc<Health>,
    /// Counters for a progress display, handed to every source (a backfill's bar).
    progress: Option<Arc<Progress>>,
}

/// What the CLI hands a pipeline it starts besides the config: shared handles, never globals.
#[derive(Default)]
pub struct Handles {
    /// `/ready`'s view of the pipeline.
    pub health: Arc<Health>,
    /// Counters for a progress display (`trailship backfill` on a terminal).
    pub progress: Option<Arc<Progress>>,
}

async fn run_transform(
    name: String,
    t: Box<dyn Transform>,
    rx: mpsc::Receiver<Batch>,
    outs: Vec<Fanout>,
) {
    let labels = [("component", name.as_str())];
    let mut bufs: Vec<Batch> = vec![Vec::new(); outs.len()];
    let mut t = match t.worker() {
        Some(template) => run_parallel(&labels, t, template, rx, &outs).await,
        None => run_serial(&labels, t, rx, &outs, &mut bufs).await,
    };
    loop {
        let again = t.finish(&mut bufs);
        send_all(&mut bufs, &outs, &labels).await;
        if !again {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Count a processed batch: `n` in, what the outputs hold out (the rest dropped).
fn count_batch(labels: &[(&'static str, &str)], n: usize, bufs: &[Batch]) {
    telemetry::add("transform_events_in_total", labels, n as u64);
    let passed: usize = bufs.iter().map(Vec::len).sum();
    if passed < n {
        telemetry::add("events_dropped_total", labels, (n - passed) as u64);
    }
}

/// A transform with state across batches: one batch after the other on this task.
async fn run_serial(
    labels: &[(&'static str, &str)],
    mut t: Box<dyn Transform>,
    mut rx: mpsc::Receiver<Batch>,
    outs: &[Fanout],
    bufs: &mut [Batch],
) -> Box<dyn Transform> {
    while let Some(batch) = rx.recv().await {
        let n = batch.len();
        t.process(batch, bufs);
        count_batch(labels, n, bufs);
        send_all(bufs, outs, labels).await;
    }
    t
}

type Processed = (Box<dyn Transform>, Vec<Batch>, usize);

/// A transform whose batches are independent: up to one batch per core in process at once
/// (each on a blocking thread, with its own copy of the transform), sent on in the order they
/// came in. `template` makes the copies (and replaces one whose batch panicked).
async fn run_parallel(
    labels: &[(&'static str, &str)],
    first: Box<dyn Transform>,
    mut template: Box<dyn Transform>,
    mut rx: mpsc::Receiver<Batch>,
    outs: &[Fanout],
) -> Box<dyn Transform> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pool: Vec<Box<dyn Transform>> = (1..cores).filter_map(|_| template.worker()).collect();
    pool.push(first);
    let mut inflight: std::collections::VecDeque<JoinHandle<Processed>> = Default::default();
    let mut open = true;
    loop {
        let take = open && !pool.is_empty();
        if !take && inflight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            done = async { (&mut inflight[0]).await }, if !inflight.is_empty() => {
                inflight.pop_front();
                match done {
                    Ok((t, mut bufs, n)) => {
                        pool.push(t);
                        count_batch(labels, n, &bufs);
                        send_all(&mut bufs, outs, labels).await;
                    }
                    Err(e) => {
                        tracing::error!(component = labels[0].1, error = %e, "a transform failed on a batch: its events are not delivered, so their inputs are not committed and are read again after a restart");
                        pool.extend(template.worker());
                    }
                }
            }
            batch = rx.recv(), if take => match (batch, pool.pop()) {
                (Some(batch), Some(mut t)) => {
                    let width = outs.len();
                    inflight.push_back(tokio::task::spawn_blocking(move || {
                        let n = batch.len();
                        let mut bufs: Vec<Batch> = vec![Vec::new(); width];
                        t.process(batch, &mut bufs);
                        (t, bufs, n)
                    }));
                }
                (Some(batch), None) => {
                    // Not reached (a batch is only taken with a copy free); done here if it were.
                    let n = batch.len();
                    let mut bufs: Vec<Batch> = vec![Vec::new(); outs.len()];
                    template.process(batch, &mut bufs);
                    count_batch(labels, n, &bufs);
                    send_all(&mut bufs, outs, labels).await;
                }
                (None, t) => {
                    pool.extend(t);
                    open = false;
                }
            },
        }
    }
    pool.pop().unwrap_or(template)
}

async fn send_all(bufs: &mut [Batch], outs: &[Fanout], labels: &[(&'static str, &str)]) {
    for (b, out) in bufs.iter_mut().zip(outs) {
        if !b.is_empty() {
            telemetry::add("transform_events_out_total", labels, b.len() as u64);
            out.send(std::mem::take(b)).await;
        }
    }
}

/// Start every component of a checked config.
pub async fn start(cfg: Config, once: bool, handles: Handles) -> Result<Running, TopologyError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| TopologyError::DataDir {
        path: cfg.data_dir.clone(),
        message: e.to_string(),
    })?;
    let empty = Config {
        data_dir: cfg.data_dir.clone(),
        api: cfg.api.clone(),
        opentelemetry: cfg.opentelemetry.clone(),
        shutdown_timeout: cfg.shutdown_timeout,
        sources: BTreeMap::new(),
        transforms: BTreeMap::new(),
        sinks: BTreeMap::new(),
    };
    let mut running = Running {
        cfg: empty,
        once,
        outputs: BTreeMap::new(),
        sources: BTreeMap::new(),
        transforms: BTreeMap::new(),
        sinks: BTreeMap::new(),
        retired: Vec::new(),
        retired_reports: Vec::new(),
        shutdown: CancellationToken::new(),
        hard_stop: CancellationToken::new(),
        outcome: Arc::new(Outcome::default()),
        health: handles.health,
        progress: handles.progress,
    };
    let (_, errors) = running.apply(cfg).await?;
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    if once {
        // A one-shot run is never rewired: without the topology's copies of their senders,
        // the channels close when the sources and transforms feeding them end, and each sink
        // flushes its last batch then instead of at its batch timeout.
        running.release_inputs();
    }
    Ok(running)
}

impl Running {
    /// The config running now.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every source has finished (a `--once` run done, or sources that failed for good). A
    /// daemon whose reload left it without sources keeps running, waiting for the next one.
    pub fn sources_finished(&self) -> bool {
        if self.sources.is_empty() {
            return self.once;
        }
        self.sources.values().all(|s| s.handle.is_finished())
    }

    fn spawn_source(&mut self, name: &str, cfg: &Config, out: Fanout) -> Result<(), TopologyError> {
        let Some(spec) = cfg.sources.get(name) else {
            return Ok(());
        };
        let stop = self.shutdown.child_token();
        let hard = self.hard_stop.child_token();
        let ctx = SourceContext {
            name: Arc::from(name),
            // A send blocked behind a full consumer gives up when the source is told to stop.
            out: out.until(stop.clone()),
            data_dir: cfg.data_dir.clone(),
            once: self.once,
            shutdown: stop.clone(),
            hard_stop: hard.clone(),
            progress: self.progress.clone(),
        };
        let handle = spec.config.spawn(ctx).map_err(|e| TopologyError::Source {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        self.sources
            .insert(name.to_string(), SourceRun { stop, hard, handle });
        Ok(())
    }

    fn spawn_transform(
        &mut self,
        name: &str,
        built: Box<dyn Transform>,
        rx: mpsc::Receiver<Batch>,
        outs: Vec<Fanout>,
    ) {
        if let Some(run) = self.transforms.get_mut(name) {
            run.task = Some(tokio::spawn(run_transform(
                name.to_string(),
                built,
                rx,
                outs,
            )));
        }
    }

    /// Start a sink on `rx` (its buffer first). Its run entry exists already (with its input).
    fn spawn_sink(
        &mut self,
        name: &str,
        cfg: &Config,
        rx: mpsc::Receiver<Batch>,
    ) -> Result<(), TopologyError> {
        let Some(s) = cfg.sinks.get(name) else {
            return Ok(());
        };
        let dead_letter_tx = match &s.common.dead_letter {
            Some(target) => Some(
                self.sinks
                    .get(target)
                    .and_then(|r| r.tx.clone())
                    .ok_or_else(|| TopologyError::Sink {
                        name: name.to_string(),
                        message: format!("dead_letter `{target}` is no sink"),
                    })?,
            ),
            None => None,
        };
        let Some(run) = self.sinks.get_mut(name) else {
            return Ok(());
        };
        let (rx, tasks) = buffer::attach(
            s.buffer.as_ref(),
            rx,
            buffer::Attach {
                sink: name.into(),
                data_dir: &cfg.data_dir,
                chunk_events: s.common.batch.max_events,
                once: self.once,
                shutdown: run.stop.clone(),
                hard_stop: run.hard.clone(),
                outcome: self.outcome.clone(),
                health: self.health.clone(),
            },
        )
        .map_err(|e| TopologyError::Buffer {
            sink: name.to_string(),
            message: e.to_string(),
        })?;
        run.buffer = tasks;
        let wiring = SinkWiring {
            dead_letter_tx,
            stop_pipeline: Some(self.shutdown.clone()),
            outcome: Some(self.outcome.clone()),
            health: Some(self.health.clone()),
        };
        run.task = Some(
            s.config
                .spawn(name.into(), rx, s.common.clone(), wiring)
                .map_err(|e| TopologyError::Sink {
                    name: name.to_string(),
                    message: e.message,
                })?,
        );
        Ok(())
    }

    /// Say what the end of a `--once` run waits for: the sources still running (their
    /// events not all acknowledged) and the sinks failing to deliver, with for how long.
    pub fn note_waiting(&self) {
        let sources: Vec<&str> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.handle.is_finished())
            .map(|(n, _)| n.as_str())
            .collect();
        let failing: Vec<String> = self
            .health
            .stuck_sinks(Duration::ZERO)
            .into_iter()
            .map(|(sink, secs)| format!("{sink} (failing for {secs:.0} s)"))
            .collect();
        let failing = if failing.is_empty() {
            "none".to_string()
        } else {
            failing.join(", ")
        };
        tracing::info!(
            sources = %sources.join(", "),
            failing_sinks = %failing,
            "waiting for the sinks to deliver what the sources read (each sink retries for retry.max_duration)"
        );
    }

    /// Let go of the senders kept for rewiring: nothing new will be wired.
    fn release_inputs(&mut self) {
        self.outputs.clear();
        for run in self.transforms.values_mut().chain(self.sinks.values_mut()) {
            run.tx = None;
        }
    }

    /// Wait for the sources to finish (all their units resolved, checkpoints saved), then for
    /// transforms and sinks to drain (briefly: a stuck sink cannot hold the process).
    pub async fn wait(&mut self) -> Vec<(String, SourceReport)> {
        let mut reports = std::mem::take(&mut self.retired_reports);
        for (name, run) in std::mem::take(&mut self.sources) {
            reports.push((name, report(run.handle.await)));
        }
        // Nothing new will be wired: let every channel end when its senders do.
        self.release_inputs();
        let mut buffers = Vec::new();
        let mut others = std::mem::take(&mut self.retired);
        for (_, run) in std::mem::take(&mut self.transforms)
            .into_iter()
            .chain(std::mem::take(&mut self.sinks))
        {
            let (b, t) = run.handles();
            buffers.extend(b);
            others.extend(t);
        }
        futures_join(buffers).await;
        let rest = futures_join(others);
        // After a hard stop nothing more is committed: the sinks get a moment, not five.
        let grace = if self.hard_stop.is_cancelled() {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let _ = tokio::time::timeout(grace, rest).await;
        reports
    }
}

fn report(r: Result<SourceReport, tokio::task::JoinError>) -> SourceReport {
    r.unwrap_or_else(|e| SourceReport {
        fatal: Some(format!("source task failed: {e}")),
        ..Default::default()
    })
}

async fn futures_join(hs: Vec<JoinHandle<()>>) {
    for h in hs {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc::unbounded_channel;

    use super::*;
    use crate::core::ack::UnitHandle;
    use crate::core::event::{Event, test_data};

    /// Passes each batch on after a pause that differs from batch to batch (so that copies
    /// finish out of order), and panics on an event named "boom".
    #[derive(Clone)]
    struct Uneven;

    impl Transform for Uneven {
        fn process(&mut self, batch: Batch, out: &mut [Batch]) {
            let id: u64 = batch[0]
                .data
                .event_id()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis((id * 7919) % 13));
            if batch.iter().any(|e| e.data.event_name() == Some("boom")) {
                panic!("a transform that fails on one batch");
            }
            out[0].extend(batch);
        }
        fn worker(&self) -> Option<Box<dyn Transform>> {
            Some(Box::new(self.clone()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_copies_keep_the_order_and_a_failed_batch_fails_only_its_events() {
        let failed = Arc::new(AtomicU64::new(0));
        let (unit_tx, mut units) = unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let out = Fanout::new(Arc::new(|_| {}));
        out.set(vec![out_tx]);
        let task = tokio::spawn(run_transform(
            "t".into(),
            Box::new(Uneven),
            in_rx,
            vec![out],
        ));
        let feed = tokio::spawn(async move {
            for i in 0..60u64 {
                let unit = UnitHandle::new(i, unit_tx.clone());
                let name = if i == 17 { "boom" } else { "ok" };
                let raw = format!(r#"{{"eventID":"{i}","eventName":"{name}"}}"#);
                let batch = vec![Event::new(test_data(&raw), unit.token())];
                unit.seal();
                in_tx.send(batch).await.unwrap();
            }
        });
        let mut seen = Vec::new();
        while let Some(batch) = out_rx.recv().await {
            for e in batch {
                seen.push(e.data.event_id().unwrap().parse::<u64>().unwrap());
                e.ack();
            }
        }
        feed.await.unwrap();
        task.await.unwrap();
        let want: Vec<u64> = (0..60).filter(|&i| i != 17).collect();
        assert_eq!(seen, want, "batches come out in the order they went in");
        while let Ok(done) = units.try_recv() {
            if !done.delivered {
                assert_eq!(done.meta, 17);
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert_eq!(
            failed.load(Ordering::SeqCst),
            1,
            "only the panicking batch's unit failed"
        );
    }
}
