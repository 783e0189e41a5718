//! The machinery every sink shares: batching (max events, max bytes, max age), bounded
//! concurrency, retries with exponential backoff and full jitter (`backon`), the
//! retryable/permanent split, per-item partial failures, and acknowledgement.
//!
//! A sink only implements `SinkService::send` for one batch; everything else lives here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::adaptive::Adaptive;
use super::health::SinkHealth;
use super::rate_limit::{RateLimitConfig, RateLimiter};
use crate::config::{FieldError, from_table, units};
use crate::core::Batch;
use crate::core::event::Event;
use crate::telemetry;
use crate::telemetry::otel::DeliverSpan;

pub use crate::core::send::{ItemError, SendError};

/// A sink's transport: send one batch. `Ok(errors)` lists the events that failed (none: all
/// delivered); `Err` fails the whole batch.
pub trait SinkService: Send + Sync + 'static {
    fn send(
        &self,
        events: &[Event],
    ) -> impl Future<Output = Result<Vec<ItemError>, SendError>> + Send;
    /// Called once after the last batch (close files, flush buffers).
    fn finish(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_bytes: u64,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// None: no limit on attempts (bounded by `max_duration`).
    pub max_retries: Option<usize>,
    pub max_duration: Duration,
}

#[derive(Debug, Clone)]
pub struct SinkCommon {
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub concurrency: usize,
    /// The sink that receives this sink's permanently failed events (`dead_letter = "NAME"`).
    pub dead_letter: Option<String>,
    pub rate_limit: Option<RateLimitConfig>,
    /// `concurrency = "adaptive"`: AIMD up to this many batches in flight.
    pub adaptive_max: Option<usize>,
}

/// What the topology hands a sink when it starts: runtime wiring, apart from the config the
/// user wrote (`SinkCommon`).
#[derive(Clone, Default)]
pub struct SinkWiring {
    /// The dead-letter sink's input, when `dead_letter` names one.
    pub dead_letter_tx: Option<mpsc::Sender<Batch>>,
    /// Cancelled when this sink cannot start: the pipeline stops.
    pub stop_pipeline: Option<tokio_util::sync::CancellationToken>,
    /// Where a sink that cannot start says so (the pipeline's outcome).
    pub outcome: Option<Arc<crate::core::run::Outcome>>,
    /// Where `/ready` reads the sink's failing clock.
    pub health: Option<Arc<crate::core::run::Health>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BatchKeys {
    max_events: Option<usize>,
    #[serde(default, deserialize_with = "opt_size")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryKeys {
    #[serde(default, deserialize_with = "opt_duration")]
    initial_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    max_backoff: Option<Duration>,
    max_retries: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    max_duration: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}
fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    units::size(d).map(Some)
}

