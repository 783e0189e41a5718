//! `type = "dedup"`: drop repeats of an eventID seen within `window` (first-seen time, on the
//! wall clock), remembering at most `max_entries` IDs (the oldest are forgotten first).
//!
//! Never at the price of loss: an ID is forgotten again when the copy that was let through is
//! not delivered (its unit fails and is read again, and that copy must pass), and only IDs whose
//! copy was delivered are saved (`persist = true`, `data_dir/dedup/NAME.state`), so a crash never
//! makes trailship drop an event it had not delivered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::util::Transform;
use crate::config::{FieldError, units};
use crate::core::Batch;
use crate::core::event::Event;
use crate::telemetry;

const MAGIC: &[u8; 8] = b"TSdedup1";
const SAVE_EVERY: Duration = Duration::from_secs(10);

fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_entries() -> usize {
    500_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "default_window", deserialize_with = "units::duration")]
    pub window: Duration,
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Keep the delivered IDs across restarts.
    #[serde(default)]
    pub persist: bool,
}

impl DedupConfig {
    /// `state`: where to keep the IDs when `persist` is on (None when only checking).
    pub fn build(&self, name: &str, state: Option<PathBuf>) -> Result<Dedup, FieldError> {
        if self.window.is_zero() {
            return Err(FieldError::new(&["window"], "must be more than 0"));
        }
        if self.max_entries == 0 {
            return Err(FieldError::new(&["max_entries"], "must be at least 1"));
        }
        let mut d = Dedup {
            name: name.into(),
            window_ms: self.window.as_millis() as u64,
            max_entries: self.max_entries,
            seen: HashMap::new(),
            order: VecDeque::new(),
            unconfirmed: HashSet::new(),
            outcomes: Arc::default(),
            state: if self.persist { state } else { None },
            dirty: false,
            last_save: Instant::now(),
        };
        d.load();
        Ok(d)
    }
}

