//! Source positions and diagnostics (`file:line: message`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where an item came from: the file (as it was named or resolved) and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// The file the item was read from.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u32,
}

impl Span {
    /// A span for `file` at `line`.
    pub fn new(file: impl Into<PathBuf>, line: u32) -> Self {
        Span {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// keepalived would carry on (unknown keyword, ignored setting).
    Warning,
    /// The file is not valid (`keepalived -t` fails), but keepalived skips or defaults the
    /// item at run time and starts; so does rvsd, logging it.
    Error,
    /// keepalived refuses to start (or stops its VRRP or checker process, which ends it);
    /// rvsd refuses the file at start and at reload.
    Fatal,
}

/// One problem found in a configuration, with its position when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Warning or error.
    pub severity: Severity,
    /// Where, if the problem has a position (a missing top-level file has none).
    pub span: Option<Span>,
    /// What is wrong, e.g. `virtual_router_id: expected a number 1-255, got 'abc'`.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{span}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The outcome of checking a file, as `keepalived -t` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Problems keepalived would only log.
    pub warnings: Vec<Diagnostic>,
    /// Problems that make the file invalid: [`Severity::Error`] ones (skipped or defaulted at
    /// run time) and [`Severity::Fatal`] ones.
    pub errors: Vec<Diagnostic>,
}

impl Report {
    /// `true` when there are no errors (warnings are allowed): `keepalived -t` would exit 0.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `true` when an error stops keepalived from starting.
    pub fn is_fatal(&self) -> bool {
        self.errors.iter().any(|d| d.severity == Severity::Fatal)
    }

    /// Records an error keepalived does not start with.
    pub fn fatal(&mut self, span: Option<&Span>, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            severity: Severity::Fatal,
            span: span.cloned(),
            message: message.into(),
        });
    }

    /// Records a warning.
    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            severity: Severity::Warning,
            span: Some(span.clone()),
            message: message.into(),
        });
    }

    /// Records an error.
    pub fn error(&mut self, span: Option<&Span>, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            severity: Severity::Error,
            span: span.cloned(),
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    /// One line per diagnostic, errors first, each prefixed with `fatal: `, `error: ` or
    /// `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.errors {
            let tag = match d.severity {
                Severity::Fatal => "fatal",
                _ => "error",
            };
            writeln!(f, "{tag}: {d}")?;
        }
        for d in &self.warnings {
            writeln!(f, "warning: {d}")?;
        }
        Ok(())
    }
}
