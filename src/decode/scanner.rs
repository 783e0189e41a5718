//! A streaming scanner over a sequence of top-level JSON values (a CloudTrail file, an NDJSON
//! stream, concatenated documents).
//!
//! It finds value boundaries without building trees, copies each record's bytes exactly once
//! (into the caller's slab), and never holds more than one record plus its read buffer, so a
//! multi-gigabyte `{"Records":[...]}` document is processed in bounded memory. A document whose
//! first key is `Records` is streamed element by element; any other top-level object is taken
//! whole (bounded by `max_record_bytes`) and classified: a record (NDJSON), a digest file, a
//! document with `Records` further down, or not CloudTrail.

use std::collections::VecDeque;
use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

const READ_BUF: usize = 256 * 1024;
const SLAB: usize = 256 * 1024;
/// A first key longer than this is not `Records`.
const KEY_LOOKAHEAD: usize = 4096;

/// What the scanner found next.
#[derive(Debug)]
pub enum Item {
    /// One record's raw bytes (a JSON object; not yet validated beyond its structure).
    Record(Bytes),
    /// Something that is not a record and was skipped; scanning goes on.
    Skipped {
        reason: &'static str,
        detail: String,
    },
    /// A CloudTrail digest document (recognized, not an event).
    Digest,
    /// A top-level value ended here (stream offset just after it): a safe resume point.
    Boundary(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading or decompressing failed (corrupt gzip, I/O error).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The stream is not JSON at this offset.
    #[error("not JSON at byte {offset}: {msg}")]
    Syntax { offset: u64, msg: String },
    /// The stream ended inside the value that starts at `offset`.
    #[error(
        "ends inside a JSON value that starts at byte {offset} (truncated or still being written)"
    )]
    Incomplete { offset: u64 },
}

impl ScanError {
    pub fn reason(&self) -> &'static str {
        match self {
            ScanError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "truncated",
            ScanError::Io(e) if e.kind() == io::ErrorKind::InvalidInput => "corrupt_gzip",
            ScanError::Io(e) if e.kind() == io::ErrorKind::InvalidData => "corrupt_gzip",
            ScanError::Io(_) => "read_error",
            ScanError::Syntax { .. } => "not_json",
            ScanError::Incomplete { .. } => "truncated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    TopLevel,
    /// Inside a records array; `object` says whether it sits in a `{"Records": ...}` document
    /// (rather than being a top-level array), `first` whether no element was read yet.
    InArray {
        object: bool,
        first: bool,
    },
    /// After the records array, inside the document object: remaining keys are skipped.
    AfterArray,
}

enum Capture {
    Done,
    TooLarge(usize),
    /// Line framing: the line ended inside the value (consumed through the newline).
    Broken,
}

pub struct Scanner<R> {
    rdr: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    max_record: usize,
    slab: BytesMut,
    queue: VecDeque<Item>,
    /// Start offset of the top-level value being read.
    value_start: u64,
    /// NDJSON framing: decided by the first top-level record (one line → one record per line).
    /// A line that ends inside a record is then skipped alone instead of swallowing the next.
    line_framed: Option<bool>,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl<R: Read> Scanner<R> {
    /// `start` is the stream offset of the reader's first byte (for resumed plain files).
    pub fn new(rdr: R, start: u64, max_record: usize) -> Self {
        Scanner {
            rdr,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: start,
            eof: false,
            state: State::TopLevel,
            max_record,
            slab: BytesMut::new(),
            queue: VecDeque::new(),
            value_start: start,
            line_framed: None,
        }
    }

    /// What the stream starts with: `None` if nothing but whitespace, `Some(true)` for a
    /// document (`{"Records":...}` or a top-level array), `Some(false)` for anything else.
    pub fn starts_with_document(&mut self) -> Result<Option<bool>, ScanError> {
        match self.peek()? {
            None => Ok(None),
            Some(b'{') => Ok(Some(self.first_key_is_records()?)),
            Some(b'[') => Ok(Some(true)),
            Some(_) => Ok(Some(false)),
        }
    }

    /// Stream offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            return Ok(true);
        }
        loop {
            match self.rdr.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next non-whitespace byte, not consumed. A leading UTF-8 BOM is skipped too.
    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            while self.pos < self.end {
                let b = self.buf[self.pos];
                if is_ws(b) {
                    self.pos += 1;
                } else if b == 0xEF
                    && self.offset() == 0
                    && self.buf[self.pos..self.end].starts_with(&[0xEF, 0xBB, 0xBF])
                {
                    self.pos += 3;
                } else {
                    return Ok(Some(b));
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn syntax(&self, msg: impl Into<String>) -> ScanError {
        ScanError::Syntax {
            offset: self.offset(),
            msg: msg.into(),
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.syntax(format!(
                "expected '{}', found '{}'",
                want as char,
                (b as char).escape_default()
            ))),
            None => Err(ScanError::Incomplete {
                offset: self.value_start,
            }),
        }
    }

    /// Does the object starting at `pos` (a `{`) have `Records` as its first key?
    fn first_key_is_records(&mut self) -> Result<bool, ScanError> {
        const KEY: &[u8] = b"\"Records\"";
        let mut i = self.pos + 1;
        loop {
            while i < self.end && is_ws(self.buf[i]) {
                i += 1;
            }
            if i + KEY.len() <= self.end {
                return Ok(self.buf[i..].starts_with(KEY));
            }
            if self.eof || i - self.pos >= KEY_LOOKAHEAD {
                return Ok(false);
            }
            // Bring more of the lookahead window into the buffer (fill moves `pos` to 0).
            let before = self.pos;
            if !self.fill()? {
                return Ok(false);
            }
            i -= before;
        }
    }

    fn consume_string(&mut self) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b'"') => {
                self.capture(false, usize::MAX)?;
                Ok(())
            }
            Some(_) => Err(self.syntax("expected a key string")),
            None => Err(ScanError::Incomplete {
                offset: self.value_start,
            }),
        }
    }

