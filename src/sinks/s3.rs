//! `type = "s3"`: events batched into S3 objects, by default in CloudTrail's own layout and
//! format, so a central log-archive bucket can hold re-delivered trails as CloudTrail would.
//!
//! A batch is split by rendered key (a template separating accounts or regions never mixes them
//! in one object); each group becomes one object with its own `{uuid}`. Objects over
//! `multipart_threshold` are uploaded in parts (aborted on failure). An object is acknowledged
//! once S3 confirmed it; a retry after an ambiguous failure may write a second object
//! (duplicates, never loss).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use serde::Deserialize;

use crate::aws::{AwsAccess, sdk_error_text, sink_error};
use crate::config::{FieldError, units};
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding::FileEncoding;
use crate::sinks::util::encoding::{self, Compression};
use crate::sinks::util::partition;
use crate::sinks::util::template::{Template, fill_uuid};

pub const DEFAULT_KEY: &str = "AWSLogs/{account_id}/CloudTrail/{region}/%Y/%m/%d/{account_id}_CloudTrail_{region}_%Y%m%dT%H%MZ_{uuid}.json.gz";

fn d_key() -> String {
    DEFAULT_KEY.into()
}
fn d_gzip() -> Compression {
    Compression::Gzip
}
fn d_cloudtrail() -> FileEncoding {
    FileEncoding::Cloudtrail
}
fn d_threshold() -> u64 {
    16 << 20
}
fn d_part() -> u64 {
    8 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    pub bucket: String,
    /// Key template: strftime over eventTime, `{account_id}`, `{region}`, `{event_source}`,
    /// `{category}`, `{uuid}` (one per object).
    #[serde(default = "d_key")]
    pub key: String,
    #[serde(default = "d_gzip")]
    pub compression: Compression,
    #[serde(default = "d_cloudtrail")]
    pub encoding: FileEncoding,
    /// `AES256` or `aws:kms`.
    pub server_side_encryption: Option<String>,
    pub ssekms_key_id: Option<String>,
    pub storage_class: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    #[serde(default = "d_threshold", deserialize_with = "units::size")]
    pub multipart_threshold: u64,
    #[serde(default = "d_part", deserialize_with = "units::size")]
    pub part_size: u64,
    /// `region`, `endpoint`, `assume_role` (taken out of the table first).
    #[serde(skip)]
    pub aws: AwsAccess,
}

impl S3SinkConfig {
    pub fn check(&self) -> Result<Template, FieldError> {
        let t = Template::parse(&self.key).map_err(|m| FieldError::new(&["key"], m))?;
        if self.bucket.is_empty() {
            return Err(FieldError::new(&["bucket"], "must name a bucket"));
        }
        match self.server_side_encryption.as_deref() {
            None | Some("AES256") | Some("aws:kms") | Some("aws:kms:dsse") => {}
            Some(o) => {
                return Err(FieldError::new(
                    &["server_side_encryption"],
                    format!("{o:?}: expected \"AES256\" or \"aws:kms\""),
                ));
            }
        }
        if self.ssekms_key_id.is_some()
            && !self
                .server_side_encryption
                .as_deref()
                .is_some_and(|s| s.starts_with("aws:kms"))
        {
            return Err(FieldError::new(
                &["ssekms_key_id"],
                "needs server_side_encryption = \"aws:kms\"",
            ));
        }
        if self.part_size < 5 << 20 {
            return Err(FieldError::new(
                &["part_size"],
                "S3 parts are at least 5 MiB",
            ));
        }
        Ok(t)
    }

    pub fn build(&self, client: aws_sdk_s3::Client) -> Result<S3Sink, FieldError> {
        Ok(S3Sink {
            template: self.check()?,
            cfg: self.clone(),
            client,
        })
    }
}

pub struct S3Sink {
    template: Template,
    cfg: S3SinkConfig,
    client: aws_sdk_s3::Client,
}

impl S3Sink {
    fn content_type(&self) -> String {
        self.cfg
            .content_type
            .clone()
            .unwrap_or_else(|| match self.cfg.encoding {
                FileEncoding::Cloudtrail => "application/json".into(),
                FileEncoding::Ndjson => "application/x-ndjson".into(),
            })
    }

