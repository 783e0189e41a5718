//! trailship: collects AWS CloudTrail events and ships them, at least once, to where they are
//! analysed. See ARCHITECTURE.md for the map of this crate.

pub mod aws;
pub mod buffer;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod core;
pub mod decode;
pub mod integrity;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod topology;
pub mod transforms;
