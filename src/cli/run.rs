//! `trailship run`: the HTTP API and OpenTelemetry export, the pipeline, and what signals do
//! to it: SIGTERM/SIGINT stop it (a second one stops it now), SIGHUP (or a change of the
//! config file under `--watch-config`) reloads it; systemd hears about each step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use super::{CliError, api, systemd};
use crate::core::run::{Health, Outcome, Progress};
use crate::sources::SourceReport;
use crate::telemetry;
use crate::topology::Config;
use crate::topology::{self, Running};

/// Exit codes of `trailship run` (documented in the README).
pub const EXIT_CONFIG: u8 = 1;
pub const EXIT_UNDELIVERED: u8 = 3;
pub const EXIT_BAD_INPUT: u8 = 4;

pub struct RunOptions {
    /// The pipeline file (none: the embedded default, which cannot be reloaded).
    pub config_path: Option<PathBuf>,
    pub once: bool,
    pub watch_config: bool,
    /// Counters for a progress display the caller draws (a backfill's bar).
    pub progress: Option<Arc<Progress>>,
}

struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

async fn next(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

impl Signals {
    fn new() -> Signals {
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.int) => "SIGINT",
        }
    }
}

/// Changes to the config file: its directory is watched (editors and ConfigMap updates
/// replace the file rather than write it).
fn watch_config(path: &Path) -> Result<ConfigWatch, CliError> {
    use notify::Watcher;
    let (tx, rx) = mpsc::channel(1);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && (ev.paths.iter().any(|p| p.file_name() == name.as_deref())
                // Kubernetes swaps a ConfigMap's files through a `..data` symlink.
                || ev.paths.iter().any(|p| p.ends_with("..data")))
        {
            let _ = tx.try_send(());
        }
    })
    .map_err(CliError::Watcher)?;
    w.watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|source| CliError::Watch {
            dir: dir.clone(),
            source,
        })?;
    Ok((w, rx))
}

async fn reload(running: &mut Running, path: Option<&Path>, why: &str) {
    let Some(path) = path else {
        tracing::warn!(
            trigger = why,
            "no --config file to reload: the embedded default config runs"
        );
        return;
    };
    tracing::info!(trigger = why, config = %path.display(), "reloading the config");
    systemd::reloading();
    let outcome = match Config::load(path) {
        Err(errs) => {
            for e in &errs {
                tracing::error!(error = %e, "reload: config problem");
            }
            tracing::error!(config = %path.display(), problems = errs.len(), "reload rejected; the running pipeline is unchanged");
            "rejected"
        }
        Ok(new) => {
            if new.api != running.config().api
                || new.opentelemetry != running.config().opentelemetry
            {
                tracing::warn!("[api] and [opentelemetry] changes take effect at the next restart");
            }
            match running.apply(new).await {
                Err(e) => {
                    tracing::error!(error = %e, "reload rejected; the running pipeline is unchanged");
                    "rejected"
                }
                Ok((changes, errors)) => {
                    for e in &errors {
                        tracing::error!(error = %e, "reload: a component could not start; its inputs wait (nothing is acknowledged) until a reload fixes it");
                    }
                    if changes.is_empty() {
                        tracing::info!("reload: nothing changed");
                    } else {
                        tracing::info!(added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed, "config reloaded; unchanged components kept running");
                    }
                    if errors.is_empty() {
                        "applied"
                    } else {
                        "partial"
                    }
                }
            }
        }
    };
    telemetry::count("config_reloads_total", &[("outcome", outcome)]);
    systemd::ready("running");
}

/// Stop (after `signal`, or because the sources finished) and wait, as the shutdown contract
/// says: deliver what is in flight within shutdown_timeout, then stop hard.
async fn finish(
    running: &mut Running,
    signals: &mut Signals,
    signal: Option<&'static str>,
) -> Vec<(String, SourceReport)> {
    let timeout = running.config().shutdown_timeout;
    let shutdown = running.shutdown.clone();
    let hard_stop = running.hard_stop.clone();
    let health = running.health.clone();
    let stop = |sig: &str| {
        health.set_ready(false);
        systemd::stopping();
        tracing::info!(
            signal = sig,
            timeout_s = timeout.as_secs_f64(),
            "stopping: no new input; delivering what is in flight"
        );
        shutdown.cancel();
    };
    if let Some(sig) = signal {
        stop(sig);
    }
    let wait = running.wait();
    tokio::pin!(wait);
    if signal.is_none() {
        tokio::select! {
            r = &mut wait => return r,
            sig = signals.stop() => stop(sig),
        }
    }
    tokio::select! {
        r = tokio::time::timeout(timeout, &mut wait) => match r {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("shutdown_timeout reached; what is not delivered stays uncommitted and is read again at the next start");
                hard_stop.cancel();
                wait.await
            }
        },
        sig = signals.stop() => {
            tracing::warn!(signal = sig, "second signal: stopping now; what is not delivered stays uncommitted and is read again at the next start");
            hard_stop.cancel();
            wait.await
        }
    }
}

