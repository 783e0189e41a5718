//! The one way the tests write a pipeline: `Pipeline::new(dir)` (its data in `dir/data`), then
//! sources, transforms, sinks and top-level tables with their keys as Rust values, written as
//! TOML by the `toml` crate (no placeholders to replace, no quoting or escaping by hand).
//!
//! ```ignore
//! let cfg = Pipeline::new(d.path())
//!     .file_source("trail", &trail)
//!     .sink("siem", "http", &["trail"], keys! { "uri" => url, "retry.max_backoff" => "1s" })
//!     .write();
//! ```
//!
//! Keys may be dotted (`retry.max_backoff`): they nest as TOML's dotted keys do. Tests of the
//! config text itself (line numbers, `${VAR}` interpolation, a file edited for a reload) start
//! from `text()` and change the text.

use std::path::{Path, PathBuf};

pub use toml::{Table, Value};

/// A table from `(key, value)` pairs; dotted keys nest.
pub fn table(pairs: Vec<(&str, Value)>) -> Table {
    let mut t = Table::new();
    for (k, v) in pairs {
        insert(&mut t, k, v);
    }
    t
}

/// `keys! { "a" => 1, "b.c" => "x" }`: a `Table` (any value `toml::Value::from` takes; a
/// nested `keys!` for an inline table).
macro_rules! keys {
    () => { $crate::common::pipeline::Table::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {
        $crate::common::pipeline::table(vec![$(($k, $crate::common::pipeline::Value::from($v))),+])
    };
}

pub(crate) use keys;

/// A path as a TOML string value.
pub fn path(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

/// The glob of every file below `dir` (`dir/**/*`).
pub fn below(dir: &Path) -> String {
    format!("{}/**/*", dir.display())
}

/// `more` into `base`: tables merge key by key, other values replace.
pub fn merge(base: &mut Table, more: Table) {
    for (k, v) in more {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(m)) => merge(b, m),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn insert(t: &mut Table, key: &str, v: Value) {
    match key.split_once('.') {
        None => {
            t.insert(key.to_string(), v);
        }
        Some((head, rest)) => {
            let inner = t
                .entry(head.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            match inner {
                Value::Table(inner) => insert(inner, rest, v),
                other => panic!("test pipeline: {head} is {other:?}, not a table"),
            }
        }
    }
}

/// A pipeline being written.
#[derive(Clone)]
pub struct Pipeline {
    dir: PathBuf,
    root: Table,
}

impl Pipeline {
    /// A pipeline whose `data_dir` is `dir/data`, written to `dir/p.toml`.
    pub fn new(dir: &Path) -> Pipeline {
        let mut root = Table::new();
        root.insert("data_dir".into(), path(&dir.join("data")));
        Pipeline {
            dir: dir.to_path_buf(),
            root,
        }
    }

    /// A top-level key (`shutdown_timeout`, `data_dir`, …).
    pub fn set(mut self, key: &str, v: impl Into<Value>) -> Pipeline {
        insert(&mut self.root, key, v.into());
        self
    }

    /// A top-level table (`[api]`, `[opentelemetry]`, …).
    pub fn section(mut self, name: &str, keys: Table) -> Pipeline {
        insert(&mut self.root, name, Value::Table(keys));
        self
    }

    fn component(mut self, section: &str, name: &str, kind: &str, mut keys: Table) -> Pipeline {
        keys.insert("type".into(), kind.into());
        let key = format!("{section}.{name}");
        insert(&mut self.root, &key, Value::Table(keys));
        self
    }

    /// `inputs` (none for a sink only reached as a dead letter).
    fn with_inputs(inputs: &[&str], mut keys: Table) -> Table {
        if inputs.is_empty() {
            return keys;
        }
        let list = inputs.iter().map(|i| Value::from(*i)).collect::<Vec<_>>();
        keys.insert("inputs".into(), Value::Array(list));
        keys
    }

    pub fn source(self, name: &str, kind: &str, keys: Table) -> Pipeline {
        self.component("sources", name, kind, keys)
    }

    /// A file source reading every file below `dir`.
    pub fn file_source(self, name: &str, dir: &Path) -> Pipeline {
        self.file_source_with(name, dir, Table::new())
    }

    /// A file source reading every file below `dir`, with more keys.
    pub fn file_source_with(self, name: &str, dir: &Path, mut keys: Table) -> Pipeline {
        keys.insert("include".into(), Value::Array(vec![below(dir).into()]));
        self.source(name, "file", keys)
    }

    pub fn transform(self, name: &str, kind: &str, inputs: &[&str], keys: Table) -> Pipeline {
        self.component("transforms", name, kind, Self::with_inputs(inputs, keys))
    }

    pub fn sink(self, name: &str, kind: &str, inputs: &[&str], keys: Table) -> Pipeline {
        self.component("sinks", name, kind, Self::with_inputs(inputs, keys))
    }

    /// A file sink writing NDJSON to `out`.
    pub fn file_sink(self, name: &str, inputs: &[&str], out: &Path, mut keys: Table) -> Pipeline {
        keys.insert("path".into(), path(out));
        self.sink(name, "file", inputs, keys)
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        toml::to_string(&self.root).expect("a test pipeline serializes")
    }

    /// Write it to `dir/p.toml`.
    pub fn write(&self) -> PathBuf {
        self.write_as("p.toml")
    }

    /// Write it to `dir/NAME`.
    pub fn write_as(&self, name: &str) -> PathBuf {
        let cfg = self.dir.join(name);
        std::fs::write(&cfg, self.text()).unwrap();
        cfg
    }
}
