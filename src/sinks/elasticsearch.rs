//! `type = "elasticsearch"` (Elasticsearch and OpenSearch): the `_bulk` API with `create`
//! actions and `_id` = eventID, so an event delivered again is a 409 that counts as delivered:
//! the destination is idempotent. Each item of the bulk answer is read: 429 and 5xx items are
//! retried alone, other failures (mapping errors …) fail alone with their reason.
//!
//! Indices from a template (strftime over eventTime, `{account_id}`, …) or one data stream
//! (`@timestamp` is then added from eventTime). Authentication: basic, API key, or AWS SigV4
//! for Amazon OpenSearch Service (signed with the AWS SDK's signer, credentials from the
//! standard chain).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::aws::{AssumeRole, AwsAccess};
use crate::config::FieldError;
use crate::config::redact;
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding::{self, Compression};
use crate::sinks::util::http_client::HttpAuth;
use crate::sinks::util::http_client::{self, snippet};
use crate::sinks::util::secret::Secret;
use crate::sinks::util::template::Template;
use crate::sinks::util::transport::Transport;

pub const DEFAULT_INDEX: &str = "cloudtrail-%Y.%m.%d";

fn d_gzip() -> Compression {
    Compression::Gzip
}
fn d_es() -> String {
    "es".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum EsAuth {
    Basic {
        user: String,
        password: Option<Secret>,
        password_file: Option<String>,
    },
    ApiKey {
        key: Option<Secret>,
        key_file: Option<String>,
    },
    /// AWS SigV4 (Amazon OpenSearch Service: `service = "es"`; Serverless: `"aoss"`).
    Aws {
        region: Option<String>,
        #[serde(default = "d_es")]
        service: String,
        assume_role: Option<AssumeRole>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// Base URLs; a batch goes to one, the next is tried after a connection error or a 5xx.
    pub endpoints: Vec<String>,
    /// Index template (strftime over eventTime and `{account_id}`, `{region}`,
    /// `{event_source}`, `{category}`); default `cloudtrail-%Y.%m.%d`.
    pub index: Option<String>,
    /// Write to this data stream instead (e.g. `logs-aws.cloudtrail-default`).
    pub data_stream: Option<String>,
    /// Ingest pipeline to run on the documents.
    pub pipeline: Option<String>,
    pub auth: Option<EsAuth>,
    #[serde(default = "d_gzip")]
    pub compression: Compression,
    /// `tls.*`, `connect_timeout`, `request_timeout` (taken out of the table first).
    #[serde(skip)]
    pub transport: Transport,
}

/// How requests are authenticated.
enum Auth {
    None,
    Header(HeaderValue),
    Aws {
        region: String,
        service: String,
        credentials: aws_credential_types::provider::SharedCredentialsProvider,
    },
}

impl ElasticsearchSinkConfig {
    fn urls(&self) -> Result<Vec<reqwest::Url>, FieldError> {
        if self.endpoints.is_empty() {
            return Err(FieldError::new(
                &["endpoints"],
                "name at least one endpoint",
            ));
        }
        self.endpoints
            .iter()
            .map(|e| {
                let mut u = http_client::http_url("endpoints", e)?;
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                let mut bulk = u
                    .join("_bulk")
                    .map_err(|err| FieldError::new(&["endpoints"], err.to_string()))?;
                if let Some(p) = &self.pipeline {
                    bulk.query_pairs_mut().append_pair("pipeline", p);
                }
                Ok(bulk)
            })
            .collect()
    }

    fn template(&self) -> Result<Option<Template>, FieldError> {
        match (&self.index, &self.data_stream) {
            (Some(_), Some(_)) => Err(FieldError::new(
                &["data_stream"],
                "give index or data_stream, not both",
            )),
            (_, Some(ds)) if ds.is_empty() => {
                Err(FieldError::new(&["data_stream"], "must name a data stream"))
            }
            (_, Some(_)) => Ok(None),
            (i, None) => Template::parse(i.as_deref().unwrap_or(DEFAULT_INDEX))
                .map(Some)
                .map_err(|m| FieldError::new(&["index"], m)),
        }
    }

    pub fn check(&self) -> Result<(), FieldError> {
        self.urls()?;
        self.template()?;
        self.header_auth()?;
        Ok(())
    }

    /// The `Authorization` header of basic and API-key authentication (secret files read here).
    fn header_auth(&self) -> Result<Option<HeaderValue>, FieldError> {
        let secret = match &self.auth {
            Some(EsAuth::Basic {
                user,
                password,
                password_file,
            }) => HttpAuth::Basic {
                user: user.clone(),
                password: password.clone(),
                password_file: password_file.clone(),
            }
            .header()
            .map_err(|m| FieldError::new(&["auth"], m))?,
            Some(EsAuth::ApiKey { key, key_file }) => {
                let k = Secret::resolve(key, key_file, "auth.key")
                    .map_err(|m| FieldError::new(&["auth"], m))?
                    .ok_or_else(|| {
                        FieldError::new(&["auth", "key"], "key or key_file is required")
                    })?;
                Secret::new(format!("ApiKey {}", k.expose()))
            }
            _ => return Ok(None),
        };
        header(secret).map(Some)
    }

    pub async fn build(&self, name: &str) -> Result<ElasticsearchSink, FieldError> {
        let urls = self.urls()?;
        let template = self.template()?;
        let auth = match &self.auth {
            None => Auth::None,
            Some(EsAuth::Basic { .. } | EsAuth::ApiKey { .. }) => match self.header_auth()? {
                Some(h) => Auth::Header(h),
                None => Auth::None,
            },
            Some(EsAuth::Aws {
                region,
                service,
                assume_role,
            }) => {
                let access = AwsAccess {
                    region: region.clone(),
                    endpoint: None,
                    assume_role: assume_role.clone(),
                };
                let sdk = access.sdk_config().await;
                let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
                    FieldError::new(
                        &["auth", "region"],
                        "no AWS region (set auth.region or AWS_REGION)",
                    )
                })?;
                let credentials = sdk
                    .credentials_provider()
                    .ok_or_else(|| FieldError::new(&["auth"], "no AWS credentials provider"))?;
                Auth::Aws {
                    region,
                    service: service.clone(),
                    credentials,
                }
            }
        };
        let client =
            http_client::client(name, &self.transport).map_err(|m| FieldError::new(&["tls"], m))?;
        Ok(ElasticsearchSink {
            cfg: self.clone(),
            urls,
            template,
            auth,
            client,
            next: AtomicUsize::new(0),
        })
    }
}

