//! The `trailship` command: run, validate, backfill, version.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::io::IsTerminal;

use std::sync::Arc;
use trailship::cli::backfill;
use trailship::config::ConfigError;
use trailship::core::run::Progress;
use trailship::telemetry::{self, LogFormat};
use trailship::topology::{Config, DEFAULT_CONFIG};

use trailship::cli::run::{self as daemon, EXIT_BAD_INPUT, EXIT_CONFIG, RunOptions};

/// jemalloc, not glibc's malloc: glibc keeps an arena per contending thread and hands back
/// little of what is freed in one, so a daemon's RSS climbed with the arenas' free space over
/// hours (+25–42% in the 10-minute soak, with `malloc_trim` every 10 s); jemalloc with the
/// settings below holds a third less, climbs less, and is faster (README, "Soak" and
/// "Performance").
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options: purge freed pages on a background thread, give dirty pages
/// back after 1 s, and skip the "muzzy" stage (`MADV_FREE`d pages still count in RSS until the
/// kernel needs them, which reads as growth to every monitor). `_RJEM_MALLOC_CONF` in the
/// environment overrides them.
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[used]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer jemalloc reads before `main` (a plain `*const c_char` is not `Sync`).
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points at a string literal, never written.
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
unsafe impl Sync for MallocConf {}

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
        /// Reload when the config file changes (as on SIGHUP).
        #[arg(long)]
        watch_config: bool,
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
    Lookup(Box<trailship::cli::lookup::LookupArgs>),
    /// Check CloudTrail log-file integrity (digest signatures, the digest chain, log file
    /// hashes), like `aws cloudtrail validate-logs`; exit 5 when anything fails.
    Verify(Box<trailship::cli::verify::VerifyArgs>),
    /// A live view of a running trailship (its [api]): events/s in and out per component,
    /// errors, retries, buffer fill, source lag; works over a plain SSH session.
    Top(trailship::cli::top::TopArgs),
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
    let format = cli.log_format;
    match cli.command {
        Command::Lookup(args) => {
            telemetry::init_logging(format, "warn");
            match trailship::cli::lookup::run(*args, Box::new(std::io::stdout())) {
                Ok(o) if o.unreadable > 0 => ExitCode::from(EXIT_BAD_INPUT),
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Verify(args) => {
            telemetry::init_logging(format, "warn");
            match trailship::cli::verify::run(&args) {
                Ok(r) => {
                    trailship::cli::verify::print(&r);
                    if r.problems.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_INTEGRITY)
                    }
                }
                Err(e) => fail(e),
            }
        }
        Command::Top(args) => {
            telemetry::init_logging(format, "warn");
            match trailship::cli::top::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Version => {
            println!("trailship {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { config } => validate(&config),
        Command::Run {
            config,
            once,
            watch_config,
        } => run(format, config, once, watch_config),
        Command::Backfill {
            req,
            config,
            no_progress,
        } => run_backfill(format, &req, &config, no_progress),
    }
}

/// A command's error on stderr, and the config status.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn validate(config: &std::path::Path) -> ExitCode {
    match Config::load(config) {
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
    }
}

fn run(format: LogFormat, config: Option<PathBuf>, once: bool, watch_config: bool) -> ExitCode {
    telemetry::init_logging(format, "info");
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
    let opts = RunOptions {
        config_path: config,
        once,
        watch_config,
        progress: None,
    };
    let code = rt.block_on(daemon::run(cfg, opts));
    end(rt);
    ExitCode::from(code)
}

/// Drop the runtime without waiting on a thread that cannot finish (a reader blocked on a
/// hung disk): the run has already saved what it committed.
fn end(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
}

fn run_backfill(
    format: LogFormat,
    req: &backfill::Request,
    config: &std::path::Path,
    no_progress: bool,
) -> ExitCode {
    let show = !no_progress && std::io::stderr().is_terminal();
    // Under a progress bar, only warnings and errors (TRAILSHIP_LOG still rules).
    telemetry::init_logging(format, if show { "warn" } else { "info" });
    let mut cfg = match Config::load(config) {
        Ok(c) => c,
        Err(errs) => {
            print_errors(&errs);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = backfill::apply(&mut cfg, req) {
        return fail(e);
    }
    let Some(rt) = runtime() else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let code = rt.block_on(async move {
        let progress = show.then(|| Arc::new(Progress::default()));
        let display = progress.clone().map(backfill::Display::start);
        let opts = RunOptions {
            config_path: None,
            once: true,
            watch_config: false,
            progress,
        };
        let code = ExitCode::from(daemon::run(cfg, opts).await);
        if let Some(d) = display {
            d.finish();
        }
        code
    });
    end(rt);
    code
}
