//! What can go wrong building or changing a running pipeline: which component, and the cause.
//! A start that fails stops the process with the config status; a reload that fails leaves the
//! running pipeline as it was (`DataDirChanged`, `Transform`) or runs without the component that
//! could not start, its inputs waiting (`Source`, `Sink`, `Buffer`).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot create data_dir {}: {message}", path.display())]
    DataDir { path: PathBuf, message: String },
    #[error(
        "data_dir changed ({} → {}): checkpoints and buffers live there; restart to move it",
        old.display(),
        new.display()
    )]
    DataDirChanged { old: PathBuf, new: PathBuf },
    #[error("transform {name}: {message}")]
    Transform { name: String, message: String },
    #[error("source {name}: {message}")]
    Source { name: String, message: String },
    #[error("sink {name}: {message}")]
    Sink { name: String, message: String },
    /// A sink's buffer could not be opened (the message names the sink and the file).
    #[error("{message}")]
    Buffer { sink: String, message: String },
    /// An `inputs` entry names no output (caught by `validate` first).
    #[error("{message}")]
    Input { input: String, message: String },
}
