//! One SQS message: what it announces, each object downloaded (streaming) and decoded by the
//! shared decoder, all its events in one unit that deletes the message when delivered.

use std::sync::Arc;

use tokio_util::io::SyncIoBridge;

use super::notification::{self, Notice, ObjectRef};
use crate::ack::UnitHandle;
use crate::decode::emit::Emitter;
use crate::decode::{self, Scanner};
use crate::telemetry;
use crate::topology::Fanout;

/// Identifies a message when its unit completes.
#[derive(Debug)]
pub struct MsgMeta {
    pub message_id: String,
    pub receipt_handle: String,
    pub receive_count: u32,
    /// Stops the visibility extension of this message.
    pub done: tokio_util::sync::CancellationToken,
}

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its objects were read; the unit completes (and the message is deleted) when delivered.
    Read { objects: usize, events: u64 },
    /// Nothing to read (test event, deletion, digest or excluded keys): delete it now.
    Nothing(String),
    /// Cannot be processed: left on the queue, and after its redrive limit in the DLQ.
    Poison {
        reason: &'static str,
        detail: String,
    },
    /// A transient failure (network, throttling): the message comes back after its visibility
    /// timeout.
    Retry(String),
}

pub struct Context {
    pub source: Arc<str>,
    pub out: Fanout,
    pub s3: aws_sdk_s3::Client,
    pub max_record: usize,
    pub include: Option<globset::GlobSet>,
    pub exclude: Option<globset::GlobSet>,
}

impl Context {
    fn wanted(&self, key: &str) -> bool {
        !key.contains("/CloudTrail-Digest/")
            && self.include.as_ref().is_none_or(|g| g.is_match(key))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// Read everything `body` announces into `unit`. The caller seals the unit on `Read` and
/// abandons it otherwise.
pub async fn process(ctx: &Context, body: &str, unit: &UnitHandle<MsgMeta>) -> Outcome {
    let objects = match notification::parse(body) {
        Ok(Notice::Objects(o)) => o,
        Ok(Notice::Ignore(what)) => return Outcome::Nothing(what),
        Err(p) => {
            return Outcome::Poison {
                reason: p.reason,
                detail: p.detail,
            };
        }
    };
    let wanted: Vec<ObjectRef> = objects.into_iter().filter(|o| ctx.wanted(&o.key)).collect();
    if wanted.is_empty() {
        return Outcome::Nothing(
            "no CloudTrail log objects among the announced keys (digests or excluded)".into(),
        );
    }
    let mut events = 0;
    for o in &wanted {
        match read_object(ctx, o, unit).await {
            Ok(n) => events += n,
            Err(outcome) => return outcome,
        }
    }
    Outcome::Read {
        objects: wanted.len(),
        events,
    }
}

async fn read_object(
    ctx: &Context,
    o: &ObjectRef,
    unit: &UnitHandle<MsgMeta>,
) -> Result<u64, Outcome> {
    let url = format!("s3://{}/{}", o.bucket, o.key);
    let resp = match ctx
        .s3
        .get_object()
        .bucket(&o.bucket)
        .key(&o.key)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let text = crate::aws::sdk_error_text(&e);
            let service = e.as_service_error();
            return Err(match service {
                Some(se) if se.is_no_such_key() => Outcome::Poison {
                    reason: "object_missing",
                    detail: format!("{url}: no such object"),
                },
                _ if text.contains("AccessDenied") || text.contains("NoSuchBucket") => {
                    Outcome::Poison {
                        reason: "object_unreadable",
                        detail: format!("{url}: {text}"),
                    }
                }
                _ => Outcome::Retry(format!("downloading {url}: {text}")),
            });
        }
    };
    let reader = SyncIoBridge::new(resp.body.into_async_read());
    let mut em = Emitter::new(ctx.source.clone(), ctx.out.clone(), url.clone());
    let max_record = ctx.max_record;
    // The unit handle cannot cross to the blocking thread, a token-minting clone can.
    let minter = unit.minter();
    let res = tokio::task::spawn_blocking(move || {
        let stream = decode::open_stream(reader).map_err(decode::ScanError::Io)?;
        let mut scanner = Scanner::new(stream, 0, max_record);
        let r = em.drain(&mut scanner, &minter);
        let skipped = em.finish();
        r.map(|()| (em.events, skipped))
    })
    .await;
    match res {
        Ok(Ok((events, _skipped))) => Ok(events),
        Ok(Err(e)) => {
            telemetry::bad_input(&ctx.source, e.reason());
            Err(match e {
                decode::ScanError::Io(io)
                    if io.kind() != std::io::ErrorKind::InvalidData
                        && io.kind() != std::io::ErrorKind::InvalidInput
                        && io.kind() != std::io::ErrorKind::UnexpectedEof =>
                {
                    Outcome::Retry(format!("reading {url}: {io}"))
                }
                e => Outcome::Poison {
                    reason: "not_cloudtrail",
                    detail: format!("{url}: {e}"),
                },
            })
        }
        Err(e) => Err(Outcome::Retry(format!(
            "decoder task for {url} failed: {e}"
        ))),
    }
}
