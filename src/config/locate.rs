//! Find the line of a dotted key path (`sinks.out.batch.max_events`) in TOML text, so that
//! errors found after parsing still point at the right line.

/// Split a TOML key (`a."b.c".d`) into its parts.
fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut cur).trim().to_string()),
            (_, c) => cur.push(c),
        }
    }
    parts.push(cur.trim().to_string());
    parts
}

/// The 1-based line that defines `path`, or the closest enclosing key or table that does.
pub fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let mut table: Vec<String> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched parts, line)
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let full: Vec<String> = if let Some(h) = line.strip_prefix("[[") {
            let h = h.split("]]").next().unwrap_or("");
            table = split_key(h);
            table.clone()
        } else if let Some(h) = line.strip_prefix('[') {
            let h = h.split(']').next().unwrap_or("");
            table = split_key(h);
            table.clone()
        } else if let Some((k, _)) = line.split_once('=') {
            let mut f = table.clone();
            f.extend(split_key(k));
            f
        } else {
            continue;
        };
        let matched = full.iter().zip(path).take_while(|(a, b)| a == *b).count();
        if matched == full.len() && matched > best.map_or(0, |b| b.0) {
            best = Some((matched, i + 1));
        }
        if matched == path.len() && matched == full.len() {
            return Some(i + 1);
        }
    }
    best.map(|b| b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "data_dir = \"x\"\n\n[sinks.out]\ntype = \"file\"\nbatch.max_events = 5\n\n[transforms.r.routes.read]\nread_only = true\n[transforms.f]\nexclude = { error = true }\n";

    #[test]
    fn finds_keys_tables_and_nearest() {
        assert_eq!(locate(T, &["data_dir"]), Some(1));
        assert_eq!(locate(T, &["sinks", "out", "type"]), Some(4));
        assert_eq!(locate(T, &["sinks", "out", "batch", "max_events"]), Some(5));
        assert_eq!(locate(T, &["sinks", "out", "nope"]), Some(3));
        assert_eq!(
            locate(T, &["transforms", "r", "routes", "read", "read_only"]),
            Some(8)
        );
        assert_eq!(
            locate(T, &["transforms", "f", "exclude", "error"]),
            Some(10)
        );
    }
}
