//! What a running source is given, and what it reports when it finishes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::fanout::Fanout;

/// What a running source is given.
pub struct SourceContext {
    pub name: Arc<str>,
    pub out: Fanout,
    pub data_dir: PathBuf,
    /// Process what is there now, then finish.
    pub once: bool,
    /// Stop reading new input (units in flight still complete and commit).
    pub shutdown: CancellationToken,
    /// Stop waiting for units in flight: save what is committed and return.
    pub hard_stop: CancellationToken,
}

/// What a source reports when it finishes.
#[derive(Debug, Default, Clone)]
pub struct SourceReport {
    pub events: u64,
    pub units_committed: u64,
    /// Units whose events were not all delivered (not committed).
    pub units_failed: u64,
    /// Inputs set aside as bad (each logged with its reason).
    pub bad_inputs: u64,
    /// Units still unresolved when the source stopped waiting.
    pub units_unresolved: u64,
    /// A problem that stopped the source.
    pub fatal: Option<String>,
}
