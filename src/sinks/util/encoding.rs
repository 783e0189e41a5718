//! How events are written: the original records byte for byte (NDJSON, or a CloudTrail
//! `{"Records":[...]}` document), or pretty-printed JSON for people.

use serde::Deserialize;

use crate::core::event::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// One record per line, the original bytes.
pub fn ndjson<'a>(events: impl IntoIterator<Item = &'a Event>, out: &mut Vec<u8>) {
    for e in events {
        out.extend_from_slice(&e.data.raw);
        out.push(b'\n');
    }
}

/// The records joined by commas: the inside of a `Records` array.
pub fn records_array<'a>(events: impl IntoIterator<Item = &'a Event>, out: &mut Vec<u8>) {
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.data.raw);
    }
}

/// Pretty-printed JSON, one document per event, for a person reading a terminal.
pub fn pretty<'a>(events: impl IntoIterator<Item = &'a Event>, out: &mut Vec<u8>) {
    for e in events {
        match serde_json::from_slice::<serde_json::Value>(&e.data.raw)
            .and_then(|v| serde_json::to_vec_pretty(&v))
        {
            Ok(v) => out.extend_from_slice(&v),
            Err(_) => out.extend_from_slice(&e.data.raw),
        }
        out.push(b'\n');
    }
}

/// Compress `data` as one gzip member (members can be appended to a file one after another).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// How the file and S3 sinks lay events out: NDJSON, or CloudTrail's `{"Records":[…]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FileEncoding {
    #[default]
    Ndjson,
    Cloudtrail,
}
