//! trailship: collects AWS CloudTrail events and ships them, at least once, to where they are
//! analysed. See ARCHITECTURE.md for the map of this crate.

pub mod ack;
pub mod decode;
pub mod event;
pub mod telemetry;
