//! `type = "splunk_hec"`: batches to Splunk's HTTP Event Collector (`/services/collector/event`),
//! each record as an event envelope with `time` from its eventTime and sourcetype
//! `aws:cloudtrail` (the Splunk Add-on for AWS's), gzip-compressed by default.
//!
//! HEC's answers are read as Splunk documents them: server busy (503, code 9), internal errors
//! and unhealthy queues are retried; token, index, channel and format errors are permanent.
//! With `invalid-event-number` only that event fails; the others of the batch are sent again
//! (Splunk may already have indexed the ones before it: duplicates, never loss). With
//! `ack = true` the request carries a channel, and the events count as delivered only once
//! `/services/collector/ack` says the indexers have them.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::config::{FieldError, units};
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding::{self, Compression};
use crate::sinks::util::http_client::{self, snippet};
use crate::sinks::util::secret::Secret;
use crate::sinks::util::transport::Transport;

fn d_sourcetype() -> String {
    "aws:cloudtrail".into()
}
fn d_gzip() -> Compression {
    Compression::Gzip
}
fn d_ack_timeout() -> Duration {
    Duration::from_secs(300)
}
fn d_ack_interval() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecSinkConfig {
    /// Base URL of HEC, e.g. `https://splunk.example:8088`.
    pub endpoint: String,
    pub token: Option<Secret>,
    pub token_file: Option<String>,
    pub index: Option<String>,
    #[serde(default = "d_sourcetype")]
    pub sourcetype: String,
    pub source: Option<String>,
    pub host: Option<String>,
    #[serde(default = "d_gzip")]
    pub compression: Compression,
    /// Indexer acknowledgement: count events as delivered only once Splunk acknowledges them.
    #[serde(default)]
    pub ack: bool,
    #[serde(default = "d_ack_timeout", deserialize_with = "units::duration")]
    pub ack_timeout: Duration,
    #[serde(default = "d_ack_interval", deserialize_with = "units::duration")]
    pub ack_poll_interval: Duration,
    /// `tls.*`, `connect_timeout`, `request_timeout` (taken out of the table first).
    #[serde(skip)]
    pub transport: Transport,
}

impl SplunkHecSinkConfig {
    fn base(&self) -> Result<reqwest::Url, FieldError> {
        http_client::http_url("endpoint", &self.endpoint)
    }

    pub fn check(&self) -> Result<(), FieldError> {
        self.base()?;
        if Secret::resolve(&self.token, &self.token_file, "token")
            .map_err(|m| FieldError::new(&["token_file"], m))?
            .is_none()
        {
            return Err(FieldError::new(
                &["token"],
                "token or token_file is required",
            ));
        }
        Ok(())
    }

    pub fn build(&self, name: &str) -> Result<SplunkHecSink, FieldError> {
        self.check()?;
        let token = Secret::resolve(&self.token, &self.token_file, "token")
            .map_err(|m| FieldError::new(&["token_file"], m))?
            .ok_or_else(|| FieldError::new(&["token"], "token or token_file is required"))?;
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", token.expose()))
            .map_err(|_| FieldError::new(&["token"], "not a valid token"))?;
        auth.set_sensitive(true);
        let base = self.base()?;
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| FieldError::new(&["endpoint"], e.to_string()))
        };
        let client =
            http_client::client(name, &self.transport).map_err(|m| FieldError::new(&["tls"], m))?;
        // A channel identifies this sink's requests for acknowledgement (a GUID).
        let hex: String = std::iter::repeat_with(|| fastrand::u8(0..16))
            .take(32)
            .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
            .collect();
        let channel = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        Ok(SplunkHecSink {
            event_url: join("services/collector/event")?,
            ack_url: join("services/collector/ack")?,
            cfg: self.clone(),
            auth,
            client,
            channel,
        })
    }
}

pub struct SplunkHecSink {
    cfg: SplunkHecSinkConfig,
    event_url: reqwest::Url,
    ack_url: reqwest::Url,
    auth: HeaderValue,
    client: reqwest::Client,
    channel: String,
}

