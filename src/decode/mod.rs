//! CloudTrail file formats, detected by content: gzip or plain; `{"Records":[...]}` documents,
//! NDJSON record streams, concatenated documents; digest files are recognized and skipped.

pub mod scanner;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use flate2::read::MultiGzDecoder;

pub use scanner::{Item, ScanError, Scanner};

/// Default upper bound for one record (CloudTrail records are at most a few hundred KiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// How a file's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// Remove whitespace outside strings. Applied only to records that span lines
/// (pretty-printed input), so that every record is one line downstream; compact records, as
/// CloudTrail delivers them, are kept byte for byte.
pub fn compact(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_str = false;
    let mut escape = false;
    for &b in raw {
        if in_str {
            out.push(b);
            if escape {
                escape = false;
            } else if b == b'\\' {
                escape = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            if b == b'"' {
                in_str = true;
            }
            out.push(b);
        }
    }
    out
}

/// Whether a record spans lines and must be compacted.
pub fn spans_lines(raw: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', raw).is_some()
}

/// A reader over a stream's decoded content (an S3 object body): gzip detected by content.
pub fn open_stream<R: Read + Send + 'static>(r: R) -> io::Result<Box<dyn Read + Send>> {
    use std::io::BufRead;
    let mut br = BufReader::with_capacity(128 * 1024, r);
    let gzip = br.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(br))
    } else {
        Box::new(br)
    })
}

/// Look at the first bytes of a file: gzip magic, or plain.
pub fn sniff(file: &mut File) -> io::Result<Compression> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Compression::Gzip
    } else {
        Compression::None
    })
}

/// A reader over a file's decoded content. Plain files start at `offset`; gzip files are
/// always read whole (offset 0), since a compressed stream cannot be entered midway.
pub fn open_decoded(
    mut file: File,
    compression: Compression,
    offset: u64,
) -> io::Result<Box<dyn Read + Send>> {
    match compression {
        Compression::Gzip => Ok(Box::new(MultiGzDecoder::new(BufReader::with_capacity(
            128 * 1024,
            file,
        )))),
        Compression::None => {
            file.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(file))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_keeps_strings() {
        let c = super::compact(b"{\n  \"a b\" : [ 1 , \"x \\\" y\" ],\r\n\t\"c\": {} }");
        assert_eq!(
            std::str::from_utf8(&c).unwrap(),
            r#"{"a b":[1,"x \" y"],"c":{}}"#
        );
    }
}
