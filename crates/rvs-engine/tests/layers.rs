//! The engine's modules stand in layers, bottom up: addresses and flows, the vocabulary
//! (configuration specs, verdicts, status views, errors), packet work, state, and the engine on
//! top. A module may use modules of its own layer or of lower layers, never of a higher one,
//! and the modules of one layer form no cycle.
//!
//! This test reads `src/**/*.rs`, collects each module's `crate::` references (in `use`
//! declarations and in paths, comments left out; `crate::Name` of a re-exported item counts as a
//! use of the module that defines `Name`), and fails naming `file:line` of every upward
//! reference and every cycle inside a layer. A new module must be given its layer in [`LAYERS`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src/` (by file stem; `lib.rs`, the crate root, only re-exports) and its
/// layer, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    // Addresses and flows: the 16-byte address form, flow hashing, directions.
    ("flow", &["flow"]),
    // The vocabulary every layer speaks: configuration specs, verdicts and drop reasons,
    // status views, errors.
    ("vocabulary", &["spec", "verdict", "view", "error"]),
    // Packet work: parsing, rewriting, ICMP errors, PROXY protocol, tunnels, GSO, fragmenting.
    (
        "packet",
        &[
            "datapath",
            "sctp_event",
            "nat",
            "icmp",
            "proxy",
            "tunnel",
            "gso",
            "sip",
            "fragment",
        ],
    ),
    // State: connection table, TCP/SCTP states, persistence, FULLNAT ports, configuration
    // snapshot, policy, schedulers, estimators, sync counters, fragment reassembly.
    (
        "state",
        &[
            "tcp_state",
            "sctp_state",
            "conn",
            "conn_index",
            "table_hint",
            "conn_table",
            "persist",
            "fullnat",
            "config",
            "wire_index",
            "retired",
            "bounds",
            "policy",
            "sched_core",
            "sched",
            "sched_hash",
            "sched_locality",
            "estimator",
            "sync_state",
            "reasm",
            "synproxy",
            "defense",
        ],
    ),
    // The engine: packet handling, control, sync import/export, walks.
    (
        "engine",
        &[
            "engine",
            "control",
            "sync",
            "handoff",
            "spec_walk",
            "snapshot_cache",
            "prefetch",
            "sched_tests",
        ],
    ),
];

/// Upward references tolerated for now: (from module, to module, why). Keep it empty.
const ALLOWED: &[(&str, &str, &str)] = &[];

struct Edge {
    from: String,
    to: String,
    at: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// A module's name: the file stem, or the directory name for `mod.rs`.
fn module_of(path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    if stem == "mod" {
        path.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    } else {
        stem
    }
}

/// The text with `//` comments blanked (lengths and line breaks kept). String literals
/// holding `//` lose their tail, which only hides text, never invents a reference.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => format!("{}{}", &l[..i], " ".repeat(l.len() - i)),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments named by `crate::...` references, with their byte offsets.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `crate::` must start a path (not be the tail of `foo_crate::`).
        if at > 0 {
            let prev = code.as_bytes()[at - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' {
                continue;
            }
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b, c::{Y, Z}}`: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.push((at, ident_at(&group[j..]).to_string()));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(rest);
            if !id.is_empty() {
                out.push((at, id.to_string()));
            }
        }
    }
    out
}

/// Items a module defines at any depth (`pub struct Name`, `pub(crate) fn name`, ...), to
/// resolve `crate::Name` through the root's re-exports.
fn defined_items(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let t = line.trim_start();
        let Some(t) = t.strip_prefix("pub") else {
            continue;
        };
        let t = t.strip_prefix("(crate)").unwrap_or(t).trim_start();
        for kw in [
            "struct ", "enum ", "fn ", "const ", "static ", "trait ", "type ",
        ] {
            if let Some(r) = t.strip_prefix(kw) {
                let id = ident_at(r.trim_start());
                if !id.is_empty() {
                    out.push(id.to_string());
                }
            }
        }
    }
    out
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

fn edges() -> (Vec<Edge>, Vec<String>) {
    let src = src_dir();
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let mut code = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        code.insert(f.clone(), strip_comments(&text));
    }
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "lib")
        .collect();
    let mut definer: BTreeMap<String, String> = BTreeMap::new();
    for (f, c) in &code {
        let m = module_of(f);
        if m == "lib" {
            continue;
        }
        for item in defined_items(c) {
            definer.entry(item).or_insert_with(|| m.clone());
        }
    }
    let mut out = Vec::new();
    let mut unresolved = Vec::new();
    for (f, c) in &code {
        let from = module_of(f);
        if from == "lib" {
            continue;
        }
        let rel = f
            .strip_prefix(src.parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        for (at, seg) in crate_refs(c) {
            let to = if modules.contains(&seg) {
                seg
            } else if let Some(m) = definer.get(&seg) {
                m.clone()
            } else {
                unresolved.push(format!("{rel}:{}: crate::{seg}", line_of(c, at)));
                continue;
            };
            if to != from {
                out.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("{rel}:{}", line_of(c, at)),
                });
            }
        }
    }
    (out, unresolved)
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, ms))| ms.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

#[test]
fn modules_import_only_their_own_or_lower_layers() {
    let (edges, unresolved) = edges();
    let mut problems = Vec::new();
    for u in unresolved {
        problems.push(format!(
            "{u}: names no module or item of the crate (update this test)"
        ));
    }
    let mut files = Vec::new();
    rs_files(&src_dir(), &mut files);
    for f in &files {
        let m = module_of(f);
        if m != "lib" && layer_of(&m).is_none() {
            problems.push(format!("module `{m}` has no layer: add it to LAYERS"));
        }
    }
    for e in &edges {
        let (Some((lf, nf)), Some((lt, nt))) = (layer_of(&e.from), layer_of(&e.to)) else {
            continue;
        };
        if lt > lf && !ALLOWED.iter().any(|(f, t, _)| *f == e.from && *t == e.to) {
            problems.push(format!(
                "{}: `{}` ({nf}) imports `{}` of the higher layer {nt}",
                e.at, e.from, e.to
            ));
        }
    }
    // Cycles inside a layer: strongly connected components of the same-layer edges.
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &edges {
        if layer_of(&e.from).is_some() && layer_of(&e.from) == layer_of(&e.to) {
            graph.entry(&e.from).or_default().insert(&e.to);
        }
    }
    let reach = |a: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![a];
        while let Some(n) = stack.pop() {
            for &m in graph.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    stack.push(m);
                }
            }
        }
        seen
    };
    let mut reported = BTreeSet::new();
    for &a in graph.keys() {
        let from_a = reach(a);
        let scc: BTreeSet<&str> = from_a
            .iter()
            .copied()
            .filter(|&b| reach(b).contains(a))
            .collect();
        if scc.len() > 1 && reported.insert(scc.clone()) {
            let at: BTreeSet<String> = edges
                .iter()
                .filter(|e| scc.contains(e.from.as_str()) && scc.contains(e.to.as_str()))
                .map(|e| format!("{} ({} -> {})", e.at, e.from, e.to))
                .collect();
            let at: Vec<String> = at.into_iter().collect();
            problems.push(format!(
                "cycle among {:?} in layer {}: {}",
                scc,
                layer_of(a).unwrap().1,
                at.join(", ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn allowed_exceptions_are_still_needed() {
    let (edges, _) = edges();
    for (f, t, why) in ALLOWED {
        assert!(
            edges.iter().any(|e| e.from == *f && e.to == *t),
            "ALLOWED lists {f} -> {t} ({why}) but no such import is left: remove the entry"
        );
    }
}
