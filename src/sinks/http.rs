//! `type = "http"`: each batch as one request to any HTTP endpoint (a collector, a SIEM's HTTP
//! input, a webhook), as NDJSON or a JSON array, optionally gzip-compressed, with basic or
//! bearer authentication. 408, 429 and 5xx are retried (honouring `Retry-After`); other 4xx
//! are permanent.

use std::collections::BTreeMap;

use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::FieldError;
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding::{self, Compression};
use crate::sinks::util::http_client;
use crate::sinks::util::secret::Secret;
use crate::sinks::util::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpEncoding {
    /// One record per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// `[record, record, …]` (`application/json`).
    JsonArray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Post,
    Put,
}

pub use crate::sinks::util::http_client::HttpAuth;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    pub uri: String,
    #[serde(default)]
    pub method: Method,
    /// Extra headers (values are treated as secrets: never logged).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    pub auth: Option<HttpAuth>,
    #[serde(default)]
    pub encoding: HttpEncoding,
    #[serde(default)]
    pub compression: Compression,
    /// `tls.*`, `connect_timeout`, `request_timeout` (taken out of the table first).
    #[serde(skip)]
    pub transport: Transport,
}

impl HttpSinkConfig {
    pub fn check(&self) -> Result<(), FieldError> {
        http_client::http_url("uri", &self.uri)?;
        for (k, v) in &self.headers {
            HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| FieldError::new(&["headers", k], "not a valid header name"))?;
            HeaderValue::from_str(v.expose())
                .map_err(|_| FieldError::new(&["headers", k], "not a valid header value"))?;
        }
        if let Some(a) = &self.auth {
            a.header().map_err(|m| FieldError::new(&["auth"], m))?;
        }
        Ok(())
    }

    pub fn build(&self, name: &str) -> Result<HttpSink, FieldError> {
        self.check()?;
        let auth = self
            .auth
            .as_ref()
            .map(HttpAuth::header)
            .transpose()
            .map_err(|m| FieldError::new(&["auth"], m))?;
        let client =
            http_client::client(name, &self.transport).map_err(|m| FieldError::new(&["tls"], m))?;
        Ok(HttpSink {
            cfg: self.clone(),
            auth,
            client,
        })
    }
}

pub struct HttpSink {
    cfg: HttpSinkConfig,
    auth: Option<Secret>,
    client: reqwest::Client,
}

impl SinkService for HttpSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut body =
            Vec::with_capacity(events.iter().map(|e| e.data.raw.len() + 1).sum::<usize>() + 2);
        let content_type = match self.cfg.encoding {
            HttpEncoding::Ndjson => {
                encoding::ndjson(events, &mut body);
                "application/x-ndjson"
            }
            HttpEncoding::JsonArray => {
                body.push(b'[');
                encoding::records_array(events, &mut body);
                body.push(b']');
                "application/json"
            }
        };
        let mut req = match self.cfg.method {
            Method::Post => self.client.post(&self.cfg.uri),
            Method::Put => self.client.put(&self.cfg.uri),
        }
        .header(CONTENT_TYPE, content_type);
        if self.cfg.compression == Compression::Gzip {
            body = encoding::gzip(&body)
                .map_err(|e| SendError::retryable(format!("compressing: {e}")))?;
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(a) = &self.auth {
            let mut v = HeaderValue::from_str(a.expose())
                .map_err(|_| SendError::Permanent("auth: not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| http_client::request_error(&self.cfg.uri, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Vec::new());
        }
        let headers = resp.headers().clone();
        let text = resp.bytes().await.unwrap_or_default();
        Err(http_client::status_error(
            &self.cfg.uri,
            status,
            &headers,
            &text,
        ))
    }
}

/// The `http` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "http",
    defaults: || {
        crate::sinks::util::kind::defaults(1000, 1_000_000, std::time::Duration::from_secs(1), 4)
    },
    keys: crate::sinks::util::transport::Transport::HTTP_KEYS,
    parse: |mut table| {
        let transport = crate::sinks::util::transport::Transport::take(&mut table, true)?;
        crate::config::from_table::<HttpSinkConfig>(table)
            .map(|c| std::sync::Arc::new(HttpSinkConfig { transport, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for HttpSinkConfig {
    type Service = HttpSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check()
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<HttpSink, crate::config::FieldError> {
        self.build(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: HttpSinkConfig = toml::from_str(
            "uri = \"https://siem.example/ingest\"\nheaders.X-Api-Key = \"s3cr3t\"\nauth = { strategy = \"bearer\", token = \"t0k3n\" }\n",
        )
        .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("t0k3n"), "{dbg}");
        assert!(cfg.check().is_ok());
        let h = cfg.auth.unwrap().header().unwrap();
        assert_eq!(h.expose(), "Bearer t0k3n");
        let basic = HttpAuth::Basic {
            user: "user".into(),
            password: Some(Secret::new("pass")),
            password_file: None,
        };
        assert_eq!(basic.header().unwrap().expose(), "Basic dXNlcjpwYXNz");
    }
}