fn header(s: Secret) -> Result<HeaderValue, FieldError> {
    let mut v = HeaderValue::from_str(s.expose())
        .map_err(|_| FieldError::new(&["auth"], "not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

pub struct ElasticsearchSink {
    cfg: ElasticsearchSinkConfig,
    urls: Vec<reqwest::Url>,
    template: Option<Template>,
    auth: Auth,
    client: reqwest::Client,
    /// The endpoint the next batch goes to.
    next: AtomicUsize,
}

#[derive(Debug, Deserialize)]
struct BulkReply {
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    status: u16,
    error: Option<serde_json::Value>,
}

impl ElasticsearchSink {
    /// The bulk body; events that cannot be indexed (bad index name) fail alone.
    fn body(&self, events: &[Event], errors: &mut Vec<ItemError>) -> (Vec<u8>, Vec<usize>) {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.data.raw.len() + 128).sum());
        let mut sent = Vec::with_capacity(events.len());
        let mut index = String::new();
        for (i, e) in events.iter().enumerate() {
            match (&self.template, &self.cfg.data_stream) {
                (Some(t), _) => {
                    if let Err(m) = t.render(&e.data, &mut index) {
                        errors.push(ItemError {
                            index: i,
                            error: SendError::Permanent(m.to_string()),
                        });
                        continue;
                    }
                    index.make_ascii_lowercase();
                }
                (None, Some(ds)) => ds.clone_into(&mut index),
                (None, None) => DEFAULT_INDEX.clone_into(&mut index),
            }
            let mut action = serde_json::json!({"create": {"_index": index}});
            if let Some(id) = e.data.event_id() {
                action["create"]["_id"] = id.into();
            }
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            let raw = &e.data.raw;
            match (self.cfg.data_stream.is_some(), e.data.event_time()) {
                // Data streams need @timestamp: taken from eventTime.
                (true, Some(t)) if raw.first() == Some(&b'{') => {
                    body.extend_from_slice(b"{\"@timestamp\":");
                    body.extend_from_slice(serde_json::to_string(t).unwrap_or_default().as_bytes());
                    if raw.get(1) != Some(&b'}') {
                        body.push(b',');
                    }
                    body.extend_from_slice(&raw[1..]);
                }
                _ => body.extend_from_slice(raw),
            }
            body.push(b'\n');
            sent.push(i);
        }
        (body, sent)
    }

    async fn sign(
        &self,
        url: &reqwest::Url,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SendError> {
        let Auth::Aws {
            region,
            service,
            credentials,
        } = &self.auth
        else {
            return Ok(Vec::new());
        };
        use aws_sigv4::http_request::{
            PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
        };
        let creds = credentials
            .provide_credentials()
            .await
            .map_err(|e| SendError::retryable(format!("AWS credentials for signing: {e}")))?;
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| SendError::Permanent(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SendError::Permanent(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SendError::Permanent(format!("signing: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

impl SinkService for ElasticsearchSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut errors = Vec::new();
        let (mut body, sent) = self.body(events, &mut errors);
        if sent.is_empty() {
            return Ok(errors);
        }
        let n = self.next.load(Ordering::Relaxed);
        let url = &self.urls[n % self.urls.len()];
        let mut headers: Vec<(&str, String)> =
            vec![("content-type", "application/x-ndjson".into())];
        if self.cfg.compression == Compression::Gzip {
            body = encoding::gzip(&body)
                .map_err(|e| SendError::retryable(format!("compressing: {e}")))?;
            headers.push(("content-encoding", "gzip".into()));
        }
        if let Some(host) = url.host_str() {
            let host = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            };
            headers.push(("host", host));
        }
        let signed = self.sign(url, &headers, &body).await?;
        let mut req = self.client.post(url.clone());
        for (k, v) in &headers {
            match *k {
                "content-type" => req = req.header(CONTENT_TYPE, v),
                "content-encoding" => req = req.header(CONTENT_ENCODING, v),
                _ => {}
            }
        }
        for (k, v) in &signed {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Auth::Header(h) = &self.auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        let rotate = || {
            let _ = self.next.compare_exchange(
                n,
                n.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        };
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                rotate();
                return Err(http_client::request_error(url.as_str(), &e));
            }
        };
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            if status.is_server_error() {
                rotate();
            }
            return Err(http_client::status_error(
                url.as_str(),
                status,
                &resp_headers,
                &bytes,
            ));
        }
        item_errors(&redact::url(url.as_str()), &bytes, &sent, errors)
    }
}

/// The bulk answer's per-document outcomes: each failed item as an error for the document it
/// answers (`sent[i]` is the batch index of the i-th document sent).
fn item_errors(
    url: &str,
    bytes: &[u8],
    sent: &[usize],
    mut errors: Vec<ItemError>,
) -> Result<Vec<ItemError>, SendError> {
    let reply: BulkReply = serde_json::from_slice(bytes).map_err(|e| {
        SendError::retryable(format!(
            "{url}: unreadable bulk answer ({e}): {} (will be retried)",
            snippet(bytes)
        ))
    })?;
    if reply.items.len() != sent.len() {
        return Err(SendError::retryable(format!(
            "{url}: bulk answer has {} items for {} documents (will be retried)",
            reply.items.len(),
            sent.len()
        )));
    }
    for (item, &i) in reply.items.iter().zip(sent) {
        let Some(r) = item.values().next() else {
            continue;
        };
        // 409: the document (same _id) is already there — delivered before.
        if (200..300).contains(&r.status) || r.status == 409 {
            continue;
        }
        let reason = r
            .error
            .as_ref()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["type"].as_str().unwrap_or("error"),
                    e["reason"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_default();
        let text = format!("{url}: bulk item HTTP {}: {reason}", r.status);
        let error = if r.status == 429 || r.status >= 500 {
            SendError::retryable(format!("{text} (will be retried)"))
        } else {
            SendError::Permanent(format!("{text} (not retried)"))
        };
        errors.push(ItemError { index: i, error });
    }
    Ok(errors)
}

/// The `elasticsearch` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "elasticsearch",
    defaults: || {
        crate::sinks::util::kind::defaults(5000, 10 << 20, std::time::Duration::from_secs(1), 4)
    },
    keys: crate::sinks::util::transport::Transport::HTTP_KEYS,
    parse: |mut table| {
        let transport = crate::sinks::util::transport::Transport::take(&mut table, true)?;
        crate::config::from_table::<ElasticsearchSinkConfig>(table)
            .map(|c| std::sync::Arc::new(ElasticsearchSinkConfig { transport, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for ElasticsearchSinkConfig {
    type Service = ElasticsearchSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check()
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<ElasticsearchSink, crate::config::FieldError> {
        self.build(&name).await
    }
}