pub struct Dedup {
    name: Arc<str>,
    window_ms: u64,
    max_entries: usize,
    /// ID key → first seen (ms since the epoch).
    seen: HashMap<u128, u64>,
    /// The same, oldest first (entries whose ID was forgotten are skipped when met).
    order: VecDeque<(u64, u128)>,
    /// Let through, not yet known delivered (not saved).
    unconfirmed: HashSet<u128>,
    /// Delivery outcomes of the copies let through, reported by their acknowledgement shares.
    outcomes: Arc<Mutex<Vec<(u128, bool)>>>,
    state: Option<PathBuf>,
    dirty: bool,
    last_save: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The key of an eventID: the UUID itself when it is one (CloudTrail's are), else a 128-bit
/// FNV-1a hash.
pub fn key(id: &str) -> u128 {
    let b = id.as_bytes();
    if b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-') {
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        if let Ok(k) = u128::from_str_radix(&hex, 16) {
            return k;
        }
    }
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for c in b {
        h ^= u128::from(*c);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

impl Dedup {
    fn apply_outcomes(&mut self) {
        let outcomes = match self.outcomes.lock() {
            Ok(mut o) => std::mem::take(&mut *o),
            Err(_) => return,
        };
        for (k, delivered) in outcomes {
            self.unconfirmed.remove(&k);
            if delivered {
                self.dirty = true;
            } else {
                // Its unit is read again: that copy must not be taken for a repeat.
                self.seen.remove(&k);
            }
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(at, k)) = self.order.front() {
            if at + self.window_ms > now {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&k) == Some(&at) {
                self.seen.remove(&k);
                self.dirty = true;
            }
        }
    }

    /// Forget the oldest ID still remembered.
    fn evict_one(&mut self) {
        while let Some((at, k)) = self.order.pop_front() {
            if self.seen.get(&k) == Some(&at) {
                self.seen.remove(&k);
                self.unconfirmed.remove(&k);
                telemetry::count("dedup_evicted_total", &[("component", &self.name)]);
                return;
            }
        }
    }

    fn remember(&mut self, k: u128, now: u64) {
        while self.seen.len() >= self.max_entries {
            self.evict_one();
        }
        self.seen.insert(k, now);
        self.order.push_back((now, k));
        if self.state.is_some() {
            self.unconfirmed.insert(k);
        }
    }

    fn load(&mut self) {
        let Some(path) = &self.state else {
            return;
        };
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(transform = %self.name, state = %path.display(), error = %e, "cannot read the dedup state; starting empty (repeats from before may pass)");
                return;
            }
        };
        let body = data
            .get(8..data.len().saturating_sub(4))
            .unwrap_or_default();
        let crc_ok = data.len() >= 12
            && data[data.len() - 4..] == crc32fast::hash(body).to_le_bytes()
            && &data[..8] == MAGIC
            && body.len() % 24 == 0;
        if !crc_ok {
            let aside = path.with_extension("corrupt");
            let _ = fs::rename(path, &aside);
            tracing::error!(transform = %self.name, state = %path.display(), moved_to = %aside.display(), "dedup state is damaged; starting empty (repeats from before may pass)");
            telemetry::count("dedup_state_corrupt_total", &[("component", &self.name)]);
            return;
        }
        let now = now_ms();
        for rec in body.chunks_exact(24) {
            let mut at = [0u8; 8];
            let mut k = [0u8; 16];
            at.copy_from_slice(&rec[..8]);
            k.copy_from_slice(&rec[8..]);
            let (at, k) = (u64::from_le_bytes(at), u128::from_le_bytes(k));
            if at + self.window_ms > now && !self.seen.contains_key(&k) {
                while self.seen.len() >= self.max_entries {
                    self.evict_one();
                }
                self.seen.insert(k, at);
                self.order.push_back((at, k));
            }
        }
        tracing::info!(transform = %self.name, ids = self.seen.len(), "dedup state loaded");
    }

    /// Save the delivered IDs (atomically). Errors are logged: the state is an optimisation,
    /// never needed for correctness.
    fn save(&mut self) {
        let Some(path) = self.state.clone() else {
            return;
        };
        self.last_save = Instant::now();
        let mut out = Vec::with_capacity(8 + self.order.len() * 24 + 4);
        out.extend_from_slice(MAGIC);
        for &(at, k) in &self.order {
            if self.seen.get(&k) == Some(&at) && !self.unconfirmed.contains(&k) {
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&k.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out[8..]);
        out.extend_from_slice(&crc.to_le_bytes());
        let tmp = path.with_extension("tmp");
        let res = (|| {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok::<(), std::io::Error>(())
        })();
        match res {
            Ok(()) => self.dirty = false,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                tracing::warn!(transform = %self.name, state = %path.display(), error = %e, "cannot save the dedup state; trying again later");
            }
        }
    }
}

impl Transform for Dedup {
    fn process(&mut self, batch: Batch, out: &mut [Batch]) {
        self.apply_outcomes();
        let now = now_ms();
        self.expire(now);
        for e in batch {
            let Some(k) = e.data.event_id().map(key) else {
                telemetry::count("dedup_no_event_id_total", &[("component", &self.name)]);
                out[0].push(e);
                continue;
            };
            if self.seen.contains_key(&k) {
                telemetry::count("dedup_dropped_total", &[("component", &self.name)]);
                e.ack();
                continue;
            }
            self.remember(k, now);
            let outcomes = self.outcomes.clone();
            let report_success = self.state.is_some();
            let Event { data, ack } = e;
            let ack = ack.watch(move |delivered| {
                if (!delivered || report_success)
                    && let Ok(mut o) = outcomes.lock()
                {
                    o.push((k, delivered));
                }
            });
            out[0].push(Event::new(data, ack));
        }
        if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
            self.save();
        }
    }

    /// Wait for the outcome of every copy let through (their units resolve after the input
    /// closes), saving now and then, and once at the end.
    fn finish(&mut self, _out: &mut [Batch]) -> bool {
        self.apply_outcomes();
        if self.state.is_none() {
            return false;
        }
        let waiting = !self.unconfirmed.is_empty();
        if !waiting || (self.dirty && self.last_save.elapsed() >= Duration::from_secs(1)) {
            self.save();
        }
        waiting
    }
}

/// The `dedup` transform kind (registered in `transforms::KINDS`).
pub const KIND: crate::transforms::util::kind::TransformKind =
    crate::transforms::util::kind::TransformKind {
        name: "dedup",
        parse: crate::transforms::util::kind::parse_with::<DedupConfig>,
    };

