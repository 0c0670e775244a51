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
