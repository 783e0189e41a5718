//! Human-friendly durations (`"10s"`, `"500ms"`, or whole seconds) and sizes (`"10MiB"`, or
//! bytes) in config files.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(Duration::from_secs(n)),
        NumOrStr::Str(s) => humantime::parse_duration(&s).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration {s:?}: {e} (examples: \"500ms\", \"10s\", \"5m\")"
            ))
        }),
    }
}

pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => parse_size(&s).ok_or_else(|| {
            D::Error::custom(format!("invalid size {s:?} (examples: \"512KiB\", \"10MiB\", \"1GB\", or a number of bytes)"))
        }),
    }
}

pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10MiB"), Some(10 << 20));
        assert_eq!(super::parse_size("3 KB"), Some(3000));
        assert_eq!(super::parse_size("12"), Some(12));
        assert_eq!(super::parse_size("1PB"), None);
        assert_eq!(super::parse_size("MiB"), None);
    }
}
