//! What a sink kind gives the registry: one `SinkKind` value per kind (its name, its batching
//! defaults, the shared keys it takes, and how to parse its table), and the `Sink` a parsed
//! table becomes (check it, start it). A kind is registered by one line in `sinks::KINDS`; a
//! forgotten piece does not compile.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::{self, SinkCommon, SinkService, SinkWiring};
use crate::config::FieldError;
use crate::core::Batch;

/// One kind of sink, as the registry knows it.
pub struct SinkKind {
    /// The `type` that selects it.
    pub name: &'static str,
    /// Its batching, retry and concurrency defaults (the user's `batch`, `retry`, … override
    /// them).
    pub defaults: fn() -> SinkCommon,
    /// Keys of this kind taken out of its table before its own are read, besides
    /// `SinkCommon::KEYS` (AWS access, network transport).
    pub keys: &'static [&'static str],
    /// Its table (shared keys already taken out) into a configured sink.
    pub parse: fn(toml::Table) -> Result<Arc<dyn Sink>, FieldError>,
}

/// A configured sink: what `validate` checks and the topology starts.
pub trait Sink: Debug + Send + Sync {
    /// Compile what can be compiled (templates, secrets, TLS) without starting anything.
    fn check(&self) -> Result<(), FieldError>;
    /// Start it: it runs until `rx` closes and all its batches are resolved.
    fn spawn(
        &self,
        name: Arc<str>,
        rx: mpsc::Receiver<Batch>,
        common: SinkCommon,
        wiring: SinkWiring,
    ) -> Result<JoinHandle<()>, FieldError>;
}

/// A sink whose service is built when it starts (an AWS client from the credential chain, an
/// HTTP client with its TLS settings): it gets `Sink` from this, and its start runs through
/// `spawn_with` (a service that cannot be built stops the pipeline and says why).
pub trait BuildSink: Debug + Clone + Send + Sync + 'static {
    type Service: SinkService;
    /// Compile what can be compiled without starting anything.
    fn check_config(&self) -> Result<(), FieldError>;
    /// Build the service of the sink named `name`.
    fn build_service(
        self,
        name: Arc<str>,
    ) -> impl Future<Output = Result<Self::Service, FieldError>> + Send;
}

impl<T: BuildSink> Sink for T {
    fn check(&self) -> Result<(), FieldError> {
        self.check_config()
    }
    fn spawn(
        &self,
        name: Arc<str>,
        rx: mpsc::Receiver<Batch>,
        common: SinkCommon,
        wiring: SinkWiring,
    ) -> Result<JoinHandle<()>, FieldError> {
        let build = self.clone().build_service(name.clone());
        Ok(spawn_with(name, rx, common, wiring, build))
    }
}

/// A kind's `parse` for a config read with serde alone.
pub fn parse_with<C>(table: toml::Table) -> Result<Arc<dyn Sink>, FieldError>
where
    C: Sink + serde::de::DeserializeOwned + 'static,
{
    crate::config::from_table::<C>(table).map(|c| Arc::new(c) as Arc<dyn Sink>)
}

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
    S: SinkService,
    F: Future<Output = Result<S, FieldError>> + Send + 'static,
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

/// Defaults with these batch limits (events, bytes, timeout) and concurrency.
pub fn defaults(
    max_events: usize,
    max_bytes: u64,
    timeout: std::time::Duration,
    concurrency: usize,
) -> SinkCommon {
    let mut c = SinkCommon::default();
    c.batch.max_events = max_events;
    c.batch.max_bytes = max_bytes;
    c.batch.timeout = timeout;
    c.concurrency = concurrency;
    c
}
