//! Finding files: include/exclude globs (with `**`), walked from the literal directory prefix
//! of each include pattern; symlinks followed, loops reported and skipped.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: SystemTime,
}

impl Stat {
    pub fn of(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

/// Matching files, and (path, message) of what could not be scanned.
pub type ScanResult = (Vec<(PathBuf, Stat)>, Vec<(String, String)>);

pub struct Matcher {
    include: GlobSet,
    exclude: GlobSet,
    roots: Vec<PathBuf>,
}

/// Make a pattern absolute (against `cwd`) and drop `.` components.
fn normalize(pattern: &str, cwd: &Path) -> String {
    let p = Path::new(pattern);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    out.to_string_lossy().into_owned()
}

fn root_of(pattern: &str) -> PathBuf {
    let mut root = PathBuf::new();
    for c in Path::new(pattern).components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        root.push(c.as_os_str());
    }
    root
}

/// Globs that cannot select files: the source is refused (`validate` names the key).
#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    #[error("invalid glob {pattern:?}: {source}")]
    Invalid {
        pattern: String,
        source: globset::Error,
    },
    #[error("{0}")]
    Set(globset::Error),
    #[error("`include` needs at least one glob")]
    NoInclude,
}

impl Matcher {
    pub fn new(include: &[String], exclude: &[String], cwd: &Path) -> Result<Matcher, GlobError> {
        let build = |pats: &[String]| -> Result<(GlobSet, Vec<String>), GlobError> {
            let mut b = GlobSetBuilder::new();
            let mut norm = Vec::new();
            for p in pats {
                let n = normalize(p, cwd);
                let g = GlobBuilder::new(&n)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| GlobError::Invalid {
                        pattern: p.clone(),
                        source,
                    })?;
                b.add(g);
                norm.push(n);
            }
            Ok((b.build().map_err(GlobError::Set)?, norm))
        };
        if include.is_empty() {
            return Err(GlobError::NoInclude);
        }
        let (inc, norm) = build(include)?;
        let (exc, _) = build(exclude)?;
        let mut roots: Vec<PathBuf> = norm.iter().map(|p| root_of(p)).collect();
        roots.sort();
        roots.dedup();
        // Drop roots inside other roots: walking the outer one covers them.
        let all = roots.clone();
        roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
        Ok(Matcher {
            include: inc,
            exclude: exc,
            roots,
        })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Walk the roots. Returns matching regular files and the problems met on the way.
    pub fn scan(&self) -> ScanResult {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for root in &self.roots {
            if !root.exists() {
                continue;
            }
            for entry in walkdir::WalkDir::new(root).follow_links(true) {
                match entry {
                    Ok(e) => {
                        if !e.file_type().is_file() || !self.matches(e.path()) {
                            continue;
                        }
                        match e.metadata() {
                            Ok(m) => files.push((e.path().to_path_buf(), Stat::of(&m))),
                            Err(err) => {
                                problems.push((e.path().display().to_string(), err.to_string()))
                            }
                        }
                    }
                    Err(err) => {
                        let at = err
                            .path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| root.display().to_string());
                        let msg = if err.loop_ancestor().is_some() {
                            "symlink loop".to_string()
                        } else {
                            err.to_string()
                        };
                        problems.push((at, msg));
                    }
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files.dedup_by(|a, b| a.0 == b.0);
        (files, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_roots_and_loops() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        std::fs::create_dir_all(base.join("AWSLogs/1/CloudTrail/us-east-1/2023")).unwrap();
        std::fs::write(
            base.join("AWSLogs/1/CloudTrail/us-east-1/2023/a.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            base.join("AWSLogs/1/CloudTrail/us-east-1/2023/skip.tmp"),
            b"x",
        )
        .unwrap();
        std::fs::write(base.join("AWSLogs/top.json"), b"x").unwrap();
        std::os::unix::fs::symlink(base.join("AWSLogs"), base.join("AWSLogs/1/loop")).unwrap();
        let m = Matcher::new(&["./AWSLogs/**/*".into()], &["**/*.tmp".into()], base).unwrap();
        assert_eq!(m.roots(), &[base.join("AWSLogs")]);
        let (files, problems) = m.scan();
        let names: Vec<_> = files
            .iter()
            .map(|(p, _)| p.strip_prefix(base).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                "AWSLogs/1/CloudTrail/us-east-1/2023/a.json.gz",
                "AWSLogs/top.json"
            ]
        );
        assert!(
            problems.iter().any(|(_, m)| m == "symlink loop"),
            "{problems:?}"
        );
    }
}