/// HEC's answer body.
#[derive(Debug, Deserialize, Default)]
struct Reply {
    #[serde(default)]
    text: String,
    code: Option<i64>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct AckReply {
    acks: std::collections::HashMap<String, bool>,
}

impl SplunkHecSink {
    /// One event envelope, appended to `out`.
    fn envelope(&self, e: &Event, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{");
        if let Some(ms) = e.data.event_time_millis() {
            let (s, m) = (ms.div_euclid(1000), ms.rem_euclid(1000));
            out.extend_from_slice(format!("\"time\":{s}.{m:03},").as_bytes());
        }
        let mut field = |k: &str, v: &str| {
            out.extend_from_slice(format!("\"{k}\":").as_bytes());
            out.extend_from_slice(serde_json::to_string(v).unwrap_or_default().as_bytes());
            out.push(b',');
        };
        field("sourcetype", &self.cfg.sourcetype);
        if let Some(i) = &self.cfg.index {
            field("index", i);
        }
        if let Some(s) = &self.cfg.source {
            field("source", s);
        }
        if let Some(h) = &self.cfg.host {
            field("host", h);
        }
        out.extend_from_slice(b"\"event\":");
        out.extend_from_slice(&e.data.raw);
        out.extend_from_slice(b"}\n");
    }

    fn request(&self, url: &reqwest::Url) -> reqwest::RequestBuilder {
        let r = self
            .client
            .post(url.clone())
            .header(AUTHORIZATION, self.auth.clone());
        if self.cfg.ack {
            r.header("X-Splunk-Request-Channel", &self.channel)
        } else {
            r
        }
    }

    /// Wait until HEC acknowledges `id`, or `ack_timeout` passes.
    async fn wait_ack(&self, id: u64) -> Result<(), SendError> {
        let deadline = tokio::time::Instant::now() + self.cfg.ack_timeout;
        let body = format!("{{\"acks\":[{id}]}}");
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(self.cfg.ack_poll_interval).await;
            let r = self
                .request(&self.ack_url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let resp = match r {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{e}");
                    continue;
                }
            };
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap_or_default();
            if status.is_success() {
                match serde_json::from_slice::<AckReply>(&bytes) {
                    Ok(a) if a.acks.get(&id.to_string()) == Some(&true) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => last = format!("unreadable answer: {e}"),
                }
            } else if http_client::retryable_status(status) {
                last = format!("HTTP {}: {}", status.as_u16(), snippet(&bytes));
            } else {
                return Err(SendError::Permanent(format!(
                    "{} answered HTTP {}: {} (acknowledgement polling; not retried)",
                    self.ack_url,
                    status.as_u16(),
                    snippet(&bytes)
                )));
            }
        }
        Err(SendError::retryable(format!(
            "{}: ack {id} not confirmed within {:?}{} (the batch is sent again)",
            self.ack_url,
            self.cfg.ack_timeout,
            if last.is_empty() {
                String::new()
            } else {
                format!("; last: {last}")
            }
        )))
    }
}

/// How an HEC error code is handled.
fn classify(status: reqwest::StatusCode, reply: &Reply, url: &str, body: &[u8]) -> SendError {
    let url = crate::config::redact::url(url);
    let what = match reply.code {
        Some(c) => format!(
            "{url} answered HTTP {} code {c} {:?}",
            status.as_u16(),
            reply.text
        ),
        None => format!("{url} answered HTTP {}: {}", status.as_u16(), snippet(body)),
    };
    let hint = match reply.code {
        Some(1..=4) => " (check the HEC token)",
        Some(7) => " (the index is not allowed for this token)",
        Some(10 | 11) => {
            " (indexer acknowledgement needs a channel; is `ack` set as the token expects?)"
        }
        Some(14) => " (indexer acknowledgement is disabled for this token: set ack = false)",
        _ if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE => {
            " (the batch is over HEC's max_content_length: lower batch.max_bytes)"
        }
        _ => "",
    };
    // 8 internal error, 9 server busy, 18 and 23 unhealthy/queues full.
    let retry =
        matches!(reply.code, Some(8 | 9 | 18 | 23)) || http_client::retryable_status(status);
    if retry {
        SendError::retryable(format!("{what} (will be retried)"))
    } else {
        SendError::Permanent(format!("{what}{hint} (not retried)"))
    }
}

impl SinkService for SplunkHecSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.data.raw.len() + 96).sum());
        for e in events {
            self.envelope(e, &mut body);
        }
        let mut req = self
            .request(&self.event_url)
            .header(CONTENT_TYPE, "application/json");
        if self.cfg.compression == Compression::Gzip {
            body = encoding::gzip(&body)
                .map_err(|e| SendError::retryable(format!("compressing: {e}")))?;
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let url = self.event_url.as_str();
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| http_client::request_error(url, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let reply: Reply = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.is_success() {
            if self.cfg.ack {
                let id = reply.ack_id.ok_or_else(|| {
                    SendError::Permanent(format!(
                        "{}: ack = true but HEC returned no ackId (is indexer acknowledgement enabled for this token?)",
                        crate::config::redact::url(url)
                    ))
                })?;
                self.wait_ack(id).await?;
            }
            return Ok(Vec::new());
        }
        let mut err = classify(status, &reply, url, &bytes);
        if let SendError::Retryable { retry_after, .. } = &mut err {
            *retry_after = http_client::retry_after(&headers);
        }
        match (reply.invalid_event, &err) {
            (Some(n), SendError::Permanent(m)) if n < events.len() => {
                // Only the event HEC could not read fails; the rest are sent again.
                let again = SendError::retryable(format!(
                    "sent again: event {n} of the same request was refused ({m})"
                ));
                Ok((0..events.len())
                    .map(|i| ItemError {
                        index: i,
                        error: if i == n { err.clone() } else { again.clone() },
                    })
                    .collect())
            }
            _ => Err(err),
        }
    }
}

/// The `splunk_hec` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "splunk_hec",
    defaults: || {
        crate::sinks::util::kind::defaults(1000, 1_000_000, std::time::Duration::from_secs(1), 4)
    },
    keys: crate::sinks::util::transport::Transport::HTTP_KEYS,
    parse: |mut table| {
        let transport = crate::sinks::util::transport::Transport::take(&mut table, true)?;
        crate::config::from_table::<SplunkHecSinkConfig>(table)
            .map(|c| std::sync::Arc::new(SplunkHecSinkConfig { transport, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for SplunkHecSinkConfig {
    type Service = SplunkHecSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check()
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<SplunkHecSink, crate::config::FieldError> {
        self.build(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_as_splunk_documents_them() {
        let r = |code| Reply {
            code: Some(code),
            ..Default::default()
        };
        let s = |n| reqwest::StatusCode::from_u16(n).unwrap();
        assert!(matches!(
            classify(s(503), &r(9), "u", b""),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(s(500), &r(8), "u", b""),
            SendError::Retryable { .. }
        ));
        for (st, c) in [
            (403, 1),
            (401, 2),
            (401, 3),
            (403, 4),
            (400, 6),
            (400, 7),
            (400, 10),
            (400, 14),
        ] {
            assert!(
                matches!(classify(s(st), &r(c), "u", b""), SendError::Permanent(_)),
                "{c}"
            );
        }
        let SendError::Permanent(m) = classify(s(403), &r(4), "u", b"") else {
            panic!()
        };
        assert!(m.contains("token"), "{m}");
    }
}
