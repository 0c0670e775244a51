//! Reading keepalived.conf for rvsd: `-t` (check and report, as `keepalived -t`) and loading it
//! into the lowered form the daemon applies.

use std::path::Path;

use rvs_keepalived::{Lowered, Severity};

/// Loads and lowers `path` (services, real servers, checkers, VRRP) into the form the daemon
/// applies; warnings are logged. The error lists every problem, `file:line` first.
pub fn load(path: &Path) -> Result<Lowered, String> {
    match rvs_keepalived::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            Ok(rvs_keepalived::lower(&loaded.config))
        }
        Err(e) => Err(format!(
            "{} is invalid, nothing changed:\n{}",
            path.display(),
            e.report()
        )),
    }
}

/// `rvsd -t -f FILE`: prints every warning and error to stderr; true when the file has no
/// errors.
pub fn check(path: &Path) -> bool {
    let report = rvs_keepalived::check(path);
    for d in report.warnings.iter().chain(&report.errors) {
        let tag = match d.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        eprintln!("{tag}: {d}");
    }
    if report.is_ok() {
        eprintln!(
            "Configuration file {} is valid ({} warning(s))",
            path.display(),
            report.warnings.len()
        );
        true
    } else {
        eprintln!(
            "Configuration file {} has {} error(s)",
            path.display(),
            report.errors.len()
        );
        false
    }
}
