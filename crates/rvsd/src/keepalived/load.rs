//! Reading keepalived.conf for rvsd: `-t` (check and report, as `keepalived -t`) and loading it
//! into the lowered form the daemon applies.
//!
//! As keepalived, rvsd runs a file with errors: each problem is logged with its `file:line`
//! and the item is skipped or defaulted as keepalived does (see `rvs_keepalived::load_lenient`).
//! Only the errors that stop keepalived (a keyword without the parameter keepalived reads
//! unchecked, a VRRP instance without an interface or router id, a router id used twice on one
//! interface for one family, an unreadable file) refuse the file, at start and at reload.
//! `rvsd -t` fails on every error, including the host checks keepalived -t makes (interfaces,
//! script security, `script_user`, `smtp_server`).

use std::path::{Path, PathBuf};

use rvs_keepalived::host::{check_host, disabled_scripts, drop_disabled_scripts, SystemHost};
use rvs_keepalived::{Diagnostic, Lowered, Report, Severity};

/// Why a keepalived.conf cannot be used, at start or at reload (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A problem of this host that stops keepalived (a VRRP interface it does not have).
    #[error("{} cannot be used, nothing changed:\n{}", .path.display(), tagged(.problems))]
    Host {
        /// The file.
        path: PathBuf,
        /// The fatal host problems, `file:line` first.
        problems: Vec<Diagnostic>,
    },
    /// The file cannot be read, or has an error that stops keepalived.
    #[error("{} cannot be used, nothing changed:\n{}", .path.display(), .error.report())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What rvs-keepalived found (its report lists every problem).
        error: rvs_keepalived::LoadError,
    },
}

