//! A keyed checkpoint whose commit costs what changed: a base file
//! (`data_dir/checkpoints/NAME.json`: every entry, and the number of its journal) written
//! atomically now and then, and a journal (`NAME.N.journal`: one JSON line per changed or
//! removed entry) appended and fdatasynced at each commit. Loading reads the base, then
//! applies the journal it names; a torn last line (a crash mid-append) is ignored.
//!
//! The base is rewritten (compaction) when the journal has grown past twice the entries (plus
//! 4,096 lines), when a commit failed (what it held is then in no file), and at a clean stop:
//! commits are O(changed) amortized, and after a clean stop the base alone is the state.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::CheckpointStore;

/// Lines a journal may hold beyond twice the entries before the base is rewritten.
const SLACK_LINES: u64 = 4096;

#[derive(Deserialize)]
struct Base<V> {
    journal: u64,
    files: BTreeMap<String, V>,
}

/// A base as written (borrowing its entries).
#[derive(Serialize)]
struct BaseRef<'a, V> {
    journal: u64,
    files: &'a BTreeMap<String, V>,
}

/// What the base file may hold: a base, or the plain map older versions wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored<V> {
    Base(Base<V>),
    Map(BTreeMap<String, V>),
}

#[derive(Serialize, Deserialize)]
struct Line<V> {
    /// The key (a path).
    p: String,
    /// Its entry; none: removed.
    s: Option<V>,
}

pub struct Journal {
    base: CheckpointStore,
    dir: PathBuf,
    name: String,
    /// The journal the base names (0: no base yet).
    generation: u64,
    file: Option<File>,
    lines: u64,
    /// Entries in the base (as last written or loaded): the journal may grow to twice that.
    entries: u64,
    /// A commit failed: the next one rewrites the base.
    broken: bool,
}

impl Journal {
    /// Open `data_dir/checkpoints/NAME.*` and load what it holds (`None`: nothing saved yet).
    pub fn open<V: DeserializeOwned>(
        data_dir: &Path,
        name: &str,
    ) -> io::Result<(Journal, Option<BTreeMap<String, V>>)> {
        let base = CheckpointStore::open(data_dir, name)?;
        let dir = data_dir.join("checkpoints");
        let (generation, mut files) = match base.load::<Stored<V>>()? {
            None => (0, None),
            Some(Stored::Map(m)) => (0, Some(m)),
            Some(Stored::Base(b)) => (b.journal, Some(b.files)),
        };
        let mut j = Journal {
            base,
            dir,
            name: name.to_string(),
            generation,
            file: None,
            lines: 0,
            entries: 0,
            broken: false,
        };
        if generation > 0 {
            let map = files.get_or_insert_with(BTreeMap::new);
            let (lines, torn) = replay(&j.journal_path(generation), map)?;
            j.lines = lines;
            // Lines appended after a torn one would never be read: start a new journal.
            j.broken = torn;
        }
        j.entries = files.as_ref().map_or(0, |m| m.len() as u64);
        Ok((j, files))
    }

    fn journal_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{}.{generation}.journal", self.name))
    }

    /// Whether the next commit rewrites the base (the caller then hands it every entry).
    pub fn wants_base(&self, changes: usize) -> bool {
        self.generation == 0
            || self.broken
            || self.lines + changes as u64 > 2 * self.entries + SLACK_LINES
    }

    /// Make `changes` durable: appended to the journal, or, with `all` (every entry, as
    /// `wants_base` asked), a new base and an empty journal.
    pub fn commit<V: Serialize>(
        &mut self,
        changes: &[(String, Option<V>)],
        all: Option<&BTreeMap<String, V>>,
    ) -> io::Result<()> {
        let res = match all {
            Some(all) => self.rewrite(all),
            None => self.append(changes),
        };
        self.broken = res.is_err();
        res
    }

    fn append<V: Serialize>(&mut self, changes: &[(String, Option<V>)]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.journal_path(self.generation);
        let ctx = |e: io::Error| {
            io::Error::new(e.kind(), format!("appending to {}: {e}", path.display()))
        };
        let mut buf = Vec::with_capacity(changes.len() * 256);
        for (p, s) in changes {
            serde_json::to_writer(
                &mut buf,
                &Line {
                    p: p.clone(),
                    s: s.as_ref(),
                },
            )
            .map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(ctx)?,
            ),
        };
        file.write_all(&buf)
            .and_then(|_| file.sync_data())
            .map_err(ctx)?;
        self.lines += changes.len() as u64;
        Ok(())
    }

    /// A new (empty) journal, a base naming it, then the old journal goes.
    fn rewrite<V: Serialize>(&mut self, all: &BTreeMap<String, V>) -> io::Result<()> {
        let next = self.generation + 1;
        let path = self.journal_path(next);
        let fresh = File::create(&path)
            .and_then(|f| f.sync_all().map(|_| f))
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        self.base.save(&BaseRef {
            journal: next,
            files: all,
        })?;
        if self.generation > 0 {
            let _ = fs::remove_file(self.journal_path(self.generation));
        }
        self.generation = next;
        self.file = Some(fresh);
        self.lines = 0;
        self.entries = all.len() as u64;
        Ok(())
    }
}