    /// Consume one JSON value starting at `pos` (after whitespace). With `keep`, its bytes are
    /// appended to the slab (up to `max`; beyond that it is consumed and reported too large).
    fn capture(&mut self, keep: bool, max: usize) -> Result<Capture, ScanError> {
        self.capture_framed(keep, max, false)
    }

    fn capture_framed(
        &mut self,
        keep: bool,
        max: usize,
        framed: bool,
    ) -> Result<Capture, ScanError> {
        let start_len = self.slab.len();
        let mut kept = keep;
        let mut total = 0usize;
        let mut st = ValueScan::default();
        let first = self.buf[self.pos];
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        loop {
            let chunk_start = self.pos;
            // bytes to skip at the start of this chunk (an escape split across reads)
            let from = self.pos + std::mem::take(&mut st.carry);
            let buf = &self.buf[..self.end];
            let (i, done) = if scalar {
                scan_scalar(buf, from)
            } else {
                st.scan(buf, from, framed)
            };
            let broken = st.broken;
            let n = i - chunk_start;
            total += n;
            if kept {
                if total > max {
                    kept = false;
                    self.slab.truncate(start_len);
                } else {
                    self.slab.extend_from_slice(&self.buf[chunk_start..i]);
                }
            }
            self.pos = i;
            if done {
                if broken {
                    self.slab.truncate(start_len);
                    return Ok(Capture::Broken);
                }
                return Ok(if keep && !kept {
                    Capture::TooLarge(total)
                } else {
                    Capture::Done
                });
            }
            if !self.fill()? {
                if scalar {
                    return Ok(Capture::Done);
                }
                self.slab.truncate(start_len);
                return Err(ScanError::Incomplete {
                    offset: self.value_start,
                });
            }
        }
    }

    /// Take the bytes captured since `start_len` out of the slab, sharing its allocation.
    fn take_slab(&mut self) -> Bytes {
        let b = self.slab.split().freeze();
        if self.slab.capacity() < 16 * 1024 {
            self.slab.reserve(SLAB);
        }
        b
    }

