//! `trailship top`: a live view of a running trailship, read from its HTTP API's `/metrics`:
//! per component, events/s in and out, errors, retries, buffer fill, source lag and how long a
//! sink has been failing. On a terminal it redraws in place (plain ANSI, fine over SSH);
//! otherwise (or with `--iterations`) it prints one table per interval.

mod model;
mod parse;
mod render;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The API's base URL ([api] address of the trailship to watch).
    #[arg(long, default_value = "http://127.0.0.1:8686")]
    pub url: String,
    /// Refresh interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print this many tables, then exit (default: until Ctrl-C).
    #[arg(long)]
    pub iterations: Option<u64>,
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<parse::Sample>, CliError> {
    let metrics = format!("{}/metrics", url.trim_end_matches('/'));
    let failed = |detail: String| CliError::Metrics {
        url: metrics.clone(),
        detail,
    };
    let r = client
        .get(&metrics)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !r.status().is_success() {
        return Err(failed(format!("HTTP {}", r.status())));
    }
    let text = r.text().await.map_err(|e| failed(e.to_string()))?;
    Ok(parse::parse(&text))
}

fn version(samples: &[parse::Sample]) -> String {
    samples
        .iter()
        .find(|s| s.name == "build_info")
        .and_then(|s| s.labels.get("version").cloned())
        .unwrap_or_else(|| "?".into())
}

pub fn run(args: &TopArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    rt.block_on(watch(args))
}

async fn watch(args: &TopArgs) -> Result<(), CliError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| CliError::HttpClient(e.to_string()))?;
    let live = std::io::stdout().is_terminal() && args.iterations.is_none();
    let mut before = fetch(&client, &args.url).await?;
    let mut at = Instant::now();
    let mut left = args.iterations;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (now, text) = match fetch(&client, &args.url).await {
            Ok(now) => {
                let secs = at.elapsed().as_secs_f64();
                let header = format!(
                    "trailship top: {} (version {}), every {}; Ctrl-C quits",
                    args.url,
                    version(&now),
                    humantime::format_duration(args.interval)
                );
                let text = render::table(&header, &model::rows(&now, &before, secs));
                (Some(now), text)
            }
            Err(e) if live => (None, format!("trailship top: cannot read {e}; retrying\n")),
            Err(e) => return Err(e),
        };
        if live {
            let _ = write!(stdout, "\x1b[H\x1b[2J{text}");
        } else {
            let _ = writeln!(stdout, "{text}");
        }
        let _ = stdout.flush();
        if let Some(now) = now {
            before = now;
            at = Instant::now();
        }
        if let Some(n) = left.as_mut() {
            *n -= 1;
            if *n == 0 {
                return Ok(());
            }
        }
    }
}
