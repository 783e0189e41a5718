//! From decoded records to events: compaction of pretty-printed records, header parsing,
//! acknowledgement shares, batching onto the source's output, and reporting of skipped
//! records (the first few with details, then one summary per input). Shared by every source.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::core::Fanout;
use crate::core::ack::Mint;
use crate::core::event::{Event, EventData, Origin, Reread, parse_header};
use crate::decode::{Item, ScanError, Scanner};
use crate::telemetry;
use crate::telemetry::otel::UnitSpan;

/// Events per batch sent downstream.
pub const BATCH: usize = 512;
/// Skipped records logged one by one per input; the rest are summarized.
const LOGGED: u32 = 3;

pub struct Emitter {
    out: Fanout,
    origin: Arc<Origin>,
    /// The trace span of reading this unit (ended by `finish`).
    span: UnitSpan,
    batch: Vec<Event>,
    /// Bytes of the records batched (counted when the batch is sent).
    batch_bytes: u64,
    pub events: u64,
    skipped: BTreeMap<&'static str, u64>,
    logged: u32,
}

impl Emitter {
    /// `location`: the file path or `s3://bucket/key` the records come from.
    pub fn new(source: Arc<str>, out: Fanout, location: String) -> Self {
        let span = UnitSpan::start(&source, &location);
        Emitter {
            out,
            origin: Arc::new(Origin {
                source,
                location,
                trace: span.context(),
                reread: None,
            }),
            span,
            batch: Vec::with_capacity(BATCH),
            batch_bytes: 0,
            events: 0,
            skipped: BTreeMap::new(),
            logged: 0,
        }
    }

    /// Records from a whole file that can be read again (see `Origin::reread`); `record_at`
    /// then numbers them. Before any record is emitted.
    pub fn rereadable(&mut self, reread: Reread) {
        if let Some(o) = Arc::get_mut(&mut self.origin) {
            o.reread = Some(reread);
        }
    }

    pub fn record(&mut self, raw: Bytes, unit: &impl Mint) {
        self.push(raw, unit, None);
    }

    /// A record of a rereadable file, numbered `n` (every record of the file counted).
    pub fn record_at(&mut self, raw: Bytes, unit: &impl Mint, n: u64) {
        let n = u32::try_from(n)
            .ok()
            .filter(|_| self.origin.reread.is_some());
        self.push(raw, unit, n);
    }

    fn push(&mut self, raw: Bytes, unit: &impl Mint, record: Option<u32>) {
        let raw = if crate::decode::spans_lines(&raw) {
            Bytes::from(crate::decode::compact(&raw))
        } else {
            raw
        };
        match parse_header(&raw) {
            Ok(header) => {
                if header.unrecognised {
                    telemetry::count("header_unparsed_total", &[]);
                }
                self.batch_bytes += raw.len() as u64;
                let data = EventData {
                    raw,
                    header,
                    record,
                    origin: self.origin.clone(),
                };
                self.batch.push(Event::new(data, unit.token()));
                self.events += 1;
                if self.batch.len() >= BATCH {
                    self.flush();
                }
            }
            Err(e) => self.skip(e.reason(), e.to_string()),
        }
    }

    pub fn skip(&mut self, reason: &'static str, detail: String) {
        *self.skipped.entry(reason).or_default() += 1;
        if self.logged < LOGGED {
            self.logged += 1;
            tracing::warn!(source = %self.origin.source, file = %self.origin.location, reason, "{detail}; skipped, the other records are kept");
        }
    }

    pub fn digest(&mut self) {
        telemetry::count("digest_files_total", &[("component", &self.origin.source)]);
        tracing::debug!(source = %self.origin.source, file = %self.origin.location, "CloudTrail digest file: not an event, skipped");
    }

    /// Send what is batched (from a blocking thread).
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            telemetry::add(
                "bytes_received_total",
                &[("component", &self.origin.source)],
                std::mem::take(&mut self.batch_bytes),
            );
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.out.send_blocking(b);
        }
    }

    /// Send the rest and report skipped records; returns how many were skipped.
    pub fn finish(&mut self) -> u64 {
        self.flush();
        let total: u64 = self.skipped.values().sum();
        for (reason, n) in &self.skipped {
            telemetry::add(
                "bad_input_total",
                &[("component", &self.origin.source), ("reason", reason)],
                *n,
            );
        }
        self.span.end(self.events, total);
        if total > u64::from(self.logged) {
            tracing::warn!(source = %self.origin.source, file = %self.origin.location, skipped = total, reasons = ?self.skipped, "records skipped in this input");
        }
        total
    }

    /// Emit everything a scanner yields into one unit; stops at the first stream error.
    pub fn drain<R: std::io::Read>(
        &mut self,
        scanner: &mut Scanner<R>,
        unit: &impl Mint,
    ) -> Result<(), ScanError> {
        loop {
            match scanner.next_item()? {
                None => return Ok(()),
                Some(Item::Record(raw)) => self.record(raw, unit),
                Some(Item::Skipped { reason, detail }) => self.skip(reason, detail),
                Some(Item::Digest) => self.digest(),
                Some(Item::Boundary(_)) => {}
            }
        }
    }
}
