//! `trailship backfill s3://BUCKET/PREFIX --since DAY --config FILE`: the pipeline of FILE fed
//! by an S3 source over the given objects instead of its own sources, and a progress bar on a
//! terminal.
//!
//! The S3 source takes the place (and the name, so every `inputs` still holds) of the pipeline's
//! source; the other sources are left out. AWS access (region, endpoint, assumed role) comes
//! from the flags, else from the replaced source when it is an AWS one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use crate::aws::parse_url;
use crate::core::run::Progress;
use crate::sources::SourceConfig;
use crate::sources::s3::S3SourceConfig;
use crate::topology::{Config, SourceSpec};

/// What the command line says about the backfill.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Request {
    /// Where the objects are: s3://BUCKET/PREFIX (e.g. s3://trail/AWSLogs/123456789012/CloudTrail/us-east-1/).
    pub url: String,
    /// First day (YYYY-MM-DD, UTC) or RFC 3339 time, from the date in the object keys.
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive), like --since.
    #[arg(long)]
    pub until: Option<String>,
    /// The pipeline source to replace, when it has several.
    #[arg(long)]
    pub source: Option<String>,
    /// AWS region (default: the replaced source's, else the standard chain).
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint override (emulators, VPC endpoints); S3 is then addressed path-style.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Objects read at once (default 4).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Put the backfill's S3 source in the place of the pipeline's source.
pub fn apply(cfg: &mut Config, req: &Request) -> Result<String, CliError> {
    let name = match &req.source {
        Some(n) if cfg.sources.contains_key(n) => n.clone(),
        Some(n) => return Err(CliError::NoSuchSource(n.clone())),
        None if cfg.sources.len() == 1 => cfg.sources.keys().next().cloned().unwrap_or_default(),
        None if cfg.sources.is_empty() => {
            return Err(CliError::NoSource);
        }
        None => {
            return Err(CliError::SeveralSources(
                cfg.sources.keys().cloned().collect(),
            ));
        }
    };
    let (bucket, prefix) = parse_url(&req.url)?;
    let replaced = cfg.sources.get(&name).map(|s| &s.config);
    let aws = replaced
        .and_then(SourceConfig::aws)
        .cloned()
        .unwrap_or_default();
    let mut table = toml::Table::new();
    table.insert("bucket".into(), bucket.into());
    table.insert("prefix".into(), prefix.into());
    let src: S3SourceConfig = crate::config::from_table(table).map_err(|e| CliError::Setting {
        key: e.path.join("."),
        message: e.message,
    })?;
    let src = S3SourceConfig {
        start_time: req.since.clone(),
        end_time: req.until.clone(),
        aws: crate::aws::AwsAccess {
            region: req.region.clone().or(aws.region),
            endpoint: req.endpoint.clone().or(aws.endpoint),
            assume_role: aws.assume_role,
        },
        concurrency: req.concurrency.unwrap_or(src.concurrency),
        ..src
    };
    let errs = src.check();
    if let Some(e) = errs.first() {
        return Err(CliError::Setting {
            key: e.path.join("."),
            message: e.message.clone(),
        });
    }
    let others: Vec<String> = cfg
        .sources
        .keys()
        .filter(|n| **n != name)
        .cloned()
        .collect();
    for o in &others {
        cfg.sources.remove(o);
    }
    for spec in cfg.transforms.values_mut() {
        spec.inputs.retain(|i| !others.contains(i));
    }
    for spec in cfg.sinks.values_mut() {
        spec.inputs.retain(|i| !others.contains(i));
    }
    cfg.sources.insert(
        name.clone(),
        SourceSpec {
            line: None,
            table: toml::Table::new(),
            config: SourceConfig::new(crate::sources::s3::KIND.name, Arc::new(src)),
        },
    );
    Ok(name)
}

/// A progress bar on stderr while the backfill runs (hidden when stderr is not a terminal).
pub struct Display {
    bar: ProgressBar,
    stop: tokio_util::sync::CancellationToken,
    progress: Arc<Progress>,
}

impl Display {
    pub fn start(progress: Arc<Progress>) -> Display {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let stop = tokio_util::sync::CancellationToken::new();
        let (b, s, p) = (bar.clone(), stop.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                draw(&b, &p);
                tokio::select! {
                    _ = s.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        Display {
            bar,
            stop,
            progress,
        }
    }

    /// Draw the final figures and leave the bar on screen.
    pub fn finish(self) {
        self.stop.cancel();
        draw(&self.bar, &self.progress);
        self.bar.abandon();
    }
}

fn draw(bar: &ProgressBar, p: &Progress) {
    let listed = Progress::get(&p.listed_objects);
    let done = Progress::get(&p.done_objects);
    let failed = Progress::get(&p.failed_objects);
    let final_total = p.listing_done.load(Ordering::Relaxed);
    bar.set_length(Progress::get(&p.listed_bytes).max(1));
    bar.set_position(Progress::get(&p.done_bytes));
    bar.set_message(format!(
        "objects {done}/{listed}{} events {}{}",
        if final_total { "" } else { "+ (listing)" },
        Progress::get(&p.events),
        if failed > 0 {
            format!(" failed {failed}")
        } else {
            String::new()
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://b/AWSLogs/1/").unwrap(),
            ("b".to_string(), "AWSLogs/1/".to_string())
        );
        assert_eq!(
            parse_url("s3://b").unwrap(),
            ("b".to_string(), String::new())
        );
        assert!(parse_url("b/prefix").is_err());
        assert!(parse_url("s3:///x").is_err());
    }

    #[test]
    fn takes_the_place_of_the_only_source() {
        let text = "data_dir = \"/tmp/x\"\n[sources.queue]\ntype = \"sqs\"\nqueue_url = \"http://127.0.0.1:1/q\"\nendpoint = \"http://127.0.0.1:1\"\n[sources.files]\ntype = \"file\"\ninclude = [\"/tmp/t/**\"]\n[sinks.out]\ntype = \"console\"\ninputs = [\"queue\", \"files\"]\n";
        let mut cfg = Config::parse(text, "t").unwrap();
        let req = Request {
            url: "s3://trail/AWSLogs/".into(),
            since: Some("2026-11-01".into()),
            ..Default::default()
        };
        assert!(
            apply(&mut cfg, &req)
                .unwrap_err()
                .to_string()
                .contains("--source")
        );
        let req = Request {
            source: Some("queue".into()),
            ..req
        };
        assert_eq!(apply(&mut cfg, &req).unwrap(), "queue");
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.sinks["out"].inputs, vec!["queue".to_string()]);
        let s = cfg.sources["queue"]
            .config
            .downcast::<S3SourceConfig>()
            .expect("an s3 source");
        assert_eq!(s.bucket, "trail");
        assert_eq!(s.prefix, "AWSLogs/");
        assert_eq!(s.aws.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(s.start_time.as_deref(), Some("2026-11-01"));
        let bad = Request {
            since: Some("last week".into()),
            source: Some("queue".into()),
            url: "s3://trail/".into(),
            ..Default::default()
        };
        assert!(
            apply(&mut cfg, &bad)
                .unwrap_err()
                .to_string()
                .contains("start_time")
        );
    }
}
