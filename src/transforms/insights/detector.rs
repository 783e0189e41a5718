//! The statistics of local Insights: per (eventSource, eventName, account, region), the count of
//! calls and of errors in each minute of event time; an exponentially weighted mean and
//! variance of those counts (the baseline); an insight opens when a minute's count is far above
//! the baseline and closes when the count has been back near it for a few minutes.

use std::collections::{BTreeMap, HashMap};

/// How the detector decides (see the README's Insights section).
#[derive(Debug, Clone)]
pub struct Params {
    /// Minutes of baseline a series needs before it may raise an insight.
    pub warm_up: u64,
    /// The baseline's horizon in minutes (EWMA weight 2 / (N + 1)).
    pub baseline: u64,
    /// Standard deviations above the baseline mean that open an insight.
    pub sensitivity: f64,
    /// A minute must also have at least this many calls (or errors)…
    pub min_count: f64,
    /// …and at least this many times the baseline mean.
    pub ratio: f64,
    /// Minutes back near the baseline before the insight ends.
    pub cool_down: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            warm_up: 120,
            baseline: 7 * 1440,
            sensitivity: 6.0,
            min_count: 10.0,
            ratio: 3.0,
            cool_down: 3,
        }
    }
}

/// Top values of one attribute (user ARN, user agent, error code) and their counts.
pub type Attr = HashMap<String, f64>;

/// What one minute of one key saw.
#[derive(Debug, Default, Clone)]
pub struct Minute {
    pub calls: f64,
    pub errors: f64,
    /// Attribute values of all calls, and of the failed ones: [arn, user agent, error code].
    pub attrs: [Attr; 3],
    pub error_attrs: [Attr; 3],
}

fn merge(into: &mut [Attr; 3], from: &[Attr; 3], weight: f64) {
    for (a, b) in into.iter_mut().zip(from) {
        for (k, v) in b {
            *a.entry(k.clone()).or_default() += v * weight;
        }
    }
}

