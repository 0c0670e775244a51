//! Builds the untyped statement tree of a configuration, following `include`s.
//!
//! keepalived splices included files in place. A relative include path is relative to the
//! directory of the file containing the `include` (keepalived changes into that directory after
//! opening each file). Globs are expanded and their matches read in sorted order; a glob that
//! matches nothing is a warning, a plain file that cannot be read is an error naming the
//! `include` line. Includes nest up to [`MAX_INCLUDE_DEPTH`] files deep; a file including itself
//! (directly or not) is an error.

use crate::diag::{Report, Span};
use crate::glob;
use crate::lexer::{lex, Line, Word};
use std::path::{Path, PathBuf};

/// How many files deep includes may nest (the top-level file is depth 1).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// One statement: a keyword, its arguments and, for block keywords, the statements inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The first word.
    pub keyword: String,
    /// The remaining words before any `{`.
    pub args: Vec<String>,
    /// Where the keyword is.
    pub span: Span,
    /// The statements between `{` and `}`, if the statement has a block.
    pub block: Option<Vec<Statement>>,
}

/// The include keywords keepalived accepts (`includer`/`includem`/`includew`/`includeb` only add
/// stricter checks, treated here like `include`).
fn is_include(keyword: &str) -> bool {
    matches!(
        keyword,
        "include" | "includer" | "includem" | "includew" | "includeb"
    )
}

/// Reads `path` and everything it includes. Problems go to `report`; the statements that could be
/// read are returned.
pub fn read_file(path: &Path, report: &mut Report, files: &mut Vec<PathBuf>) -> Vec<Statement> {
    match std::fs::read_to_string(path) {
        Ok(text) => read_str(&text, path, report, files),
        Err(e) => {
            report.error(None, format!("{}: cannot read: {e}", path.display()));
            Vec::new()
        }
    }
}

/// Parses `text` as if it were the file `name` (includes are relative to `name`'s directory).
pub fn read_str(
    text: &str,
    name: &Path,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) -> Vec<Statement> {
    let mut stack = vec![canonical(name)];
    files.push(name.to_path_buf());
    build(text, name, &mut stack, report, files)
}

/// Removes `.` and `name/..` pairs lexically so diagnostics show plain paths.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

struct Frame {
    statements: Vec<Statement>,
    /// The statement whose block this frame collects (absent for the file level).
    owner: Option<Statement>,
}

fn build(
    text: &str,
    file: &Path,
    stack: &mut Vec<PathBuf>,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) -> Vec<Statement> {
    let lines: Vec<Line> = match lex(text) {
        Ok(lines) => lines,
        Err(e) => {
            report.error(Some(&Span::new(file, e.line)), e.message);
            return Vec::new();
        }
    };
    let mut frames = vec![Frame {
        statements: Vec::new(),
        owner: None,
    }];
    for line in lines {
        let span = Span::new(file, line.number);
        let mut current: Vec<String> = Vec::new();
        for word in line.words {
            match word {
                Word::Text(t) => current.push(t),
                Word::Open => {
                    let owner = if current.is_empty() {
                        // `{` on its own line opens the block of the previous statement.
                        let top = frames.last_mut().map(|f| &mut f.statements);
                        match top.and_then(|s| s.pop()) {
                            Some(prev) if prev.block.is_none() => prev,
                            Some(prev) => {
                                if let Some(f) = frames.last_mut() {
                                    f.statements.push(prev);
                                }
                                report.error(Some(&span), "'{' without a keyword before it");
                                continue;
                            }
                            None => {
                                report.error(Some(&span), "'{' without a keyword before it");
                                continue;
                            }
                        }
                    } else {
                        statement(std::mem::take(&mut current), &span)
                    };
                    frames.push(Frame {
                        statements: Vec::new(),
                        owner: Some(owner),
                    });
                }
                Word::Close => {
                    flush(&mut current, &span, &mut frames, stack, report, files);
                    if frames.len() == 1 {
                        report.error(Some(&span), "unexpected '}'");
                        continue;
                    }
                    if let Some(frame) = frames.pop() {
                        if let Some(mut owner) = frame.owner {
                            owner.block = Some(frame.statements);
                            if let Some(parent) = frames.last_mut() {
                                parent.statements.push(owner);
                            }
                        }
                    }
                }
            }
        }
        flush(&mut current, &span, &mut frames, stack, report, files);
    }
    while frames.len() > 1 {
        if let Some(frame) = frames.pop() {
            if let Some(mut owner) = frame.owner {
                report.error(
                    Some(&owner.span),
                    format!("{}: missing '}}' for this block", owner.keyword),
                );
                owner.block = Some(frame.statements);
                if let Some(parent) = frames.last_mut() {
                    parent.statements.push(owner);
                }
            }
        }
    }
    frames.pop().map(|f| f.statements).unwrap_or_default()
}

fn statement(mut words: Vec<String>, span: &Span) -> Statement {
    let keyword = words.remove(0);
    Statement {
        keyword,
        args: words,
        span: span.clone(),
        block: None,
    }
}

fn flush(
    current: &mut Vec<String>,
    span: &Span,
    frames: &mut [Frame],
    stack: &mut Vec<PathBuf>,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) {
    if current.is_empty() {
        return;
    }
    let st = statement(std::mem::take(current), span);
    let Some(frame) = frames.last_mut() else {
        return;
    };
    if is_include(&st.keyword) {
        let included = include(&st, stack, report, files);
        frame.statements.extend(included);
    } else {
        frame.statements.push(st);
    }
}

fn include(
    st: &Statement,
    stack: &mut Vec<PathBuf>,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) -> Vec<Statement> {
    let Some(name) = st.args.first() else {
        report.error(
            Some(&st.span),
            format!("{}: expected a file name", st.keyword),
        );
        return Vec::new();
    };
    let base = st.span.file.parent().unwrap_or(Path::new(""));
    let pattern = normalize(&base.join(name));
    let is_glob = glob::has_magic(name);
    let paths = glob::expand(&pattern);
    if paths.is_empty() {
        report.warn(
            &st.span,
            format!("{}: '{}' matches no file", st.keyword, pattern.display()),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for path in paths {
        if stack.len() >= MAX_INCLUDE_DEPTH {
            report.error(
                Some(&st.span),
                format!(
                    "{}: '{}': includes nested more than {MAX_INCLUDE_DEPTH} deep",
                    st.keyword,
                    path.display()
                ),
            );
            continue;
        }
        let canon = canonical(&path);
        if stack.contains(&canon) {
            report.error(
                Some(&st.span),
                format!("{}: '{}' includes itself", st.keyword, path.display()),
            );
            continue;
        }
        if path.is_dir() && is_glob {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                report.error(
                    Some(&st.span),
                    format!("{}: cannot read '{}': {e}", st.keyword, path.display()),
                );
                continue;
            }
        };
        files.push(path.clone());
        stack.push(canon);
        out.extend(build(&text, &path, stack, report, files));
        stack.pop();
    }
    out
}