impl SinkCommon {
    /// The keys every sink takes out of its table before its own are read (`buffer` goes to
    /// the topology, which puts the buffer in front of the driver).
    pub const KEYS: &'static [&'static str] = &[
        "inputs",
        "batch",
        "retry",
        "buffer",
        "rate_limit",
        "dead_letter",
        "concurrency",
        "max_concurrency",
    ];

    /// Take `batch`, `retry`, `rate_limit`, `dead_letter` and `concurrency` out of a sink's table, filling defaults from
    /// `defaults` (each sink type has its own).
    pub fn take(table: &mut toml::Table, defaults: SinkCommon) -> Result<SinkCommon, FieldError> {
        let mut c = defaults;
        let sub = |table: &mut toml::Table, key: &str| -> Result<toml::Table, FieldError> {
            match table.remove(key) {
                None => Ok(toml::Table::new()),
                Some(toml::Value::Table(t)) => Ok(t),
                Some(_) => Err(FieldError::new(&[key], format!("`{key}` must be a table"))),
            }
        };
        let b: BatchKeys = from_table(sub(table, "batch")?).map_err(|e| e.under("batch"))?;
        let r: RetryKeys = from_table(sub(table, "retry")?).map_err(|e| e.under("retry"))?;
        c.batch.max_events = b.max_events.unwrap_or(c.batch.max_events);
        c.batch.max_bytes = b.max_bytes.unwrap_or(c.batch.max_bytes);
        c.batch.timeout = b.timeout.unwrap_or(c.batch.timeout);
        c.retry.initial_backoff = r.initial_backoff.unwrap_or(c.retry.initial_backoff);
        c.retry.max_backoff = r.max_backoff.unwrap_or(c.retry.max_backoff);
        c.retry.max_retries = r.max_retries.or(c.retry.max_retries);
        c.retry.max_duration = r.max_duration.unwrap_or(c.retry.max_duration);
        let rl = sub(table, "rate_limit")?;
        if !rl.is_empty() {
            let r: RateLimitConfig = from_table(rl).map_err(|e| e.under("rate_limit"))?;
            r.check()?;
            c.rate_limit = Some(r);
        }
        match table.remove("dead_letter") {
            None => {}
            Some(toml::Value::String(n)) => c.dead_letter = Some(n),
            Some(_) => {
                return Err(FieldError::new(
                    &["dead_letter"],
                    "`dead_letter` must name a sink",
                ));
            }
        }
        match table.remove("concurrency") {
            None => {}
            Some(toml::Value::Integer(n)) if (1..=1024).contains(&n) => c.concurrency = n as usize,
            Some(toml::Value::String(s)) if s == "adaptive" => {
                c.adaptive_max = Some(32);
            }
            Some(_) => {
                return Err(FieldError::new(
                    &["concurrency"],
                    "`concurrency` must be a whole number from 1 to 1024, or \"adaptive\"",
                ));
            }
        }
        match table.remove("max_concurrency") {
            None => {}
            Some(toml::Value::Integer(n))
                if (1..=1024).contains(&n) && c.adaptive_max.is_some() =>
            {
                c.adaptive_max = Some(n as usize);
            }
            Some(_) => {
                return Err(FieldError::new(
                    &["max_concurrency"],
                    "goes with concurrency = \"adaptive\": a whole number from 1 to 1024",
                ));
            }
        }
        if c.batch.max_events == 0 {
            return Err(FieldError::new(
                &["batch", "max_events"],
                "must be at least 1",
            ));
        }
        if c.retry.initial_backoff.is_zero() || c.retry.max_backoff < c.retry.initial_backoff {
            return Err(FieldError::new(
                &["retry", "max_backoff"],
                "need 0 < initial_backoff <= max_backoff",
            ));
        }
        Ok(c)
    }
}

impl Default for SinkCommon {
    fn default() -> Self {
        SinkCommon {
            batch: BatchConfig {
                max_events: 1000,
                max_bytes: 10 << 20,
                timeout: Duration::from_secs(1),
            },
            retry: RetryConfig {
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(60),
                max_retries: None,
                max_duration: Duration::from_secs(15 * 60),
            },
            concurrency: 1,
            dead_letter: None,
            rate_limit: None,
            adaptive_max: None,
        }
    }
}

