//! One SQS message: what it announces, each object downloaded (streaming) and decoded by the
//! shared decoder, all its events in one unit that deletes the message when delivered.

use super::notification::{self, Notice, ObjectRef};
use crate::core::ack::UnitHandle;
use crate::sources::util::object::{KeyFilter, ObjectError, ObjectReader};

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

/// What reading a message needs: the object reader and the key filter.
pub struct Context {
    pub reader: ObjectReader,
    pub keys: KeyFilter,
    /// With `validate_digests`: announced digest objects go here, as (bucket, key).
    pub digests: Option<tokio::sync::mpsc::UnboundedSender<(String, String)>>,
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
    if let Some(tx) = &ctx.digests {
        for o in objects
            .iter()
            .filter(|o| o.key.contains("/CloudTrail-Digest/"))
        {
            let _ = tx.send((o.bucket.clone(), o.key.clone()));
        }
    }
    let wanted: Vec<ObjectRef> = objects
        .into_iter()
        .filter(|o| ctx.keys.wanted(&o.key))
        .collect();
    if wanted.is_empty() {
        return Outcome::Nothing(
            "no CloudTrail log objects among the announced keys (digests or excluded)".into(),
        );
    }
    let mut events = 0;
    for o in &wanted {
        match ctx.reader.read(&o.bucket, &o.key, unit).await {
            Ok(n) => events += n,
            Err(ObjectError::Poison { reason, detail }) => {
                return Outcome::Poison { reason, detail };
            }
            Err(ObjectError::Retry(detail)) => return Outcome::Retry(detail),
        }
    }
    Outcome::Read {
        objects: wanted.len(),
        events,
    }
}
