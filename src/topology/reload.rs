//! Applying a config to a running pipeline (the first start is a reload from nothing).
//!
//! Components whose table is unchanged keep running. The others are rebuilt:
//! - the senders are rewired first (every output's consumer list is replaced at once), so no
//!   event goes to a consumer that is going away without that consumer still delivering it;
//! - an old transform or sink finishes what its input still holds, then ends (its channel
//!   closes when its last sender is rewired away); a changed sink's successor starts when the
//!   old one (and its disk buffer, whose directory it takes over) has finished; events wait in
//!   the successor's input meanwhile;
//! - an old source stops reading, waits until its units in flight are delivered and committed,
//!   and only then does its successor start (they share a checkpoint).
//!
//! A component that does not finish within `shutdown_timeout` is stopped hard: what it did not
//! deliver stays uncommitted and is read again by its successor (a duplicate, not a loss).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ConsumerRun, Fanout, Running, SourceRun, report};
use crate::core::Batch;
use crate::topology::Config;
use crate::topology::graph::{Node, resolve};
use crate::transforms::Transform;

/// How long a component stopped hard may take to save its place before it is aborted.
const HARD_GRACE: Duration = Duration::from_secs(2);

/// What a reload did, by component name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Per kind: names removed, changed (table differs) and added.
struct Diff {
    removed: BTreeSet<String>,
    changed: BTreeSet<String>,
    added: BTreeSet<String>,
}

impl Diff {
    fn of<T>(
        old: &BTreeMap<String, T>,
        new: &BTreeMap<String, T>,
        table: impl Fn(&T) -> &toml::Table,
    ) -> Diff {
        Diff {
            removed: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
            changed: old
                .iter()
                .filter(|(k, v)| new.get(*k).is_some_and(|n| table(n) != table(v)))
                .map(|(k, _)| k.clone())
                .collect(),
            added: new
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
        }
    }

    /// Removed or changed: the old instance goes.
    fn going(&self) -> impl Iterator<Item = &String> {
        self.removed.iter().chain(&self.changed)
    }

    /// Changed or added: a new instance comes.
    fn coming(&self) -> impl Iterator<Item = &String> {
        self.changed.iter().chain(&self.added)
    }

    fn record(&self, kind: &str, into: &mut Changes) {
        let named = |set: &BTreeSet<String>| set.iter().map(|n| format!("{kind} {n}")).collect();
        let (a, c, r): (Vec<String>, Vec<String>, Vec<String>) = (
            named(&self.added),
            named(&self.changed),
            named(&self.removed),
        );
        into.added.extend(a);
        into.changed.extend(c);
        into.removed.extend(r);
    }
}

/// Wait for old tasks, up to `limit`; then stop them hard (`hard`), and abort what still runs
/// (its events' shares fail: their units are read again).
async fn retire(
    what: &str,
    hard: &[tokio_util::sync::CancellationToken],
    handles: Vec<JoinHandle<()>>,
    limit: Duration,
) {
    let abort: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    let all = async {
        for h in handles {
            let _ = h.await;
        }
    };
    tokio::pin!(all);
    if tokio::time::timeout(limit, &mut all).await.is_err() {
        tracing::warn!(
            component = what,
            timeout_s = limit.as_secs_f64(),
            "not finished within shutdown_timeout; stopping it: what it did not deliver is read again"
        );
        hard.iter().for_each(|h| h.cancel());
        if tokio::time::timeout(HARD_GRACE, &mut all).await.is_err() {
            abort.iter().for_each(|a| a.abort());
        }
    }
}