    fn prepare_slab(&mut self) {
        if self.slab.capacity() - self.slab.len() < 16 * 1024 {
            self.slab.reserve(SLAB);
        }
    }

    /// The next item; `Ok(None)` at a clean end of stream.
    pub fn next_item(&mut self) -> Result<Option<Item>, ScanError> {
        if let Some(item) = self.queue.pop_front() {
            return Ok(Some(item));
        }
        loop {
            match self.state {
                State::TopLevel => return self.top_level(),
                State::InArray { object, first } => {
                    let Some(b) = self.peek()? else {
                        return Err(ScanError::Incomplete {
                            offset: self.value_start,
                        });
                    };
                    if b == b']' {
                        self.pos += 1;
                        if object {
                            self.state = State::AfterArray;
                            continue;
                        }
                        self.state = State::TopLevel;
                        return Ok(Some(Item::Boundary(self.offset())));
                    }
                    if !first {
                        self.expect(b',')?;
                    }
                    self.state = State::InArray {
                        object,
                        first: false,
                    };
                    return self.element().map(Some);
                }
                State::AfterArray => {
                    let Some(b) = self.peek()? else {
                        return Err(ScanError::Incomplete {
                            offset: self.value_start,
                        });
                    };
                    match b {
                        b'}' => {
                            self.pos += 1;
                            self.state = State::TopLevel;
                            return Ok(Some(Item::Boundary(self.offset())));
                        }
                        b',' => {
                            self.pos += 1;
                            self.consume_string()?;
                            self.expect(b':')?;
                            if self.peek()?.is_none() {
                                return Err(ScanError::Incomplete {
                                    offset: self.value_start,
                                });
                            }
                            self.capture(false, usize::MAX)?;
                        }
                        _ => return Err(self.syntax("expected ',' or '}' after Records")),
                    }
                }
            }
        }
    }

    /// One element of a records array.
    fn element(&mut self) -> Result<Item, ScanError> {
        let Some(b) = self.peek()? else {
            return Err(ScanError::Incomplete {
                offset: self.value_start,
            });
        };
        if b != b'{' {
            if matches!(b, b']' | b',' | b'}' | b':') {
                return Err(self.syntax("expected a record"));
            }
            self.capture(false, usize::MAX)?;
            return Ok(Item::Skipped {
                reason: "record_not_object",
                detail: format!(
                    "a Records element is not an object (starts with '{}')",
                    b as char
                ),
            });
        }
        self.prepare_slab();
        match self.capture(true, self.max_record)? {
            Capture::TooLarge(n) => Ok(too_large(n, self.max_record)),
            Capture::Done | Capture::Broken => Ok(Item::Record(self.take_slab())),
        }
    }

