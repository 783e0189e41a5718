//! Durable source positions in `data_dir/checkpoints/SOURCE.json`, written atomically: write a
//! temporary file, fsync it, rename it over the old one, fsync the directory. A crash leaves
//! either the old or the new checkpoint, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub mod journal;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// Prepare `data_dir/checkpoints/` for the source `name`.
    pub fn open(data_dir: &Path, name: &str) -> io::Result<Self> {
        let dir = data_dir.join("checkpoints");
        fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        Ok(CheckpointStore {
            path: dir.join(format!("{name}.json")),
        })
    }

    /// A state file at a given path (its directory must exist).
    pub fn at(path: PathBuf) -> Self {
        CheckpointStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `Ok(None)` when there is none yet. A corrupt file is moved aside (so it
    /// can be inspected) and treated as absent: that re-reads inputs (duplicates), never loses.
    pub fn load<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", self.path.display()),
                ));
            }
        };
        match serde_json::from_slice(&data) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let aside = self
                    .path
                    .with_extension(format!("corrupt-{}", std::process::id()));
                let _ = fs::rename(&self.path, &aside);
                tracing::error!(checkpoint = %self.path.display(), moved_to = %aside.display(), error = %e, "checkpoint file is corrupt; starting from scratch (inputs will be read again)");
                crate::telemetry::count("checkpoint_corrupt_total", &[]);
                Ok(None)
            }
        }
    }

    pub fn save<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec(value).map_err(io::Error::other)?;
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(|e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("writing checkpoint {}: {e}", self.path.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let s = CheckpointStore::open(d.path(), "src").unwrap();
        assert_eq!(s.load::<Vec<u32>>().unwrap(), None);
        s.save(&vec![1u32, 2]).unwrap();
        assert_eq!(s.load::<Vec<u32>>().unwrap(), Some(vec![1, 2]));
        fs::write(s.path(), b"{not json").unwrap();
        assert_eq!(s.load::<Vec<u32>>().unwrap(), None);
        assert!(!s.path().exists());
    }
}
