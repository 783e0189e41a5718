//! Sinks: one file each, all on the shared machinery in `driver` (batching, retries,
//! concurrency, acknowledgement). Adding a sink: a file with its Config and `SinkService`, and
//! a variant in `SinkConfig`.

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
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use util::driver::{self, SinkCommon, SinkWiring};

use self::util::transport::Transport;
use crate::aws::AwsAccess;
use crate::config::{FieldError, from_table};
use crate::core::Batch;

/// Start a sink whose service is built asynchronously (an AWS client from the credential
/// chain), then run it on the shared driver. A sink that cannot be built says why and stops
/// the whole pipeline (through `wiring.stop_pipeline`), and the pipeline's outcome records it
/// (a pipeline must not run without one of its sinks: the run ends with the config status).
pub fn spawn_with<S, F>(
    name: Arc<str>,
    rx: mpsc::Receiver<Batch>,
    common: SinkCommon,
    wiring: SinkWiring,
    build: F,
) -> JoinHandle<()>
where
    S: driver::SinkService,
    F: std::future::Future<Output = Result<S, FieldError>> + Send + 'static,
{
    tokio::spawn(async move {
        match build.await {
            Ok(sink) => driver::run(name, rx, Arc::new(sink), common, wiring).await,
            Err(e) => {
                tracing::error!(sink = %name, error = %e.message, "cannot start the sink; stopping the pipeline");
                if let Some(o) = &wiring.outcome {
                    o.sink_not_started(&name);
                }
                if let Some(stop) = &wiring.stop_pipeline {
                    stop.cancel();
                }
            }
        }
    })
}

#[derive(Debug, Clone)]
pub enum SinkConfig {
    File(file::FileSinkConfig),
    Console(console::ConsoleSinkConfig),
    S3(Box<s3::S3SinkConfig>),
    CloudWatchLogs(Box<cloudwatch_logs::CloudWatchLogsSinkConfig>),
    EventBridge(Box<eventbridge::EventBridgeSinkConfig>),
    Http(Box<http::HttpSinkConfig>),
    SplunkHec(Box<splunk_hec::SplunkHecSinkConfig>),
    Elasticsearch(Box<elasticsearch::ElasticsearchSinkConfig>),
    Syslog(Box<syslog::SyslogSinkConfig>),
}

