//! `type = "file"`: events to files named by a path template.
//!
//! Durability: each batch is written and (with `fsync = true`, the default) `fdatasync`ed
//! before its events are acknowledged; a new file's directory is synced too. A write that
//! fails is rolled back (the file is cut back to its length before the batch) and retried.
//!
//! Encodings: `ndjson` appends one record per line. After a crash, whatever was left
//! half-written at the end of a file (never acknowledged) is cut off when the sink first opens
//! it again (see `repair`). `cloudtrail` keeps each file one valid
//! `{"Records":[...]}` document: an uncompressed file is extended in place (its closing `]}`
//! is rewritten); a compressed one cannot be, so each batch goes to a new file (`x.json.gz`,
//! then `x.1.json.gz`, ...).

pub mod repair;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::FieldError;
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::encoding::{self, Compression};
use crate::sinks::util::template::Template;
use crate::telemetry;

pub use crate::sinks::util::encoding::FileEncoding;

fn default_true() -> bool {
    true
}
fn default_max_open() -> usize {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path template, e.g. "/var/log/trail/{account_id}/%Y/%m/%d/%H.ndjson".
    pub path: String,
    #[serde(default)]
    pub encoding: FileEncoding,
    #[serde(default)]
    pub compression: Compression,
    /// fdatasync each batch before acknowledging it.
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// Files kept open at once; the least recently used is closed beyond this.
    #[serde(default = "default_max_open")]
    pub max_open_files: usize,
    /// A file not written for this long is closed.
    #[serde(
        default = "default_idle",
        deserialize_with = "crate::config::units::duration"
    )]
    pub idle_timeout: Duration,
}

fn default_idle() -> Duration {
    Duration::from_secs(30)
}

impl FileSinkConfig {
    pub fn build(&self) -> Result<FileSink, FieldError> {
        let template = Template::parse(&self.path).map_err(|m| FieldError::new(&["path"], m))?;
        if self.max_open_files == 0 {
            return Err(FieldError::new(&["max_open_files"], "must be at least 1"));
        }
        Ok(FileSink {
            template,
            cfg: self.clone(),
            files: Arc::new(Mutex::new(Files::default())),
        })
    }
}

struct Open {
    file: File,
    len: u64,
    used: Instant,
}

#[derive(Default)]
struct Files {
    open: HashMap<PathBuf, Open>,
    /// Files already checked for crash damage by this process.
    checked: std::collections::HashSet<PathBuf>,
}

pub struct FileSink {
    template: Template,
    cfg: FileSinkConfig,
    files: Arc<Mutex<Files>>,
}

/// What one group of a batch (events bound for one path) becomes.
struct Group {
    path: PathBuf,
    indices: Vec<usize>,
    data: Vec<u8>,
}