type ConfigWatch = (notify::RecommendedWatcher, mpsc::Receiver<()>);

/// How often a `--once` run that has not ended says what it is waiting for.
const WAITING_NOTE: Duration = Duration::from_secs(30);

/// Run until the sources are done (`--once`) or a stop signal; reload on SIGHUP or a changed
/// config file. Returns the sources' reports.
async fn serve(
    running: &mut Running,
    (signals, hup): (&mut Signals, &mut Option<Signal>),
    mut watcher: Option<ConfigWatch>,
    opts: &RunOptions,
) -> Vec<(String, SourceReport)> {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut noted = tokio::time::Instant::now();
    enum Step {
        Tick,
        Stop(&'static str),
        Hup,
        Changed,
    }
    loop {
        let changed = async {
            match watcher.as_mut() {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let step = tokio::select! {
            _ = tick.tick() => Step::Tick,
            sig = signals.stop() => Step::Stop(sig),
            _ = next(hup) => Step::Hup,
            Some(()) = changed, if !opts.once => Step::Changed,
        };
        match step {
            Step::Tick if running.sources_finished() => {
                return finish(running, signals, None).await;
            }
            Step::Tick if opts.once && noted.elapsed() >= WAITING_NOTE => {
                running.note_waiting();
                noted = tokio::time::Instant::now();
            }
            Step::Tick => {}
            Step::Stop(sig) => return finish(running, signals, Some(sig)).await,
            Step::Hup if opts.once => tracing::warn!("SIGHUP: a --once run does not reload"),
            Step::Hup => reload(running, opts.config_path.as_deref(), "SIGHUP").await,
            Step::Changed => {
                // Let the writer finish (editors write in steps), then read it once.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Some((_, rx)) = watcher.as_mut() {
                    while rx.try_recv().is_ok() {}
                }
                reload(running, opts.config_path.as_deref(), "config file changed").await;
            }
        }
    }
}

pub async fn run(cfg: Config, opts: RunOptions) -> u8 {
    let mut signals = Signals::new();
    // Registered first: a SIGHUP while starting must not end the process (its default).
    let mut hup = signal(SignalKind::hangup()).ok();
    let health = Arc::new(Health::default());
    let _api = match &cfg.api {
        Some(a) => match api::serve(a, health.clone()).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the HTTP API");
                return EXIT_CONFIG;
            }
        },
        None => None,
    };
    let otel = match &cfg.opentelemetry {
        Some(o) => match telemetry::otel::start(o) {
            Ok(x) => Some(x),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the OpenTelemetry export");
                return EXIT_CONFIG;
            }
        },
        None => None,
    };
    telemetry::gauge("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let mut watcher = None;
    if opts.watch_config {
        match opts.config_path.as_deref().map(watch_config) {
            Some(Ok(w)) => watcher = Some(w),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot watch the config file");
                return EXIT_CONFIG;
            }
            None => tracing::warn!("--watch-config without --config: nothing to watch"),
        }
    }
    let mut running = match topology::start(
        cfg,
        opts.once,
        topology::Handles {
            health: health.clone(),
            progress: opts.progress.clone(),
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the pipeline");
            return EXIT_CONFIG;
        }
    };
    let outcome = running.outcome.clone();
    health.set_ready(true);
    systemd::ready("running");
    let _watchdog = systemd::spawn_watchdog();
    let reports = serve(&mut running, (&mut signals, &mut hup), watcher, &opts).await;
    if let Some(o) = otel {
        // The SDK's shutdown blocks until the last export, which runs on this runtime.
        let _ = tokio::task::spawn_blocking(move || o.shutdown()).await;
    }
    exit_code(&reports, &outcome, opts.once)
}

fn exit_code(reports: &[(String, SourceReport)], outcome: &Outcome, once: bool) -> u8 {
    if !outcome.sinks_not_started().is_empty() {
        tracing::error!(
            "a sink could not be started (see above); nothing it should have received was committed"
        );
        return EXIT_CONFIG;
    }
    let counters = serde_json::to_string(&telemetry::snapshot()).unwrap_or_default();
    let events: u64 = reports.iter().map(|(_, r)| r.events).sum();
    let failed: u64 = reports
        .iter()
        .map(|(_, r)| r.units_failed + r.units_unresolved)
        .sum();
    let bad: u64 = reports.iter().map(|(_, r)| r.bad_inputs).sum();
    for (name, r) in reports {
        if let Some(f) = &r.fatal {
            tracing::error!(source = %name, error = %f, "source failed");
        }
    }
    let fatal = reports.iter().any(|(_, r)| r.fatal.is_some());
    let left = outcome.events_left_behind() + outcome.damaged_regions();
    tracing::info!(events, units_not_delivered = failed, bad_inputs = bad, counters = %counters, "trailship stopped");
    if !once {
        return if fatal { EXIT_UNDELIVERED } else { 0 };
    }
    if failed > 0 || fatal || left > 0 {
        EXIT_UNDELIVERED
    } else if bad > 0 {
        EXIT_BAD_INPUT
    } else {
        0
    }
}
