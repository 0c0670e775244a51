//! Builds the untyped statement tree of a configuration from the lines the preprocessor
//! (`preprocess.rs`) produces.
//!
//! The preprocessor follows `include`s (keepalived splices included files in place; a relative
//! path is relative to the directory of the including file; globs and `{a,b}` alternatives expand
//! in sorted order; a glob that matches nothing is a warning, a named file that cannot be read is
//! an error naming the `include` line), expands definitions, conditionals and sequences, and cuts
//! lines at braces. Includes nest up to [`MAX_INCLUDE_DEPTH`] files deep; a file including itself
//! (directly or not) is an error.

use crate::diag::{Report, Span};
use crate::lexer::{words_of, Word};
use crate::preprocess::{child_reader, dedup, LangOptions, Reader};
use std::path::{Path, PathBuf};

pub use crate::preprocess::MAX_INCLUDE_DEPTH;

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

/// The include keywords keepalived accepts.
fn is_include(keyword: &str) -> bool {
    matches!(
        keyword,
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
}

/// Reads `path` and everything it includes. Problems go to `report`; the statements that could be
/// read are returned.
pub fn read_file(
    path: &Path,
    options: &LangOptions,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) -> Vec<Statement> {
    match crate::preprocess::read_top(path) {
        Ok(text) => read_bytes(text, path, options, report, files),
        Err(e) => {
            report.error(None, format!("{}: cannot read: {e}", path.display()));
            Vec::new()
        }
    }
}

/// Parses `text` as if it were the file `name` (includes are relative to `name`'s directory).
pub fn read_bytes(
    text: Vec<u8>,
    name: &Path,
    options: &LangOptions,
    report: &mut Report,
    files: &mut Vec<PathBuf>,
) -> Vec<Statement> {
    let statements = {
        let mut reader = child_reader(name, text, options, report, files);
        build(&mut reader)
    };
    dedup(report);
    statements
}

struct Frame {
    statements: Vec<Statement>,
    /// The statement whose block this frame collects (absent for the file level).
    owner: Option<Statement>,
}

fn build(reader: &mut Reader<'_>) -> Vec<Statement> {
    let mut frames = vec![Frame {
        statements: Vec::new(),
        owner: None,
    }];
    let mut errors: Vec<(Span, String)> = Vec::new();
    while let Some(line) = reader.next_line() {
        let span = line.span;
        let words = match words_of(&line.text) {
            Ok(w) => w,
            Err(()) => {
                reader.report_unmatched_quote(&span);
                continue;
            }
        };
        let mut current: Vec<String> = Vec::new();
        for word in words {
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
                                errors
                                    .push((span.clone(), "'{' without a keyword before it".into()));
                                continue;
                            }
                            None => {
                                errors
                                    .push((span.clone(), "'{' without a keyword before it".into()));
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
                    flush(&mut current, &span, &mut frames, &mut errors);
                    if frames.len() == 1 {
                        errors.push((span.clone(), "unexpected '}'".into()));
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
        flush(&mut current, &span, &mut frames, &mut errors);
        for (span, message) in errors.drain(..) {
            reader.report().error(Some(&span), message);
        }
    }
    let report = reader.report();
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
    errors: &mut Vec<(Span, String)>,
) {
    if current.is_empty() {
        return;
    }
    let st = statement(std::mem::take(current), span);
    let Some(frame) = frames.last_mut() else {
        return;
    };
    if is_include(&st.keyword) && st.args.is_empty() {
        errors.push((
            span.clone(),
            format!("{}: expected a file name", st.keyword),
        ));
        return;
    }
    frame.statements.push(st);
}

/// One element of a statement tree written out again as keepalived reads it: a statement's
/// line, a `{`, or a `}` (with the line of the statement it closed).
enum Token {
    Line(Statement),
    Open,
    Close(Span),
}

/// The path (child indexes from the top) to the statement at address `addr`.
fn path_to(statements: &[Statement], addr: usize) -> Option<Vec<usize>> {
    for (i, st) in statements.iter().enumerate() {
        if std::ptr::from_ref(st) as usize == addr {
            return Some(vec![i]);
        }
        if let Some(mut path) = st.block.as_deref().and_then(|b| path_to(b, addr)) {
            path.insert(0, i);
            return Some(path);
        }
    }
    None
}

/// Writes `statements` out as tokens, leaving out the `{` of the statement at `skip`.
fn flatten(statements: Vec<Statement>, skip: Option<&[usize]>, out: &mut Vec<Token>) {
    for (i, mut st) in statements.into_iter().enumerate() {
        let here = skip.filter(|p| p.first() == Some(&i)).map(|p| &p[1..]);
        let block = st.block.take();
        let span = st.span.clone();
        out.push(Token::Line(st));
        if let Some(children) = block {
            if here != Some(&[][..]) {
                out.push(Token::Open);
            }
            flatten(children, here.filter(|p| !p.is_empty()), out);
            out.push(Token::Close(span));
        }
    }
}

/// Builds statements from tokens as [`build`] does from lines; a `}` with no block open is an
/// error (keepalived: "Unknown keyword '}'" at the top level).
fn rebuild(tokens: Vec<Token>, errors: &mut Vec<(Span, String)>) -> Vec<Statement> {
    let mut frames: Vec<(Option<Statement>, Vec<Statement>)> = vec![(None, Vec::new())];
    for token in tokens {
        match token {
            Token::Line(st) => {
                if let Some(frame) = frames.last_mut() {
                    frame.1.push(st);
                }
            }
            Token::Open => {
                let owner = frames.last_mut().and_then(|f| f.1.pop());
                frames.push((owner, Vec::new()));
            }
            Token::Close(span) => {
                if frames.len() == 1 {
                    errors.push((
                        span,
                        "unexpected '}' (keepalived: Unknown keyword '}')".into(),
                    ));
                    continue;
                }
                if let Some((owner, children)) = frames.pop() {
                    if let (Some(mut owner), Some(parent)) = (owner, frames.last_mut()) {
                        owner.block = Some(children);
                        parent.1.push(owner);
                    }
                }
            }
        }
    }
    while frames.len() > 1 {
        if let Some((owner, children)) = frames.pop() {
            if let (Some(mut owner), Some(parent)) = (owner, frames.last_mut()) {
                owner.block = Some(children);
                parent.1.push(owner);
            }
        }
    }
    frames.pop().map(|f| f.1).unwrap_or_default()
}

/// keepalived's reading of an unknown keyword followed by a block (lib/parser.c): the keyword
/// is reported, its `{` ignored ("Unexpected '{' - ignoring"), the lines inside are read at the
/// keyword's own level, and its `}` closes the block the keyword stands in, so every later
/// `}` closes one level further out. `addr` is the statement (as [`crate::values::Ctx`]
/// recorded it); the tree is rebuilt that way, with the errors the shift causes.
pub fn drop_open_brace(
    statements: Vec<Statement>,
    addr: usize,
) -> (Vec<Statement>, Vec<(Span, String)>) {
    let Some(path) = path_to(&statements, addr) else {
        return (statements, Vec::new());
    };
    let mut errors = Vec::new();
    let mut at: &[Statement] = &statements;
    for &i in &path[..path.len() - 1] {
        at = at[i].block.as_deref().unwrap_or_default();
    }
    if let Some(st) = at.get(path[path.len() - 1]) {
        errors.push((st.span.clone(), "Unexpected '{' - ignoring".to_string()));
    }
    let mut tokens = Vec::new();
    flatten(statements, Some(&path), &mut tokens);
    let rebuilt = rebuild(tokens, &mut errors);
    (rebuilt, errors)
}
