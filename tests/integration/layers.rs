//! The layer rules of ARCHITECTURE.md ("Architecture invariants"), checked on the source: every
//! `crate::`, `super::` and `self::` path in `src/` (tests included) is resolved to the module it
//! names, and a path a layer may not name fails this test with the file, the line and the rule.
//! The top-level module graph must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import from the crate (besides itself). Ordered from the
/// ground up; each imports only modules listed before it.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("config", &[]),
    ("decode", &["core"]),
    ("telemetry", &["core", "config"]),
    ("checkpoint", &["core", "config", "telemetry"]),
    ("aws", &["core", "config", "telemetry"]),
    (
        "integrity",
        &["core", "config", "decode", "telemetry", "aws"],
    ),
    ("buffer", COMPONENT),
    ("sources", COMPONENT),
    ("transforms", COMPONENT),
    ("sinks", COMPONENT),
    (
        "topology",
        &[
            "core",
            "config",
            "decode",
            "telemetry",
            "checkpoint",
            "aws",
            "integrity",
            "buffer",
            "sources",
            "transforms",
            "sinks",
        ],
    ),
    (
        "cli",
        &[
            "core",
            "config",
            "decode",
            "telemetry",
            "checkpoint",
            "aws",
            "integrity",
            "buffer",
            "sources",
            "transforms",
            "sinks",
            "topology",
        ],
    ),
];

/// What sources, transforms, sinks and buffers may import: the layers below them.
const COMPONENT: &[&str] = &[
    "core",
    "config",
    "decode",
    "telemetry",
    "checkpoint",
    "aws",
    "integrity",
];

/// Component kinds whose root module is the registry: a component of the kind imports only its
/// own folder and the kind's `util`, never another component or the registry.
const KINDS: &[&str] = &["sources", "transforms", "sinks"];

/// A path named in a file: the module path it resolves to and the line it is on.
#[derive(Debug)]
struct Named {
    path: Vec<String>,
    line: usize,
}

/// The module path of a file under `src/`: `sinks/file/mod.rs` → `[sinks, file]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The text with comments, string and character literals blanked (lines kept).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident(b.get(i.wrapping_sub(1)))
        {
            // Raw string r"…" / r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                blank(&mut out, b[j]);
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// For each character of `code`, the inline modules (`mod tests { … }`) it is inside.
fn inline_modules(chars: &[char]) -> Vec<Vec<String>> {
    let mut at = Vec::with_capacity(chars.len());
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        at.push(open.iter().map(|(n, _)| n.clone()).collect());
        let c = chars[i];
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            if open.last().is_some_and(|(_, d)| *d == depth) {
                open.pop();
            }
            depth = depth.saturating_sub(1);
        } else if c == 'm'
            && !ident(chars.get(i.wrapping_sub(1)))
            && chars.get(i..i + 4) == Some(&['m', 'o', 'd', ' '])
        {
            let mut j = i + 4;
            let start = j;
            while ident(chars.get(j)) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            if let Some(k) = skip_ws(chars, j)
                && chars.get(k) == Some(&'{')
                && !name.is_empty()
            {
                for _ in i..k {
                    at.push(open.iter().map(|(n, _)| n.clone()).collect());
                }
                depth += 1;
                open.push((name, depth));
                i = k + 1;
                continue;
            }
        }
        i += 1;
    }
    at
}

