//! Checks of the pipeline graph: names, inputs that name nothing, cycles, components whose
//! output goes nowhere.

use std::collections::{BTreeMap, BTreeSet};

use super::config::Config;
use crate::config::FieldError;

/// What an `inputs` entry refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Source(String),
    /// A transform and one of its outputs ("" for a transform's only output).
    Transform(String, String),
}

/// An `inputs` entry that names nothing to take events from; the config is refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("`{input}` has named outputs; use one of: {}", .choices.join(", "))]
    NamedOutputs { input: String, choices: Vec<String> },
    #[error("`{name}` has no output `{output}`; its outputs are: {}", .choices.join(", "))]
    NoSuchOutput {
        name: String,
        output: String,
        choices: Vec<String>,
    },
    #[error("`{input}` is a sink; sinks produce nothing to take as input")]
    IsSink { input: String },
    #[error("`{input}` names no source or transform")]
    Unknown { input: String },
}

/// Resolve one `inputs` entry: `NAME` or `ROUTE.OUTPUT`.
pub fn resolve(cfg: &Config, input: &str) -> Result<Node, InputError> {
    if cfg.sources.contains_key(input) {
        return Ok(Node::Source(input.to_string()));
    }
    // What to write for each output of a transform: NAME for its only one, else NAME.OUTPUT.
    let choices = |name: &str, outs: &[String]| -> Vec<String> {
        outs.iter()
            .map(|o| {
                if o.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}.{o}")
                }
            })
            .collect()
    };
    if let Some(t) = cfg.transforms.get(input) {
        let outs = t.config.outputs();
        if outs.iter().any(|o| o.is_empty()) {
            return Ok(Node::Transform(input.to_string(), String::new()));
        }
        return Err(InputError::NamedOutputs {
            input: input.into(),
            choices: choices(input, &outs),
        });
    }
    if let Some((name, out)) = input.split_once('.')
        && let Some(t) = cfg.transforms.get(name)
    {
        let outs = t.config.outputs();
        if outs.iter().any(|o| o == out) {
            return Ok(Node::Transform(name.to_string(), out.to_string()));
        }
        return Err(InputError::NoSuchOutput {
            name: name.into(),
            output: out.into(),
            choices: choices(name, &outs),
        });
    }
    if cfg.sinks.contains_key(input) {
        return Err(InputError::IsSink {
            input: input.into(),
        });
    }
    Err(InputError::Unknown {
        input: input.into(),
    })
}

pub fn check(cfg: &Config) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_names(cfg, &mut errs);
    check_not_empty(cfg, &mut errs);
    let (consumed, edges) = check_inputs(cfg, &mut errs);
    check_everything_feeds(cfg, &consumed, &mut errs);
    check_dead_letters(cfg, &mut errs);
    check_transform_cycles(cfg, &edges, &mut errs);
    errs
}

/// Transform → the transforms upstream of it.
type Edges<'a> = BTreeMap<&'a str, Vec<String>>;

/// Names: unique across sections, usable in `inputs`.
fn check_names(cfg: &Config, errs: &mut Vec<FieldError>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let sections = [
        ("sources", cfg.sources.keys().collect::<Vec<_>>()),
        ("transforms", cfg.transforms.keys().collect()),
        ("sinks", cfg.sinks.keys().collect()),
    ];
    for (section, names) in &sections {
        for name in names {
            if name.is_empty() || name.contains('.') || name.chars().any(char::is_whitespace) {
                errs.push(FieldError::new(
                    &[section, name],
                    "component names must be non-empty, without '.' or spaces",
                ));
            }
            if let Some(other) = seen.insert(name.as_str(), section) {
                errs.push(FieldError::new(
                    &[section, name],
                    format!("the name `{name}` is also used in [{other}]"),
                ));
            }
        }
    }
}

/// At least one source and one sink.
fn check_not_empty(cfg: &Config, errs: &mut Vec<FieldError>) {
    if cfg.sources.is_empty() {
        errs.push(FieldError::new(
            &["sources"],
            "no sources: define at least one [sources.NAME]",
        ));
    }
    if cfg.sinks.is_empty() {
        errs.push(FieldError::new(
            &["sinks"],
            "no sinks: define at least one [sinks.NAME]",
        ));
    }
}

