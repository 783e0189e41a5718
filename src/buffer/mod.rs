//! A sink's buffer: `buffer = { type = "memory", max_events = N }` (a bounded queue in front of
//! the sink) or `buffer = { type = "disk", max_size = "2GiB", when_full = "block" |
//! "drop_newest" }` (segment files in `data_dir/buffers/SINK/`: events are acknowledged to
//! their source once written and fsynced, and replayed from disk after a restart).
//!
//! `buffer = { type = "spill", max_size = "1GiB" }`: events go to the sink in memory while it
//! keeps up; once it has not taken a batch for 200 ms they go to a disk buffer (the same
//! segments as `disk`) until it has caught up, so a sink that is down or slow never holds up
//! the other sinks of its sources. When the spill is full its sources wait, and say so.
//!
//! Without a `buffer` key a sink reads its input channel directly (4 batches), except in a
//! pipeline of more than one sink, where it spills (`DEFAULT_SPILL`).

mod disk;
mod error;
mod memory;
mod reader;
mod reread;
pub mod segment;
mod spill;

pub use error::BufferError;
mod writer;

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{FieldError, from_table, units};
use crate::core::Batch;

/// The smallest disk buffer: a few segments of the smallest size.
pub const MIN_DISK_SIZE: u64 = 8 << 20;

/// The spill of a sink without a `buffer` key in a pipeline of more than one sink.
pub const DEFAULT_SPILL: BufferConfig = BufferConfig::Spill {
    max_size: 1 << 30,
    reread: true,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BufferConfig {
    Memory {
        max_events: usize,
    },
    Disk {
        #[serde(deserialize_with = "units::size")]
        max_size: u64,
        #[serde(default)]
        when_full: WhenFull,
    },
    Spill {
        #[serde(deserialize_with = "units::size")]
        max_size: u64,
        /// Records of whole files (trail files) are named in the spill and read again from
        /// the file when the sink catches up, instead of being copied (`false`: copied).
        #[serde(default = "yes")]
        reread: bool,
    },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking events until space is freed: the sources slow down (nothing is lost).
    #[default]
    Block,
    /// Refuse what does not fit: those events are not acknowledged, so their source offers
    /// them again later (an SQS message reappears, a file is read again), and the pipeline's
    /// other sinks are not held up.
    DropNewest,
}

impl BufferConfig {
    /// Take `buffer` out of a sink's table.
    pub fn take(table: &mut toml::Table) -> Result<Option<BufferConfig>, FieldError> {
        let t = match table.remove("buffer") {
            None => return Ok(None),
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(FieldError::new(
                    &["buffer"],
                    "`buffer` must be a table: { type = \"memory\", max_events = N } or { type = \"disk\", max_size = \"2GiB\" }",
                ));
            }
        };
        let b: BufferConfig = from_table(t).map_err(|e| e.under("buffer"))?;
        match &b {
            BufferConfig::Memory { max_events: 0 } => Err(FieldError::new(
                &["buffer", "max_events"],
                "must be at least 1",
            )),
            BufferConfig::Disk { max_size, .. } | BufferConfig::Spill { max_size, .. }
                if *max_size < MIN_DISK_SIZE =>
            {
                Err(FieldError::new(
                    &["buffer", "max_size"],
                    "must be at least 8MiB",
                ))
            }
            _ => Ok(Some(b)),
        }
    }
}

/// What a buffer needs from the pipeline.
pub struct Attach<'a> {
    pub sink: Arc<str>,
    pub data_dir: &'a Path,
    /// Events per chunk read back from disk (the sink's batch size).
    pub chunk_events: usize,
    pub once: bool,
    pub shutdown: CancellationToken,
    pub hard_stop: CancellationToken,
    /// The pipeline's outcome: events left behind and damage are reported there.
    pub outcome: Arc<crate::core::run::Outcome>,
    /// The pipeline's health: a full buffer is reported there (`/ready`).
    pub health: Arc<crate::core::run::Health>,
}

/// Put the configured buffer between a sink's input and its driver. Returns the receiver the
/// driver reads, and the buffer's tasks (the topology waits for them after the sources).
pub fn attach(
    cfg: Option<&BufferConfig>,
    rx: mpsc::Receiver<Batch>,
    at: Attach<'_>,
) -> Result<(mpsc::Receiver<Batch>, Vec<JoinHandle<()>>), BufferError> {
    match cfg {
        None => Ok((rx, Vec::new())),
        Some(BufferConfig::Memory { max_events }) => {
            // Not waited for: it ends when its input closes and its queue is handed over.
            let (out, _task) = memory::spawn(rx, *max_events, &at.sink);
            Ok((out, Vec::new()))
        }
        Some(BufferConfig::Disk {
            max_size,
            when_full,
        }) => disk::spawn(rx, *max_size, *when_full, at),
        Some(BufferConfig::Spill { max_size, reread }) => spill::spawn(rx, *max_size, *reread, at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(s: &str) -> Result<Option<BufferConfig>, FieldError> {
        let mut t: toml::Table = toml::from_str(s).unwrap();
        BufferConfig::take(&mut t)
    }

    #[test]
    fn parses_both_kinds_and_refuses_nonsense() {
        assert_eq!(take("").unwrap(), None);
        assert_eq!(
            take(r#"buffer = { type = "memory", max_events = 5000 }"#).unwrap(),
            Some(BufferConfig::Memory { max_events: 5000 })
        );
        assert_eq!(
            take(r#"buffer = { type = "disk", max_size = "2GiB", when_full = "drop_newest" }"#)
                .unwrap(),
            Some(BufferConfig::Disk {
                max_size: 2 << 30,
                when_full: WhenFull::DropNewest
            })
        );
        let e = take(r#"buffer = { type = "disk", max_size = "1MiB" }"#).unwrap_err();
        assert!(e.message.contains("8MiB"), "{}", e.message);
        let e =
            take(r#"buffer = { type = "disk", max_size = "1GiB", when = "block" }"#).unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
        assert_eq!(
            take(r#"buffer = { type = "spill", max_size = "64MiB" }"#).unwrap(),
            Some(BufferConfig::Spill {
                max_size: 64 << 20,
                reread: true
            })
        );
        assert_eq!(
            take(r#"buffer = { type = "spill", max_size = "64MiB", reread = false }"#).unwrap(),
            Some(BufferConfig::Spill {
                max_size: 64 << 20,
                reread: false
            })
        );
        assert!(take(r#"buffer = { type = "spill", max_size = "1MiB" }"#).is_err());
        assert!(take(r#"buffer = { type = "tape" }"#).is_err());
        assert!(take(r#"buffer = { type = "memory", max_events = 0 }"#).is_err());
    }
}
