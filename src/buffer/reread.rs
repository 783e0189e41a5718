//! Reading again the records a spill named instead of copying (run records): the file is
//! decoded as its source decoded it, the records counted the same way, and the run's bytes
//! checked against the checksum taken when it was spilled. A file that is gone or no longer
//! holds those bytes loses the run for this sink (the caller reports it); any other I/O
//! error is the caller's to retry.
//!
//! Runs of one file follow one another in a spill, so the file last read stays open: a
//! spilled trail file is decompressed about once however many runs name it.

use std::fs::File;
use std::io::{self, Read};

use bytes::Bytes;

use super::segment::Run;
use crate::decode::{self, Item, Scanner};

/// Why a run cannot be delivered (its records are lost for this sink).
#[derive(Debug)]
pub enum Lost {
    Gone,
    /// The file's records there are not the bytes spilled (it was rewritten or truncated).
    Changed,
    /// The file no longer decodes as it did.
    Unreadable(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Gone => f.write_str("the file is gone"),
            Lost::Changed => f.write_str("the file no longer holds the records that were spilled"),
            Lost::Unreadable(e) => write!(f, "the file cannot be decoded as before: {e}"),
        }
    }
}

struct Open {
    path: String,
    max_record: u32,
    scanner: Scanner<Box<dyn Read + Send>>,
    /// The number of the record the scanner yields next.
    next: u64,
}

/// The file read last, kept open for the next run.
#[derive(Default)]
pub struct Rereader {
    open: Option<Open>,
}

impl Rereader {
    /// The records of `run` in the file at `path`, as its source read them.
    pub fn records(&mut self, path: &str, run: Run) -> io::Result<Result<Vec<Bytes>, Lost>> {
        let first = u64::from(run.first);
        let reusable = matches!(&self.open, Some(o) if o.path == path && o.max_record == run.max_record && o.next <= first);
        if !reusable {
            self.open = None;
            match open(path, run.max_record) {
                Ok(o) => self.open = Some(o),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(Lost::Gone)),
                Err(e) => return Err(e),
            }
        }
        let Some(o) = self.open.as_mut() else {
            return Ok(Err(Lost::Gone));
        };
        let got = take(o, first, run.count as usize);
        if got.is_err() {
            self.open = None;
        }
        Ok(got.and_then(|raws| check(raws, run)))
    }
}

fn open(path: &str, max_record: u32) -> io::Result<Open> {
    let mut f = File::open(path)?;
    let compression = decode::sniff(&mut f)?;
    let mut scanner = Scanner::new(
        decode::open_decoded(f, compression, 0)?,
        0,
        max_record as usize,
    );
    // As the source did before reading (it decides the framing).
    let _ = scanner.starts_with_document();
    Ok(Open {
        path: path.to_string(),
        max_record,
        scanner,
        next: 0,
    })
}

/// Records `first..first + count`, numbered as the file source numbers them (every record
/// counts, whether or not it was sent) and compacted as it compacts them.
fn take(o: &mut Open, first: u64, count: usize) -> Result<Vec<Bytes>, Lost> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match o.scanner.next_item() {
            Ok(Some(Item::Record(raw))) => {
                let n = o.next;
                o.next += 1;
                if n < first {
                    continue;
                }
                out.push(if decode::spans_lines(&raw) {
                    Bytes::from(decode::compact(&raw))
                } else {
                    raw
                });
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(Lost::Changed),
            Err(e) => return Err(Lost::Unreadable(e.to_string())),
        }
    }
    Ok(out)
}

fn check(raws: Vec<Bytes>, run: Run) -> Result<Vec<Bytes>, Lost> {
    let mut crc = crc32fast::Hasher::new();
    let mut bytes = 0u64;
    for r in &raws {
        crc.update(r);
        bytes += r.len() as u64;
    }
    if bytes == run.bytes && crc.finalize() == run.crc {
        Ok(raws)
    } else {
        Err(Lost::Changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn run_of(raws: &[&str], first: u32) -> Run {
        let mut crc = crc32fast::Hasher::new();
        raws.iter().for_each(|r| crc.update(r.as_bytes()));
        Run {
            first,
            count: raws.len() as u32,
            max_record: 1 << 20,
            crc: crc.finalize(),
            bytes: raws.iter().map(|r| r.len() as u64).sum(),
        }
    }

    fn gz(path: &std::path::Path, body: &str) {
        let f = File::create(path).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(body.as_bytes()).unwrap();
        e.finish().unwrap();
    }

    #[test]
    fn runs_of_a_gzip_document_in_order_then_after_a_seek_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json.gz");
        gz(
            &p,
            "{\"Records\":[{\"eventID\":\"a\"},\n {\n \"eventID\": \"b\"},{\"eventID\":\"c\"},{\"eventID\":\"d\"}]}",
        );
        let path = p.to_str().unwrap();
        let mut r = Rereader::default();
        let second = ["{\"eventID\":\"b\"}", "{\"eventID\":\"c\"}"];
        let got = r.records(path, run_of(&second, 1)).unwrap().unwrap();
        assert_eq!(got, second.map(|s| Bytes::from(s.as_bytes())).to_vec());
        let last = ["{\"eventID\":\"d\"}"];
        assert_eq!(r.records(path, run_of(&last, 3)).unwrap().unwrap().len(), 1);
        // Backwards: the file is opened again.
        let first = ["{\"eventID\":\"a\"}"];
        assert_eq!(
            r.records(path, run_of(&first, 0)).unwrap().unwrap().len(),
            1
        );
    }

    #[test]
    fn a_changed_or_missing_file_loses_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json.gz");
        gz(
            &p,
            "{\"Records\":[{\"eventID\":\"a\"},{\"eventID\":\"X\"}]}",
        );
        let path = p.to_str().unwrap();
        let mut r = Rereader::default();
        let want = ["{\"eventID\":\"b\"}"];
        assert!(matches!(
            r.records(path, run_of(&want, 1)).unwrap(),
            Err(Lost::Changed)
        ));
        assert!(matches!(
            r.records(path, run_of(&want, 5)).unwrap(),
            Err(Lost::Changed)
        ));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            r.records(path, run_of(&want, 1)).unwrap(),
            Err(Lost::Gone)
        ));
    }
}
