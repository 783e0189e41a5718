//! `trailship lookup DIR_OR_S3_URI [--event-name …] [--resource-name …] …`: find events in a
//! trail directory or an S3 prefix, as CloudTrail's LookupEvents does, on every core. Results
//! stream as they are found (a table, or the records as JSON lines); files that cannot be read
//! are reported and skipped; a progress line is drawn on a terminal.

mod output;
pub mod query;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use bytes::Bytes;

use super::CliError;
use crate::aws::trail_keys as keys;
use crate::core::event::{EventData, Origin, parse_header};
use crate::decode::{self, Item, Scanner};
pub use output::Format;
use query::{Query, QueryArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct LookupArgs {
    /// A trail directory (or file), or s3://BUCKET/PREFIX.
    pub location: String,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Output: a table, or the matching records as JSON lines.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Stop after this many matches.
    #[arg(long)]
    pub max_results: Option<u64>,
    /// Files read at once (default: the number of cores; S3: at least 8).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress line, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// AWS region for s3:// (default: the standard chain).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// Endpoint override for s3:// (emulators, VPC endpoints).
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// One input: a local file or an S3 object.
enum Input {
    File(PathBuf),
    Object(String),
}

impl Input {
    fn name(&self, bucket: &str) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Object(k) => format!("s3://{bucket}/{k}"),
        }
    }
}

#[derive(Default)]
struct Stats {
    files: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    matched: AtomicU64,
    unreadable: AtomicU64,
}

/// What the command ends with.
pub struct Outcome {
    pub matched: u64,
    pub unreadable: u64,
}

fn wanted_path(p: &str, q: &Query) -> bool {
    if p.contains("CloudTrail-Digest") {
        return false;
    }
    let since = q.since.map(|s| s - chrono::Duration::days(1));
    keys::key_day(p).is_none_or(|d| keys::day_in(d, since, q.until))
}

fn local_inputs(root: &str, q: &Query) -> Result<Vec<Input>, CliError> {
    let meta = std::fs::metadata(root).map_err(|source| CliError::Open {
        path: root.into(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![Input::File(root.into())]);
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                if wanted_path(&e.path().to_string_lossy(), q) {
                    out.push(Input::File(e.into_path()));
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: {e} (skipped)"),
        }
    }
    Ok(out)
}

async fn s3_client(args: &LookupArgs) -> aws_sdk_s3::Client {
    crate::aws::AwsAccess {
        region: args.aws_region.clone(),
        endpoint: args.endpoint.clone(),
        assume_role: None,
    }
    .s3()
    .await
}

async fn s3_inputs(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    q: &Query,
) -> Result<Vec<Input>, CliError> {
    Ok(crate::aws::list_keys(client, bucket, prefix)
        .await?
        .into_iter()
        .filter(|k| wanted_path(k, q))
        .map(Input::Object)
        .collect())
}

/// Run a lookup; results go to `out`, reports and progress to stderr.
pub fn run(args: LookupArgs, out: Box<dyn Write + Send>) -> Result<Outcome, CliError> {
    let query = Query::new(args.query.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let (bucket, client, inputs) = if args.location.starts_with("s3://") {
        let (bucket, prefix) = crate::aws::parse_url(&args.location)?;
        let client = rt.block_on(s3_client(&args));
        let inputs = rt.block_on(s3_inputs(&client, &bucket, &prefix, &query))?;
        (bucket, Some(client), inputs)
    } else {
        (String::new(), None, local_inputs(&args.location, &query)?)
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = args
        .threads
        .unwrap_or(if client.is_some() {
            cores.max(8)
        } else {
            cores
        })
        .clamp(1, 256);
    let total = inputs.len() as u64;
    let queue = Arc::new(Mutex::new(VecDeque::from(inputs)));
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<EventData>(1024);
    let started = Instant::now();
    let progress = output::Progress::new(total, !args.no_progress, stats.clone());
    let printer = {
        let stats = stats.clone();
        let stop = stop.clone();
        let (format, max) = (args.format, args.max_results);
        let progress = progress.clone();
        std::thread::spawn(move || output::print(rx, out, format, max, &stats, &stop, &progress))
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (queue, stats, stop, tx) = (&queue, &stats, &stop, tx.clone());
            let (query, client, bucket, rt) = (&query, &client, &bucket, &rt);
            s.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(input) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        return;
                    };
                    let name = input.name(bucket);
                    let res = open(&input, client.as_ref(), bucket, rt)
                        .and_then(|r| scan(r, &name, query, stats, stop, &tx));
                    if let Err(e) = res {
                        stats.unreadable.fetch_add(1, Ordering::Relaxed);
                        progress_note(&format!(
                            "warning: {name}: {e} (skipped; the other files are read)"
                        ));
                    }
                    stats.files.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    drop(tx);
    let _ = printer.join();
    progress.finish();
    let matched = stats.matched.load(Ordering::Relaxed);
    let unreadable = stats.unreadable.load(Ordering::Relaxed);
    eprintln!(
        "{matched} events matched; {} events in {} of {total} files ({:.1} MB) scanned in {:.1} s on {threads} threads{}",
        stats.events.load(Ordering::Relaxed),
        stats.files.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        if unreadable > 0 {
            format!("; {unreadable} files could not be read (see above)")
        } else {
            String::new()
        }
    );
    Ok(Outcome {
        matched,
        unreadable,
    })
}

fn progress_note(msg: &str) {
    output::note(msg);
}

fn open(
    input: &Input,
    client: Option<&aws_sdk_s3::Client>,
    bucket: &str,
    rt: &tokio::runtime::Runtime,
) -> Result<Box<dyn Read + Send>, CliError> {
    let raw: Box<dyn Read + Send> = match (input, client) {
        (Input::File(p), _) => Box::new(std::fs::File::open(p).map_err(CliError::Read)?),
        (Input::Object(k), Some(c)) => {
            let (body, _) = rt.block_on(crate::aws::get_object(c, bucket, k))?;
            Box::new(std::io::Cursor::new(body))
        }
        (Input::Object(_), None) => return Err(CliError::NoS3Client),
    };
    decode::open_stream(raw).map_err(CliError::Read)
}

/// Scan one input; matches go to the printer. A stream error ends this input (its records
/// before the error were checked).
fn scan(
    r: Box<dyn Read + Send>,
    name: &str,
    query: &Query,
    stats: &Stats,
    stop: &AtomicBool,
    tx: &mpsc::SyncSender<EventData>,
) -> Result<(), CliError> {
    let origin = Arc::new(Origin {
        source: "lookup".into(),
        location: name.to_string(),
        trace: Default::default(),
        reread: None,
    });
    let mut scanner = Scanner::new(r, 0, decode::DEFAULT_MAX_RECORD_BYTES);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match scanner.next_item() {
            Ok(None) => return Ok(()),
            Ok(Some(Item::Record(raw))) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
                let raw: Bytes = if decode::spans_lines(&raw) {
                    decode::compact(&raw).into()
                } else {
                    raw
                };
                let Ok(header) = parse_header(&raw) else {
                    continue;
                };
                let e = EventData {
                    raw,
                    header,
                    record: None,
                    origin: origin.clone(),
                };
                if query.matches(&e) && tx.send(e).is_err() {
                    return Ok(());
                }
            }
            Ok(Some(_)) => {}
            Err(e) => {
                return Err(CliError::Scan {
                    detail: e.to_string(),
                    reason: e.reason(),
                });
            }
        }
    }
}
