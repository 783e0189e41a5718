//! How `trailship lookup` shows what it finds: a table or JSON lines on stdout, a progress
//! line on stderr (on a terminal only), warnings above the progress line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Stats;
use super::query::who;
use crate::core::event::EventData;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Print a line to stderr without tearing the progress line.
pub fn note(msg: &str) {
    match BAR.get() {
        Some(b) => b.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

#[derive(Clone)]
pub struct Progress {
    stop: Arc<AtomicBool>,
}

impl Progress {
    pub fn new(total: u64, enabled: bool, stats: Arc<Stats>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Progress { stop };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let _ = BAR.set(bar.clone());
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                bar.set_position(stats.files.load(Ordering::Relaxed));
                bar.set_message(format!(
                    "{} events, {} matched",
                    stats.events.load(Ordering::Relaxed),
                    stats.matched.load(Ordering::Relaxed)
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.set_position(stats.files.load(Ordering::Relaxed));
            bar.abandon();
        });
        Progress { stop }
    }

    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(if BAR.get().is_some() {
            150
        } else {
            0
        }));
    }
}

const COLUMNS: [(&str, usize); 8] = [
    ("TIME", 21),
    ("EVENT", 26),
    ("SOURCE", 24),
    ("USER", 30),
    ("ACCOUNT", 13),
    ("REGION", 14),
    ("ERROR", 20),
    ("EVENT ID", 0),
];

fn row(cells: &[String]) -> String {
    let mut line = String::new();
    for ((_, w), c) in COLUMNS.iter().zip(cells) {
        if *w == 0 {
            line.push_str(c);
        } else {
            let shown: String = if c.chars().count() > w - 1 {
                c.chars().take(w - 2).chain(['…']).collect()
            } else {
                c.clone()
            };
            line.push_str(&format!("{shown:<w$}"));
        }
    }
    line.trim_end().to_string()
}

fn table_row(e: &EventData) -> String {
    let v: serde_json::Value = serde_json::from_slice(&e.raw).unwrap_or_default();
    let s = |x: Option<&str>| x.unwrap_or("-").to_string();
    row(&[
        s(e.event_time()),
        s(e.event_name()),
        s(e.event_source()),
        who(&v),
        s(e.account_id()),
        s(e.region()),
        s(e.error_code()),
        s(e.event_id()),
    ])
}

/// Print matches as they come, until the workers are done or `max` is reached.
pub fn print(
    rx: mpsc::Receiver<EventData>,
    mut out: Box<dyn Write + Send>,
    format: Format,
    max: Option<u64>,
    stats: &Stats,
    stop: &AtomicBool,
    _progress: &Progress,
) {
    let mut header = format == Format::Table;
    for e in rx {
        if max.is_some_and(|m| stats.matched.load(Ordering::Relaxed) >= m) {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        stats.matched.fetch_add(1, Ordering::Relaxed);
        let mut line = match format {
            Format::Json => String::from_utf8_lossy(&e.raw).into_owned(),
            Format::Table => table_row(&e),
        };
        if header {
            let names: Vec<String> = COLUMNS.iter().map(|(n, _)| n.to_string()).collect();
            line = format!("{}\n{line}", row(&names));
            header = false;
        }
        let res = match BAR.get() {
            Some(b) => b.suspend(|| writeln!(out, "{line}")),
            None => writeln!(out, "{line}"),
        };
        if res.is_err() {
            // stdout closed (e.g. `| head`): stop scanning.
            stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    let _ = out.flush();
}
