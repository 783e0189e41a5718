//! `rate_limit = { events_per_sec, bytes_per_sec }` of a sink: token buckets (one second of
//! burst) that every send attempt of the sink draws from, retries included. A batch larger than
//! the burst is let through when the bucket is full and leaves it in debt, so the average rate
//! holds whatever the batch size.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{FieldError, units};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub events_per_sec: Option<f64>,
    #[serde(default, deserialize_with = "opt_size")]
    pub bytes_per_sec: Option<u64>,
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    units::size(d).map(Some)
}

impl RateLimitConfig {
    pub fn check(&self) -> Result<(), FieldError> {
        if self.events_per_sec.is_none() && self.bytes_per_sec.is_none() {
            return Err(FieldError::new(
                &["rate_limit"],
                "set events_per_sec, bytes_per_sec or both",
            ));
        }
        if self
            .events_per_sec
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err(FieldError::new(
                &["rate_limit", "events_per_sec"],
                "must be more than 0",
            ));
        }
        if self.bytes_per_sec == Some(0) {
            return Err(FieldError::new(
                &["rate_limit", "bytes_per_sec"],
                "must be more than 0",
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Bucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.last = now;
    }

    /// How long until the bucket is out of debt.
    fn wait(&self) -> Duration {
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

impl RateLimiter {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        RateLimiter {
            buckets: Mutex::new((
                cfg.events_per_sec.map(Bucket::new),
                cfg.bytes_per_sec.map(|b| Bucket::new(b as f64)),
            )),
        }
    }

    /// Wait until `events` events of `bytes` bytes may be sent, and take them.
    pub async fn acquire(&self, events: usize, bytes: u64) {
        loop {
            let wait = {
                let Ok(mut b) = self.buckets.lock() else {
                    return;
                };
                let now = Instant::now();
                let (e, by) = &mut *b;
                let mut wait = Duration::ZERO;
                for bucket in [e.as_mut(), by.as_mut()].into_iter().flatten() {
                    bucket.refill(now);
                    wait = wait.max(bucket.wait());
                }
                if wait.is_zero() {
                    if let Some(e) = e.as_mut() {
                        e.tokens -= events as f64;
                    }
                    if let Some(by) = by.as_mut() {
                        by.tokens -= bytes as f64;
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_average_rate_whatever_the_batch_size() {
        let l = RateLimiter::new(&RateLimitConfig {
            events_per_sec: Some(100.0),
            bytes_per_sec: None,
        });
        let start = Instant::now();
        // 1,000 events in batches of 250: a batch goes when the bucket is out of debt, so
        // the fourth starts after (1,000 - 250 - 100 burst) / 100 = 6.5 s.
        for _ in 0..4 {
            l.acquire(250, 0).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs_f64(6.45) && took <= Duration::from_secs_f64(6.55),
            "{took:?}"
        );
        let cfg = RateLimitConfig {
            events_per_sec: None,
            bytes_per_sec: None,
        };
        assert!(cfg.check().is_err());
    }
}