impl SinkService for FileSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut errors = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut path = String::new();
        for (i, e) in events.iter().enumerate() {
            if let Err(m) = self.template.render(&e.data, &mut path) {
                errors.push(ItemError {
                    index: i,
                    error: SendError::Permanent(m.to_string()),
                });
                continue;
            }
            let g = match index.get(path.as_str()) {
                Some(g) => *g,
                None => {
                    index.insert(path.clone(), groups.len());
                    groups.push(Group {
                        path: PathBuf::from(crate::sinks::util::template::fill_uuid(&path)),
                        indices: Vec::new(),
                        data: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[g].indices.push(i);
        }
        for g in &mut groups {
            let evs = g.indices.iter().map(|i| &events[*i]);
            match self.cfg.encoding {
                FileEncoding::Ndjson => encoding::ndjson(evs, &mut g.data),
                FileEncoding::Cloudtrail => encoding::records_array(evs, &mut g.data),
            }
        }
        let files = self.files.clone();
        let cfg = self.cfg.clone();
        let results = tokio::task::spawn_blocking(move || {
            let mut files = match files.lock() {
                Ok(f) => f,
                Err(p) => p.into_inner(),
            };
            files.close_idle(cfg.idle_timeout);
            groups
                .into_iter()
                .map(|g| {
                    let r = write_group(&mut files, &cfg, &g.path, &g.data)
                        .map_err(|e| format!("writing {}: {e}", g.path.display()));
                    (g.indices, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| SendError::retryable(format!("file writer task failed: {e}")))?;
        for (indices, r) in results {
            if let Err(m) = r {
                // Disk full, permissions, a vanished directory: all may heal, so retry.
                errors.extend(indices.into_iter().map(|index| ItemError {
                    index,
                    error: SendError::retryable(m.clone()),
                }));
            }
        }
        Ok(errors)
    }

    async fn finish(&self) {
        if let Ok(mut f) = self.files.lock() {
            f.open.clear();
        }
    }
}

impl Files {
    fn close_idle(&mut self, idle: Duration) {
        self.open.retain(|_, o| o.used.elapsed() < idle);
    }

    fn get(&mut self, path: &Path, cfg: &FileSinkConfig) -> std::io::Result<&mut Open> {
        let (max_open, fsync) = (cfg.max_open_files, cfg.fsync);
        if !self.open.contains_key(path) {
            if self.open.len() >= max_open
                && let Some(oldest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, o)| o.used)
                    .map(|(p, _)| p.clone())
            {
                self.open.remove(&oldest);
            }
            let created = !path.exists();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            if created && fsync {
                sync_dir(path);
            }
            let mut file = file;
            let mut len = file.metadata()?.len();
            // The first time this process opens an existing file, cut what a crash left torn.
            if !self.checked.contains(path) {
                let (fixed, what) = repair::repair(&mut file, len, cfg.encoding, cfg.compression)?;
                if let Some(what) = what {
                    telemetry::count("sink_file_repairs_total", &[]);
                    tracing::warn!(file = %path.display(), "{what}");
                }
                len = fixed;
                self.checked.insert(path.to_path_buf());
            }
            self.open.insert(
                path.to_path_buf(),
                Open {
                    file,
                    len,
                    used: Instant::now(),
                },
            );
        }
        let o = self
            .open
            .get_mut(path)
            .ok_or_else(|| std::io::Error::other("file handle vanished"))?;
        o.used = Instant::now();
        Ok(o)
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn last_bytes(f: &mut File, len: u64, n: usize) -> std::io::Result<Vec<u8>> {
    let n = n.min(len as usize);
    let mut b = vec![0u8; n];
    f.seek(SeekFrom::Start(len - n as u64))?;
    f.read_exact(&mut b)?;
    Ok(b)
}

/// Write at `at`, making the file exactly `at + data.len()` long; on failure restore `len`.
fn write_at(
    o: &mut Open,
    at: u64,
    data: &[u8],
    restore: Option<&[u8]>,
    fsync: bool,
) -> std::io::Result<()> {
    let res = (|| {
        o.file.seek(SeekFrom::Start(at))?;
        o.file.write_all(data)?;
        if fsync {
            o.file.sync_data()?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => {
            o.len = at + data.len() as u64;
            Ok(())
        }
        Err(e) => {
            // Roll back so a retry does not leave a partial batch behind.
            let _ = o.file.set_len(at);
            if let Some(r) = restore {
                let _ = o
                    .file
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| o.file.write_all(r));
            }
            o.len = at + restore.map_or(0, |r| r.len() as u64);
            Err(e)
        }
    }
}

fn write_group(
    files: &mut Files,
    cfg: &FileSinkConfig,
    path: &Path,
    data: &[u8],
) -> std::io::Result<()> {
    match (cfg.encoding, cfg.compression) {
        (FileEncoding::Ndjson, compression) => {
            let payload = match compression {
                Compression::None => std::borrow::Cow::Borrowed(data),
                Compression::Gzip => std::borrow::Cow::Owned(encoding::gzip(data)?),
            };
            let o = files.get(path, cfg)?;
            let len = o.len;
            write_at(o, len, &payload, None, cfg.fsync)
        }
        (FileEncoding::Cloudtrail, Compression::None) => {
            let o = files.get(path, cfg)?;
            let len = o.len;
            if len >= 2 && last_bytes(&mut o.file, len, 2)? == b"]}" {
                let empty = len >= 14 && last_bytes(&mut o.file, len, 14)? == b"{\"Records\":[]}";
                let mut buf = Vec::with_capacity(data.len() + 3);
                if !empty {
                    buf.push(b',');
                }
                buf.extend_from_slice(data);
                buf.extend_from_slice(b"]}");
                write_at(o, len - 2, &buf, Some(b"]}"), cfg.fsync)
            } else if len == 0 {
                let mut buf = Vec::with_capacity(data.len() + 14);
                buf.extend_from_slice(b"{\"Records\":[");
                buf.extend_from_slice(data);
                buf.extend_from_slice(b"]}");
                write_at(o, 0, &buf, None, cfg.fsync)
            } else {
                // Not a document this sink can extend (a foreign file): start a new file.
                let next = free_path(path)?;
                files.open.remove(path);
                write_group(files, cfg, &next, data)
            }
        }
        (FileEncoding::Cloudtrail, Compression::Gzip) => {
            let target = if path.exists() {
                free_path(path)?
            } else {
                path.to_path_buf()
            };
            let mut doc = Vec::with_capacity(data.len() + 14);
            doc.extend_from_slice(b"{\"Records\":[");
            doc.extend_from_slice(data);
            doc.extend_from_slice(b"]}");
            let gz = encoding::gzip(&doc)?;
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // Written under a temporary name and renamed once complete, so a crash can never
            // leave a torn document under the real name.
            let tmp = target.with_file_name(format!(
                ".{}.tmp",
                target.file_name().and_then(|n| n.to_str()).unwrap_or("out")
            ));
            let res = (|| {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                f.write_all(&gz)?;
                if cfg.fsync {
                    f.sync_data()?;
                }
                std::fs::rename(&tmp, &target)?;
                if cfg.fsync {
                    sync_dir(&target);
                }
                Ok(())
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
    }
}

/// `x.json.gz` → the first of `x.1.json.gz`, `x.2.json.gz`, ... that does not exist.
fn free_path(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let (stem, ext) = match name.find('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 1..1_000_000u32 {
        let p = path.with_file_name(format!("{stem}.{n}{ext}"));
        if !p.exists() {
            return Ok(p);
        }
    }
    Err(std::io::Error::other(format!(
        "no free file name next to {}",
        path.display()
    )))
}

/// The `file` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "file",
    defaults: || crate::sinks::util::kind::defaults(10_000, 2 << 20, Duration::from_millis(500), 1),
    keys: &[],
    parse: crate::sinks::util::kind::parse_with::<FileSinkConfig>,
};

impl crate::sinks::util::kind::Sink for FileSinkConfig {
    fn check(&self) -> Result<(), crate::config::FieldError> {
        self.build().map(|_| ())
    }
    fn spawn(
        &self,
        name: std::sync::Arc<str>,
        rx: tokio::sync::mpsc::Receiver<crate::core::Batch>,
        common: crate::sinks::util::driver::SinkCommon,
        wiring: crate::sinks::util::driver::SinkWiring,
    ) -> Result<tokio::task::JoinHandle<()>, crate::config::FieldError> {
        Ok(tokio::spawn(crate::sinks::util::driver::run(
            name,
            rx,
            std::sync::Arc::new(self.build()?),
            common,
            wiring,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::test_data as ev;

    fn sink(dir: &Path, path: &str, encoding: FileEncoding, compression: Compression) -> FileSink {
        FileSinkConfig {
            path: dir.join(path).to_string_lossy().into_owned(),
            encoding,
            compression,
            fsync: true,
            max_open_files: 2,
            idle_timeout: Duration::from_secs(30),
        }
        .build()
        .unwrap()
    }

    fn events(ids: &[&str]) -> Vec<Event> {
        ids.iter()
            .map(|id| Event::new(ev(&format!(r#"{{"eventID":"{id}","eventTime":"2023-07-10T11:45:12Z","awsRegion":"us-east-1"}}"#)), crate::core::ack::AckToken::none()))
            .collect()
    }

    #[tokio::test]
    async fn cloudtrail_document_stays_valid_across_batches() {
        let d = tempfile::tempdir().unwrap();
        let s = sink(
            d.path(),
            "%Y/{region}.json",
            FileEncoding::Cloudtrail,
            Compression::None,
        );
        assert!(s.send(&events(&["a", "b"])).await.unwrap().is_empty());
        assert!(s.send(&events(&["c"])).await.unwrap().is_empty());
        let text = std::fs::read_to_string(d.path().join("2023/us-east-1.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["Records"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn ndjson_cuts_torn_line_and_gzip_cloudtrail_gets_new_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("o.ndjson"), b"{\"kept\":1}\n{\"torn\":").unwrap();
        let s = sink(
            d.path(),
            "o.ndjson",
            FileEncoding::Ndjson,
            Compression::None,
        );
        s.send(&events(&["a"])).await.unwrap();
        let text = std::fs::read_to_string(d.path().join("o.ndjson")).unwrap();
        assert_eq!(
            text,
            "{\"kept\":1}\n{\"eventID\":\"a\",\"eventTime\":\"2023-07-10T11:45:12Z\",\"awsRegion\":\"us-east-1\"}\n"
        );

        let s = sink(
            d.path(),
            "t.json.gz",
            FileEncoding::Cloudtrail,
            Compression::Gzip,
        );
        s.send(&events(&["a"])).await.unwrap();
        s.send(&events(&["b"])).await.unwrap();
        assert!(d.path().join("t.json.gz").exists());
        assert!(d.path().join("t.1.json.gz").exists());
    }

    #[tokio::test]
    async fn unsafe_values_are_rejected_per_event() {
        let d = tempfile::tempdir().unwrap();
        let s = sink(
            d.path(),
            "{region}.ndjson",
            FileEncoding::Ndjson,
            Compression::None,
        );
        let mut evs = events(&["ok"]);
        evs.push(Event::new(
            ev(r#"{"eventID":"bad","awsRegion":"../../x"}"#),
            crate::core::ack::AckToken::none(),
        ));
        let errs = s.send(&evs).await.unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].index, 1);
        assert!(matches!(errs[0].error, SendError::Permanent(_)));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