/// Run a sink until its input closes and every batch is resolved.
pub async fn run<S: SinkService>(
    name: Arc<str>,
    mut rx: mpsc::Receiver<Batch>,
    svc: Arc<S>,
    common: SinkCommon,
    wiring: SinkWiring,
) {
    let slots = Slots::new(&common);
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut cur: Vec<Event> = Vec::new();
    let mut cur_bytes: u64 = 0;
    let mut deadline: Option<Instant> = None;
    let ctx = Arc::new(Ctx {
        name: name.clone(),
        retry: common.retry.clone(),
        dead_letter: common.dead_letter.clone().zip(wiring.dead_letter_tx),
        limiter: common.rate_limit.as_ref().map(RateLimiter::new),
        adaptive: slots.adaptive(),
        health: {
            let h = SinkHealth::new(name.clone());
            if let Some(board) = &wiring.health {
                let clock: std::sync::Weak<dyn crate::core::run::FailingClock> =
                    Arc::downgrade(&h) as _;
                board.watch_sink(&name, clock);
            }
            h
        },
    });
    let launch = |inflight: &mut JoinSet<()>, permit: Slot, events| {
        let (c, s) = (ctx.clone(), svc.clone());
        inflight.spawn(async move {
            deliver(&c, &*s, events).await;
            drop(permit);
        });
    };
    loop {
        let full = cur.len() >= common.batch.max_events || cur_bytes >= common.batch.max_bytes;
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if !cur.is_empty() && (full || expired) {
            let Some(permit) = slots.acquire().await else {
                break;
            };
            let events = take_batch(&mut cur, &mut cur_bytes, &common.batch);
            if cur.is_empty() {
                deadline = None;
            }
            launch(&mut inflight, permit, events);
            continue;
        }
        tokio::select! {
            b = rx.recv() => match b {
                None => break,
                Some(batch) => {
                    for e in batch {
                        cur_bytes += event_bytes(&e);
                        cur.push(e);
                    }
                    if deadline.is_none() && !cur.is_empty() {
                        deadline = Some(Instant::now() + common.batch.timeout);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
        }
    }
    while !cur.is_empty() {
        let events = take_batch(&mut cur, &mut cur_bytes, &common.batch);
        let Some(permit) = slots.acquire().await else {
            break;
        };
        launch(&mut inflight, permit, events);
    }
    while inflight.join_next().await.is_some() {}
    svc.finish().await;
}

fn event_bytes(e: &Event) -> u64 {
    e.data.raw.len() as u64 + 1
}

/// Take the first batch's worth of events (at least one) off the front of `cur`.
fn take_batch(cur: &mut Vec<Event>, cur_bytes: &mut u64, cfg: &BatchConfig) -> Vec<Event> {
    let mut n = 0;
    let mut bytes = 0;
    for e in cur.iter().take(cfg.max_events) {
        let b = event_bytes(e);
        if n > 0 && bytes + b > cfg.max_bytes {
            break;
        }
        bytes += b;
        n += 1;
    }
    let rest = cur.split_off(n);
    *cur_bytes -= bytes;
    std::mem::replace(cur, rest)
}

/// The places for batches in flight: a fixed number, or an adaptive limit.
enum Slots {
    Fixed(Arc<Semaphore>),
    Adaptive(Arc<Adaptive>),
}

/// One batch's place in flight, held until it is resolved.
enum Slot {
    Fixed(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit),
    Adaptive(#[allow(dead_code)] super::adaptive::Permit),
}

impl Slots {
    fn new(common: &SinkCommon) -> Self {
        match common.adaptive_max {
            Some(max) => Slots::Adaptive(Arc::new(Adaptive::new(max))),
            None => Slots::Fixed(Arc::new(Semaphore::new(common.concurrency))),
        }
    }

    fn adaptive(&self) -> Option<Arc<Adaptive>> {
        match self {
            Slots::Adaptive(a) => Some(a.clone()),
            Slots::Fixed(_) => None,
        }
    }

    async fn acquire(&self) -> Option<Slot> {
        match self {
            Slots::Fixed(s) => s.clone().acquire_owned().await.ok().map(Slot::Fixed),
            Slots::Adaptive(a) => a.acquire().await.map(Slot::Adaptive),
        }
    }
}

/// Permanently rejected events of one batch logged one by one; the rest are summed up.
const LOGGED_REJECTIONS: usize = 5;

/// What delivering a batch needs besides the sink.
struct Ctx {
    name: Arc<str>,
    retry: RetryConfig,
    /// The dead-letter sink's name and input.
    dead_letter: Option<(String, mpsc::Sender<Batch>)>,
    limiter: Option<RateLimiter>,
    adaptive: Option<Arc<Adaptive>>,
    health: Arc<SinkHealth>,
}

/// The event with its failure attached, for a dead-letter sink: the original record with a
/// leading `trailship_dead_letter` object (sink, error, time, attempts), so it stays a
/// CloudTrail record that templates and filters read as before. It carries the original's
/// acknowledgement share: the unit is committed once the dead-letter sink delivers it.
fn dead_letter_event(e: Event, sink: &str, error: &str, attempts: usize) -> Event {
    let meta = serde_json::json!({
        "sink": sink,
        "error": error,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "attempts": attempts,
    });
    let raw = &e.data.raw;
    let mut out = Vec::with_capacity(raw.len() + 256);
    out.extend_from_slice(b"{\"trailship_dead_letter\":");
    out.extend_from_slice(meta.to_string().as_bytes());
    match raw.first() {
        Some(b'{') if raw.get(1) == Some(&b'}') => out.push(b'}'),
        Some(b'{') => {
            out.push(b',');
            out.extend_from_slice(&raw[1..]);
        }
        _ => {
            out.extend_from_slice(b",\"record\":");
            out.extend_from_slice(raw);
            out.push(b'}');
        }
    }
    let raw = bytes::Bytes::from(out);
    let header = crate::core::event::parse_header(&raw).unwrap_or_default();
    Event {
        data: crate::core::event::EventData {
            raw,
            header,
            record: None,
            origin: e.data.origin.clone(),
        },
        ack: e.ack,
    }
}

/// Events this sink gave up on, with why: to the dead-letter sink when there is one (they
/// count as delivered once it delivers them), else failed (their units are not committed).
async fn give_up(ctx: &Ctx, failed: Vec<(Event, String)>, attempts: usize, what: &str) {
    if failed.is_empty() {
        return;
    }
    let name: &str = &ctx.name;
    let n = failed.len();
    let target = ctx.dead_letter.as_ref().map(|(t, _)| t.as_str());
    for (e, m) in failed.iter().take(LOGGED_REJECTIONS) {
        let next = match target {
            Some(t) => format!("sent to the dead-letter sink `{t}`"),
            None => "its unit will not be committed and will be read again later".into(),
        };
        tracing::error!(sink = name, event_id = e.data.event_id().unwrap_or("-"), origin = %e.data.origin.location, attempts, error = %m, "{what}; {next}");
    }
    if n > LOGGED_REJECTIONS {
        tracing::error!(
            sink = name,
            more = n - LOGGED_REJECTIONS,
            dead_letter = target.unwrap_or("-"),
            "more events of this batch failed for good"
        );
    }
    match &ctx.dead_letter {
        Some((target, tx)) => {
            telemetry::add(
                "events_dead_lettered_total",
                &[("component", name)],
                n as u64,
            );
            let batch = failed
                .into_iter()
                .map(|(e, m)| dead_letter_event(e, name, &m, attempts))
                .collect();
            // A closed dead-letter input drops the batch: its shares fail, nothing is lost.
            if tx.send(batch).await.is_err() {
                tracing::error!(sink = name, dead_letter = %target, "the dead-letter sink is gone; the events' units will not be committed");
            }
        }
        None => {
            telemetry::add("events_failed_total", &[("component", name)], n as u64);
            failed.into_iter().for_each(|(e, _)| e.fail());
        }
    }
}

/// Count delivered events (and their bytes) and tell the sink's health.
fn sent(ctx: &Ctx, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let labels = [("component", &*ctx.name)];
    telemetry::add("events_sent_total", &labels, events.len() as u64);
    telemetry::add(
        "bytes_sent_total",
        &labels,
        events.iter().map(|e| e.data.raw.len() as u64).sum(),
    );
    ctx.health.delivered(events);
}

/// Deliver one batch: retry what is retryable, ack what was delivered, give up on the rest.
async fn deliver<S: SinkService>(ctx: &Ctx, svc: &S, events: Vec<Event>) {
    let n = events.len();
    let span = DeliverSpan::start(&ctx.name, events.iter().map(|e| &e.data.origin.trace));
    let start = Instant::now();
    let (attempts, outcome) = attempt_delivery(ctx, svc, events).await;
    ctx.health.delivery.observe(start.elapsed().as_secs_f64());
    if attempts > 1 {
        ctx.health.retry_done();
    }
    span.end(n, attempts, outcome);
}

/// One request: wait for the rate limit, send, and tell the health and the adaptive
/// concurrency how it went.
async fn send_once<S: SinkService>(
    ctx: &Ctx,
    svc: &S,
    events: &[Event],
) -> Result<Vec<ItemError>, SendError> {
    if let Some(l) = &ctx.limiter {
        l.acquire(events.len(), events.iter().map(event_bytes).sum())
            .await;
    }
    let sent_at = Instant::now();
    let result = svc.send(events).await;
    ctx.health.request.observe(sent_at.elapsed().as_secs_f64());
    if let Some(a) = &ctx.adaptive {
        let overloaded = match &result {
            Err(e) => matches!(e, SendError::Retryable { .. }),
            Ok(items) => items
                .iter()
                .any(|i| matches!(i.error, SendError::Retryable { .. })),
        };
        a.observe(!overloaded, sent_at.elapsed());
    }
    result
}

/// A batch after a partly failed request: delivered, permanently failed, to retry.
struct Split {
    delivered: Vec<Event>,
    failed: Vec<(Event, String)>,
    again: Vec<Event>,
    /// The first retryable error, and the last `Retry-After` among them.
    first_err: Option<SendError>,
    retry_after: Option<Duration>,
}

impl Split {
    fn of(events: Vec<Event>, errors: Vec<ItemError>) -> Split {
        let mut status: Vec<Option<SendError>> = vec![None; events.len()];
        for ie in errors {
            if let Some(s) = status.get_mut(ie.index) {
                *s = Some(ie.error);
            }
        }
        let mut split = Split {
            delivered: Vec::new(),
            failed: Vec::new(),
            again: Vec::new(),
            first_err: None,
            retry_after: None,
        };
        for (e, st) in events.into_iter().zip(status) {
            match st {
                None => split.delivered.push(e),
                Some(SendError::Permanent(m)) => split.failed.push((e, m)),
                Some(err @ SendError::Retryable { .. }) => {
                    if let SendError::Retryable {
                        retry_after: Some(d),
                        ..
                    } = &err
                    {
                        split.retry_after = Some(*d);
                    }
                    split.first_err.get_or_insert(err);
                    split.again.push(e);
                }
            }
        }
        split
    }
}

/// Send until delivered or given up; returns the attempts made and the outcome.
async fn attempt_delivery<S: SinkService>(
    ctx: &Ctx,
    svc: &S,
    mut events: Vec<Event>,
) -> (usize, &'static str) {
    let name: &str = &ctx.name;
    let retry = &ctx.retry;
    let start = Instant::now();
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(retry.initial_backoff)
        .with_max_delay(retry.max_backoff)
        .with_factor(2.0)
        .without_max_times()
        .build();
    let mut attempt = 0usize;
    loop {
        attempt += 1;
        let (err, retry_after) = match send_once(ctx, svc, &events).await {
            Ok(errors) if errors.is_empty() => {
                sent(ctx, &events);
                telemetry::count("batches_sent_total", &[("component", name)]);
                events.into_iter().for_each(Event::ack);
                return (attempt, "delivered");
            }
            Ok(errors) => {
                let split = Split::of(events, errors);
                sent(ctx, &split.delivered);
                split.delivered.into_iter().for_each(Event::ack);
                let partial = !split.failed.is_empty();
                give_up(ctx, split.failed, attempt, "event rejected permanently").await;
                events = split.again;
                match split.first_err {
                    None if partial => return (attempt, "partly rejected"),
                    None => return (attempt, "delivered"),
                    Some(e) => (e, split.retry_after),
                }
            }
            Err(SendError::Permanent(m)) => {
                let failed = events.into_iter().map(|e| (e, m.clone())).collect();
                give_up(ctx, failed, attempt, "batch rejected permanently").await;
                return (attempt, "rejected");
            }
            Err(e @ SendError::Retryable { .. }) => {
                let after = match &e {
                    SendError::Retryable { retry_after, .. } => *retry_after,
                    SendError::Permanent(_) => None,
                };
                (e, after)
            }
        };
        let ceiling = backoff.next().unwrap_or(retry.max_backoff);
        // Full jitter: anywhere between zero and the exponential ceiling.
        let delay = retry_after.unwrap_or_else(|| ceiling.mul_f64(fastrand::f64()));
        let out_of_attempts = retry.max_retries.is_some_and(|m| attempt > m);
        let out_of_time = start.elapsed() + delay > retry.max_duration;
        if out_of_attempts || out_of_time {
            let m = format!("giving up after {attempt} attempts: {}", err.message());
            let failed = events.into_iter().map(|e| (e, m.clone())).collect();
            give_up(ctx, failed, attempt, "giving up after retries").await;
            return (attempt, "gave up");
        }
        if attempt == 1 {
            ctx.health.retrying();
        }
        ctx.health.failed();
        telemetry::count("sink_retries_total", &[("component", name)]);
        tracing::warn!(
            sink = name,
            events = events.len(),
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            error = err.message(),
            "send failed; will retry"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ack::UnitHandle;
    use crate::core::event::{EventData, Header, Origin};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Flaky {
        calls: AtomicUsize,
        fail_first: usize,
        permanent_index: Option<usize>,
        seen: Mutex<Vec<usize>>,
    }

    impl SinkService for Flaky {
        async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(events.len());
            if n < self.fail_first {
                return Err(SendError::retryable("down"));
            }
            Ok(self
                .permanent_index
                .map(|i| ItemError {
                    index: i,
                    error: SendError::Permanent("bad".into()),
                })
                .into_iter()
                .collect())
        }
    }

    fn events(
        n: usize,
    ) -> (
        Vec<Event>,
        tokio::sync::mpsc::UnboundedReceiver<crate::core::ack::UnitDone<()>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let unit = UnitHandle::new((), tx);
        let origin = Arc::new(Origin {
            source: "t".into(),
            location: "x".into(),
            trace: Default::default(),
            reread: None,
        });
        let v = (0..n)
            .map(|_| {
                Event::new(
                    EventData {
                        raw: bytes::Bytes::from_static(b"{}"),
                        header: Header::default(),
                        record: None,
                        origin: origin.clone(),
                    },
                    unit.token(),
                )
            })
            .collect();
        unit.seal();
        (v, rx)
    }

    fn common(max_events: usize) -> SinkCommon {
        let mut c = SinkCommon::default();
        c.batch.max_events = max_events;
        c.batch.timeout = Duration::from_millis(20);
        c.retry.initial_backoff = Duration::from_millis(1);
        c.retry.max_backoff = Duration::from_millis(4);
        c
    }

    #[tokio::test]
    async fn retries_then_acks_in_batches() {
        let svc = Arc::new(Flaky {
            calls: 0.into(),
            fail_first: 3,
            permanent_index: None,
            seen: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel(4);
        let (evs, mut done) = events(25);
        tx.send(evs).await.unwrap();
        drop(tx);
        run(
            "t".into(),
            rx,
            svc.clone(),
            common(10),
            SinkWiring::default(),
        )
        .await;
        assert!(done.recv().await.unwrap().delivered);
        let seen = svc.seen.lock().unwrap().clone();
        // 3 failed attempts of the first batch, then 10, 10, 5
        assert_eq!(seen, vec![10, 10, 10, 10, 10, 5]);
    }

    #[tokio::test]
    async fn permanent_item_failure_fails_unit_and_gives_up() {
        let svc = Arc::new(Flaky {
            calls: 0.into(),
            fail_first: 0,
            permanent_index: Some(1),
            seen: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel(4);
        let (evs, mut done) = events(3);
        tx.send(evs).await.unwrap();
        drop(tx);
        run("t".into(), rx, svc, common(10), SinkWiring::default()).await;
        assert!(!done.recv().await.unwrap().delivered);

        let svc = Arc::new(Flaky {
            calls: 0.into(),
            fail_first: usize::MAX,
            permanent_index: None,
            seen: Mutex::default(),
        });
        let mut c = common(10);
        c.retry.max_retries = Some(2);
        let (tx, rx) = mpsc::channel(4);
        let (evs, mut done) = events(3);
        tx.send(evs).await.unwrap();
        drop(tx);
        run("t".into(), rx, svc.clone(), c, SinkWiring::default()).await;
        assert!(!done.recv().await.unwrap().delivered);
        assert_eq!(svc.calls.load(Ordering::SeqCst), 3);
    }
}
