//! The machinery every sink shares, apart from the destinations: the driver (batching,
//! concurrency, retries, acknowledgement), adaptive concurrency, rate limits, encodings, path
//! templates, partitioning by rendered key, TLS and network transport settings, the HTTP
//! client, secrets, and per-sink health. Destinations import from here, never each other.

pub mod adaptive;
pub mod driver;
pub mod encoding;
pub mod error;
pub mod health;
pub mod http_client;
pub mod kind;
pub mod partition;
pub mod rate_limit;
pub mod secret;
pub mod template;
pub mod tls;
pub mod transport;
