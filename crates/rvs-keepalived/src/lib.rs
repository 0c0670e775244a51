//! keepalived.conf as rvs's configuration.
//!
//! Reads keepalived 2.2's format (comments, blocks, quoted strings, `include` with globs and paths
//! relative to the including file), checks it like `keepalived -t` does (errors name `file:line`
//! and what was expected), applies keepalived's fix-ups (defaults, resets, skipped items, each
//! reported as keepalived reports it), and lowers it to rvs-api service and destination settings
//! plus health-checker, policy and VRRP specifications.
//!
//! As in keepalived, most errors fail the check (`keepalived -t`, [`check`]) but not the start:
//! the item is skipped or defaulted and the rest runs ([`load_lenient`]). Only
//! [`Severity::Fatal`] ones (those that stop keepalived) refuse the file at run time.
//!
//! No I/O other than reading the configuration files (and `/proc/sys/kernel/hostname` for
//! keepalived's default config id when [`LoadOptions::instance`] is not given).
//!
//! Also keepalived's run-time policy as pure functions: [`pool`] decides which real servers of a
//! virtual service belong in the table (health, `inhibit_on_failure`, quorum, sorry server) and
//! [`reload`] turns the difference between the table and that pool into control commands.

pub mod checker;
mod defs;
mod diag;
pub mod dump;
mod glob;
pub mod host;
mod lexer;
mod lower;
pub mod model;
mod parse;
mod parse_checker;
mod parse_common;
mod parse_global;
mod parse_lvs;
mod parse_other;
mod parse_vrrp;
pub mod pool;
mod preprocess;
pub mod reload;
mod seq;
mod tree;
mod values;
pub mod vrrp;

pub use checker::{
    CheckerKind, CheckerSpec, CommonCheck, DnsCheck, FileCheck, HttpCheck, MiscCheck, SmtpCheck,
    UdpCheck, UrlCheck,
};
pub use diag::{Diagnostic, Report, Severity, Span};
pub use lower::{
    default_delay_before_retry, default_retry, lower, Lowered, LoweredService, RealServerChecks,
    RealServerPolicy, ResolvedChecker, ServicePolicy, VrrpSpecs, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DELAY_BEFORE_RETRY, DEFAULT_DELAY_LOOP, DEFAULT_RETRY,
};
pub use model::Config;
pub use parse_lvs::{
    DEFAULT_PERSISTENCE, DEFAULT_SCHEDULER, MAX_PERSISTENCE, MAX_WEIGHT, SCHEDULERS,
};
pub use tree::MAX_INCLUDE_DEPTH;

use std::path::Path;

/// What reading a configuration depends on besides the files: keepalived's command-line options
/// that the configuration language sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// keepalived's `-i` / `--config-id`: the id `@ID` / `@^ID` conditional lines are matched
    /// against, and the value of `${_INSTANCE}`. `None` is keepalived's default, the host name
    /// up to its first `.`.
    pub instance: Option<String>,
    /// keepalived's `-s` / `--namespace`. keepalived 2.2.7 matches `@` lines against the config
    /// id only, so this does not change how the file reads; it is carried for rvsd.
    pub net_namespace: Option<String>,
}

impl LoadOptions {
    fn lang(&self) -> preprocess::LangOptions {
        let id = self.instance.clone().or_else(default_config_id);
        preprocess::LangOptions {
            config_id: id.map(String::into_bytes),
        }
    }
}

/// keepalived's default config id: the node name up to its first `.`.
fn default_config_id() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    Some(name.split('.').next().unwrap_or(name).to_string())
}

/// A configuration that loaded, with the problems it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The typed configuration, keepalived's fix-ups applied.
    pub config: Config,
    /// Warnings (settings rvs ignores).
    pub warnings: Vec<Diagnostic>,
    /// Errors keepalived reports and runs past (item skipped or defaulted); always empty from
    /// [`load`] and [`load_str`], which refuse such files.
    pub errors: Vec<Diagnostic>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file has errors (any for [`load`], a fatal one for [`load_lenient`]); the report lists
    /// them and the warnings.
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
    // An unknown keyword with a block changes how keepalived reads the rest of the file
    // (tree::drop_open_brace): read again that way until no such block is left.
    let mut statements = statements;
    let mut shifted: Vec<(Span, String)> = Vec::new();
    for _ in 0..MAX_UNKNOWN_BLOCKS {
        let mut pass = report.clone();
        let mut parsed = Config {
            files: config.files.clone(),
            ..Config::default()
        };
        let mut ctx = values::Ctx::new(&mut pass);
        parse::parse_config(&mut ctx, &statements, &mut parsed);
        match ctx.unknown_block {
            Some(addr) => {
                let (rebuilt, errors) = tree::drop_open_brace(statements, addr);
                statements = rebuilt;
                shifted.extend(errors);
            }
            None => {
                for (span, message) in shifted {
                    pass.error(Some(&span), message);
                }
                return (parsed, pass);
            }
        }
    }
    let mut ctx = values::Ctx::new(&mut report);
    parse::parse_config(&mut ctx, &statements, &mut config);
    (config, report)
}

