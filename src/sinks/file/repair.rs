//! Crash repair for the file sink's outputs. A batch is acknowledged only after it was written
//! and synced, so whatever a crash left half-written at the end of a file was never
//! acknowledged and will be delivered again: it is cut off, leaving a clean file to append to.
//! Run once per file per process, when the sink first opens an existing file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use super::FileEncoding;
use crate::decode::{Item, Scanner};
use crate::sinks::util::encoding::Compression;

/// Repair `f` (of length `len`) in place; returns its new length and what was done, if anything.
pub fn repair(
    f: &mut File,
    len: u64,
    encoding: FileEncoding,
    compression: Compression,
) -> io::Result<(u64, Option<String>)> {
    if len == 0 {
        return Ok((0, None));
    }
    match (encoding, compression) {
        (FileEncoding::Ndjson, Compression::None) => ndjson(f, len),
        (FileEncoding::Ndjson, Compression::Gzip) => gzip_members(f, len),
        (FileEncoding::Cloudtrail, Compression::None) => document(f, len),
        // Written to a temporary name and renamed when complete: never torn.
        (FileEncoding::Cloudtrail, Compression::Gzip) => Ok((len, None)),
    }
}

fn cut(f: &mut File, to: u64, len: u64, what: &str) -> io::Result<(u64, Option<String>)> {
    f.set_len(to)?;
    f.sync_data()?;
    Ok((
        to,
        Some(format!(
            "removed {} bytes of {what} left by an interrupted write (never acknowledged; delivered again)",
            len - to
        )),
    ))
}

/// The offset just after the last newline (0 if none), searching backwards.
fn after_last_newline(f: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn ndjson(f: &mut File, len: u64) -> io::Result<(u64, Option<String>)> {
    let keep = after_last_newline(f, len)?;
    if keep == len {
        return Ok((len, None));
    }
    let mut tail = vec![0u8; (len - keep) as usize];
    f.seek(SeekFrom::Start(keep))?;
    f.read_exact(&mut tail)?;
    if serde_json::from_slice::<serde::de::IgnoredAny>(&tail).is_ok() {
        // A complete record without its newline (not ours, or an old writer): keep it.
        f.seek(SeekFrom::Start(len))?;
        f.write_all(b"\n")?;
        f.sync_data()?;
        return Ok((
            len + 1,
            Some("closed a last line that had no newline".into()),
        ));
    }
    cut(f, keep, len, "a partial last line")
}

fn gzip_members(f: &mut File, len: u64) -> io::Result<(u64, Option<String>)> {
    f.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::new(&mut *f);
    let mut good = 0u64;
    loop {
        if r.fill_buf_len()? == 0 {
            break;
        }
        let mut dec = flate2::bufread::GzDecoder::new(&mut r);
        if io::copy(&mut dec, &mut io::sink()).is_err() {
            break;
        }
        good = r.stream_position()?;
    }
    drop(r);
    if good == len {
        return Ok((len, None));
    }
    cut(f, good, len, "a partial gzip member")
}

trait FillLen {
    fn fill_buf_len(&mut self) -> io::Result<usize>;
}

impl<R: Read> FillLen for BufReader<R> {
    fn fill_buf_len(&mut self) -> io::Result<usize> {
        io::BufRead::fill_buf(self).map(<[u8]>::len)
    }
}

fn document(f: &mut File, len: u64) -> io::Result<(u64, Option<String>)> {
    let mut end = [0u8; 2];
    f.seek(SeekFrom::Start(len.saturating_sub(2)))?;
    if len >= 2 && f.read_exact(&mut end).is_ok() && &end == b"]}" {
        return Ok((len, None));
    }
    const HEAD: &[u8] = b"{\"Records\":[";
    let mut head = vec![0u8; HEAD.len().min(len as usize)];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head)?;
    if head != HEAD {
        // Not a document this sink wrote: leave it; the sink starts a new file next to it.
        return Ok((len, None));
    }
    // Keep every complete record, then close the document again.
    f.seek(SeekFrom::Start(0))?;
    let mut s = Scanner::new(BufReader::new(&mut *f), 0, usize::MAX);
    let mut last = HEAD.len() as u64;
    let mut records = 0u64;
    while let Ok(Some(item)) = s.next_item() {
        if let Item::Record(_) = item {
            last = s.offset();
            records += 1;
        }
    }
    drop(s);
    f.set_len(last)?;
    f.seek(SeekFrom::Start(last))?;
    f.write_all(b"]}")?;
    f.sync_data()?;
    Ok((
        last + 2,
        Some(format!(
            "closed a document cut by an interrupted write after its {records} complete records (the rest is delivered again)"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(content: &[u8], enc: FileEncoding, comp: Compression) -> (Vec<u8>, Option<String>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, content).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let (n, what) = repair(&mut f, content.len() as u64, enc, comp).unwrap();
        let out = std::fs::read(&p).unwrap();
        assert_eq!(out.len() as u64, n);
        (out, what)
    }

    #[test]
    fn ndjson_torn_line_is_cut_complete_one_closed() {
        let (out, what) = run(
            b"{\"a\":1}\n{\"b\":",
            FileEncoding::Ndjson,
            Compression::None,
        );
        assert_eq!(out, b"{\"a\":1}\n");
        assert!(what.is_some());
        let (out, _) = run(
            b"{\"a\":1}\n{\"b\":2}",
            FileEncoding::Ndjson,
            Compression::None,
        );
        assert_eq!(out, b"{\"a\":1}\n{\"b\":2}\n");
        let (out, what) = run(b"{\"a\":1}\n", FileEncoding::Ndjson, Compression::None);
        assert_eq!(out, b"{\"a\":1}\n");
        assert!(what.is_none());
    }

    #[test]
    fn gzip_torn_member_is_cut() {
        let a = crate::sinks::util::encoding::gzip(b"{\"a\":1}\n").unwrap();
        let b = crate::sinks::util::encoding::gzip(b"{\"b\":2}\n").unwrap();
        let mut content = a.clone();
        content.extend_from_slice(&b[..b.len() / 2]);
        let (out, what) = run(&content, FileEncoding::Ndjson, Compression::Gzip);
        assert_eq!(out, a);
        assert!(what.is_some());
    }

    #[test]
    fn cut_document_is_closed_after_its_last_record() {
        let (out, _) = run(
            b"{\"Records\":[{\"a\":1},{\"b\":[2,",
            FileEncoding::Cloudtrail,
            Compression::None,
        );
        assert_eq!(out, b"{\"Records\":[{\"a\":1}]}");
        let (out, _) = run(
            b"{\"Records\":[{\"a\"",
            FileEncoding::Cloudtrail,
            Compression::None,
        );
        assert_eq!(out, b"{\"Records\":[]}");
        let (out, what) = run(
            b"{\"Records\":[{\"a\":1}]}",
            FileEncoding::Cloudtrail,
            Compression::None,
        );
        assert_eq!(out, b"{\"Records\":[{\"a\":1}]}");
        assert!(what.is_none());
    }
}
