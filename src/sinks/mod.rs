//! The sink registry: one line per kind in `KINDS`. A sink is a file (or folder) with its
//! config, its `SinkService` and its `KIND` (name, defaults, keys, parse), all on the shared
//! machinery in `util` (driver, retries, concurrency, acknowledgement). Only the topology and
//! the CLI use this module; sinks import `util`, never each other or this registry.

pub mod cloudwatch_logs;
pub mod console;
pub mod elasticsearch;
pub mod eventbridge;
pub mod file;
pub mod http;
pub mod s3;
pub mod splunk_hec;
pub mod syslog;
pub mod util;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use util::driver::{self, SinkCommon, SinkWiring};
use util::kind::{Sink, SinkKind};

use crate::config::FieldError;
use crate::core::Batch;

/// Every sink kind. Adding a sink: its file, `pub mod` above, and one line here.
pub const KINDS: &[SinkKind] = &[
    file::KIND,
    console::KIND,
    s3::KIND,
    cloudwatch_logs::KIND,
    eventbridge::KIND,
    http::KIND,
    splunk_hec::KIND,
    elasticsearch::KIND,
    syslog::KIND,
];

fn kind(name: &str) -> Option<&'static SinkKind> {
    KINDS.iter().find(|k| k.name == name)
}

/// A configured sink of one of the `KINDS`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kind: &'static str,
    sink: Arc<dyn Sink>,
}

impl SinkConfig {
    /// Batching, retry and concurrency defaults of each sink type.
    pub fn defaults(kind: &str) -> SinkCommon {
        self::kind(kind).map_or_else(SinkCommon::default, |k| (k.defaults)())
    }

    /// Keys taken out of a sink's table before its own are read.
    pub fn shared_keys(kind: &str) -> Vec<&'static str> {
        let mut keys = SinkCommon::KEYS.to_vec();
        keys.extend(self::kind(kind).map_or(&[][..], |k| k.keys));
        keys
    }

    pub fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        let Some(k) = self::kind(kind) else {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            return Err(FieldError::new(
                &["type"],
                format!(
                    "unknown sink type {kind:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
        };
        Ok(SinkConfig {
            kind: k.name,
            sink: (k.parse)(table)?,
        })
    }

    pub fn check(&self) -> Vec<FieldError> {
        self.sink.check().err().into_iter().collect()
    }

    /// Start the sink; it runs until `rx` closes and all its batches are resolved.
    pub fn spawn(
        &self,
        name: Arc<str>,
        rx: mpsc::Receiver<Batch>,
        common: SinkCommon,
        wiring: SinkWiring,
    ) -> Result<JoinHandle<()>, FieldError> {
        self.sink.spawn(name, rx, common, wiring)
    }
}
