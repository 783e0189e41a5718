//! The commands: glue over the library. `run` (the daemon: pipeline, API, signals, systemd),
//! `backfill`, `lookup`, `verify`, `top`; `validate` is `topology::Config::load`.
//!
//! Architecture invariant: nothing below this module imports it.

pub mod api;
pub mod backfill;
mod error;
pub mod lookup;
pub mod run;
pub mod systemd;
pub mod top;
pub mod verify;

pub use error::CliError;