impl crate::transforms::util::kind::TransformBuild for DedupConfig {
    fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn crate::transforms::util::Transform>, crate::config::FieldError> {
        Ok(Box::new(DedupConfig::build(
            self,
            name,
            data_dir.map(|d| d.join("dedup").join(format!("{name}.state"))),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ack::UnitHandle;
    use crate::core::event::{EventData, Origin, parse_header};

    fn ev(id: &str, unit: &UnitHandle<u32>) -> Event {
        let raw = bytes::Bytes::from(format!(r#"{{"eventID":"{id}","eventName":"X"}}"#));
        Event::new(
            EventData {
                header: parse_header(&raw).unwrap(),
                record: None,
                raw,
                origin: Arc::new(Origin {
                    source: "s".into(),
                    location: "l".into(),
                    trace: Default::default(),
                    reread: None,
                }),
            },
            unit.token(),
        )
    }

    fn cfg(persist: bool, max: usize) -> DedupConfig {
        DedupConfig {
            window: Duration::from_secs(3600),
            max_entries: max,
            persist,
        }
    }

    fn ids(b: &Batch) -> Vec<String> {
        b.iter()
            .map(|e| e.data.event_id().unwrap().to_string())
            .collect()
    }

    #[test]
    fn keys_are_exact_for_uuids_and_stable_otherwise() {
        assert_eq!(
            key("6fe2a8c4-e1bf-4bc4-a09d-0f6d0ec0c2b8"),
            0x6fe2a8c4e1bf4bc4a09d0f6d0ec0c2b8
        );
        assert_eq!(key("abc"), key("abc"));
        assert_ne!(key("abc"), key("abd"));
    }

    #[test]
    fn repeats_are_dropped_and_a_failed_copy_is_forgotten() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let u = UnitHandle::new(1u32, tx);
        let mut d = cfg(false, 100).build("d", None).unwrap();
        let mut out = vec![Vec::new()];
        d.process(vec![ev("a", &u), ev("b", &u), ev("a", &u)], &mut out);
        assert_eq!(ids(&out[0]), vec!["a", "b"]);
        let mut first = std::mem::take(&mut out[0]);
        // "a" was let through but its delivery fails: the next "a" (the re-read) passes.
        first.remove(0).fail();
        d.process(vec![ev("a", &u), ev("b", &u)], &mut out);
        assert_eq!(ids(&out[0]), vec!["a"]);
    }

    #[test]
    fn the_oldest_are_forgotten_past_max_entries() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let u = UnitHandle::new(1u32, tx);
        let mut d = cfg(false, 2).build("d", None).unwrap();
        let mut out = vec![Vec::new()];
        d.process(vec![ev("a", &u), ev("b", &u), ev("c", &u)], &mut out);
        d.process(vec![ev("a", &u), ev("c", &u)], &mut out);
        assert_eq!(ids(&out[0]), vec!["a", "b", "c", "a"]);
        assert!(d.seen.len() <= 2);
    }

    #[test]
    fn only_delivered_ids_are_saved_and_a_damaged_state_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup/d.state");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let u = UnitHandle::new(1u32, tx);
        let mut d = cfg(true, 100).build("d", Some(path.clone())).unwrap();
        let mut out = vec![Vec::new()];
        d.process(vec![ev("a", &u), ev("b", &u)], &mut out);
        let mut batch = std::mem::take(&mut out[0]);
        batch.remove(0).ack(); // "a" delivered; "b" still in flight
        assert!(d.finish(&mut out), "waits for b");
        d.save();
        let mut d2 = cfg(true, 100).build("d", Some(path.clone())).unwrap();
        d2.process(vec![ev("a", &u), ev("b", &u)], &mut out);
        assert_eq!(ids(&out[0]), vec!["b"], "a was delivered before; b was not");
        drop(batch);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        fs::write(&path, bytes).unwrap();
        let d3 = cfg(true, 100).build("d", Some(path.clone())).unwrap();
        assert!(d3.seen.is_empty());
        assert!(path.with_extension("corrupt").exists());
    }
}
