//! Integration tests: the real binary on real files.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod aws_e2e;
mod bad_input;
mod cloudwatch_logs;
mod dead_letter;
mod dedup;
mod delivery;
mod disk_buffer;
mod e2e;
mod elasticsearch;
mod eventbridge;
mod faults;
mod http_sink;
mod insights;
mod isolation;
mod layers;
mod lookup;
mod normalize;
mod otel;
mod packaging;
mod reload;
mod s3_sink;
mod s3_source;
mod secrets;
mod splunk_hec;
mod sqs;
mod stop;
mod syslog;
mod systemd;
mod tail;
mod top;
mod validate;
mod verify;
