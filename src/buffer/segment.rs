//! The disk buffer's on-disk format: numbered segment files of checksummed records.
//!
//! A record is `MAGIC` (4 bytes), the payload length (u32 LE), the CRC-32 of the payload
//! (u32 LE), then the payload: the source name and the location (each a u16 LE length and
//! UTF-8 bytes) and the event's raw bytes. A reader that meets a record whose magic, length or
//! checksum is wrong skips forward to the next place where a whole record checks out, and
//! reports the bytes it skipped: a torn write or a flipped bit loses only the records it
//! touched.
//!
//! A run record (`RUN_MAGIC`, then the same framing) stands for records a spill did not copy:
//! its payload's last part is a `Run` (consecutive records of a whole file that can be read
//! again, with the checksum of their bytes) instead of a raw record.

use std::ops::Range;
use std::path::{Path, PathBuf};

pub const MAGIC: [u8; 4] = *b"TSb1";
pub const RUN_MAGIC: [u8; 4] = *b"TSr1";
pub const HEADER: usize = 12;
/// Larger than any CloudTrail record; a length above it is damage.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Append one record to `out`. Source and location longer than a u16 are cut (they are
/// labels; the raw record is kept whole).
pub fn encode(out: &mut Vec<u8>, source: &str, location: &str, raw: &[u8]) {
    frame(out, MAGIC, source, location, raw);
}

/// Records `first..first + count` of the whole file a run record names (its location), read
/// with `max_record`; `crc` is the CRC-32 of their bytes one after the other, `bytes` their
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: u32,
    pub count: u32,
    pub max_record: u32,
    pub crc: u32,
    pub bytes: u64,
}

const RUN_LEN: usize = 24;

impl Run {
    fn to_bytes(self) -> [u8; RUN_LEN] {
        let mut b = [0u8; RUN_LEN];
        b[0..4].copy_from_slice(&self.first.to_le_bytes());
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..12].copy_from_slice(&self.max_record.to_le_bytes());
        b[12..16].copy_from_slice(&self.crc.to_le_bytes());
        b[16..24].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }
    /// The run in a run record's last part. `None` only if the writer had a bug.
    pub fn from_bytes(b: &[u8]) -> Option<Run> {
        let b: &[u8; RUN_LEN] = b.try_into().ok()?;
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut long = [0u8; 8];
        long.copy_from_slice(&b[16..24]);
        Some(Run {
            first: word(0),
            count: word(4),
            max_record: word(8),
            crc: word(12),
            bytes: u64::from_le_bytes(long),
        })
    }
}

/// Append a run record to `out`.
pub fn encode_run(out: &mut Vec<u8>, source: &str, location: &str, run: Run) {
    frame(out, RUN_MAGIC, source, location, &run.to_bytes());
}

/// The encoded size of a run record.
pub fn run_len(source: &str, location: &str) -> usize {
    HEADER + 4 + cut(source).len() + cut(location).len() + RUN_LEN
}

fn frame(out: &mut Vec<u8>, magic: [u8; 4], source: &str, location: &str, raw: &[u8]) {
    let source = cut(source);
    let location = cut(location);
    let len = 4 + source.len() + location.len() + raw.len();
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(source.len() as u16).to_le_bytes());
    out.extend_from_slice(source);
    out.extend_from_slice(&(location.len() as u16).to_le_bytes());
    out.extend_from_slice(location);
    out.extend_from_slice(raw);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The encoded size of one record.
pub fn encoded_len(source: &str, location: &str, raw: &[u8]) -> usize {
    HEADER + 4 + cut(source).len() + cut(location).len() + raw.len()
}

fn cut(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(u16::MAX as usize)]
}

/// The parts of a payload, as ranges of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts {
    pub source: Range<usize>,
    pub location: Range<usize>,
    pub raw: Range<usize>,
}

