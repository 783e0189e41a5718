//! The pipeline core: the types every layer above shares and no component owns. `Event` and
//! its header, units of work and their acknowledgements (`ack`), `Batch`, the output a
//! component sends through (`Fanout`), what a sink's send can fail with (`SendError`), what a
//! source is given and reports (`run`), and where an event's unit is traced (`trace`).
//!
//! Architecture invariant: this module imports nothing from the crate (a test in the suite
//! checks it). Everything here is plain data and channels.

pub mod ack;
pub mod event;
pub mod fanout;
pub mod run;
pub mod send;
pub mod trace;

pub use fanout::Fanout;

/// What flows between components: a batch of events.
pub type Batch = Vec<event::Event>;

/// Batches (of up to a few hundred events) a channel holds before its sender waits.
pub const CHANNEL_BATCHES: usize = 4;
