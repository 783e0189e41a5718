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

use super::{ConsumerRun, Fanout, Running, SourceRun, TopologyError, report};
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
    /// `table`: what makes a component the same (its table as written, and what was derived
    /// from the whole file, such as a sink's default spill).
    fn of<'a, T, K: PartialEq>(
        old: &'a BTreeMap<String, T>,
        new: &'a BTreeMap<String, T>,
        table: impl Fn(&'a T) -> K,
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

/// Build the transforms that come (an error rejects the reload before anything is touched).
fn build_transforms(
    new: &Config,
    transforms: &Diff,
) -> Result<BTreeMap<String, Box<dyn Transform>>, TopologyError> {
    let mut built = BTreeMap::new();
    for name in transforms.coming() {
        if let Some(t) = new.transforms.get(name) {
            let b = t.config.build(name, Some(&new.data_dir)).map_err(|e| {
                TopologyError::Transform {
                    name: name.clone(),
                    message: e.message,
                }
            })?;
            built.insert(name.clone(), b);
        }
    }
    Ok(built)
}

/// Per output of `new`, the inputs of the transforms and sinks that consume it.
fn consumers_of(
    new: &Config,
    running: &Running,
) -> Result<BTreeMap<Node, Vec<mpsc::Sender<Batch>>>, TopologyError> {
    let mut targets: BTreeMap<Node, Vec<mpsc::Sender<Batch>>> = BTreeMap::new();
    let consumers = new
        .transforms
        .iter()
        .map(|(n, t)| (&t.inputs, running.transforms.get(n)))
        .chain(
            new.sinks
                .iter()
                .map(|(n, s)| (&s.inputs, running.sinks.get(n))),
        );
    for (ins, run) in consumers {
        let Some(tx) = run.and_then(|r| r.tx.clone()) else {
            continue;
        };
        let mut seen = BTreeSet::new();
        for input in ins {
            let node = resolve(new, input).map_err(|e| TopologyError::Input {
                input: input.clone(),
                message: e.to_string(),
            })?;
            // The same consumer named twice for one output still gets each event once.
            if seen.insert(node.clone()) {
                targets.entry(node).or_default().push(tx.clone());
            }
        }
    }
    Ok(targets)
}

/// A new output of `node`, counting what it drops for want of a consumer.
fn counted_output(node: &Node) -> Fanout {
    let component = match node {
        Node::Source(n) | Node::Transform(n, _) => n.clone(),
    };
    Fanout::new(std::sync::Arc::new(move |n| {
        crate::telemetry::add("events_dropped_total", &[("component", &component)], n)
    }))
}

/// Wait for a going source to finish its units, up to `limit`; then stop it hard, and abort
/// it after `HARD_GRACE`.
async fn stop_source(
    name: &str,
    run: SourceRun,
    limit: Duration,
) -> crate::core::run::SourceReport {
    let SourceRun { hard, handle, .. } = run;
    let abort = handle.abort_handle();
    let mut handle = handle;
    match tokio::time::timeout(limit, &mut handle).await {
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
    }
}

/// What a reload will do: the diff per kind (a sink that dead-letters into a rebuilt sink is
/// rebuilt too) and the names it changes. Computed without touching anything.
struct Plan {
    sources: Diff,
    transforms: Diff,
    sinks: Diff,
    changes: Changes,
}

/// The diff of `old` and `new`, or why `new` cannot replace `old` while it runs.
fn plan(old: &Config, new: &Config, running: bool) -> Result<Plan, TopologyError> {
    if new.data_dir != old.data_dir && running {
        return Err(TopologyError::DataDirChanged {
            old: old.data_dir.clone(),
            new: new.data_dir.clone(),
        });
    }
    let sources = Diff::of(&old.sources, &new.sources, |s| &s.table);
    let transforms = Diff::of(&old.transforms, &new.transforms, |t| &t.table);
    let mut sinks = Diff::of(&old.sinks, &new.sinks, |s| (&s.table, &s.buffer));
    // A sink that dead-letters into a sink being rebuilt holds that sink's old input: it is
    // rebuilt too.
    loop {
        let more: Vec<String> = new
            .sinks
            .iter()
            .filter(|(n, _)| old.sinks.contains_key(*n) && !sinks.changed.contains(*n))
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
    Ok(Plan {
        sources,
        transforms,
        sinks,
        changes,
    })
}

/// The old runs of the transforms and sinks that go, their inputs closed.
type Going = (Vec<(String, ConsumerRun)>, Vec<(String, ConsumerRun)>);

impl Running {
    /// Check `new` against what runs, then apply it. `Err`: rejected, nothing was touched.
    /// `Ok`: what changed, and the components that could not start (their inputs wait).
    pub async fn apply(
        &mut self,
        new: Config,
    ) -> Result<(Changes, Vec<TopologyError>), TopologyError> {
        let plan = plan(&self.cfg, &new, !self.is_empty())?;
        if plan.changes.is_empty() {
            self.cfg.shutdown_timeout = new.shutdown_timeout;
            return Ok((plan.changes, Vec::new()));
        }
        // Everything that can fail without side effects, before anything is touched.
        let built = build_transforms(&new, &plan.transforms)?;
        self.retired.retain(|h| !h.is_finished());
        // Old sources stop reading now; they finish their units while the rest is rewired.
        for name in plan.sources.going() {
            if let Some(s) = self.sources.get(name) {
                s.stop.cancel();
            }
        }
        let (mut inputs, (old_transforms, old_sinks)) = self.open_inputs(&new, &plan);
        let live = self.rewire(&new)?;
        self.start_transforms(&new, built, &mut inputs, old_transforms, &live);
        let mut errors = self
            .replace_sinks(&new, &plan.sinks, inputs, old_sinks)
            .await;
        errors.extend(self.replace_sources(&new, &plan.sources, &live).await);
        self.cfg = new;
        Ok((plan.changes, errors))
    }

    /// New inputs for the transforms and sinks that come; the old runs of those that go, with
    /// the topology's senders to them dropped.
    fn open_inputs(
        &mut self,
        new: &Config,
        plan: &Plan,
    ) -> (BTreeMap<String, mpsc::Receiver<Batch>>, Going) {
        let mut inputs: BTreeMap<String, mpsc::Receiver<Batch>> = BTreeMap::new();
        let mut old_transforms = Vec::new();
        let mut old_sinks = Vec::new();
        for (names, map, olds) in [
            (&plan.transforms, &mut self.transforms, &mut old_transforms),
            (&plan.sinks, &mut self.sinks, &mut old_sinks),
        ] {
            for name in names.going() {
                if let Some(mut run) = map.remove(name) {
                    run.tx = None;
                    olds.push((name.clone(), run));
                }
            }
        }
        for name in plan.transforms.coming().chain(plan.sinks.coming()) {
            let (tx, rx) = mpsc::channel(super::CHANNEL_BATCHES);
            inputs.insert(name.clone(), rx);
            let run = ConsumerRun::idle(tx, self);
            if new.sinks.contains_key(name) {
                self.sinks.insert(name.clone(), run);
            } else {
                self.transforms.insert(name.clone(), run);
            }
        }
        (inputs, (old_transforms, old_sinks))
    }

    /// Rewire every output at once; returns the live outputs. Outputs of removed components
    /// keep their consumers: what the old component still holds reaches them, and they end
    /// when it does.
    fn rewire(&mut self, new: &Config) -> Result<BTreeMap<Node, Fanout>, TopologyError> {
        let mut targets = consumers_of(new, self)?;
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
                .unwrap_or_else(|| counted_output(&node));
            out.set(targets.remove(&node).unwrap_or_default());
            self.outputs.insert(node.clone(), out.downgrade());
            live.insert(node, out);
        }
        self.outputs.retain(|n, _| live.contains_key(n));
        Ok(live)
    }

    /// Old transforms drain into the rewired outputs; the new ones start now.
    fn start_transforms(
        &mut self,
        new: &Config,
        built: BTreeMap<String, Box<dyn Transform>>,
        inputs: &mut BTreeMap<String, mpsc::Receiver<Batch>>,
        old: Vec<(String, ConsumerRun)>,
        live: &BTreeMap<Node, Fanout>,
    ) {
        for (_, run) in old {
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
    }

    /// Old sinks finish (their disk buffers save their place), then their successors start.
    async fn replace_sinks(
        &mut self,
        new: &Config,
        sinks: &Diff,
        mut inputs: BTreeMap<String, mpsc::Receiver<Batch>>,
        old: Vec<(String, ConsumerRun)>,
    ) -> Vec<TopologyError> {
        let mut waiting = Vec::new();
        let mut hard = Vec::new();
        for (name, run) in old {
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
        retire("sinks being rebuilt", &hard, waiting, new.shutdown_timeout).await;
        let mut errors = Vec::new();
        for name in sinks.coming() {
            if let Some(rx) = inputs.remove(name)
                && let Err(e) = self.spawn_sink(name, new, rx)
            {
                errors.push(e);
            }
        }
        errors
    }

    /// Old sources finish their units; their successors start from the saved checkpoint.
    async fn replace_sources(
        &mut self,
        new: &Config,
        sources: &Diff,
        live: &BTreeMap<Node, Fanout>,
    ) -> Vec<TopologyError> {
        let limit = new.shutdown_timeout;
        let stopped: Vec<(String, SourceRun)> = sources
            .going()
            .filter_map(|n| Some((n.clone(), self.sources.remove(n)?)))
            .collect();
        for (name, run) in stopped {
            let r = stop_source(&name, run, limit).await;
            self.retired_reports.push((name, r));
        }
        let mut errors = Vec::new();
        for name in sources.coming() {
            let out = live
                .get(&Node::Source(name.clone()))
                .cloned()
                .unwrap_or_default();
            if let Err(e) = self.spawn_source(name, new, out) {
                errors.push(e);
            }
        }
        errors
    }

    fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.transforms.is_empty() && self.sinks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "data_dir = \"/tmp/trailship-plan\"\n[sources.trail]\ntype = \"file\"\ninclude = [\"/tmp/t/**\"]\n[sinks.out]\ntype = \"console\"\ninputs = [\"trail\"]\n{extra}"
        );
        Config::parse(&text, "test").expect("a valid config")
    }

    const DLQ: &str = "[sinks.siem]\ntype = \"http\"\ninputs = [\"trail\"]\nuri = \"http://127.0.0.1:1/\"\ndead_letter = \"dlq\"\n[sinks.dlq]\ntype = \"file\"\npath = \"/tmp/dlq.ndjson\"\n";

    #[test]
    fn the_same_config_changes_nothing() {
        let p = plan(&cfg(DLQ), &cfg(DLQ), true).unwrap();
        assert!(p.changes.is_empty(), "{:?}", p.changes);
    }

    #[test]
    fn a_sink_dead_lettering_into_a_rebuilt_sink_is_rebuilt_too() {
        let changed = DLQ.replace("/tmp/dlq.ndjson", "/tmp/dlq2.ndjson");
        let p = plan(&cfg(DLQ), &cfg(&changed), true).unwrap();
        assert_eq!(p.changes.changed, vec!["sink dlq", "sink siem"]);
        assert!(p.changes.added.is_empty() && p.changes.removed.is_empty());
        assert!(p.sources.going().next().is_none());
    }

    #[test]
    fn added_and_removed_components_are_named_by_kind() {
        let more = "[transforms.writes]\ntype = \"filter\"\ninputs = [\"trail\"]\nread_only = false\n[sinks.w]\ntype = \"console\"\ninputs = [\"writes\"]\n";
        let p = plan(&cfg(""), &cfg(more), true).unwrap();
        assert_eq!(p.changes.added, vec!["transform writes", "sink w"]);
        let back = plan(&cfg(more), &cfg(""), true).unwrap();
        assert_eq!(back.changes.removed, vec!["transform writes", "sink w"]);
        assert_eq!(back.transforms.going().count(), 1);
        assert_eq!(back.transforms.coming().count(), 0);
    }

    #[test]
    fn a_second_sink_gives_the_first_its_default_spill_and_rebuilds_it() {
        use crate::buffer::{BufferConfig, DEFAULT_SPILL};
        let one = cfg("");
        assert_eq!(
            one.sinks["out"].buffer, None,
            "one sink: back-pressure, no spill"
        );
        let more = "[sinks.w]\ntype = \"console\"\ninputs = [\"trail\"]\nbuffer = { type = \"memory\", max_events = 10 }\n";
        let two = cfg(more);
        assert_eq!(two.sinks["out"].buffer, Some(DEFAULT_SPILL));
        assert_eq!(
            two.sinks["w"].buffer,
            Some(BufferConfig::Memory { max_events: 10 }),
            "a buffer written stays"
        );
        let p = plan(&one, &two, true).unwrap();
        assert_eq!(p.changes.changed, vec!["sink out"]);
        assert_eq!(p.changes.added, vec!["sink w"]);
    }

    #[test]
    fn a_new_data_dir_is_refused_while_running_but_not_at_start() {
        let moved = cfg("");
        let mut old = cfg("");
        old.data_dir = "/tmp/elsewhere".into();
        let e = plan(&old, &moved, true).err().expect("refused");
        assert!(e.to_string().contains("data_dir changed"), "{e}");
        assert!(plan(&old, &moved, false).is_ok());
    }
}