/// Every input names an output; returns the outputs consumed and the edges between transforms.
fn check_inputs<'a>(cfg: &'a Config, errs: &mut Vec<FieldError>) -> (BTreeSet<Node>, Edges<'a>) {
    let mut consumed: BTreeSet<Node> = BTreeSet::new();
    let mut edges: Edges<'a> = BTreeMap::new();
    let inputs = cfg
        .transforms
        .iter()
        .map(|(n, t)| ("transforms", n, &t.inputs))
        .chain(cfg.sinks.iter().map(|(n, s)| ("sinks", n, &s.inputs)));
    for (section, name, list) in inputs {
        for input in list {
            match resolve(cfg, input) {
                Ok(node) => {
                    if let (Node::Transform(up, _), "transforms") = (&node, section) {
                        edges.entry(name.as_str()).or_default().push(up.clone());
                    }
                    consumed.insert(node);
                }
                Err(m) => errs.push(FieldError::new(&[section, name, "inputs"], m)),
            }
        }
    }
    (consumed, edges)
}

/// Every source and transform feeds something.
fn check_everything_feeds(cfg: &Config, consumed: &BTreeSet<Node>, errs: &mut Vec<FieldError>) {
    for name in cfg.sources.keys() {
        if !consumed.contains(&Node::Source(name.clone())) {
            errs.push(FieldError::new(
                &["sources", name],
                format!(
                    "source `{name}` feeds nothing: name it in some transform's or sink's `inputs`"
                ),
            ));
        }
    }
    for (name, t) in &cfg.transforms {
        let outs = t.config.outputs();
        if !outs
            .iter()
            .any(|o| consumed.contains(&Node::Transform(name.clone(), o.clone())))
        {
            errs.push(FieldError::new(
                &["transforms", name],
                format!("transform `{name}` feeds nothing: name it in some sink's `inputs`"),
            ));
        }
    }
}

/// Dead letters: another sink, no cycles; a sink without inputs must be someone's.
fn check_dead_letters(cfg: &Config, errs: &mut Vec<FieldError>) {
    for (name, sink) in &cfg.sinks {
        if let Some(target) = &sink.common.dead_letter {
            if target == name {
                errs.push(FieldError::new(
                    &["sinks", name, "dead_letter"],
                    "a sink cannot be its own dead_letter",
                ));
            } else if !cfg.sinks.contains_key(target) {
                errs.push(FieldError::new(
                    &["sinks", name, "dead_letter"],
                    format!("`{target}` names no sink"),
                ));
            } else if let Some(chain) = dead_letter_cycle(cfg, name, target) {
                errs.push(FieldError::new(
                    &["sinks", name, "dead_letter"],
                    format!("dead_letter cycle: {chain}"),
                ));
            }
        }
        if sink.inputs.is_empty()
            && !cfg
                .sinks
                .values()
                .any(|s| s.common.dead_letter.as_deref() == Some(name.as_str()))
        {
            errs.push(FieldError::new(
                &["sinks", name],
                "missing key `inputs` (only a sink named as another's dead_letter may have none)",
            ));
        }
    }
}

/// The dead-letter chain from `name` through `target`, when it comes back on itself.
fn dead_letter_cycle(cfg: &Config, name: &str, target: &str) -> Option<String> {
    let mut chain = vec![name.to_string()];
    let mut at = target.to_string();
    loop {
        if chain.contains(&at) {
            return Some(format!("{} -> {at}", chain.join(" -> ")));
        }
        chain.push(at.clone());
        at = cfg
            .sinks
            .get(&at)
            .and_then(|s| s.common.dead_letter.clone())?;
    }
}

/// No cycle among transforms (the first one found is reported).
fn check_transform_cycles(cfg: &Config, edges: &Edges<'_>, errs: &mut Vec<FieldError>) {
    fn visit<'a>(
        n: &'a str,
        edges: &'a Edges<'a>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let at = stack.iter().position(|s| *s == n).unwrap_or(0);
                let mut cyc: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
                cyc.push(n.to_string());
                return Some(cyc);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(n, 1);
        stack.push(n);
        for up in edges.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(c) = visit(up, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for name in cfg.transforms.keys() {
        if let Some(cycle) = visit(name, edges, &mut state, &mut Vec::new()) {
            errs.push(FieldError::new(
                &["transforms", name, "inputs"],
                format!("cycle: {}", cycle.join(" <- ")),
            ));
            break;
        }
    }
}
