//! The `trailship top` table: plain text with fixed columns, so it reads the same over SSH,
//! in a pipe and in a log.

use std::fmt::Write;

use super::model::{Buffer, Row};

fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1}k", v / 1000.0),
        Some(v) if v >= 10.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// Seconds as `42s`, `10m02s`, `3h05m`, `2d04h`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn count(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.0}")
    }
}

pub fn table(header: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let _ = writeln!(
        out,
        "{:<24} {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "COMPONENT", "KIND", "IN/s", "OUT/s", "ERRORS", "RETRIES", "BUFFER", "LAG", "FAILING"
    );
    for r in rows {
        let buffer = match &r.buffer {
            None => "-".into(),
            Some(Buffer::Fill(f)) => format!("{:.0}%", f * 100.0),
            Some(Buffer::Events(n)) => format!("{n:.0} ev"),
        };
        let failing = match r.failing {
            None => "-".into(),
            Some(f) if f <= 0.0 => "no".into(),
            Some(f) => duration(f),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
            r.name,
            r.kind,
            if r.kind == "sink" {
                "-".into()
            } else {
                rate(r.in_rate)
            },
            rate(r.out_rate),
            count(r.errors),
            count(r.retries),
            buffer,
            r.lag.map_or("-".into(), duration),
            failing,
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no components reported yet)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(602.0), "10m02s");
        assert_eq!(duration(11_100.0), "3h05m");
        assert_eq!(duration(187_200.0), "2d04h");
    }
}
