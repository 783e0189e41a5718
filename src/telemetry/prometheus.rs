//! The Prometheus text exposition format (version 0.0.4) of every metric, named `trailship_*`,
//! with HELP and TYPE from the catalogue.

use std::fmt::Write;

use super::catalog::{self, Kind};
use super::registry::{self, Labels};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

struct Out {
    text: String,
    last: &'static str,
}

impl Out {
    fn family(&mut self, name: &'static str, kind: Kind) {
        if name == self.last {
            return;
        }
        self.last = name;
        if let Some(m) = catalog::find(name) {
            let _ = writeln!(self.text, "# HELP trailship_{name} {}", m.help);
        }
        let _ = writeln!(self.text, "# TYPE trailship_{name} {}", kind.prometheus());
    }
}

/// Every metric, as `/metrics` serves it.
pub fn prometheus() -> String {
    let v = registry::read();
    let mut out = Out {
        text: String::new(),
        last: "",
    };
    for ((name, l), n) in &v.counters {
        out.family(name, Kind::Counter);
        let _ = writeln!(out.text, "trailship_{name}{} {n}", labels(l, None));
    }
    for ((name, l), x) in &v.gauges {
        out.family(name, Kind::Gauge);
        let _ = writeln!(
            out.text,
            "trailship_{name}{} {}",
            labels(l, None),
            number(*x)
        );
    }
    for ((name, l), h) in &v.histograms {
        out.family(name, Kind::Histogram);
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = h.bounds.get(i).map_or("+Inf".to_string(), |b| number(*b));
            let _ = writeln!(
                out.text,
                "trailship_{name}_bucket{} {cumulative}",
                labels(l, Some(("le", le)))
            );
        }
        let _ = writeln!(
            out.text,
            "trailship_{name}_sum{} {}",
            labels(l, None),
            h.sum
        );
        let _ = writeln!(
            out.text,
            "trailship_{name}_count{} {}",
            labels(l, None),
            h.count
        );
    }
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_an_inf_bucket() {
        let h = registry::histogram("test_prom_seconds", &[("component", "p")]);
        h.observe(0.003);
        h.observe(0.2);
        h.observe(1000.0);
        let text = prometheus();
        assert!(text.contains("# TYPE trailship_test_prom_seconds histogram"));
        assert!(
            text.contains("trailship_test_prom_seconds_bucket{component=\"p\",le=\"0.005\"} 1")
        );
        assert!(text.contains("trailship_test_prom_seconds_bucket{component=\"p\",le=\"0.25\"} 2"));
        assert!(text.contains("trailship_test_prom_seconds_bucket{component=\"p\",le=\"300\"} 2"));
        assert!(text.contains("trailship_test_prom_seconds_bucket{component=\"p\",le=\"+Inf\"} 3"));
        assert!(text.contains("trailship_test_prom_seconds_count{component=\"p\"} 3"));
    }
}
