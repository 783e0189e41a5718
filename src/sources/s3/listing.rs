//! The `s3` source's listing: ListObjectsV2 pages in key order after a start key, the keys the
//! filters and the day range select, retried while the error is transient. One listing feeds
//! the runner; with a progress display, a second counts ahead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{Bounds, S3SourceConfig};
use super::keys;
use crate::aws::sdk_error_text;
use crate::core::run::Progress;
use crate::sources::util::object::KeyFilter;

/// A selected object from the listing.
pub(super) struct Listed {
    pub(super) key: String,
    pub(super) size: u64,
}

const LIST_ATTEMPTS: u32 = 5;

/// The listing failed for good (a missing bucket, a denied listing, or retries spent): the
/// source stops after the objects in flight and reports it as fatal.
#[derive(Debug, thiserror::Error)]
pub(super) enum ListError {
    #[error("listing s3://{bucket}/{prefix}: {detail}")]
    Request {
        bucket: String,
        prefix: String,
        detail: String,
    },
    #[error("listing task failed: {0}")]
    Task(String),
}

/// Pages through the selected objects under the prefix, in key order, after `start_after`.
pub(super) struct Lister {
    s3: aws_sdk_s3::Client,
    cfg: Arc<S3SourceConfig>,
    keys: KeyFilter,
    bounds: Bounds,
    start_after: Option<String>,
    token: Option<String>,
    /// Objects left out because their key has no day while a time range is set.
    undated: u64,
    done: bool,
}

impl Lister {
    pub(super) fn new(
        s3: aws_sdk_s3::Client,
        cfg: Arc<S3SourceConfig>,
        keys: KeyFilter,
        bounds: Bounds,
        start_after: Option<String>,
    ) -> Self {
        Lister {
            s3,
            cfg,
            keys,
            bounds,
            start_after,
            token: None,
            undated: 0,
            done: false,
        }
    }

    /// The next page's selected objects; None once the listing is read (or shut down).
    async fn next_page(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Vec<Listed>>, ListError> {
        if self.done {
            return Ok(None);
        }
        let Some(out) = self.request(shutdown).await? else {
            self.done = true;
            return Ok(None);
        };
        match out.next_continuation_token {
            Some(t) if out.is_truncated == Some(true) => self.token = Some(t),
            _ => self.done = true,
        }
        let objects = out.contents.unwrap_or_default().into_iter();
        let mut page = Vec::new();
        for o in objects {
            let Some(key) = o.key else { continue };
            match self.select(&key) {
                Pick::Take => page.push(Listed {
                    size: o.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    key,
                }),
                Pick::Skip => {}
                Pick::Past => {
                    self.done = true;
                    break;
                }
            }
        }
        Ok(Some(page))
    }

    /// Whether a listed key is selected by the filters and the day range.
    fn select(&mut self, key: &str) -> Pick {
        if !self.keys.wanted(key) {
            return Pick::Skip;
        }
        if self.bounds.0.is_none() && self.bounds.1.is_none() {
            return Pick::Take;
        }
        let end_day = self.bounds.1.map(|e| e.date_naive());
        match keys::key_day(key) {
            Some(d) if keys::day_in(d, self.bounds.0, self.bounds.1) => Pick::Take,
            // Below a region folder keys sort by day: nothing later can be in range.
            Some(d)
                if keys::is_region_level(&self.cfg.prefix) && end_day.is_some_and(|e| d > e) =>
            {
                Pick::Past
            }
            Some(_) => Pick::Skip,
            None => {
                self.undated += 1;
                Pick::Skip
            }
        }
    }

    /// One ListObjectsV2 call, retried while the error is transient; None on shutdown.
    async fn request(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output>, ListError>
    {
        let cfg = &self.cfg;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .s3
                .list_objects_v2()
                .bucket(&cfg.bucket)
                .prefix(&cfg.prefix);
            req = match (&self.token, &self.start_after) {
                (Some(t), _) => req.continuation_token(t),
                (None, Some(a)) => req.start_after(a),
                (None, None) => req,
            };
            let r = tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                r = req.send() => r,
            };
            match r {
                Ok(o) => return Ok(Some(o)),
                // A missing bucket or a denied listing will not change by retrying.
                Err(e)
                    if attempt < LIST_ATTEMPTS
                        && matches!(
                            crate::aws::sink_error("", &e),
                            crate::core::send::SendError::Retryable { .. }
                        ) =>
                {
                    tracing::warn!(bucket = %cfg.bucket, prefix = %cfg.prefix, attempt, error = %sdk_error_text(&e), "listing objects failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
                Err(e) => {
                    return Err(ListError::Request {
                        bucket: cfg.bucket.clone(),
                        prefix: cfg.prefix.clone(),
                        detail: sdk_error_text(&e),
                    });
                }
            }
        }
    }
}

enum Pick {
    Take,
    Skip,
    /// Past the end day below a region folder: the listing is over.
    Past,
}

/// Feed the selected objects to the runner, in key order.
pub(super) async fn feed(
    mut lister: Lister,
    tx: mpsc::Sender<Listed>,
    shutdown: CancellationToken,
) -> Result<(), ListError> {
    while let Some(page) = lister.next_page(&shutdown).await? {
        for l in page {
            if tx.send(l).await.is_err() {
                return Ok(());
            }
        }
    }
    if lister.undated > 0 && !shutdown.is_cancelled() {
        tracing::warn!(
            objects = lister.undated,
            "objects without a YYYY/MM/DD day in their key were left out (a time range is set)"
        );
    }
    Ok(())
}

/// Count the selected objects and their bytes into the backfill's progress, ahead of reading.
pub(super) async fn count(
    mut lister: Lister,
    progress: Arc<Progress>,
    shutdown: CancellationToken,
) -> Result<(), ListError> {
    while let Some(page) = lister.next_page(&shutdown).await? {
        for l in page {
            Progress::add(&progress.listed_objects, 1);
            Progress::add(&progress.listed_bytes, l.size);
        }
    }
    if !shutdown.is_cancelled() {
        progress
            .listing_done
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// The listing task's failure, if it failed.
pub(super) fn listing_failed(
    res: Result<Result<(), ListError>, tokio::task::JoinError>,
) -> Option<String> {
    match res {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(ListError::Task(e.to_string()).to_string()),
    }
}
