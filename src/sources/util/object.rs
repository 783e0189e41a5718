//! One S3 object read into a unit: downloaded as a stream, decoded by the shared scanner and
//! emitter (the same as trail files). Shared by the `sqs` and `s3` sources.

use std::sync::Arc;

use tokio_util::io::SyncIoBridge;

use crate::config::FieldError;
use crate::core::Fanout;
use crate::core::ack::UnitHandle;
use crate::decode::{self, Scanner};
use crate::sources::util::emit::Emitter;
use crate::telemetry;

/// Why an object could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// Cannot succeed by trying again (missing, unreadable, not CloudTrail).
    Poison {
        reason: &'static str,
        detail: String,
    },
    /// A transient failure (network, throttling): try again later.
    Retry(String),
}

/// Which object keys a source reads: every key but CloudTrail digests, narrowed by
/// `key_include` / `key_exclude` globs.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

fn globs(key: &str, pats: &[String]) -> Result<Option<globset::GlobSet>, FieldError> {
    if pats.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in pats {
        b.add(
            globset::Glob::new(p)
                .map_err(|e| FieldError::new(&[key], format!("invalid glob {p:?}: {e}")))?,
        );
    }
    b.build()
        .map(Some)
        .map_err(|e| FieldError::new(&[key], e.to_string()))
}

impl KeyFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FieldError> {
        Ok(KeyFilter {
            include: globs("key_include", include)?,
            exclude: globs("key_exclude", exclude)?,
        })
    }

    pub fn wanted(&self, key: &str) -> bool {
        !key.contains("/CloudTrail-Digest/")
            && self.include.as_ref().is_none_or(|g| g.is_match(key))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// What reading objects needs.
pub struct ObjectReader {
    pub source: Arc<str>,
    pub out: Fanout,
    pub s3: aws_sdk_s3::Client,
    pub max_record: usize,
}

impl ObjectReader {
    /// Read `s3://bucket/key` into `unit`; returns the number of events emitted.
    pub async fn read<M: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        unit: &UnitHandle<M>,
    ) -> Result<u64, ObjectError> {
        let url = format!("s3://{bucket}/{key}");
        let resp = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(r) => r,
            Err(e) => {
                let text = crate::aws::sdk_error_text(&e);
                return Err(match e.as_service_error() {
                    Some(se) if se.is_no_such_key() => ObjectError::Poison {
                        reason: "object_missing",
                        detail: format!("{url}: no such object"),
                    },
                    _ if text.contains("AccessDenied") || text.contains("NoSuchBucket") => {
                        ObjectError::Poison {
                            reason: "object_unreadable",
                            detail: format!("{url}: {text}"),
                        }
                    }
                    _ => ObjectError::Retry(format!("downloading {url}: {text}")),
                });
            }
        };
        let reader = SyncIoBridge::new(resp.body.into_async_read());
        let mut em = Emitter::new(self.source.clone(), self.out.clone(), url.clone());
        let max_record = self.max_record;
        // The unit handle cannot cross to the blocking thread, a token-minting clone can.
        let minter = unit.minter();
        let res = tokio::task::spawn_blocking(move || {
            let stream = decode::open_stream(reader).map_err(decode::ScanError::Io)?;
            let mut scanner = Scanner::new(stream, 0, max_record);
            let r = em.drain(&mut scanner, &minter);
            em.finish();
            r.map(|()| em.events)
        })
        .await;
        match res {
            Ok(Ok(events)) => Ok(events),
            Ok(Err(e)) => {
                telemetry::bad_input(&self.source, e.reason());
                Err(match e {
                    decode::ScanError::Io(io)
                        if io.kind() != std::io::ErrorKind::InvalidData
                            && io.kind() != std::io::ErrorKind::InvalidInput
                            && io.kind() != std::io::ErrorKind::UnexpectedEof =>
                    {
                        ObjectError::Retry(format!("reading {url}: {io}"))
                    }
                    e => ObjectError::Poison {
                        reason: "not_cloudtrail",
                        detail: format!("{url}: {e}"),
                    },
                })
            }
            Err(e) => Err(ObjectError::Retry(format!(
                "decoder task for {url} failed: {e}"
            ))),
        }
    }
}