/// Apply a journal's lines to `map`; returns how many there were, and whether it ended in a
/// line that does not parse (a crash cut the last append), which ends the replay.
fn replay<V: DeserializeOwned>(
    path: &Path,
    map: &mut BTreeMap<String, V>,
) -> io::Result<(u64, bool)> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, false)),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading {}: {e}", path.display()),
            ));
        }
    };
    let mut n = 0;
    for line in io::BufReader::new(f).split(b'\n') {
        let line =
            line.map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))?;
        let Ok(l) = serde_json::from_slice::<Line<V>>(&line) else {
            tracing::warn!(journal = %path.display(), line = n + 1, "checkpoint journal ends in a torn line (a crash during a commit): the entries before it are used");
            return Ok((n, true));
        };
        match l.s {
            Some(v) => map.insert(l.p, v),
            None => map.remove(&l.p),
        };
        n += 1;
    }
    Ok((n, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Map = BTreeMap<String, u32>;

    fn change(p: &str, v: Option<u32>) -> (String, Option<u32>) {
        (p.to_string(), v)
    }

    #[test]
    fn base_then_journal_then_compaction_reload_to_the_same_state() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, loaded) = Journal::open::<u32>(d.path(), "src").unwrap();
        assert!(loaded.is_none());
        let mut state: Map = [("a".to_string(), 1)].into();
        assert!(j.wants_base(1));
        j.commit(&[change("a", Some(1))], Some(&state)).unwrap();
        assert!(!j.wants_base(2));
        j.commit(&[change("b", Some(2)), change("a", None)], None)
            .unwrap();
        state.insert("b".into(), 2);
        state.remove("a");
        let (_, loaded) = Journal::open::<u32>(d.path(), "src").unwrap();
        assert_eq!(loaded.unwrap(), state);
        // A torn last append: what came before it stands.
        let journal = d.path().join("checkpoints/src.1.journal");
        let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
        f.write_all(b"{\"p\":\"c\",\"s\":").unwrap();
        let (mut j, loaded) = Journal::open::<u32>(d.path(), "src").unwrap();
        assert_eq!(loaded.as_ref().unwrap(), &state);
        // Nothing is appended after the torn line: the next commit starts a new journal.
        assert!(j.wants_base(1));
        j.commit(&[], Some(&state)).unwrap();
        assert!(!journal.exists());
        assert!(d.path().join("checkpoints/src.2.journal").exists());
        let (_, loaded) = Journal::open::<u32>(d.path(), "src").unwrap();
        assert_eq!(loaded.unwrap(), state);
    }

    #[test]
    fn the_plain_map_of_older_versions_loads() {
        let d = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(d.path(), "src").unwrap();
        let old: Map = [("x".to_string(), 7)].into();
        store.save(&old).unwrap();
        let (j, loaded) = Journal::open::<u32>(d.path(), "src").unwrap();
        assert_eq!(loaded.unwrap(), old);
        assert!(j.wants_base(1), "the first commit writes a base");
    }

    #[test]
    fn the_base_is_rewritten_once_the_journal_outgrows_the_entries() {
        let d = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open::<u32>(d.path(), "src").unwrap();
        let state: Map = [("a".to_string(), 0)].into();
        j.commit(&[], Some(&state)).unwrap();
        let mut commits = 0;
        while !j.wants_base(1) {
            j.commit(&[change("a", Some(commits))], None).unwrap();
            commits += 1;
        }
        assert_eq!(u64::from(commits), 2 + SLACK_LINES);
    }
}