/// Split a payload that passed its checksum. `None` only if the writer had a bug.
pub fn parts(p: &[u8]) -> Option<Parts> {
    let field = |at: usize| -> Option<Range<usize>> {
        let n = u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?) as usize;
        let r = at + 2..at + 2 + n;
        (r.end <= p.len()).then_some(r)
    };
    let source = field(0)?;
    let location = field(source.end)?;
    Some(Parts {
        raw: location.end..p.len(),
        source,
        location,
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole record: its offset in the file and its payload's range in the window; `run`:
    /// a run record (its last part is a `Run`).
    Record {
        offset: u64,
        payload: Range<usize>,
        run: bool,
    },
    /// Bytes that are not a whole record (damage, or a write cut short), skipped.
    Damaged { offset: u64, len: u64 },
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub items: Vec<Item>,
    /// Bytes of the window fully decoded: the next read starts there.
    pub used: usize,
    /// Decoding stopped where it could not decide without more bytes: at least this many
    /// bytes of window (from its start) are needed, `usize::MAX` meaning "all there is".
    pub need: Option<usize>,
}

enum Check {
    /// A whole record of this payload length; whether it is a run record.
    Valid(usize, bool),
    /// Looks like a record but runs past the window: this many bytes of window needed.
    Short(usize),
    Invalid,
}

fn check(buf: &[u8], p: usize) -> Check {
    if buf.len() - p < HEADER {
        let prefix = |m: [u8; 4]| buf[p..].iter().zip(m).all(|(a, b)| *a == b);
        return if prefix(MAGIC) || prefix(RUN_MAGIC) {
            Check::Short(p + HEADER)
        } else {
            Check::Invalid
        };
    }
    let run = buf[p..p + 4] == RUN_MAGIC;
    if buf[p..p + 4] != MAGIC && !run {
        return Check::Invalid;
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let len = word(p + 4) as usize;
    if !(4..=MAX_PAYLOAD).contains(&len) {
        return Check::Invalid;
    }
    let end = p + HEADER + len;
    if end > buf.len() {
        return Check::Short(end);
    }
    if crc32fast::hash(&buf[p + HEADER..end]) != word(p + 8) {
        return Check::Invalid;
    }
    Check::Valid(len, run)
}

/// Decode up to `max_items` records from `buf`, which starts at file offset `base`.
/// `complete`: nothing more can follow `buf` (the end of a closed segment, or the writer's
/// durable length), so a record cut at the end is damage rather than something to wait for.
pub fn decode(buf: &[u8], base: u64, complete: bool, max_items: usize) -> Decoded {
    let mut d = Decoded::default();
    let mut p = 0;
    while p < buf.len() && d.items.len() < max_items {
        match check(buf, p) {
            Check::Valid(len, run) => {
                d.items.push(Item::Record {
                    offset: base + p as u64,
                    payload: p + HEADER..p + HEADER + len,
                    run,
                });
                p += HEADER + len;
            }
            Check::Short(n) if !complete => {
                d.need = Some(n);
                break;
            }
            Check::Invalid if !complete => {
                // Resynchronising needs everything up to the next good record.
                d.need = Some(usize::MAX);
                break;
            }
            Check::Short(_) | Check::Invalid => {
                let q = resync(buf, p + 1).unwrap_or(buf.len());
                d.items.push(Item::Damaged {
                    offset: base + p as u64,
                    len: (q - p) as u64,
                });
                p = q;
            }
        }
    }
    if d.need.is_some() && !d.items.is_empty() {
        // Hand out what was decoded; the next read starts at the undecided record.
        d.need = None;
    }
    d.used = p;
    d
}

/// The first offset at or after `from` where a whole record checks out.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    // Both magics start with these bytes.
    while let Some(i) = memchr::memmem::find(buf.get(at..)?, b"TS") {
        let q = at + i;
        if matches!(check(buf, q), Check::Valid(..)) {
            return Some(q);
        }
        at = q + 1;
    }
    None
}

pub fn file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(file_name(id))
}

