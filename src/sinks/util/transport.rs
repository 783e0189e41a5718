//! The keys every network sink takes — `tls.*`, `connect_timeout` and (HTTP sinks)
//! `request_timeout` — taken out of the sink's table before the sink's own keys are read, so
//! each sink's config holds them once, checked in one place.

use std::time::Duration;

use serde::Deserialize;

use super::tls::TlsConfig;
use crate::config::{FieldError, from_table, units};

#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    pub tls: TlsConfig,
    pub connect_timeout: Duration,
    /// The whole request and answer (HTTP sinks).
    pub request_timeout: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            tls: TlsConfig::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Keys {
    #[serde(default)]
    tls: TlsConfig,
    #[serde(default, deserialize_with = "opt_duration")]
    connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    request_timeout: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

impl Transport {
    /// Take the keys out of a sink's table (`request_timeout` only for HTTP sinks: elsewhere
    /// it stays and is refused as unknown) and check them.
    /// The keys an HTTP sink takes out of its table.
    pub const HTTP_KEYS: &'static [&'static str] = &["tls", "connect_timeout", "request_timeout"];
    /// The keys a stream sink (syslog) takes: no request timeout.
    pub const STREAM_KEYS: &'static [&'static str] = &["tls", "connect_timeout"];

    pub fn take(table: &mut toml::Table, http: bool) -> Result<Transport, FieldError> {
        let mut keys = toml::Table::new();
        let names = if http {
            Self::HTTP_KEYS
        } else {
            Self::STREAM_KEYS
        };
        for k in names {
            if let Some(v) = table.remove(*k) {
                keys.insert((*k).to_string(), v);
            }
        }
        let k: Keys = from_table(keys)?;
        let d = Transport::default();
        let t = Transport {
            tls: k.tls,
            connect_timeout: k.connect_timeout.unwrap_or(d.connect_timeout),
            request_timeout: k.request_timeout.unwrap_or(d.request_timeout),
        };
        t.tls.check().map_err(|m| FieldError::new(&["tls"], m))?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_its_keys_and_leaves_the_others() {
        let mut t: toml::Table =
            toml::from_str("uri = \"x\"\nconnect_timeout = \"2s\"\nrequest_timeout = \"5s\"\n")
                .unwrap();
        let tr = Transport::take(&mut t, true).unwrap();
        assert_eq!(tr.connect_timeout, Duration::from_secs(2));
        assert_eq!(tr.request_timeout, Duration::from_secs(5));
        assert_eq!(t.keys().collect::<Vec<_>>(), vec!["uri"]);
        let mut t: toml::Table = toml::from_str("request_timeout = \"5s\"\n").unwrap();
        Transport::take(&mut t, false).unwrap();
        assert!(
            t.contains_key("request_timeout"),
            "syslog has no request timeout"
        );
        let mut t: toml::Table = toml::from_str("tls.verfy = false\n").unwrap();
        let e = Transport::take(&mut t, true).unwrap_err();
        assert_eq!(e.path, vec!["tls", "verfy"]);
    }
}