/// Keep the `n` largest values of each attribute.
fn trim(attrs: &mut [Attr; 3], n: usize) {
    for a in attrs.iter_mut() {
        if a.len() > n {
            let mut v: Vec<(String, f64)> = a.drain().collect();
            v.sort_by(|x, y| y.1.total_cmp(&x.1));
            v.truncate(n);
            a.extend(v);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Open {
    pub shared_id: String,
    pub start_minute: i64,
    pub minutes: u32,
    pub sum: f64,
    pub quiet: u32,
    pub baseline_mean: f64,
    pub attrs: [Attr; 3],
}

/// One counted quantity of a key (calls, or errors) and its baseline.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub mean: f64,
    pub var: f64,
    pub minutes: u64,
    pub open: Option<Open>,
    /// The baseline's attribute values, weighted like the mean.
    pub base_attrs: [Attr; 3],
}

/// A change of state to report.
#[derive(Debug, Clone)]
pub struct Change {
    pub start: bool,
    pub minute: i64,
    pub open: Open,
    pub baseline_minutes: u64,
    pub baseline_attrs: [Attr; 3],
}

impl Series {
    fn sd(&self) -> f64 {
        self.var.sqrt().max(1.0)
    }

    fn learn(&mut self, x: f64, attrs: &[Attr; 3], p: &Params) {
        // A plain running mean until the series has a baseline's worth of minutes, then
        // exponential weighting (no bias towards the zero it starts from).
        let alpha = (2.0 / (p.baseline as f64 + 1.0)).max(1.0 / (self.minutes as f64 + 1.0));
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
        self.minutes += 1;
        for a in self.base_attrs.iter_mut() {
            for v in a.values_mut() {
                *v *= 1.0 - alpha;
            }
        }
        merge(&mut self.base_attrs, attrs, alpha);
        trim(&mut self.base_attrs, 5);
    }

    /// Account one closed minute; returns a Start or End when the state changes.
    pub fn close(
        &mut self,
        minute: i64,
        x: f64,
        attrs: &[Attr; 3],
        p: &Params,
        new_id: &mut dyn FnMut() -> String,
    ) -> Option<Change> {
        let end_level = self.mean + p.sensitivity / 2.0 * self.sd();
        if let Some(open) = &mut self.open {
            let near = x <= end_level;
            if near {
                open.quiet += 1;
            } else {
                // Quiet minutes between two unusual ones are not part of the insight's average.
                open.quiet = 0;
                open.minutes += 1;
                open.sum += x;
                merge(&mut open.attrs, attrs, 1.0);
                trim(&mut open.attrs, 16);
            }
            if open.quiet >= p.cool_down {
                let open = self.open.take()?;
                return Some(Change {
                    start: false,
                    // The insight ended at the first of the quiet minutes.
                    minute: minute + 1 - i64::from(p.cool_down),
                    open,
                    baseline_minutes: self.minutes,
                    baseline_attrs: self.base_attrs.clone(),
                });
            }
            return None;
        }
        let unusual = self.minutes >= p.warm_up
            && x >= p.min_count
            && x >= p.ratio * self.mean
            && x >= self.mean + p.sensitivity * self.sd();
        if unusual {
            let open = Open {
                shared_id: new_id(),
                start_minute: minute,
                minutes: 1,
                sum: x,
                quiet: 0,
                baseline_mean: self.mean,
                attrs: attrs.clone(),
            };
            self.open = Some(open.clone());
            return Some(Change {
                start: true,
                minute,
                open,
                baseline_minutes: self.minutes,
                baseline_attrs: self.base_attrs.clone(),
            });
        }
        self.learn(x, attrs, p);
        None
    }

    /// `n` minutes with nothing (applied one by one up to a bound; past it the baseline has
    /// decayed to nothing anyway).
    pub fn idle(
        &mut self,
        n: i64,
        p: &Params,
        new_id: &mut dyn FnMut() -> String,
        first: i64,
    ) -> Vec<Change> {
        let empty: [Attr; 3] = Default::default();
        let mut out = Vec::new();
        let n = n.clamp(0, 4 * p.baseline as i64);
        for i in 0..n {
            if self.open.is_none() && self.mean < 1e-9 && self.var < 1e-9 {
                // Nothing left to decay: count the rest at once.
                self.minutes += (n - i) as u64;
                break;
            }
            if let Some(c) = self.close(first + i, 0.0, &empty, p, new_id) {
                out.push(c);
            }
        }
        out
    }
}

/// The per-minute buffers of one key: minutes not yet closed.
#[derive(Debug, Default)]
pub struct Pending {
    pub minutes: BTreeMap<i64, Minute>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    /// Poisson-like counts around `rate` (a deterministic generator).
    fn noisy(rng: &mut fastrand::Rng, rate: f64) -> f64 {
        // Sum of 12 uniforms − 6 ≈ standard normal; counts have variance ≈ rate.
        let z: f64 = (0..12).map(|_| rng.f64()).sum::<f64>() - 6.0;
        (rate + z * rate.sqrt()).round().max(0.0)
    }

    #[test]
    fn steady_noisy_traffic_raises_nothing_over_a_long_day() {
        let p = Params::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut new_id = id();
        let mut changes = 0;
        let rates = [0.5, 2.0, 8.0, 30.0, 120.0];
        let days = 7;
        let empty: [Attr; 3] = Default::default();
        for rate in rates {
            let mut s = Series::default();
            for m in 0..(days * 1440) {
                // A daily rhythm: ±40 % around the mean.
                let phase = (m as f64 / 1440.0) * std::f64::consts::TAU;
                let x = noisy(&mut rng, rate * (1.0 + 0.4 * phase.sin()));
                if s.close(m, x, &empty, &p, &mut new_id).is_some() {
                    changes += 1;
                }
            }
        }
        assert_eq!(
            changes,
            0,
            "false positives over {days} days × {} series",
            rates.len()
        );
    }

    #[test]
    fn a_burst_opens_one_insight_and_closes_it() {
        let p = Params::default();
        let mut rng = fastrand::Rng::with_seed(8);
        let mut new_id = id();
        let mut s = Series::default();
        let empty: [Attr; 3] = Default::default();
        let mut changes = Vec::new();
        for m in 0..600 {
            let burst = (400..410).contains(&m);
            let x = if burst { 200.0 } else { noisy(&mut rng, 2.0) };
            if let Some(c) = s.close(m, x, &empty, &p, &mut new_id) {
                changes.push(c);
            }
        }
        let summary: Vec<(bool, i64, u32)> = changes
            .iter()
            .map(|c| (c.start, c.minute, c.open.minutes))
            .collect();
        assert_eq!(changes.len(), 2, "{summary:?}");
        assert!(changes[0].start && changes[0].minute == 400);
        assert!(!changes[1].start);
        assert_eq!(
            changes[1].open.minutes,
            10,
            "{summary:?} mean {} sd {}",
            s.mean,
            s.var.sqrt()
        );
        assert_eq!(
            changes[1].open.sum / f64::from(changes[1].open.minutes),
            200.0
        );
        assert_eq!(changes[0].open.shared_id, changes[1].open.shared_id);
    }
}