/// `problems` one a line, each tagged with its severity.
fn tagged(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(|d| format!("{}: {d}", tag(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How this rvsd reads keepalived.conf (`--config-id`), set once at start like keepalived's
/// own command line, for the first load and every reload.
static OPTIONS: std::sync::OnceLock<rvs_keepalived::LoadOptions> = std::sync::OnceLock::new();

/// Sets the load options (keepalived's `-i` config id) for every later load and check; only
/// the first call counts.
pub fn set_options(options: rvs_keepalived::LoadOptions) {
    let _ = OPTIONS.set(options);
}

fn options() -> rvs_keepalived::LoadOptions {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// Which of keepalived's subsystems run (`-P`/`--vrrp` alone, `-C`/`--check` alone, or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsystems {
    /// VRRP instances and sync groups.
    pub vrrp: bool,
    /// Virtual servers with their checkers.
    pub lvs: bool,
}

static SUBSYSTEMS: std::sync::OnceLock<Subsystems> = std::sync::OnceLock::new();

/// Sets which subsystems every later load keeps; only the first call counts.
pub fn set_subsystems(s: Subsystems) {
    let _ = SUBSYSTEMS.set(s);
}

/// Loads and lowers `path` (services, real servers, checkers, VRRP) into the form the daemon
/// applies, keepalived's fall-backs applied; warnings and errors are logged with their
/// `file:line`. The error (a fatal problem) lists every problem, `file:line` first. With `-P`
/// the virtual servers are left out, with `-C` the VRRP instances.
pub fn load(path: &Path) -> Result<Lowered, LoadError> {
    let (mut lowered, problems) = load_logged(path)?;
    for d in &problems {
        log(d);
    }
    let run = SUBSYSTEMS.get().copied().unwrap_or(Subsystems {
        vrrp: true,
        lvs: true,
    });
    if !run.lvs {
        lowered.services.clear();
        lowered.checkers.clear();
    }
    if !run.vrrp {
        lowered.vrrp = Default::default();
    }
    Ok(lowered)
}

/// What a host problem that stops keepalived (a missing VRRP interface) does to a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFatal {
    /// Refuses the file: the daemon at start and at reload, as keepalived stops.
    Refuse,
    /// Reports it and goes on: `--dump-conf`, which shows a file that may be meant for another
    /// director.
    Report,
}

/// [`load`] for `--dump-conf`: host problems that would stop rvsd here are logged, not refused.
pub fn load_for_dump(path: &Path) -> Result<Lowered, LoadError> {
    let (lowered, problems) = load_logged_with(path, HostFatal::Report)?;
    for d in &problems {
        log(d);
    }
    Ok(lowered)
}

/// `rvsd --dump-conf`: the file as rvsd would apply it, services and real servers as
/// `rvsadm -S -n` prints them, then policies, checkers and VRRP. rvsd's own loading path, so
/// the dump is what rvsd would apply (warnings are logged); a VRRP interface this host lacks
/// is logged, not refused: the file may be for another host.
pub fn dump(path: &Path) -> Result<String, LoadError> {
    let lowered = load_for_dump(path)?;
    let format = rvsadm::Format {
        numeric: true,
        ..rvsadm::Format::default()
    };
    let save = rvsadm::render::save(
        &rvs_keepalived::dump::service_views(&lowered),
        &format,
        &rvsadm::StaticResolver::EMPTY,
    );
    Ok(rvs_keepalived::dump::render(&lowered, &save))
}

/// [`load`] without logging: the lowered configuration and every problem keepalived runs past,
/// errors first, then warnings.
pub fn load_logged(path: &Path) -> Result<(Lowered, Vec<Diagnostic>), LoadError> {
    load_logged_with(path, HostFatal::Refuse)
}

/// [`load_logged`], with `host_fatal` deciding what a missing VRRP interface does.
pub fn load_logged_with(
    path: &Path,
    host_fatal: HostFatal,
) -> Result<(Lowered, Vec<Diagnostic>), LoadError> {
    match rvs_keepalived::load_lenient_with(path, &options()) {
        Ok(loaded) => {
            let host = check_host(&loaded.config, &SystemHost);
            let fatal: Vec<Diagnostic> = host
                .iter()
                .filter(|d| d.severity == Severity::Fatal)
                .cloned()
                .collect();
            if !fatal.is_empty() && host_fatal == HostFatal::Refuse {
                return Err(LoadError::Host {
                    path: path.to_owned(),
                    problems: fatal,
                });
            }
            // Scripts keepalived drops on this host (not found, no default user) are gone
            // before lowering, as they are from keepalived's running configuration.
            let mut config = loaded.config;
            let disabled = disabled_scripts(&config, &SystemHost);
            drop_disabled_scripts(&mut config, &disabled);
            let lowered = rvs_keepalived::lower(&config);
            let mut problems = loaded.errors;
            problems.extend(host);
            problems.extend(loaded.warnings);
            Ok((lowered, problems))
        }
        Err(error) => Err(LoadError::Invalid {
            path: path.to_owned(),
            error,
        }),
    }
}

fn tag(d: &Diagnostic) -> &'static str {
    match d.severity {
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Fatal => "fatal",
    }
}

fn log(d: &Diagnostic) {
    match d.severity {
        Severity::Warning => tracing::warn!("{d}"),
        // keepalived logs these and carries on with the item skipped or defaulted.
        Severity::Error | Severity::Fatal => {
            tracing::error!("{d} (`rvsd -t` fails on this; running with keepalived's fall-back)")
        }
    }
}

/// The lines `rvsd -t` prints for `report` and whether the file is valid.
pub fn check_lines(path: &Path, report: &Report) -> (Vec<String>, bool) {
    let mut lines: Vec<String> = report
        .warnings
        .iter()
        .chain(&report.errors)
        .map(|d| format!("{}: {d}", tag(d)))
        .collect();
    if report.is_ok() {
        lines.push(format!(
            "Configuration file {} is valid ({} warning(s))",
            path.display(),
            report.warnings.len()
        ));
    } else {
        let fatal = report
            .errors
            .iter()
            .filter(|d| d.severity == Severity::Fatal)
            .count();
        lines.push(format!(
            "Configuration file {} has {} error(s) ({fatal} that stop rvsd and keepalived from starting; the others are skipped or defaulted at run time)",
            path.display(),
            report.errors.len()
        ));
    }
    (lines, report.is_ok())
}

/// `rvsd -t -f FILE`: prints every warning and error to stderr; true when the file has no
/// errors (as `keepalived -t`, which fails on every reported problem, on interfaces this
/// host does not have, and on scripts run without `enable_script_security`).
pub fn check(path: &Path) -> bool {
    let (config, mut report) = rvs_keepalived::parse_file_with(path, &options());
    report.errors.extend(check_host(&config, &SystemHost));
    let (lines, ok) = check_lines(path, &report);
    for l in lines {
        eprintln!("{l}");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("keepalived.conf");
        std::fs::write(&p, text).expect("write");
        p
    }

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("rvsd-config-load-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    /// A file with errors keepalived runs past: rvsd loads it with keepalived's fall-backs and
    /// reports each problem at its line, while the check (`rvsd -t`) fails.
    #[test]
    fn lenient_errors_load_with_fallback_and_fail_the_check() {
        let dir = tmpdir("lenient");
        let path = write(
            &dir,
            "virtual_server 192.168.1.253 80 {\n    lvs_sched rr\n    lb_kind dr\n    protocol TCP\n    persistence_timeout 0\n    real_server 10.10.10.2 80 {\n        weight 1\n    }\n}\n",
        );
        let (lowered, problems) = load_logged(&path).expect("runs as keepalived does");
        let svc = &lowered.services[0];
        assert_eq!(svc.config.persistence, None);
        assert_eq!(svc.dests[0].method, rvs_api::ForwardMethod::Masq);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let file = path.display().to_string();
        assert!(
            text.iter().any(|l| l.starts_with(&format!("{file}:3: "))),
            "{text:?}"
        );
        assert!(
            text.iter().any(|l| l.starts_with(&format!("{file}:5: "))),
            "{text:?}"
        );
        let (lines, ok) = check_lines(&path, &rvs_keepalived::check(&path));
        assert!(!ok, "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with(&format!("error: {file}:3: "))));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A VRRP interface this host does not have stops keepalived at run time, and refuses the
    /// file in rvsd too (unless `dynamic_interfaces`).
    #[test]
    fn missing_vrrp_interface_refuses_the_file() {
        let dir = tmpdir("nosuchif");
        let text = "vrrp_instance VI_1 {\n    interface rvs-nosuch0\n    virtual_router_id 5\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n";
        let path = write(&dir, text);
        let e = load_logged(&path)
            .expect_err("keepalived stops on it")
            .to_string();
        assert!(e.contains("interface rvs-nosuch0"), "{e}");
        let path = write(
            &dir,
            &format!("global_defs {{\n    dynamic_interfaces\n}}\n{text}"),
        );
        assert!(load_logged(&path).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// An error that stops keepalived refuses the file.
    #[test]
    fn fatal_errors_refuse_the_file() {
        let dir = tmpdir("fatal");
        let path = write(
            &dir,
            "vrrp_instance VI_1 {\n    virtual_router_id 5\n    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n",
        );
        let e = load_logged(&path)
            .expect_err("no interface stops keepalived")
            .to_string();
        assert!(e.contains("fatal: "), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
