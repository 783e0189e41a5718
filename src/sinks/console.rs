//! `type = "console"`: events to stdout, NDJSON (the original records) or pretty JSON.

use std::io::Write;

use serde::Deserialize;

use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleEncoding {
    #[default]
    Ndjson,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    #[serde(default)]
    pub encoding: ConsoleEncoding,
}

pub struct ConsoleSink {
    pub encoding: ConsoleEncoding,
}

impl SinkService for ConsoleSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.data.raw.len() + 1).sum());
        match self.encoding {
            ConsoleEncoding::Ndjson => encoding::ndjson(events, &mut buf),
            ConsoleEncoding::Pretty => encoding::pretty(events, &mut buf),
        }
        let res = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)?;
            out.flush()
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(Vec::new()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(SendError::Permanent(format!("stdout is closed: {e}")))
            }
            Ok(Err(e)) => Err(SendError::retryable(format!("writing to stdout: {e}"))),
            Err(e) => Err(SendError::retryable(format!(
                "stdout writer task failed: {e}"
            ))),
        }
    }
}
