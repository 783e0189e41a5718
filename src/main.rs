//! The `trailship` command: run, validate, backfill, version.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::io::IsTerminal;

use trailship::backfill;
use trailship::config::{Config, ConfigError, DEFAULT_CONFIG};
use trailship::sources::s3::progress;
use trailship::telemetry::{self, LogFormat};
use trailship::topology;

/// Exit codes of `trailship run --once` (documented in the README).
const EXIT_CONFIG: u8 = 1;
const EXIT_UNDELIVERED: u8 = 3;
const EXIT_BAD_INPUT: u8 = 4;
/// `trailship verify`: a digest or log file failed its check.
const EXIT_INTEGRITY: u8 = 5;

#[derive(Parser)]
#[command(
    name = "trailship",
    version,
    about = "Collects AWS CloudTrail events and ships them, at least once, to where they are analysed."
)]
struct Cli {
    /// Log output format (logs go to stderr; level from TRAILSHIP_LOG, RUST_LOG syntax).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline (the embedded default when no --config is given).
    Run {
        /// Pipeline file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Process what is there now, wait until it is delivered and committed, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Check a pipeline file without running it.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read the CloudTrail objects already in S3 through a pipeline's transforms and sinks
    /// (resumable: a second run continues where the first stopped), with a progress bar.
    Backfill {
        #[command(flatten)]
        req: backfill::Request,
        /// Pipeline file (TOML): its transforms and sinks are used; the backfill takes the
        /// place of its source.
        #[arg(long, short)]
        config: PathBuf,
        /// No progress bar, even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Find events in a trail directory or an S3 prefix, like CloudTrail's LookupEvents
    /// (e.g. who deleted this bucket?), on every core.
    Lookup(Box<trailship::lookup::LookupArgs>),
    /// Check CloudTrail log-file integrity (digest signatures, the digest chain, log file
    /// hashes), like `aws cloudtrail validate-logs`; exit 5 when anything fails.
    Verify(Box<trailship::verify::VerifyArgs>),
    /// Print the version.
    Version,
}

fn load(config: Option<&PathBuf>) -> Result<Config, Vec<ConfigError>> {
    match config {
        Some(p) => Config::load(p),
        None => Config::parse(DEFAULT_CONFIG, "<embedded default config>"),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the runtime: {e}"))
        .ok()
}

fn print_errors(errs: &[ConfigError]) {
    for e in errs {
        eprintln!("error: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lookup(args) => {
            telemetry::init_logging(cli.log_format, "warn");
            match trailship::lookup::run(*args, Box::new(std::io::stdout())) {
                Ok(o) if o.unreadable > 0 => ExitCode::from(EXIT_BAD_INPUT),
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Verify(args) => {
            telemetry::init_logging(cli.log_format, "warn");
            match trailship::verify::run(&args) {
                Ok(r) => {
                    trailship::verify::print(&r);
                    if r.problems.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_INTEGRITY)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Version => {
            println!("trailship {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { config } => match Config::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: valid ({} sources, {} transforms, {} sinks)",
                    config.display(),
                    cfg.sources.len(),
                    cfg.transforms.len(),
                    cfg.sinks.len()
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                print_errors(&errs);
                eprintln!("{}: {} problem(s); not valid", config.display(), errs.len());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run { config, once } => {
            telemetry::init_logging(cli.log_format, "info");
            let cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(errs) => {
                    print_errors(&errs);
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let Some(rt) = runtime() else {
                return ExitCode::from(EXIT_CONFIG);
            };
            rt.block_on(run(cfg, once))
        }
        Command::Backfill {
            req,
            config,
            no_progress,
        } => {
            let show = !no_progress && std::io::stderr().is_terminal();
            // Under a progress bar, only warnings and errors (TRAILSHIP_LOG still rules).
            telemetry::init_logging(cli.log_format, if show { "warn" } else { "info" });
            let mut cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(errs) => {
                    print_errors(&errs);
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if let Err(e) = backfill::apply(&mut cfg, &req) {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let Some(rt) = runtime() else {
                return ExitCode::from(EXIT_CONFIG);
            };
            rt.block_on(async move {
                let display = show.then(|| backfill::Display::start(progress::watch()));
                let code = run(cfg, true).await;
                if let Some(d) = display {
                    d.finish();
                }
                code
            })
        }
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return "";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

async fn run(cfg: Config, once: bool) -> ExitCode {
    let _api = match cfg.api {
        Some(addr) => match trailship::api::serve(addr).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the HTTP API");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => None,
    };
    let mut running = match topology::start(&cfg, once) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the pipeline");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    trailship::api::set_ready(true);
    let shutdown = running.shutdown.clone();
    let hard_stop = running.hard_stop.clone();
    let reports = {
        let wait = running.wait();
        tokio::pin!(wait);
        tokio::select! {
            r = &mut wait => r,
            sig = shutdown_signal() => {
                trailship::api::set_ready(false);
                tracing::info!(signal = sig, timeout_s = cfg.shutdown_timeout.as_secs_f64(), "stopping: no new input; delivering what is in flight");
                shutdown.cancel();
                tokio::select! {
                    r = tokio::time::timeout(cfg.shutdown_timeout, &mut wait) => match r {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!("shutdown_timeout reached; what is not delivered stays uncommitted and is read again at the next start");
                            hard_stop.cancel();
                            wait.await
                        }
                    },
                    sig = shutdown_signal() => {
                        tracing::warn!(signal = sig, "second signal: stopping now; what is not delivered stays uncommitted and is read again at the next start");
                        hard_stop.cancel();
                        wait.await
                    }
                }
            }
        }
    };
    if trailship::sinks::start_failed() {
        tracing::error!(
            "a sink could not be started (see above); nothing it should have received was committed"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let counters = serde_json::to_string(&telemetry::snapshot()).unwrap_or_default();
    let events: u64 = reports.iter().map(|(_, r)| r.events).sum();
    let failed: u64 = reports
        .iter()
        .map(|(_, r)| r.units_failed + r.units_unresolved)
        .sum();
    let bad: u64 = reports.iter().map(|(_, r)| r.bad_inputs).sum();
    for (name, r) in &reports {
        if let Some(f) = &r.fatal {
            tracing::error!(source = %name, error = %f, "source failed");
        }
    }
    let fatal = reports.iter().any(|(_, r)| r.fatal.is_some());
    let left = trailship::buffer::events_left_behind() + trailship::buffer::damaged_regions();
    tracing::info!(events, units_not_delivered = failed, bad_inputs = bad, counters = %counters, "trailship stopped");
    if !once {
        return if fatal {
            ExitCode::from(EXIT_UNDELIVERED)
        } else {
            ExitCode::SUCCESS
        };
    }
    if failed > 0 || fatal || left > 0 {
        ExitCode::from(EXIT_UNDELIVERED)
    } else if bad > 0 {
        ExitCode::from(EXIT_BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}