    fn top_level(&mut self) -> Result<Option<Item>, ScanError> {
        let Some(b) = self.peek()? else {
            return Ok(None);
        };
        self.value_start = self.offset();
        match b {
            b'{' if self.first_key_is_records()? => {
                self.pos += 1;
                self.consume_string()?;
                self.expect(b':')?;
                match self.peek()? {
                    Some(b'[') => {
                        self.pos += 1;
                        self.state = State::InArray {
                            object: true,
                            first: true,
                        };
                        self.next_item()
                    }
                    Some(_) => {
                        self.capture(false, usize::MAX)?;
                        self.state = State::AfterArray;
                        Ok(Some(Item::Skipped {
                            reason: "records_not_array",
                            detail: "\"Records\" is not an array".into(),
                        }))
                    }
                    None => Err(ScanError::Incomplete {
                        offset: self.value_start,
                    }),
                }
            }
            b'{' => {
                self.prepare_slab();
                let framed = self.line_framed == Some(true);
                match self.capture_framed(true, self.max_record, framed)? {
                    Capture::TooLarge(n) => {
                        self.queue.push_back(Item::Boundary(self.offset()));
                        Ok(Some(too_large(n, self.max_record)))
                    }
                    Capture::Broken => {
                        self.queue.push_back(Item::Boundary(self.offset()));
                        Ok(Some(Item::Skipped {
                            reason: "invalid_json",
                            detail: format!(
                                "the line starting at byte {} ends inside a record",
                                self.value_start
                            ),
                        }))
                    }
                    Capture::Done => {
                        let raw = self.take_slab();
                        if self.line_framed.is_none() {
                            self.line_framed = Some(memchr::memchr(b'\n', &raw).is_none());
                        }
                        self.classify(raw);
                        self.queue.push_back(Item::Boundary(self.offset()));
                        Ok(self.queue.pop_front())
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.state = State::InArray {
                    object: false,
                    first: true,
                };
                self.next_item()
            }
            b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                self.capture(false, usize::MAX)?;
                self.queue.push_back(Item::Boundary(self.offset()));
                Ok(Some(Item::Skipped {
                    reason: "not_an_object",
                    detail: "a top-level JSON value is not an object".into(),
                }))
            }
            other => {
                let msg = format!("unexpected byte 0x{other:02x} where a JSON value should start");
                if self.line_framed == Some(true) {
                    // An NDJSON stream: skip the bad line, keep the rest.
                    self.skip_line()?;
                    self.queue.push_back(Item::Boundary(self.offset()));
                    return Ok(Some(Item::Skipped {
                        reason: "not_json",
                        detail: format!("line at byte {}: {msg}", self.value_start),
                    }));
                }
                Err(self.syntax(msg))
            }
        }
    }

    /// Consume through the next newline (or to the end of the stream).
    fn skip_line(&mut self) -> Result<(), ScanError> {
        loop {
            if let Some(k) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                self.pos += k + 1;
                return Ok(());
            }
            self.pos = self.end;
            if !self.fill()? {
                return Ok(());
            }
        }
    }

    /// A whole top-level object that does not start with `Records`.
    fn classify(&mut self, raw: Bytes) {
        #[derive(Deserialize)]
        struct Probe<'a> {
            #[serde(rename = "Records", borrow, default)]
            records: Option<Vec<&'a RawValue>>,
            #[serde(rename = "digestPublicKeyFingerprint", default)]
            digest_fp: Option<serde::de::IgnoredAny>,
            #[serde(rename = "digestStartTime", default)]
            digest_start: Option<serde::de::IgnoredAny>,
            #[serde(rename = "eventVersion", default)]
            event_version: Option<serde::de::IgnoredAny>,
            #[serde(rename = "eventTime", default)]
            event_time: Option<serde::de::IgnoredAny>,
            #[serde(rename = "eventID", default)]
            event_id: Option<serde::de::IgnoredAny>,
            #[serde(rename = "eventName", default)]
            event_name: Option<serde::de::IgnoredAny>,
        }
        let probe = match serde_json::from_slice::<Probe<'_>>(&raw) {
            Ok(p) => p,
            Err(_) => {
                // Not a valid document as a whole; if it is a record, its header parse will
                // say exactly why. Pass it on as a record so the error is reported once.
                self.queue.push_back(Item::Record(raw));
                return;
            }
        };
        if let Some(records) = probe.records {
            for r in records {
                let bytes = r.get().as_bytes();
                if bytes.first() == Some(&b'{') {
                    self.queue.push_back(Item::Record(raw.slice_ref(bytes)));
                } else {
                    self.queue.push_back(Item::Skipped {
                        reason: "record_not_object",
                        detail: "a Records element is not an object".into(),
                    });
                }
            }
        } else if probe.digest_fp.is_some() || probe.digest_start.is_some() {
            self.queue.push_back(Item::Digest);
        } else if probe.event_version.is_some()
            || probe.event_time.is_some()
            || probe.event_id.is_some()
            || probe.event_name.is_some()
        {
            self.queue.push_back(Item::Record(raw));
        } else {
            self.queue.push_back(Item::Skipped {
                reason: "no_records",
                detail: "JSON object without \"Records\" that is not a CloudTrail record".into(),
            });
        }
    }
}

fn too_large(n: usize, max: usize) -> Item {
    Item::Skipped {
        reason: "record_too_large",
        detail: format!("a record of {n} bytes exceeds max_record_bytes ({max})"),
    }
}

