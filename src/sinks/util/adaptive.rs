//! `concurrency = "adaptive"`: how many batches a sink keeps in flight, found by AIMD — grow by
//! one per window of successful sends while latency stays near its baseline, halve on a sign
//! of overload (a retryable failure: 429, 503, a timeout, a refused connection), at most once
//! per window. The limit moves between 1 and `max_concurrency`.
//!
//! The limit is a semaphore's permits: growing adds one; shrinking forgets free permits and
//! records the rest as debt, paid by permits returned from batches in flight.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How far above its baseline latency may go before growth stops.
const LATENCY_TOLERANCE: f64 = 1.5;

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits to forget as they come back (the limit shrank below what is in flight).
    debt: usize,
    /// Successes counted toward the next increase.
    credit: f64,
    /// Slow-moving average of successful send latencies, in seconds.
    baseline: Option<f64>,
    /// No second decrease before this (one window after the last).
    calm_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Adaptive {
    sem: Arc<Semaphore>,
    max: usize,
    state: Mutex<State>,
}

impl Adaptive {
    pub fn new(max: usize) -> Self {
        Adaptive {
            sem: Arc::new(Semaphore::new(1)),
            max: max.max(1),
            state: Mutex::new(State {
                limit: 1,
                debt: 0,
                credit: 0.0,
                baseline: None,
                calm_until: None,
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.state.lock().map(|s| s.limit).unwrap_or(1)
    }

    pub async fn acquire(self: &Arc<Self>) -> Option<Permit> {
        let p = self.sem.clone().acquire_owned().await.ok()?;
        Some(Permit {
            permit: Some(p),
            owner: self.clone(),
        })
    }

    /// One send attempt's outcome: `ok` with its latency, or a sign of overload.
    pub fn observe(&self, ok: bool, latency: Duration) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let lat = latency.as_secs_f64();
        if ok {
            let base = *s.baseline.get_or_insert(lat);
            s.baseline = Some(base * 0.95 + lat * 0.05);
            if lat <= base * LATENCY_TOLERANCE && s.limit < self.max {
                // +1 per window: each success is worth 1/limit.
                s.credit += 1.0 / s.limit as f64;
                if s.credit >= 1.0 {
                    s.credit = 0.0;
                    s.limit += 1;
                    if s.debt > 0 {
                        s.debt -= 1;
                    } else {
                        self.sem.add_permits(1);
                    }
                }
            }
            return;
        }
        let now = Instant::now();
        if s.calm_until.is_some_and(|t| now < t) || s.limit == 1 {
            return;
        }
        let drop_by = s.limit - (s.limit / 2).max(1);
        s.limit -= drop_by;
        s.credit = 0.0;
        let forgotten = self.sem.forget_permits(drop_by);
        s.debt += drop_by - forgotten;
        // One window: about a baseline latency, at least 100 ms.
        let window = Duration::from_secs_f64(s.baseline.unwrap_or(0.1).max(0.1));
        s.calm_until = Some(now + window);
    }

    fn give_back(&self, p: OwnedSemaphorePermit) {
        if let Ok(mut s) = self.state.lock()
            && s.debt > 0
        {
            s.debt -= 1;
            p.forget();
        }
    }
}

/// A batch's place in flight; returning it pays the debt first.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Adaptive>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.owner.give_back(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_while_healthy_halves_on_overload_within_bounds() {
        let a = Arc::new(Adaptive::new(8));
        let ms = Duration::from_millis(10);
        for _ in 0..200 {
            a.observe(true, ms);
        }
        assert_eq!(a.limit(), 8, "capped at max");
        a.observe(false, ms);
        assert_eq!(a.limit(), 4);
        a.observe(false, ms);
        assert_eq!(a.limit(), 4, "one decrease per window");
        // Slow answers (over 1.5x the baseline) stop growth — until the baseline has moved to
        // them (it follows slowly).
        for _ in 0..10 {
            a.observe(true, Duration::from_millis(40));
        }
        assert_eq!(a.limit(), 4);
        // Permits follow the limit: 4 can be held at once, not 5.
        let held: Vec<_> = futures_lite(&a, 4).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a.acquire())
                .await
                .is_err()
        );
        drop(held);
        assert!(a.acquire().await.is_some());
    }

    async fn futures_lite(a: &Arc<Adaptive>, n: usize) -> Vec<Permit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(a.acquire().await.unwrap());
        }
        v
    }
}
