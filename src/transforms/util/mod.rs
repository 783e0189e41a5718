//! What the transforms share: the `Transform` interface they implement and header conditions
//! (`condition`, used by filter and route). No transform imports another; they meet here.

pub mod condition;
pub mod kind;

use crate::core::Batch;

pub trait Transform: Send + 'static {
    /// Process a batch; `out[i]` collects what goes to output `i` (see `TransformConfig::outputs`).
    fn process(&mut self, batch: Batch, out: &mut [Batch]);
    /// Called after the last batch, again every 50 ms while it returns true (waiting for the
    /// outcome of events it passed on, to save state); what it puts in `out` is sent on.
    fn finish(&mut self, _out: &mut [Batch]) -> bool {
        false
    }
    /// A copy that processes batches beside this one, on another core: for a transform whose
    /// output for a batch depends on that batch alone (normalize, filter, route). The pipeline
    /// keeps the batches' order. `None` (the default): it keeps state from batch to batch
    /// (dedup, insights) and runs on one task.
    fn worker(&self) -> Option<Box<dyn Transform>> {
        None
    }
}
