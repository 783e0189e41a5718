//! trailship: collects AWS CloudTrail events and ships them, at least once, to where they are
//! analysed. See ARCHITECTURE.md for the map of this crate.

pub mod ack;
pub mod api;
pub mod aws;
pub mod backfill;
pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod event;
pub mod lookup;
pub mod sinks;
pub mod sources;
pub mod systemd;
pub mod telemetry;
pub mod top;
pub mod topology;
pub mod transforms;
pub mod verify;
