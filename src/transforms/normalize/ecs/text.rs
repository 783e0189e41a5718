//! Elastic's text rendering of a JSON object (`aws.cloudtrail.request_parameters` and its
//! kin): a Java map's `toString`, `{a=1, b=[x, y]}`, keys in the order a `java.util.HashMap`
//! iterates them — by bucket, and within a bucket in the order the record wrote them. That
//! order is why the value is read here from the record's text into [`Ordered`], which keeps
//! it (a `serde_json::Value` sorts keys).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value with its objects' keys in the record's order (and how many keys the object
/// had before empty values were dropped: that sized Elastic's map).
pub enum Ordered {
    Null,
    Scalar(String),
    Str(String),
    Arr(Vec<Ordered>),
    Obj(Vec<(String, Ordered)>, usize),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::from(v).to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Str(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
        Ok(Ordered::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = a.next_element()? {
            items.push(x);
        }
        Ok(Ordered::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
        let mut entries: Vec<(String, Ordered)> = Vec::new();
        while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
            // A repeated key keeps its first place and its last value, as a map does.
            match entries.iter_mut().find(|(e, _)| *e == k) {
                Some(e) => e.1 = v,
                None => entries.push((k, v)),
            }
        }
        let n = entries.len();
        Ok(Ordered::Obj(entries, n))
    }
}

impl From<&Value> for Ordered {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => Ordered::Null,
            Value::String(s) => Ordered::Str(s.clone()),
            Value::Array(a) => Ordered::Arr(a.iter().map(Ordered::from).collect()),
            Value::Object(m) => Ordered::Obj(
                m.iter()
                    .map(|(k, x)| (k.clone(), Ordered::from(x)))
                    .collect(),
                m.len(),
            ),
            other => Ordered::Scalar(other.to_string()),
        }
    }
}

impl Ordered {
    fn droppable(&self) -> bool {
        match self {
            Ordered::Null => true,
            Ordered::Str(s) => super::empty_text(s),
            Ordered::Arr(a) => a.is_empty(),
            Ordered::Obj(m, _) => m.is_empty(),
            Ordered::Scalar(_) => false,
        }
    }

    /// Drop, recursively, what Elastic drops before it renders (see `super::drop_empty`).
    pub fn drop_empty(&mut self) {
        match self {
            Ordered::Arr(a) => {
                a.iter_mut().for_each(Ordered::drop_empty);
                a.retain(|x| !x.droppable());
            }
            Ordered::Obj(m, _) => {
                m.iter_mut().for_each(|(_, x)| x.drop_empty());
                m.retain(|(_, x)| !x.droppable());
            }
            _ => {}
        }
    }

    /// Elastic's text form of this value.
    pub fn java_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Ordered::Null => out.push_str("null"),
            Ordered::Scalar(s) | Ordered::Str(s) => out.push_str(s),
            Ordered::Arr(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out);
                }
                out.push(']');
            }
            Ordered::Obj(m, n) => {
                out.push('{');
                for (i, (k, x)) in java_order(m.iter().map(|(k, x)| (k.as_str(), x)), *n)
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Java's `String.hashCode`, spread as `java.util.HashMap` does.
fn java_hash(k: &str) -> u32 {
    let h = k
        .encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
    h ^ (h >> 16)
}

/// The order a `java.util.HashMap` that held `held` keys iterates these in: by bucket of a
/// table sized for them (16, doubled while more than 3/4 full), a bucket's keys in the order
/// they were put (the sort is stable).
pub fn java_order<'a, T>(
    entries: impl Iterator<Item = (&'a str, T)>,
    held: usize,
) -> Vec<(&'a str, T)> {
    let mut entries: Vec<(&str, T)> = entries.collect();
    let mut cap = 16usize;
    while held * 4 > cap * 3 {
        cap *= 2;
    }
    entries.sort_by_key(|(k, _)| java_hash(k) as usize & (cap - 1));
    entries
}

/// Elastic's text form of a value read as a `serde_json::Value` (keys in sorted order where
/// they share a bucket: the record's own order is not known there).
pub fn java_text(v: &Value) -> String {
    Ordered::from(v).java_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elastics_map_form_in_java_order_with_ties_in_the_records_order() {
        let v: Value = serde_json::from_str(r#"{"a":"x","b":[1,"y"],"c":{"d":null}}"#).unwrap();
        assert_eq!(java_text(&v), "{a=x, b=[1, y], c={d=null}}");
        let v: Value =
            serde_json::from_str(r#"{"MobileVersion":"No","LoginTo":"x","MFAUsed":"No"}"#).unwrap();
        assert_eq!(java_text(&v), "{LoginTo=x, MobileVersion=No, MFAUsed=No}");
        // `assumedRoleId` and `arn` share a bucket: the record's order decides.
        let o: Ordered = serde_json::from_str(r#"{"assumedRoleId":"i","arn":"a"}"#).unwrap();
        assert_eq!(o.java_text(), "{assumedRoleId=i, arn=a}");
        let o: Ordered = serde_json::from_str(r#"{"arn":"a","assumedRoleId":"i"}"#).unwrap();
        assert_eq!(o.java_text(), "{arn=a, assumedRoleId=i}");
    }

    #[test]
    fn empty_values_go_before_rendering() {
        let mut o: Ordered =
            serde_json::from_str(r#"{"policy":"","tags":[],"x":{"y":"-"},"n":0,"s":"none"}"#)
                .unwrap();
        o.drop_empty();
        assert_eq!(o.java_text(), "{n=0}");
    }
}
