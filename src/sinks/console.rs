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

/// The `console` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "console",
    defaults: || {
        crate::sinks::util::kind::defaults(1000, 10 << 20, std::time::Duration::from_millis(100), 1)
    },
    keys: &[],
    parse: crate::sinks::util::kind::parse_with::<ConsoleSinkConfig>,
};

impl crate::sinks::util::kind::Sink for ConsoleSinkConfig {
    fn check(&self) -> Result<(), crate::config::FieldError> {
        Ok(())
    }
    fn spawn(
        &self,
        name: std::sync::Arc<str>,
        rx: tokio::sync::mpsc::Receiver<crate::core::Batch>,
        common: crate::sinks::util::driver::SinkCommon,
        wiring: crate::sinks::util::driver::SinkWiring,
    ) -> Result<tokio::task::JoinHandle<()>, crate::config::FieldError> {
        Ok(tokio::spawn(crate::sinks::util::driver::run(
            name,
            rx,
            std::sync::Arc::new(ConsoleSink {
                encoding: self.encoding,
            }),
            common,
            wiring,
        )))
    }
}
