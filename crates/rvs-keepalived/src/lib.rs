//! keepalived.conf as rvs's configuration.
//!
//! Reads keepalived 2.2's format (comments, blocks, quoted strings, `include` with globs and paths
//! relative to the including file), checks it like `keepalived -t` does (errors name `file:line`
//! and what was expected; unknown keywords are warnings), and lowers it to rvs-api service and
//! destination settings plus health-checker, policy and VRRP specifications.
//!
//! No I/O other than reading the configuration files.

pub mod checker;
mod diag;
pub mod dump;
mod glob;
mod lexer;
mod lower;
pub mod model;
mod parse;
mod parse_checker;
mod parse_common;
mod parse_global;
mod parse_lvs;
mod parse_vrrp;
mod tree;
mod values;
pub mod vrrp;

pub use checker::{
    CheckerKind, CheckerSpec, CommonCheck, DnsCheck, FileCheck, HttpCheck, MiscCheck, SmtpCheck,
    UdpCheck, UrlCheck,
};
pub use diag::{Diagnostic, Report, Severity, Span};
pub use lower::{
    lower, Lowered, LoweredService, RealServerChecks, RealServerPolicy, ResolvedChecker,
    ServicePolicy, VrrpSpecs, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELAY_BEFORE_RETRY,
    DEFAULT_DELAY_LOOP, DEFAULT_RETRY,
};
pub use model::Config;
pub use parse_lvs::{DEFAULT_PERSISTENCE, DEFAULT_SCHEDULER, MAX_WEIGHT};
pub use tree::MAX_INCLUDE_DEPTH;

use std::path::Path;

/// A configuration that loaded without errors, with the warnings it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The typed configuration.
    pub config: Config,
    /// Warnings (unknown keywords, ignored settings).
    pub warnings: Vec<Diagnostic>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file has errors; the report lists them (and the warnings).
    #[error("invalid configuration:\n{0}")]
    Invalid(Report),
}

impl LoadError {
    /// The full report.
    pub fn report(&self) -> &Report {
        match self {
            LoadError::Invalid(r) => r,
        }
    }
}

fn finish(
    statements: Vec<tree::Statement>,
    mut report: Report,
    files: Vec<std::path::PathBuf>,
) -> (Config, Report) {
    let mut config = Config {
        files,
        ..Config::default()
    };
    let mut ctx = values::Ctx {
        report: &mut report,
    };
    parse::parse_config(&mut ctx, &statements, &mut config);
    (config, report)
}

/// Parses and validates the file at `path` and everything it includes.
pub fn parse_file(path: &Path) -> (Config, Report) {
    let mut report = Report::default();
    let mut files = Vec::new();
    let statements = tree::read_file(path, &mut report, &mut files);
    finish(statements, report, files)
}

/// Parses `text` as the file `name` (relative includes resolve from `name`'s directory).
pub fn parse_str(text: &str, name: &Path) -> (Config, Report) {
    let mut report = Report::default();
    let mut files = Vec::new();
    let statements = tree::read_str(text, name, &mut report, &mut files);
    finish(statements, report, files)
}

fn into_loaded((config, report): (Config, Report)) -> Result<Loaded, LoadError> {
    if report.is_ok() {
        Ok(Loaded {
            config,
            warnings: report.warnings,
        })
    } else {
        Err(LoadError::Invalid(report))
    }
}

/// Loads `path`: the configuration if it has no errors, else the report.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    into_loaded(parse_file(path))
}

/// Loads `text` as the file `name`.
pub fn load_str(text: &str, name: &Path) -> Result<Loaded, LoadError> {
    into_loaded(parse_str(text, name))
}

/// Checks `path` as `keepalived -t` does: every warning and error.
pub fn check(path: &Path) -> Report {
    parse_file(path).1
}