/// How many unknown keywords with blocks a file may have before the rest are skipped whole.
const MAX_UNKNOWN_BLOCKS: usize = 64;

/// Parses and validates the file at `path` and everything it includes.
pub fn parse_file(path: &Path) -> (Config, Report) {
    parse_file_with(path, &LoadOptions::default())
}

/// Parses and validates the file at `path` and everything it includes, with `options`.
pub fn parse_file_with(path: &Path, options: &LoadOptions) -> (Config, Report) {
    let mut report = Report::default();
    let mut files = Vec::new();
    let statements = tree::read_file(path, &options.lang(), &mut report, &mut files);
    if files.is_empty() {
        // The top-level file could not be read: nothing to run.
        for d in &mut report.errors {
            d.severity = Severity::Fatal;
        }
    }
    finish(statements, report, files)
}

/// Parses `text` as the file `name` (relative includes resolve from `name`'s directory).
pub fn parse_str(text: &str, name: &Path) -> (Config, Report) {
    parse_bytes_with(text.as_bytes(), name, &LoadOptions::default())
}

/// Parses `text` (any bytes: keepalived does not require UTF-8) as the file `name`, with
/// `options`.
pub fn parse_bytes_with(text: &[u8], name: &Path, options: &LoadOptions) -> (Config, Report) {
    let mut report = Report::default();
    let mut files = Vec::new();
    let statements = tree::read_bytes(
        text.to_vec(),
        name,
        &options.lang(),
        &mut report,
        &mut files,
    );
    finish(statements, report, files)
}

fn into_loaded((config, report): (Config, Report)) -> Result<Loaded, LoadError> {
    if report.is_ok() {
        Ok(Loaded {
            config,
            warnings: report.warnings,
            errors: Vec::new(),
        })
    } else {
        Err(LoadError::Invalid(report))
    }
}

fn into_lenient((config, report): (Config, Report)) -> Result<Loaded, LoadError> {
    if report.is_fatal() {
        Err(LoadError::Invalid(report))
    } else {
        Ok(Loaded {
            config,
            warnings: report.warnings,
            errors: report.errors,
        })
    }
}

/// Loads `path` as keepalived runs it: errors keepalived skips or defaults are returned in
/// [`Loaded::errors`] with the fall-back applied; only a [`Severity::Fatal`] error refuses it.
pub fn load_lenient(path: &Path) -> Result<Loaded, LoadError> {
    into_lenient(parse_file(path))
}

/// [`load_lenient`] with `options` (keepalived's `-i` config id for `@ID` lines and
/// `${_INSTANCE}`).
pub fn load_lenient_with(path: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    into_lenient(parse_file_with(path, options))
}

/// Loads `text` as the file `name`, as [`load_lenient`].
pub fn load_str_lenient(text: &str, name: &Path) -> Result<Loaded, LoadError> {
    into_lenient(parse_str(text, name))
}

/// Loads `path` strictly: the configuration if it has no errors at all, else the report.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    into_loaded(parse_file(path))
}

/// Loads `path` strictly, as [`load`], with `options` (keepalived's `-i`).
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    into_loaded(parse_file_with(path, options))
}

/// Checks `path` as `keepalived -t` with `options` does.
pub fn check_with(path: &Path, options: &LoadOptions) -> Report {
    parse_file_with(path, options).1
}

/// Loads `text` as the file `name`.
pub fn load_str(text: &str, name: &Path) -> Result<Loaded, LoadError> {
    into_loaded(parse_str(text, name))
}

/// Checks `path` as `keepalived -t` does: every warning and error.
pub fn check(path: &Path) -> Report {
    parse_file(path).1
}