impl Running {
    /// Check `new` against what runs, then apply it. `Err`: rejected, nothing was touched.
    /// `Ok`: what changed, and the components that could not start (their inputs wait).
    pub async fn apply(&mut self, new: Config) -> Result<(Changes, Vec<String>), String> {
        if new.data_dir != self.cfg.data_dir && !self.is_empty() {
            return Err(format!(
                "data_dir changed ({} → {}): checkpoints and buffers live there; restart to move it",
                self.cfg.data_dir.display(),
                new.data_dir.display()
            ));
        }
        let sources = Diff::of(&self.cfg.sources, &new.sources, |s| &s.table);
        let transforms = Diff::of(&self.cfg.transforms, &new.transforms, |t| &t.table);
        let mut sinks = Diff::of(&self.cfg.sinks, &new.sinks, |s| &s.table);
        // A sink that dead-letters into a sink being rebuilt holds that sink's old input:
        // it is rebuilt too.
        loop {
            let more: Vec<String> = new
                .sinks
                .iter()
                .filter(|(n, _)| self.cfg.sinks.contains_key(*n) && !sinks.changed.contains(*n))
                .filter(|(_, s)| {
                    s.common
                        .dead_letter
                        .as_ref()
                        .is_some_and(|t| sinks.changed.contains(t))
                })
                .map(|(n, _)| n.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            sinks.changed.extend(more);
        }
        let mut changes = Changes::default();
        sources.record("source", &mut changes);
        transforms.record("transform", &mut changes);
        sinks.record("sink", &mut changes);
        if changes.is_empty() {
            self.cfg.shutdown_timeout = new.shutdown_timeout;
            return Ok((changes, Vec::new()));
        }
        // Everything that can fail without side effects, before anything is touched.
        let mut built: BTreeMap<String, Box<dyn Transform>> = BTreeMap::new();
        for name in transforms.coming() {
            if let Some(t) = new.transforms.get(name) {
                let b = t
                    .config
                    .build(name, Some(&new.data_dir))
                    .map_err(|e| format!("transform {name}: {}", e.message))?;
                built.insert(name.clone(), b);
            }
        }
        let limit = new.shutdown_timeout;
        let mut errors = Vec::new();
        self.retired.retain(|h| !h.is_finished());

        // Old sources stop reading now; they finish their units while the rest is rewired.
        for name in sources.going() {
            if let Some(s) = self.sources.get(name) {
                s.stop.cancel();
            }
        }
        // New inputs for the transforms and sinks that come.
        let mut inputs: BTreeMap<String, mpsc::Receiver<Batch>> = BTreeMap::new();
        let mut old_transforms = Vec::new();
        let mut old_sinks = Vec::new();
        for (names, map, olds) in [
            (&transforms, &mut self.transforms, &mut old_transforms),
            (&sinks, &mut self.sinks, &mut old_sinks),
        ] {
            for name in names.going() {
                if let Some(mut run) = map.remove(name) {
                    run.tx = None;
                    olds.push((name.clone(), run));
                }
            }
        }
        for name in transforms.coming().chain(sinks.coming()) {
            let (tx, rx) = mpsc::channel(super::CHANNEL_BATCHES);
            inputs.insert(name.clone(), rx);
            let run = ConsumerRun::idle(tx, self);
            if new.sinks.contains_key(name) {
                self.sinks.insert(name.clone(), run);
            } else {
                self.transforms.insert(name.clone(), run);
            }
        }
        // Rewire every output at once.
        let mut targets: BTreeMap<Node, Vec<mpsc::Sender<Batch>>> = BTreeMap::new();
        let consumers = new
            .transforms
            .iter()
            .map(|(n, t)| (n, &t.inputs, self.transforms.get(n)))
            .chain(
                new.sinks
                    .iter()
                    .map(|(n, s)| (n, &s.inputs, self.sinks.get(n))),
            );
        for (_, ins, run) in consumers {
            let Some(tx) = run.and_then(|r| r.tx.clone()) else {
                continue;
            };
            let mut seen = BTreeSet::new();
            for input in ins {
                let node = resolve(&new, input)?;
                // The same consumer named twice for one output still gets each event once.
                if seen.insert(node.clone()) {
                    targets.entry(node).or_default().push(tx.clone());
                }
            }
        }
        let nodes = new.sources.keys().map(|n| Node::Source(n.clone())).chain(
            new.transforms.iter().flat_map(|(n, t)| {
                t.config
                    .outputs()
                    .into_iter()
                    .map(|o| Node::Transform(n.clone(), o))
            }),
        );
        let mut live: BTreeMap<Node, Fanout> = BTreeMap::new();
        for node in nodes {
            let out = self
                .outputs
                .get(&node)
                .and_then(Fanout::upgrade)
                .unwrap_or_else(|| {
                    let component = match &node {
                        Node::Source(n) | Node::Transform(n, _) => n.clone(),
                    };
                    Fanout::new(std::sync::Arc::new(move |n| {
                        crate::telemetry::add(
                            "events_dropped_total",
                            &[("component", &component)],
                            n,
                        )
                    }))
                });
            out.set(targets.remove(&node).unwrap_or_default());
            self.outputs.insert(node.clone(), out.downgrade());
            live.insert(node, out);
        }
        // Outputs of removed components keep their consumers: what the old component still
        // holds reaches them, and they end when it does.
        let old_nodes: Vec<Node> = self
            .outputs
            .keys()
            .filter(|n| !live.contains_key(*n))
            .cloned()
            .collect();
        for n in old_nodes {
            self.outputs.remove(&n);
        }

        // Old transforms drain into the rewired outputs; the new ones start now.
        for (_, run) in old_transforms {
            let (b, t) = run.handles();
            self.retired.extend(b);
            self.retired.extend(t);
        }
        for (name, b) in built {
            let Some(rx) = inputs.remove(&name) else {
                continue;
            };
            let outs = new
                .transforms
                .get(&name)
                .map(|t| t.config.outputs())
                .unwrap_or_default()
                .into_iter()
                .map(|o| {
                    live.get(&Node::Transform(name.clone(), o))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            self.spawn_transform(&name, b, rx, outs);
        }
        // Old sinks finish (their disk buffers save their place), then their successors start.
        let mut waiting = Vec::new();
        let mut hard = Vec::new();
        for (name, run) in old_sinks {
            run.stop.cancel();
            hard.push(run.hard.clone());
            let (b, t) = run.handles();
            if sinks.changed.contains(&name) {
                waiting.extend(b);
                waiting.extend(t);
            } else {
                self.retired.extend(b);
                self.retired.extend(t);
            }
        }
        retire("sinks being rebuilt", &hard, waiting, limit).await;
        for name in sinks.coming() {
            if let Some(rx) = inputs.remove(name)
                && let Err(e) = self.spawn_sink(name, &new, rx)
            {
                errors.push(e);
            }
        }
        // Old sources finish their units; their successors start from the saved checkpoint.
        let mut stopped = Vec::new();
        for name in sources.going() {
            if let Some(run) = self.sources.remove(name) {
                stopped.push((name.clone(), run));
            }
        }
        for (name, run) in stopped {
            let SourceRun { hard, handle, .. } = run;
            let abort = handle.abort_handle();
            let mut handle = handle;
            let r = match tokio::time::timeout(limit, &mut handle).await {
                Ok(r) => report(r),
                Err(_) => {
                    tracing::warn!(source = %name, timeout_s = limit.as_secs_f64(), "not finished within shutdown_timeout; stopping it: what it did not deliver is read again");
                    hard.cancel();
                    match tokio::time::timeout(HARD_GRACE, &mut handle).await {
                        Ok(r) => report(r),
                        Err(_) => {
                            abort.abort();
                            report(handle.await)
                        }
                    }
                }
            };
            self.retired_reports.push((name, r));
        }
        for name in sources.coming() {
            let out = live
                .get(&Node::Source(name.clone()))
                .cloned()
                .unwrap_or_default();
            if let Err(e) = self.spawn_source(name, &new, out) {
                errors.push(e);
            }
        }
        self.cfg = new;
        Ok((changes, errors))
    }

    fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.transforms.is_empty() && self.sinks.is_empty()
    }
}
