//! Numbers kept as the record wrote them. A `serde_json::Value` holds integers up to 64 bits;
//! a bigger one (an id inside `requestParameters`, say) becomes a float and would come out
//! rounded. When the record has such a number (or any float), each top-level value holding
//! one that the output carries whole (`api.request.data`, `unmapped.*`, ECS `flattened.*`) is
//! written from the record's own text instead. Values the output only reads from, or renders
//! as text, are not affected by this.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

fn inexact(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(inexact),
        Value::Object(m) => m.values().any(inexact),
        _ => false,
    }
}

/// Unguessable, so that no string in a record can pass for a marker (a fresh one per record
/// that takes this path; they are rare).
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let since = std::time::SystemTime::UNIX_EPOCH.elapsed();
    h.write_u128(since.map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Replace every subtree of `out` equal to `find` with the string `marker`.
fn mark(out: &mut Value, find: &Value, marker: &str) {
    if out == find {
        *out = Value::String(marker.into());
        return;
    }
    match out {
        Value::Array(a) => a.iter_mut().for_each(|x| mark(x, find, marker)),
        Value::Object(m) => m.values_mut().for_each(|x| mark(x, find, marker)),
        _ => {}
    }
}

/// `out` as JSON text, with the record `r`'s inexact top-level values in their own text.
pub fn to_vec(r: &Value, raw: &[u8], mut out: Value) -> Option<Vec<u8>> {
    let Some(rec) = r.as_object().filter(|m| m.values().any(inexact)) else {
        return serde_json::to_vec(&out).ok();
    };
    let texts: BTreeMap<String, &RawValue> = serde_json::from_slice(raw).ok()?;
    let mut swaps = Vec::new();
    let nonce = nonce();
    for (i, (k, v)) in rec.iter().filter(|(_, v)| inexact(v)).enumerate() {
        let Some(text) = texts.get(k) else { continue };
        let marker = format!("\u{1}trailship-exact-{nonce:x}-{i}");
        mark(&mut out, v, &marker);
        swaps.push((serde_json::to_string(&marker).ok()?, text.get()));
    }
    let mut body = serde_json::to_string(&out).ok()?;
    for (marker, text) in swaps {
        body = body.replace(&marker, text);
    }
    Some(body.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_integer_comes_out_as_written_and_the_rest_unchanged() {
        let raw = br#"{"eventTime":"t","requestParameters":{"n":123456789012345678901234567890,"f":0.1000000000000000055511151231257827,"s":"x"},"eventName":"E"}"#;
        let r: Value = serde_json::from_slice(raw).unwrap();
        let out = serde_json::json!({"api": {"request": {"data": r["requestParameters"].clone()}}, "name": "E"});
        let text = String::from_utf8(to_vec(&r, raw, out).unwrap()).unwrap();
        assert!(
            text.contains(r#""n":123456789012345678901234567890"#),
            "{text}"
        );
        assert!(
            text.contains("0.1000000000000000055511151231257827"),
            "{text}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], "E");
        assert_eq!(back["api"]["request"]["data"]["s"], "x");
    }

    #[test]
    fn records_without_such_numbers_take_the_plain_path() {
        let raw = br#"{"requestParameters":{"n":18446744073709551615}}"#;
        let r: Value = serde_json::from_slice(raw).unwrap();
        let text = to_vec(&r, raw, r.clone()).unwrap();
        assert_eq!(text, serde_json::to_vec(&r).unwrap());
    }
}
