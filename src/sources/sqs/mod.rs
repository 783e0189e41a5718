//! `type = "sqs"`: CloudTrail objects announced on an SQS queue (S3 notifications, SNS,
//! EventBridge, CloudTrail's own notification), read from S3 and decoded like files.
//!
//! Each message is a unit: it is deleted only after every event of every object it announces
//! was delivered. While in flight its visibility is extended, so a slow sink never lets another
//! consumer take it. A message that fails is left alone: it comes back after its visibility
//! timeout and, past the queue's redrive limit, lands in the DLQ. Several processes on one
//! queue share the work.

pub mod message;
pub mod notification;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use self::message::{Context, MsgMeta, Outcome};
use crate::aws::{AwsAccess, sdk_error_text};
use crate::config::{FieldError, redact, units};
use crate::core::ack::{UnitDone, UnitHandle};
use crate::core::run::{SourceContext, SourceReport};
use crate::sources::util::kind::StartError;
use crate::sources::util::object::{KeyFilter, ObjectReader};
use crate::telemetry;

fn d_concurrency() -> usize {
    2
}
fn d_visibility() -> u32 {
    300
}
fn d_wait() -> u32 {
    20
}
fn d_true() -> bool {
    true
}
fn d_max_record() -> u64 {
    crate::decode::DEFAULT_MAX_RECORD_BYTES as u64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsSourceConfig {
    pub queue_url: String,
    /// `region`, `endpoint`, `assume_role` (taken out of the table first).
    #[serde(skip)]
    pub aws: AwsAccess,
    /// `validate_digests` and its keys (taken out of the table first): the digests the queue
    /// announces are checked.
    #[serde(skip)]
    pub digests: crate::sources::util::integrity::DigestOptions,
    /// Receivers polling the queue at once (each handles one message at a time).
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    /// Seconds a received message stays invisible; extended while it is in flight.
    #[serde(default = "d_visibility")]
    pub visibility_timeout: u32,
    /// Long-polling wait in seconds (at most 20).
    #[serde(default = "d_wait")]
    pub wait_time: u32,
    /// Delete messages once delivered (false: leave them, e.g. for a dry run).
    #[serde(default = "d_true")]
    pub delete_message: bool,
    /// Globs on object keys to read (default: every key but CloudTrail-Digest ones).
    #[serde(default)]
    pub key_include: Vec<String>,
    #[serde(default)]
    pub key_exclude: Vec<String>,
    #[serde(default = "d_max_record", deserialize_with = "units::size")]
    pub max_record_bytes: u64,
}

impl SqsSourceConfig {
    pub fn check(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if !self.queue_url.starts_with("http://") && !self.queue_url.starts_with("https://") {
            errs.push(FieldError::new(
                &["queue_url"],
                "must be the queue's URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            errs.push(FieldError::new(&["concurrency"], "must be from 1 to 256"));
        }
        if self.wait_time > 20 {
            errs.push(FieldError::new(
                &["wait_time"],
                "SQS long polling waits at most 20 seconds",
            ));
        }
        if !(1..=43_200).contains(&self.visibility_timeout) {
            errs.push(FieldError::new(
                &["visibility_timeout"],
                "must be from 1 to 43200 seconds (12 hours)",
            ));
        }
        if let Err(e) = KeyFilter::new(&self.key_include, &self.key_exclude) {
            errs.push(e);
        }
        errs
    }
}

pub fn spawn(
    cfg: SqsSourceConfig,
    ctx: SourceContext,
) -> Result<JoinHandle<SourceReport>, StartError> {
    let keys = KeyFilter::new(&cfg.key_include, &cfg.key_exclude)?;
    Ok(tokio::spawn(run(cfg, ctx, keys)))
}

struct Shared {
    cfg: SqsSourceConfig,
    sqs: aws_sdk_sqs::Client,
    name: Arc<str>,
    /// Messages received and not yet deleted or released (the in-flight gauge).
    in_flight: Arc<std::sync::atomic::AtomicI64>,
}

impl Shared {
    async fn delete(&self, m: &MsgMeta) {
        if !self.cfg.delete_message {
            return;
        }
        for attempt in 1..=3 {
            match self
                .sqs
                .delete_message()
                .queue_url(&self.cfg.queue_url)
                .receipt_handle(&m.receipt_handle)
                .send()
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(source = %self.name, message_id = %m.message_id, attempt, error = %sdk_error_text(&e), "deleting a delivered message failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        telemetry::count("sqs_delete_errors_total", &[("component", &self.name)]);
        tracing::error!(source = %self.name, message_id = %m.message_id, "could not delete a delivered message; it will be received and delivered again (a duplicate, not a loss)");
    }

    /// Keep a message invisible while its events are in flight.
    fn extend_visibility(
        self: &Arc<Self>,
        receipt: String,
        message_id: String,
        done: CancellationToken,
    ) {
        let me = self.clone();
        let vt = me.cfg.visibility_timeout;
        let in_flight = InFlight::new(&me.in_flight);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            // Renew at half the timeout, so a slow renewal still lands before the message reappears.
            let every = Duration::from_millis(u64::from(vt) * 500).max(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let r = me
                    .sqs
                    .change_message_visibility()
                    .queue_url(&me.cfg.queue_url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(vt as i32)
                    .send()
                    .await;
                if let Err(e) = r {
                    tracing::warn!(source = %me.name, message_id, error = %sdk_error_text(&e), "extending the visibility of an in-flight message failed; another consumer may receive it (a duplicate, not a loss)");
                }
            }
        });
    }
}

/// One message counted in flight while this lives.
struct InFlight(Arc<std::sync::atomic::AtomicI64>);

impl InFlight {
    fn new(n: &Arc<std::sync::atomic::AtomicI64>) -> InFlight {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Counts {
    events: u64,
    poison: u64,
    /// `--once` gave up on a queue it cannot read.
    fatal: Option<String>,
}

/// Consecutive receive failures after which a `--once` run gives up (a daemon keeps trying:
/// credentials get rotated, networks come back).
const ONCE_RECEIVE_ATTEMPTS: u32 = 3;

async fn receiver(
    shared: Arc<Shared>,
    ctx: Arc<Context>,
    units: mpsc::UnboundedSender<UnitDone<MsgMeta>>,
    once: bool,
    shutdown: CancellationToken,
) -> Counts {
    let mut counts = Counts::default();
    let wait = if once {
        1
    } else {
        shared.cfg.wait_time.min(20) as i32
    };
    let mut failures = 0u32;
    loop {
        let recv = shared
            .sqs
            .receive_message()
            .queue_url(&shared.cfg.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .visibility_timeout(shared.cfg.visibility_timeout as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let out = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = recv => r,
        };
        let msgs = match out {
            Ok(o) => o.messages.unwrap_or_default(),
            Err(e) => {
                failures += 1;
                telemetry::count("sqs_receive_errors_total", &[("component", &shared.name)]);
                let text = sdk_error_text(&e);
                if once && failures >= ONCE_RECEIVE_ATTEMPTS {
                    tracing::error!(source = %shared.name, queue = %redact::url(&shared.cfg.queue_url), attempts = failures, error = %text, "cannot receive from the queue; giving up (--once)");
                    counts.fatal = Some(format!(
                        "cannot receive from {}: {text}",
                        redact::url(&shared.cfg.queue_url)
                    ));
                    break;
                }
                tracing::warn!(source = %shared.name, queue = %redact::url(&shared.cfg.queue_url), attempt = failures, error = %text, "receiving from the queue failed; retrying in 5 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(if once { 1 } else { 5 })) => continue,
                }
            }
        };
        failures = 0;
        if msgs.is_empty() && once {
            break;
        }
        for m in msgs {
            handle_message(&shared, &ctx, &units, m, &mut counts).await;
        }
    }
    counts
}

/// One received message: its visibility kept extended while it is read, its objects read
/// into one unit; bad input is left on the queue for its redrive policy.
async fn handle_message(
    shared: &Arc<Shared>,
    ctx: &Context,
    units: &mpsc::UnboundedSender<UnitDone<MsgMeta>>,
    m: aws_sdk_sqs::types::Message,
    counts: &mut Counts,
) {
    let (Some(id), Some(receipt)) = (m.message_id.clone(), m.receipt_handle.clone()) else {
        return;
    };
    let receive_count: u32 = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let done = CancellationToken::new();
    let meta = MsgMeta {
        message_id: id.clone(),
        receipt_handle: receipt.clone(),
        receive_count,
        done: done.clone(),
    };
    let unit = UnitHandle::new(meta, units.clone());
    shared.extend_visibility(receipt, id.clone(), done.clone());
    let body = m.body.unwrap_or_default();
    match message::process(ctx, &body, &unit).await {
        Outcome::Read { objects, events } => {
            counts.events += events;
            telemetry::add(
                "events_received_total",
                &[("component", &shared.name)],
                events,
            );
            tracing::debug!(source = %shared.name, message_id = %id, objects, events, "message read");
            unit.seal();
        }
        Outcome::Nothing(what) => {
            tracing::debug!(source = %shared.name, message_id = %id, "{what}: nothing to read; message deleted");
            unit.seal();
        }
        Outcome::Poison { reason, detail } => {
            counts.poison += 1;
            telemetry::bad_input(&shared.name, reason);
            tracing::error!(source = %shared.name, message_id = %id, receive_count, reason, "{detail}; message left on the queue (after its redrive limit it goes to the DLQ), the other messages go on");
            done.cancel();
            unit.abandon();
        }
        Outcome::Retry(detail) => {
            telemetry::count("sqs_message_retries_total", &[("component", &shared.name)]);
            tracing::warn!(source = %shared.name, message_id = %id, receive_count, "{detail}; the message comes back after its visibility timeout");
            done.cancel();
            unit.abandon();
        }
    }
}

type Announce = Option<mpsc::UnboundedSender<(String, String)>>;

/// `validate_digests`: the task checking the digests the queue announces, and where to tell it.
fn digest_checks(
    cfg: &SqsSourceConfig,
    ctx: &SourceContext,
    s3: &aws_sdk_s3::Client,
) -> (Announce, Option<tokio::task::JoinHandle<()>>) {
    use crate::sources::util::integrity;
    if !cfg.digests.validate_digests {
        return (None, None);
    }
    let keys = match integrity::keys(&cfg.digests.public_keys) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(source = %ctx.name, error = %e, "digest validation is off: cannot read the public keys");
            return (None, None);
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let task = integrity::spawn(
        ctx.name.clone(),
        integrity::Checks::Announced {
            rx,
            client: s3.clone(),
            keys,
        },
        cfg.digests.fetch_public_keys.then(|| cfg.aws.clone()),
        ctx.out.clone(),
        ctx.once,
        ctx.shutdown.clone(),
    );
    (Some(tx), Some(task))
}

async fn run(cfg: SqsSourceConfig, ctx: SourceContext, keys: KeyFilter) -> SourceReport {
    let access = cfg.aws.clone();
    let in_flight = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let weak = Arc::downgrade(&in_flight);
    telemetry::gauge_fn(
        "sqs_messages_in_flight",
        &[("component", &ctx.name)],
        Box::new(move || Some(weak.upgrade()?.load(Ordering::Relaxed) as f64)),
    );
    let shared = Arc::new(Shared {
        sqs: access.sqs().await,
        cfg: cfg.clone(),
        name: ctx.name.clone(),
        in_flight,
    });
    let s3 = access.s3().await;
    let (digests, integrity) = digest_checks(&cfg, &ctx, &s3);
    let mctx = Arc::new(Context {
        reader: ObjectReader {
            source: ctx.name.clone(),
            out: ctx.out.clone(),
            s3,
            max_record: usize::try_from(cfg.max_record_bytes).unwrap_or(usize::MAX),
        },
        keys,
        digests,
    });
    drop(ctx.out);
    let (unit_tx, mut unit_rx) = mpsc::unbounded_channel::<UnitDone<MsgMeta>>();
    let mut receivers = JoinSet::new();
    for _ in 0..cfg.concurrency {
        receivers.spawn(receiver(
            shared.clone(),
            mctx.clone(),
            unit_tx.clone(),
            ctx.once,
            ctx.shutdown.clone(),
        ));
    }
    drop(unit_tx);
    tracing::info!(source = %ctx.name, queue = %redact::url(&cfg.queue_url), receivers = cfg.concurrency, once = ctx.once, "sqs source started");
    let mut report = SourceReport::default();
    loop {
        tokio::select! {
            r = receivers.join_next() => match r {
                Some(Ok(c)) => {
                    report.events += c.events;
                    report.bad_inputs += c.poison;
                    if c.fatal.is_some() {
                        report.fatal = c.fatal;
                    }
                }
                Some(Err(e)) => report.fatal = Some(format!("receiver task failed: {e}")),
                None => break,
            },
            Some(d) = unit_rx.recv() => settle(&shared, d, &mut report).await,
        }
    }
    // Receivers are done: dropping the last handle on the output lets sinks flush now; then
    // wait for the messages in flight.
    drop(mctx);
    loop {
        tokio::select! {
            d = unit_rx.recv() => match d {
                Some(d) => settle(&shared, d, &mut report).await,
                None => break,
            },
            _ = ctx.hard_stop.cancelled() => {
                report.units_unresolved = 1;
                break;
            }
        }
    }
    if let Some(h) = integrity {
        // It ends once the receivers (which announce digests to it) are gone.
        let _ = h.await;
    }
    tracing::info!(source = %ctx.name, events = report.events, messages_deleted = report.units_committed, messages_failed = report.units_failed, poison = report.bad_inputs, "sqs source stopped");
    report
}

async fn settle(shared: &Shared, d: UnitDone<MsgMeta>, report: &mut SourceReport) {
    // Poison and transient failures were logged (and their token cancelled) when they happened.
    let reported = d.meta.done.is_cancelled();
    d.meta.done.cancel();
    if d.delivered {
        report.units_committed += 1;
        shared.delete(&d.meta).await;
    } else {
        report.units_failed += 1;
        if !reported {
            tracing::warn!(source = %shared.name, message_id = %d.meta.message_id, receive_count = d.meta.receive_count, "events of this message were not all delivered; it is not deleted and comes back after its visibility timeout");
        }
    }
}

/// The `sqs` source kind (registered in `sources::KINDS`).
pub const KIND: crate::sources::util::kind::SourceKind = crate::sources::util::kind::SourceKind {
    name: "sqs",
    keys: crate::aws::AwsAccess::KEYS,
    parse: |mut table, digests| {
        let aws = crate::aws::AwsAccess::take(&mut table)?;
        crate::config::from_table::<SqsSourceConfig>(table)
            .map(|c| std::sync::Arc::new(SqsSourceConfig { aws, digests, ..c }) as _)
    },
};

impl crate::sources::util::kind::SourceParts for SqsSourceConfig {
    fn check_own(&self) -> Vec<crate::config::FieldError> {
        self.check()
    }
    fn digests(&self) -> &crate::sources::util::integrity::DigestOptions {
        &self.digests
    }
    fn aws_access(&self) -> Option<&crate::aws::AwsAccess> {
        Some(&self.aws)
    }
    fn start(self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError> {
        spawn(self, ctx)
    }
}