/// Where the scan of one nested value (object, array or string) stands between reads.
#[derive(Default)]
struct ValueScan {
    depth: i64,
    in_str: bool,
    /// Bytes to skip at the start of the next chunk (an escape split across reads).
    carry: usize,
    /// A newline inside the value of a framed (NDJSON) record: the record is broken.
    broken: bool,
}

impl ValueScan {
    /// Scan `buf` from `i` to the value's end; (where it stopped, whether the value ended).
    #[inline]
    fn scan(&mut self, buf: &[u8], mut i: usize, framed: bool) -> (usize, bool) {
        while i < buf.len() {
            if self.in_str {
                let hit = if framed {
                    memchr::memchr3(b'"', b'\\', b'\n', &buf[i..])
                } else {
                    memchr::memchr2(b'"', b'\\', &buf[i..])
                };
                let Some(k) = hit else {
                    return (buf.len(), false);
                };
                i += k;
                match buf[i] {
                    b'\n' => {
                        self.broken = true;
                        return (i + 1, true);
                    }
                    b'\\' => {
                        i += 2;
                        if i > buf.len() {
                            self.carry = i - buf.len();
                            return (buf.len(), false);
                        }
                    }
                    _ => {
                        self.in_str = false;
                        i += 1;
                        if self.depth == 0 {
                            return (i, true);
                        }
                    }
                }
            } else {
                match buf[i] {
                    b'\n' if framed => {
                        self.broken = true;
                        return (i + 1, true);
                    }
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return (i + 1, true);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        (i, false)
    }
}

/// Scan a scalar (number, literal) from `i` to the first byte that ends it.
#[inline]
fn scan_scalar(buf: &[u8], from: usize) -> (usize, bool) {
    match buf[from.min(buf.len())..]
        .iter()
        .position(|&b| is_ws(b) || matches!(b, b',' | b']' | b'}'))
    {
        Some(k) => (from + k, true),
        None => (buf.len().max(from), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> (Vec<String>, Option<ScanError>) {
        scan_with(input, 1 << 20)
    }

    fn scan_with(input: &[u8], max: usize) -> (Vec<String>, Option<ScanError>) {
        // A reader that returns 7 bytes at a time exercises every buffer boundary.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = Scanner::new(Slow(input), 0, max);
        let mut out = vec![];
        loop {
            match s.next_item() {
                Ok(None) => return (out, None),
                Ok(Some(Item::Record(b))) => out.push(String::from_utf8(b.to_vec()).unwrap()),
                Ok(Some(Item::Skipped { reason, .. })) => out.push(format!("skip:{reason}")),
                Ok(Some(Item::Digest)) => out.push("digest".into()),
                Ok(Some(Item::Boundary(o))) => out.push(format!("@{o}")),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn records_document_streams_elements() {
        let doc = br#"{"Records":[{"a":"x}\"{"},{"b":[1,{"c":2}]}]}"#;
        let (items, err) = scan(doc);
        assert!(err.is_none());
        assert_eq!(
            items,
            vec![
                r#"{"a":"x}\"{"}"#.to_string(),
                r#"{"b":[1,{"c":2}]}"#.to_string(),
                format!("@{}", doc.len())
            ]
        );
    }

    #[test]
    fn pretty_printed_with_bom_and_trailing_keys() {
        let doc =
            "\u{feff}{\n  \"Records\" : [\n {\"a\":1} ,\n {\"b\":2}\n ], \"x\": {\"y\":[]}\n}\n";
        let (items, err) = scan(doc.as_bytes());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(items[0], r#"{"a":1}"#);
        assert_eq!(items[1], r#"{"b":2}"#);
        assert!(items[2].starts_with('@'));
    }

    #[test]
    fn ndjson_records_and_boundaries() {
        let doc = b"{\"eventID\":\"1\"}\n{\"eventID\":\"2\"}\n";
        let (items, err) = scan(doc);
        assert!(err.is_none());
        assert_eq!(
            items,
            vec![r#"{"eventID":"1"}"#, "@15", r#"{"eventID":"2"}"#, "@31"]
        );
    }

    #[test]
    fn digest_and_objects_without_records() {
        let (items, _) = scan(br#"{"digestStartTime":"x","logFiles":[]} {"foo":1} 5"#);
        assert_eq!(items[0], "digest");
        assert_eq!(items[2], "skip:no_records");
        assert_eq!(items[4], "skip:not_an_object");
    }

    #[test]
    fn records_not_first_key() {
        let (items, _) = scan(br#"{"x":1,"Records":[{"a":1},2]}"#);
        assert_eq!(items[0], r#"{"a":1}"#);
        assert_eq!(items[1], "skip:record_not_object");
    }

    #[test]
    fn bad_elements_are_skipped() {
        let (items, err) = scan(br#"{"Records":[1,"s",{"a":1},[2],{"b":2}]}"#);
        assert!(err.is_none());
        assert_eq!(
            items,
            vec![
                "skip:record_not_object",
                "skip:record_not_object",
                r#"{"a":1}"#,
                "skip:record_not_object",
                r#"{"b":2}"#,
                "@39"
            ]
        );
        let (items, _) = scan(br#"{"Records":{"a":1}}"#);
        assert_eq!(items[0], "skip:records_not_array");
    }

    #[test]
    fn too_large_record_is_skipped_neighbours_kept() {
        let big = format!(
            r#"{{"Records":[{{"a":"{}"}},{{"b":1}}]}}"#,
            "z".repeat(5000)
        );
        let (items, err) = scan_with(big.as_bytes(), 1000);
        assert!(err.is_none());
        assert_eq!(items[0], "skip:record_too_large");
        assert_eq!(items[1], r#"{"b":1}"#);
    }

    #[test]
    fn truncated_and_garbage() {
        let (items, err) = scan(br#"{"Records":[{"a":1},{"b":"#);
        assert_eq!(items, vec![r#"{"a":1}"#]);
        assert!(matches!(err, Some(ScanError::Incomplete { offset: 0 })));
        let (_, err) = scan(b"hello world");
        assert!(matches!(err, Some(ScanError::Syntax { .. })));
        let (items, err) = scan(b"{\"eventID\":\"1\"}\n{\"eventID\":");
        assert_eq!(items, vec![r#"{"eventID":"1"}"#, "@15"]);
        assert!(matches!(err, Some(ScanError::Incomplete { offset: 16 })));
    }

    #[test]
    fn ndjson_bad_lines_do_not_swallow_neighbours() {
        let doc = b"{\"eventID\":\"1\"}\n{\"eventID\":\"2\n{\"eventID\":\"3\"}\ngarbage line\n{\"eventID\":\"4\"}\n";
        let (items, err) = scan(doc);
        assert!(err.is_none(), "{err:?}");
        let recs: Vec<_> = items.iter().filter(|i| i.starts_with('{')).collect();
        assert_eq!(
            recs,
            vec![
                r#"{"eventID":"1"}"#,
                r#"{"eventID":"3"}"#,
                r#"{"eventID":"4"}"#
            ]
        );
        assert!(items.contains(&"skip:invalid_json".to_string()));
        assert!(items.contains(&"skip:not_json".to_string()));
    }

    #[test]
    fn top_level_array() {
        let (items, err) = scan(br#"[{"a":1},{"b":2}]"#);
        assert!(err.is_none());
        assert_eq!(items, vec![r#"{"a":1}"#, r#"{"b":2}"#, "@17"]);
    }

    #[test]
    fn escapes_across_read_boundaries() {
        // A backslash at every possible position relative to the 7-byte reads.
        for pad in 0..8 {
            let doc = format!(r#"{{"Records":[{{"a":"{}\\\"\\\\"}}]}}"#, "p".repeat(pad));
            let (items, err) = scan(doc.as_bytes());
            assert!(err.is_none(), "pad {pad}: {err:?}");
            assert_eq!(items.len(), 2, "pad {pad}: {items:?}");
        }
    }
}