impl SinkConfig {
    pub const KINDS: &'static [&'static str] = &[
        "file",
        "console",
        "s3",
        "cloudwatch_logs",
        "eventbridge",
        "http",
        "splunk_hec",
        "elasticsearch",
        "syslog",
    ];

    /// Batching, retry and concurrency defaults of each sink type.
    pub fn defaults(kind: &str) -> SinkCommon {
        let mut c = SinkCommon::default();
        match kind {
            "file" => {
                c.batch.max_events = 10_000;
                c.batch.max_bytes = 2 << 20;
                c.batch.timeout = Duration::from_millis(500);
            }
            "console" => {
                c.batch.timeout = Duration::from_millis(100);
            }
            "s3" => {
                c.batch.max_events = 100_000;
                c.batch.max_bytes = 16 << 20;
                c.batch.timeout = Duration::from_secs(60);
            }
            "cloudwatch_logs" => {
                // The sink cuts calls at PutLogEvents' exact limits; this keeps most batches
                // to one call.
                c.batch.max_events = cloudwatch_logs::MAX_CALL_EVENTS;
                c.batch.max_bytes = 1_000_000;
                c.batch.timeout = Duration::from_secs(1);
                c.concurrency = 4;
            }
            "eventbridge" => {
                c.batch.max_events = 100;
                c.batch.max_bytes = 1 << 20;
                c.batch.timeout = Duration::from_secs(1);
                c.concurrency = 4;
            }
            "http" | "splunk_hec" => {
                c.batch.max_events = 1000;
                c.batch.max_bytes = 1_000_000;
                c.batch.timeout = Duration::from_secs(1);
                c.concurrency = 4;
            }
            "elasticsearch" => {
                c.batch.max_events = 5000;
                c.batch.max_bytes = 10 << 20;
                c.batch.timeout = Duration::from_secs(1);
                c.concurrency = 4;
            }
            "syslog" => {
                // One connection, written in order.
                c.batch.max_events = 1000;
                c.batch.max_bytes = 1 << 20;
                c.batch.timeout = Duration::from_millis(200);
            }
            _ => {}
        }
        c
    }

    /// Keys taken out of a sink's table before its own are read.
    pub fn shared_keys(kind: &str) -> Vec<&'static str> {
        let mut k = vec![
            "inputs",
            "batch",
            "retry",
            "buffer",
            "rate_limit",
            "dead_letter",
            "concurrency",
            "max_concurrency",
        ];
        match kind {
            "s3" | "cloudwatch_logs" | "eventbridge" => {
                k.extend(["region", "endpoint", "assume_role"])
            }
            "http" | "splunk_hec" | "elasticsearch" => {
                k.extend(["tls", "connect_timeout", "request_timeout"])
            }
            "syslog" => k.extend(["tls", "connect_timeout"]),
            _ => {}
        }
        k
    }

    pub fn parse(kind: &str, mut table: toml::Table) -> Result<Self, FieldError> {
        match kind {
            "file" => from_table(table).map(Self::File),
            "console" => from_table(table).map(Self::Console),
            "s3" => {
                let aws = AwsAccess::take(&mut table)?;
                from_table(table).map(|c| Self::S3(Box::new(s3::S3SinkConfig { aws, ..c })))
            }
            "cloudwatch_logs" => {
                let aws = AwsAccess::take(&mut table)?;
                from_table(table).map(|c| {
                    Self::CloudWatchLogs(Box::new(cloudwatch_logs::CloudWatchLogsSinkConfig {
                        aws,
                        ..c
                    }))
                })
            }
            "eventbridge" => {
                let aws = AwsAccess::take(&mut table)?;
                from_table(table).map(|c| {
                    Self::EventBridge(Box::new(eventbridge::EventBridgeSinkConfig { aws, ..c }))
                })
            }
            "http" => {
                let transport = Transport::take(&mut table, true)?;
                from_table(table)
                    .map(|c| Self::Http(Box::new(http::HttpSinkConfig { transport, ..c })))
            }
            "splunk_hec" => {
                let transport = Transport::take(&mut table, true)?;
                from_table(table).map(|c| {
                    Self::SplunkHec(Box::new(splunk_hec::SplunkHecSinkConfig { transport, ..c }))
                })
            }
            "elasticsearch" => {
                let transport = Transport::take(&mut table, true)?;
                from_table(table).map(|c| {
                    Self::Elasticsearch(Box::new(elasticsearch::ElasticsearchSinkConfig {
                        transport,
                        ..c
                    }))
                })
            }
            "syslog" => {
                let transport = Transport::take(&mut table, false)?;
                from_table(table)
                    .map(|c| Self::Syslog(Box::new(syslog::SyslogSinkConfig { transport, ..c })))
            }
            other => Err(FieldError::new(
                &["type"],
                format!(
                    "unknown sink type {other:?}; expected one of: {}",
                    Self::KINDS.join(", ")
                ),
            )),
        }
    }

    pub fn check(&self) -> Vec<FieldError> {
        match self {
            Self::File(c) => c.build().err().into_iter().collect(),
            Self::Console(_) => Vec::new(),
            Self::S3(c) => c.check().err().into_iter().collect(),
            Self::CloudWatchLogs(c) => c.check().err().into_iter().collect(),
            Self::EventBridge(c) => c.check().err().into_iter().collect(),
            Self::Http(c) => c.check().err().into_iter().collect(),
            Self::SplunkHec(c) => c.check().err().into_iter().collect(),
            Self::Elasticsearch(c) => c.check().err().into_iter().collect(),
            Self::Syslog(c) => c.check().err().into_iter().collect(),
        }
    }

    /// Start the sink; it runs until `rx` closes and all its batches are resolved.
    pub fn spawn(
        &self,
        name: Arc<str>,
        rx: mpsc::Receiver<Batch>,
        common: SinkCommon,
        wiring: SinkWiring,
    ) -> Result<JoinHandle<()>, FieldError> {
        Ok(match self {
            Self::File(c) => {
                tokio::spawn(driver::run(name, rx, Arc::new(c.build()?), common, wiring))
            }
            Self::S3(c) => {
                let c = (**c).clone();
                spawn_with(name, rx, common, wiring, async move {
                    let client = c.aws.s3().await;
                    c.build(client)
                })
            }
            Self::CloudWatchLogs(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move {
                    let client = c.aws.cloudwatch_logs().await;
                    cloudwatch_logs::CloudWatchLogsSink::new(n, c, client)
                })
            }
            Self::EventBridge(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move {
                    let client = c.aws.eventbridge().await;
                    eventbridge::EventBridgeSink::new(n, c, client)
                })
            }
            Self::Http(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move { c.build(&n) })
            }
            Self::SplunkHec(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move { c.build(&n) })
            }
            Self::Elasticsearch(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move { c.build(&n).await })
            }
            Self::Syslog(c) => {
                let (c, n) = ((**c).clone(), name.clone());
                spawn_with(name, rx, common, wiring, async move { c.build(&n) })
            }
            Self::Console(c) => tokio::spawn(driver::run(
                name,
                rx,
                Arc::new(console::ConsoleSink {
                    encoding: c.encoding,
                }),
                common,
                wiring,
            )),
        })
    }
}