/// Every path starting with `crate`, `super` or `self` in `code`, use-trees expanded.
fn named_paths(code: &str, file_module: &[String]) -> Vec<Named> {
    let chars: Vec<char> = code.chars().collect();
    let inline = inline_modules(&chars);
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut module = file_module.to_vec();
        module.extend(inline.get(i).cloned().unwrap_or_default());
        let module = &module[..];
        if !ident(chars.get(i.wrapping_sub(1)))
            && chars.get(i.wrapping_sub(1)) != Some(&'$')
            && let Some(root) = ["crate", "super", "self"]
                .into_iter()
                .find(|w| starts_path(&chars, i, w))
        {
            let line = chars[..i].iter().filter(|c| **c == '\n').count() + 1;
            let mut j = i + root.len();
            let mut trees = Vec::new();
            parse_tree(&chars, &mut j, vec![root.to_string()], &mut trees);
            for t in trees {
                if let Some(path) = resolve(&t, module) {
                    found.push(Named { path, line });
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// `word` at `i`, followed by `::`.
fn starts_path(chars: &[char], i: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    chars.get(i..i + w.len()) == Some(&w[..])
        && !ident(chars.get(i + w.len()))
        && skip_ws(chars, i + w.len()).is_some_and(|k| chars.get(k..k + 2) == Some(&[':', ':']))
}

fn skip_ws(chars: &[char], mut i: usize) -> Option<usize> {
    while chars.get(i)?.is_whitespace() {
        i += 1;
    }
    Some(i)
}

/// Parse `::a::b`, `::{x, y::{z}}` after `prefix`, pushing every full path into `out`.
fn parse_tree(chars: &[char], j: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some(k) = skip_ws(chars, *j) {
        if chars.get(k..k + 2) != Some(&[':', ':']) {
            break;
        }
        let Some(k) = skip_ws(chars, k + 2) else {
            break;
        };
        *j = k;
        if chars.get(k) == Some(&'{') {
            *j = k + 1;
            loop {
                let Some(s) = skip_ws(chars, *j) else { return };
                *j = s;
                match chars.get(s) {
                    Some('}') => {
                        *j = s + 1;
                        break;
                    }
                    Some(',') => *j = s + 1,
                    Some(c) if c.is_alphabetic() || *c == '_' || *c == '*' => {
                        let start = *j;
                        while ident(chars.get(*j)) || chars.get(*j) == Some(&'*') {
                            *j += 1;
                        }
                        let word: String = chars[start..*j].iter().collect();
                        let mut sub = path.clone();
                        sub.push(word);
                        let before = out.len();
                        parse_tree(chars, j, sub.clone(), out);
                        if out.len() == before {
                            out.push(sub);
                        }
                        // `as name`
                        while let Some(s) = skip_ws(chars, *j) {
                            match chars.get(s) {
                                Some(',') | Some('}') | None => break,
                                _ => *j = s + 1,
                            }
                        }
                    }
                    _ => *j = s + 1,
                }
            }
            return;
        }
        let start = *j;
        while ident(chars.get(*j)) {
            *j += 1;
        }
        if *j == start {
            break;
        }
        path.push(chars[start..*j].iter().collect());
    }
    out.push(path);
}

/// An absolute module path from a relative one (`super`, `self`), `None` for a bare `self`.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &path[1..];
        }
        Some("self") => {
            base = module.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            base = module.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    for seg in rest {
        if seg != "self" {
            base.push(seg.clone());
        }
    }
    Some(base)
}

/// The submodules of `dir/kind/` (files and folders), to tell a module from an item.
fn submodules(src: &Path, kind: &str) -> BTreeSet<String> {
    std::fs::read_dir(src.join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|n| n != "mod")
        .collect()
}

/// Why `from` may not name `to`, if it may not.
fn broken_rule(
    from: &[String],
    to: &[String],
    kinds: &BTreeMap<&str, BTreeSet<String>>,
) -> Option<String> {
    let (Some(me), Some(it)) = (from.first(), to.first()) else {
        return None;
    };
    if me == it {
        let subs = kinds.get(me.as_str())?;
        // Inside a component kind: own folder, the kind's util, nothing else.
        let mine = from.get(1);
        let theirs = to.get(1);
        return match (mine, theirs) {
            // The registry itself sees its components.
            (None, _) => None,
            (Some(_), None) => Some(format!("a component may not name the `{me}` registry")),
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(b)) if b == "util" => None,
            (Some(_), Some(b)) if !subs.contains(b) => Some(format!(
                "`{me}::{b}` is the `{me}` registry: only topology and cli see it"
            )),
            (Some(a), Some(b)) => Some(format!(
                "`{me}::{a}` may not import `{me}::{b}` (components never import each other; shared code goes in `{me}::util`)"
            )),
        };
    }
    let allowed = LAYERS.iter().find(|(m, _)| m == me).map(|(_, a)| *a);
    match allowed {
        // lib.rs / main.rs (the binary is CLI glue) and unknown roots are not layered.
        None if from.is_empty() => None,
        None => Some(format!(
            "`{me}` is not in the layer table of tests/integration/layers.rs"
        )),
        Some(a) if a.contains(&it.as_str()) => None,
        Some(_) if !LAYERS.iter().any(|(m, _)| m == it) => None,
        Some(a) => Some(format!(
            "`{me}` may import only {} — not `{it}`",
            if a.is_empty() {
                "nothing from the crate".to_string()
            } else {
                a.join(", ")
            }
        )),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every broken rule in `src`, as `file:line: from → to: why`, and the top-level edges.
fn check(src: &Path) -> (Vec<String>, BTreeMap<String, BTreeSet<String>>) {
    let kinds: BTreeMap<&str, BTreeSet<String>> =
        KINDS.iter().map(|k| (*k, submodules(src, k))).collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let module = module_of(rel);
        let text = std::fs::read_to_string(&f).expect("source readable");
        for n in named_paths(&code_only(&text), &module) {
            if let (Some(a), Some(b)) = (module.first(), n.path.first())
                && a != b
            {
                edges.entry(a.clone()).or_default().insert(b.clone());
            }
            if let Some(why) = broken_rule(&module, &n.path, &kinds) {
                problems.push(format!(
                    "src/{}:{}: {} → {}: {why}",
                    rel.display(),
                    n.line,
                    module.join("::"),
                    n.path.join("::")
                ));
            }
        }
    }
    (problems, edges)
}

/// A cycle in the top-level graph, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn layer_rules_hold_and_the_module_graph_has_no_cycle() {
    let (problems, edges) = check(&src_dir());
    assert!(
        problems.is_empty(),
        "{} import(s) break the layer rules (ARCHITECTURE.md, Architecture invariants):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(
        cycle(&edges),
        None,
        "the top-level module graph has a cycle"
    );
    // Every top-level module is in the layer table.
    for m in edges.keys() {
        assert!(
            LAYERS.iter().any(|(l, _)| l == m),
            "top-level module `{m}` has no row in LAYERS"
        );
    }
}

/// The checker itself: a planted import of each forbidden kind is caught, allowed ones are not.
#[test]
fn the_layer_check_catches_planted_imports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "core/mod.rs",
        "pub mod event;\nuse crate::telemetry::count;\n",
    );
    write("core/event.rs", "use super::Batch; // fine: core itself\n");
    write(
        "sinks/s3.rs",
        "use crate::sinks::util::driver;\nuse crate::topology::Running;\nuse super::{file::X, SinkConfig};\nfn f() { let s = \"crate::buffer::x\"; }\n",
    );
    write("sinks/file/mod.rs", "use super::super::sources::file;\n");
    write(
        "sinks/util/mod.rs",
        "use crate::{core::Batch, config::FieldError};\n",
    );
    write("sinks/mod.rs", "use self::s3::X;\n");
    write(
        "sources/file.rs",
        "mod tests {\n    use super::*;\n    use super::super::sqs::Y;\n}\n",
    );
    write("sources/sqs.rs", "pub struct Y;\n");
    write(
        "decode/mod.rs",
        "/* crate::aws::x */ use crate::core::event::Event;\n",
    );
    write("topology/mod.rs", "use crate::cli::run;\n");
    write("cli/mod.rs", "use crate::topology::Running;\n");
    let (problems, edges) = check(src);
    let text = problems.join("\n");
    for expected in [
        "src/core/mod.rs:2: core → telemetry::count",
        "src/sinks/s3.rs:2: sinks::s3 → topology::Running",
        "src/sinks/s3.rs:3: sinks::s3 → sinks::file::X",
        "src/sinks/s3.rs:3: sinks::s3 → sinks::SinkConfig",
        "src/sinks/file/mod.rs:1: sinks::file → sources::file",
        "src/topology/mod.rs:1: topology → cli::run",
        "src/sources/file.rs:3: sources::file → sources::sqs::Y: `sources::file` may not import `sources::sqs`",
    ] {
        assert!(text.contains(expected), "not caught: {expected}\n{text}");
    }
    assert_eq!(problems.len(), 7, "{text}");
    assert_eq!(
        cycle(&edges),
        Some(vec!["cli".into(), "topology".into(), "cli".into()])
    );
}

