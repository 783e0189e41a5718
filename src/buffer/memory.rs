//! `buffer = { type = "memory", max_events = N }`: up to N events queued in front of the sink;
//! past that its input channel fills and the sources wait.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::Batch;
use crate::telemetry;

pub fn spawn(
    mut rx: mpsc::Receiver<Batch>,
    max_events: usize,
    sink: &str,
) -> (mpsc::Receiver<Batch>, JoinHandle<()>) {
    let (tx, out) = mpsc::channel::<Batch>(1);
    let sink = sink.to_string();
    let task = tokio::spawn(async move {
        let report =
            |held: usize| telemetry::gauge("buffer_events", &[("sink", &sink)], held as f64);
        let mut queue: VecDeque<Batch> = VecDeque::new();
        let mut held = 0usize;
        let mut open = true;
        loop {
            tokio::select! {
                b = rx.recv(), if open && held < max_events => match b {
                    Some(b) => {
                        held += b.len();
                        queue.push_back(b);
                        report(held);
                    }
                    None => open = false,
                },
                permit = tx.reserve(), if !queue.is_empty() => match (permit, queue.pop_front()) {
                    (Ok(p), Some(b)) => {
                        held -= b.len();
                        p.send(b);
                        report(held);
                    }
                    // The sink is gone: what is queued fails (its units are read again).
                    _ => break,
                },
                else => break,
            }
        }
    });
    (out, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ack::AckToken;
    use crate::core::event::{Event, EventData, Origin};
    use std::sync::Arc;

    fn batch(n: usize) -> Batch {
        let origin = Arc::new(Origin {
            source: "s".into(),
            location: "l".into(),
            trace: Default::default(),
            reread: None,
        });
        (0..n)
            .map(|_| {
                Event::new(
                    EventData {
                        raw: bytes::Bytes::from_static(b"{}"),
                        header: Default::default(),
                        record: None,
                        origin: origin.clone(),
                    },
                    AckToken::none(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn holds_up_to_max_events_then_pushes_back() {
        let (tx, rx) = mpsc::channel(1);
        let (mut out, task) = spawn(rx, 250, "memory-test");
        // Nobody reads `out`: one batch sits in its channel, 250 events in the queue, one batch
        // in the input channel; the next send waits.
        let mut sent = 0;
        for _ in 0..10 {
            match tokio::time::timeout(std::time::Duration::from_millis(100), tx.send(batch(50)))
                .await
            {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        assert_eq!(
            sent, 7,
            "1 in the output channel + 5 queued (250 events) + 1 in the input"
        );
        drop(tx);
        let mut got = 0;
        while let Some(b) = out.recv().await {
            got += b.len();
        }
        assert_eq!(got, 350);
        task.await.unwrap();
    }
}