/// The segment ids in `dir`, in order.
pub fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".seg")?
                .parse::<u64>()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<u8> {
        let mut b = Vec::new();
        encode(&mut b, "src", "/a/file.json", br#"{"eventID":"1"}"#);
        encode(&mut b, "src", "s3://b/k", br#"{"eventID":"2"}"#);
        encode(&mut b, "other", "", br#"{"eventID":"3"}"#);
        b
    }

    fn raws(buf: &[u8], d: &Decoded) -> Vec<String> {
        d.items
            .iter()
            .filter_map(|i| match i {
                Item::Record { payload, .. } => {
                    let p = &buf[payload.clone()];
                    let parts = parts(p).unwrap();
                    Some(String::from_utf8_lossy(&p[parts.raw]).into_owned())
                }
                Item::Damaged { .. } => None,
            })
            .collect()
    }

    #[test]
    fn roundtrip() {
        let b = three();
        let d = decode(&b, 100, false, 10);
        assert_eq!(raws(&b, &d).len(), 3);
        assert_eq!(d.used, b.len());
        assert_eq!(d.need, None);
        let Item::Record {
            offset, payload, ..
        } = &d.items[1]
        else {
            panic!()
        };
        assert_eq!(
            *offset,
            100 + encoded_len("src", "/a/file.json", br#"{"eventID":"1"}"#) as u64
        );
        let parts = parts(&b[payload.clone()]).unwrap();
        assert_eq!(&b[payload.clone()][parts.location], b"s3://b/k");
        let d = decode(&b, 0, false, 2);
        assert_eq!(d.items.len(), 2);
        assert!(d.used < b.len());
    }

    #[test]
    fn flipped_bit_loses_only_its_record() {
        let mut b = three();
        let second = encoded_len("src", "/a/file.json", br#"{"eventID":"1"}"#);
        b[second + HEADER + 8] ^= 0x40;
        // Not known to be the end: asks for everything, decoding the good record before it.
        let d = decode(&b, 0, false, 10);
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.used, second);
        let d = decode(&b[second..], second as u64, false, 10);
        assert_eq!(d.need, Some(usize::MAX));
        let d = decode(&b, 0, true, 10);
        assert_eq!(
            raws(&b, &d),
            vec![r#"{"eventID":"1"}"#, r#"{"eventID":"3"}"#]
        );
        assert!(matches!(d.items[1], Item::Damaged { offset, .. } if offset == second as u64));
        assert_eq!(d.used, b.len());
    }

    #[test]
    fn torn_tail_waits_or_is_reported() {
        let b = three();
        let cut = &b[..b.len() - 5];
        let d = decode(cut, 0, false, 10);
        assert_eq!(d.items.len(), 2);
        let d2 = decode(&cut[d.used..], d.used as u64, false, 10);
        assert_eq!(d2.need, Some(b.len() - d.used));
        let d = decode(cut, 0, true, 10);
        assert_eq!(raws(cut, &d).len(), 2);
        assert!(
            matches!(d.items[2], Item::Damaged { len, .. } if len as usize == cut.len() - d.items.iter().take(2).map(|i| match i { Item::Record { payload, .. } => payload.len() + HEADER, _ => 0 }).sum::<usize>())
        );
    }

    #[test]
    fn garbage_between_records_is_skipped() {
        let mut b = Vec::new();
        encode(&mut b, "s", "l", b"{\"a\":1}");
        let good = b.len();
        b.extend_from_slice(b"TSb1\xff\xff\xff\xffgarbage");
        encode(&mut b, "s", "l", b"{\"a\":2}");
        let d = decode(&b, 0, true, 10);
        assert_eq!(raws(&b, &d), vec!["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!(
            d.items[1],
            Item::Damaged {
                offset: good as u64,
                len: 15
            }
        );
    }

    #[test]
    fn long_labels_are_cut_not_refused() {
        let long = "x".repeat(70_000);
        let mut b = Vec::new();
        encode(&mut b, "s", &long, b"{}");
        assert_eq!(b.len(), encoded_len("s", &long, b"{}"));
        let d = decode(&b, 0, true, 1);
        let Item::Record { payload, .. } = &d.items[0] else {
            panic!()
        };
        let p = parts(&b[payload.clone()]).unwrap();
        assert_eq!(p.location.len(), u16::MAX as usize);
        assert_eq!(&b[payload.clone()][p.raw], b"{}");
    }
}
