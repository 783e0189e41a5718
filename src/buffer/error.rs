//! Why a sink's disk buffer cannot be opened or read, with the sink and the file. Opening
//! fails the sink's start (the pipeline does not run without it); a read error is retried.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The directory, its lock file, its listing or a segment's size could not be had.
    #[error("sink {sink}: disk buffer {}: {what}: {source}", dir.display())]
    Dir {
        sink: String,
        dir: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error(
        "sink {sink}: disk buffer {} is in use by another process ({source}); each trailship needs its own data_dir",
        dir.display()
    )]
    Locked {
        sink: String,
        dir: PathBuf,
        source: std::fs::TryLockError,
    },
    #[error("sink {sink}: cannot create buffer segment {}: {source}", path.display())]
    CreateSegment {
        sink: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sink {sink}: cannot sync {}: {source}", dir.display())]
    SyncDir {
        sink: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    /// The saved delivered position could not be read.
    #[error("sink {sink}: disk buffer position: {message}")]
    Position { sink: String, message: String },
    /// A segment could not be read (retried in a second; the records stay on disk).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A complete segment ends before a record the buffer recorded.
    #[error("{}: shorter than expected (offset {offset}, end {end})", path.display())]
    Short {
        path: PathBuf,
        offset: u64,
        end: u64,
    },
    /// A file a run record names could not be read (retried in a second).
    #[error("cannot read {} again for the records the spill named: {source}", file.display())]
    Reread {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer read task: {0}")]
    ReadTask(String),
}