    async fn upload(&self, key: &str, body: Vec<u8>) -> Result<(), SendError> {
        let sse = self
            .cfg
            .server_side_encryption
            .as_deref()
            .map(ServerSideEncryption::from);
        let class = self.cfg.storage_class.as_deref().map(StorageClass::from);
        let url = format!("s3://{}/{key}", self.cfg.bucket);
        if (body.len() as u64) <= self.cfg.multipart_threshold {
            self.client
                .put_object()
                .bucket(&self.cfg.bucket)
                .key(key)
                .body(ByteStream::from(body))
                .content_type(self.content_type())
                .set_content_encoding(self.cfg.content_encoding.clone())
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(self.cfg.ssekms_key_id.clone())
                .set_storage_class(class)
                .send()
                .await
                .map_err(|e| sink_error(&format!("putting {url}"), &e))?;
            return Ok(());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .content_type(self.content_type())
            .set_content_encoding(self.cfg.content_encoding.clone())
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(self.cfg.ssekms_key_id.clone())
            .set_storage_class(class)
            .send()
            .await
            .map_err(|e| sink_error(&format!("starting a multipart upload of {url}"), &e))?;
        let upload_id = created
            .upload_id
            .ok_or_else(|| SendError::retryable(format!("no upload id for {url}")))?;
        let res = self.upload_parts(key, &upload_id, &body).await;
        if res.is_err() {
            // Leave no orphaned parts behind (they would be billed).
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        res
    }

    async fn upload_parts(&self, key: &str, upload_id: &str, body: &[u8]) -> Result<(), SendError> {
        let url = format!("s3://{}/{key}", self.cfg.bucket);
        let mut parts = Vec::new();
        for (i, chunk) in body.chunks(self.cfg.part_size as usize).enumerate() {
            let n = i as i32 + 1;
            let r = self
                .client
                .upload_part()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sink_error(&format!("uploading part {n} of {url}"), &e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(r.e_tag)
                    .part_number(n)
                    .build(),
            );
        }
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let Err(e) = done else { return Ok(()) };
        // The answer may be lost or unreadable (S3 can answer 200 with an error inside; some
        // S3-compatible stores answer in another shape) while the object was assembled: if it
        // is there with the full length, it is complete.
        let head = self
            .client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await;
        if let Ok(h) = head
            && h.content_length == Some(body.len() as i64)
        {
            tracing::debug!(object = %url, error = %sdk_error_text(&e), "completion answer unreadable, but the object is complete");
            return Ok(());
        }
        Err(sink_error(&format!("completing {url}"), &e))
    }
}

impl SinkService for S3Sink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let (groups, mut errors) =
            partition::by_key(events, |e, key| self.template.render(&e.data, key));
        for (key, idx) in groups {
            let evs = idx.iter().map(|i| &events[*i]);
            let mut body = Vec::with_capacity(
                idx.iter()
                    .map(|i| events[*i].data.raw.len() + 1)
                    .sum::<usize>()
                    + 14,
            );
            match self.cfg.encoding {
                FileEncoding::Cloudtrail => {
                    body.extend_from_slice(b"{\"Records\":[");
                    encoding::records_array(evs, &mut body);
                    body.extend_from_slice(b"]}");
                }
                FileEncoding::Ndjson => encoding::ndjson(evs, &mut body),
            }
            if self.cfg.compression == Compression::Gzip {
                body = encoding::gzip(&body)
                    .map_err(|e| SendError::retryable(format!("compressing: {e}")))?;
            }
            if let Err(err) = self.upload(&fill_uuid(&key), body).await {
                errors.extend(idx.into_iter().map(|index| ItemError {
                    index,
                    error: err.clone(),
                }));
            }
        }
        Ok(errors)
    }
}

/// The `s3` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "s3",
    defaults: || {
        crate::sinks::util::kind::defaults(100_000, 16 << 20, std::time::Duration::from_secs(60), 1)
    },
    keys: crate::aws::AwsAccess::KEYS,
    parse: |mut table| {
        let aws = crate::aws::AwsAccess::take(&mut table)?;
        crate::config::from_table::<S3SinkConfig>(table)
            .map(|c| std::sync::Arc::new(S3SinkConfig { aws, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for S3SinkConfig {
    type Service = S3Sink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check().map(|_| ())
    }
    async fn build_service(
        self,
        _name: std::sync::Arc<str>,
    ) -> Result<S3Sink, crate::config::FieldError> {
        let client = self.aws.s3().await;
        self.build(client)
    }
}