/// Process-global statics allowed, with why; no other static may exist (an outcome flows back
/// through the topology as a value: `core::run::{Outcome, Health, Progress}`).
const STATICS: &[(&str, &str, &str)] = &[
    (
        "telemetry/registry.rs",
        "REGISTRY",
        "the metrics registry (the one allowed global)",
    ),
    (
        "telemetry/otel.rs",
        "METER",
        "the OTel SDK's meter, set once at start-up",
    ),
    (
        "telemetry/otel.rs",
        "TRACER",
        "the OTel SDK's tracer, set once at start-up",
    ),
    (
        "telemetry/otel.rs",
        "HISTOGRAMS",
        "OTel instruments by metric name",
    ),
    (
        "cli/lookup/output.rs",
        "BAR",
        "the terminal's progress line",
    ),
    (
        "main.rs",
        "ALLOCATOR",
        "the global allocator (Rust requires a static; it holds no outcome)",
    ),
    (
        "main.rs",
        "JEMALLOC_CONF",
        "jemalloc's built-in options, read before main (a constant string)",
    ),
    (
        "sources/file/tracker.rs",
        "NEXT",
        "generations unique per process (identity, not an outcome)",
    ),
];

#[test]
fn no_process_global_static_carries_an_outcome() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        let code = code_only(&std::fs::read_to_string(&f).expect("source readable"));
        for (n, line) in code.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "static")
                && let Some(name) = words.get(i + 1).map(|w| w.trim_end_matches(':'))
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                && !STATICS.iter().any(|(p, s, _)| *p == rel && *s == name)
            {
                found.push(format!("src/{rel}:{}: static {name}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "process-global statics not in the allowed list (make them values the topology hands out):\n{}",
        found.join("\n")
    );
}

/// The second type argument of each `Result<…>` in `code` (top-level comma, brackets balanced).
fn result_errors(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(i) = rest.find("Result<") {
        let at = offset + i;
        let after = &rest[i + "Result<".len()..];
        let (mut depth, mut parts, mut cur) = (1i32, Vec::new(), String::new());
        let mut prev = ' ';
        for c in after.chars() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' if prev != '-' => depth -= 1,
                ')' | ']' => depth -= 1,
                ',' if depth == 1 => {
                    parts.push(std::mem::take(&mut cur));
                    prev = c;
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
            cur.push(c);
            prev = c;
        }
        parts.push(cur);
        if let [_, e] = parts.as_slice() {
            let line = code[..at].matches('\n').count() + 1;
            out.push((line, e.trim().to_string()));
        }
        offset = at + "Result<".len();
        rest = &code[offset..];
    }
    out
}

#[test]
fn errors_are_typed_not_strings() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in files {
        let code = code_only(&std::fs::read_to_string(&f).expect("source readable"));
        for (line, e) in result_errors(&code) {
            if e == "String" {
                let rel = f.strip_prefix(&src).expect("under src").display();
                found.push(format!("src/{rel}:{line}: Result<_, String>"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "errors are typed (a thiserror enum of the layer, with its context; ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
    // The check itself: it sees through nested generics and `->` in closures.
    let planted = "fn a() -> Result<Vec<(u8, String)>, String> {}\nlet f = |x| -> Result<Option<u8>, String> { x };\nfn b() -> Result<(), E> {}";
    let got: Vec<String> = result_errors(planted).into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, ["String", "String", "E"]);
}
