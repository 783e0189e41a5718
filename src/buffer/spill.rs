//! `buffer = { type = "spill" }`: a sink's input goes straight to its driver while the driver
//! keeps up. When the driver has not taken a batch for `SPILL_AFTER` (the sink is down, slow
//! or refusing), batches go to a disk buffer instead — acknowledged to their sources once
//! fsynced, so the sources and the pipeline's other sinks go on at their own pace — and the
//! disk buffer's reader replays them into the driver as it takes them. Once the reader has
//! read everything spilled, batches go straight to the driver again.
//!
//! Order is kept while the sink keeps up and within a spell of spilling; a batch at the end of
//! a spell may overtake the last spilled ones.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::disk::{self, Shared};
use super::{Attach, BufferError, WhenFull};
use crate::core::Batch;
use crate::telemetry;

/// How long the driver may leave a batch waiting before the sink spills.
const SPILL_AFTER: Duration = Duration::from_millis(200);

pub fn spawn(
    rx: mpsc::Receiver<Batch>,
    max_size: u64,
    reread: bool,
    at: Attach<'_>,
) -> Result<(mpsc::Receiver<Batch>, Vec<JoinHandle<()>>), BufferError> {
    let (out_tx, out_rx) = mpsc::channel(crate::core::CHANNEL_BATCHES);
    let (disk_tx, disk_rx) = mpsc::channel(crate::core::CHANNEL_BATCHES);
    let hard_stop = at.hard_stop.clone();
    let (shared, mut tasks) = disk::spawn_into(
        disk_rx,
        max_size,
        WhenFull::Block,
        reread,
        at,
        out_tx.clone(),
    )?;
    let router = Router {
        out: out_tx,
        disk: disk_tx,
        shared,
        hard_stop,
        spilled: 0,
    };
    tasks.push(tokio::spawn(router.run(rx)));
    Ok((out_rx, tasks))
}

struct Router {
    out: mpsc::Sender<Batch>,
    disk: mpsc::Sender<Batch>,
    shared: Arc<Shared>,
    hard_stop: CancellationToken,
    /// Events sent to the disk buffer.
    spilled: u64,
}

impl Router {
    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        // Events on disk from before a restart are replayed before new ones go past them.
        let mut spilling = !self.caught_up();
        loop {
            let batch = tokio::select! {
                b = rx.recv() => match b { Some(b) => b, None => break },
                _ = self.hard_stop.cancelled() => break,
            };
            if spilling && self.caught_up() {
                spilling = false;
                tracing::info!(sink = %self.shared.sink, "the sink has caught up with its spill: events go to it directly again");
            }
            let batch = if spilling {
                batch
            } else {
                match self.direct(batch).await {
                    Direct::Sent => continue,
                    Direct::Stop => break,
                    Direct::Behind(batch) => {
                        spilling = true;
                        tracing::warn!(sink = %self.shared.sink, after_ms = SPILL_AFTER.as_millis() as u64, "the sink is not taking events: spilling them to its disk buffer (the other sinks go on)");
                        telemetry::count("buffer_spills_total", &[("sink", &self.shared.sink)]);
                        batch
                    }
                }
            };
            self.spilled += batch.len() as u64;
            telemetry::add(
                "buffer_spilled_events_total",
                &[("sink", &self.shared.sink)],
                batch.len() as u64,
            );
            tokio::select! {
                r = self.disk.send(batch) => if r.is_err() { break },
                _ = self.hard_stop.cancelled() => break,
            }
        }
    }

    /// Everything spilled has been taken by the writer and read back by the reader.
    fn caught_up(&self) -> bool {
        self.shared.taken.load(Ordering::Acquire) == self.spilled
            && self.shared.caught_up.load(Ordering::Acquire)
    }

    async fn direct(&self, batch: Batch) -> Direct {
        let permit = tokio::select! {
            p = self.out.reserve() => p,
            _ = tokio::time::sleep(SPILL_AFTER) => return Direct::Behind(batch),
            _ = self.hard_stop.cancelled() => return Direct::Stop,
        };
        match permit {
            Ok(p) => {
                p.send(batch);
                Direct::Sent
            }
            // The driver is gone (the sink could not start): what is held fails.
            Err(_) => Direct::Stop,
        }
    }
}

enum Direct {
    Sent,
    Stop,
    Behind(Batch),
}
