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

use std::collections::HashSet;
use std::path::Path;

use rvs_keepalived::{Config, Diagnostic, Lowered, Report, Severity, Span};

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

/// Loads and lowers `path` (services, real servers, checkers, VRRP) into the form the daemon
/// applies, keepalived's fall-backs applied; warnings and errors are logged with their
/// `file:line`. The error (a fatal problem) lists every problem, `file:line` first.
pub fn load(path: &Path) -> Result<Lowered, String> {
    let (lowered, problems) = load_logged(path)?;
    for d in &problems {
        log(d);
    }
    Ok(lowered)
}

/// [`load`] without logging: the lowered configuration and every problem keepalived runs past,
/// errors first, then warnings.
pub fn load_logged(path: &Path) -> Result<(Lowered, Vec<Diagnostic>), String> {
    match rvs_keepalived::load_lenient_with(path, &options()) {
        Ok(loaded) => {
            let lowered = rvs_keepalived::lower(&loaded.config);
            let mut problems = loaded.errors;
            problems.extend(script_security(&loaded.config, script_exists));
            problems.extend(loaded.warnings);
            Ok((lowered, problems))
        }
        Err(e) => Err(format!(
            "{} cannot be used, nothing changed:\n{}",
            path.display(),
            e.report()
        )),
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

/// The interfaces of this network namespace (`/proc/self/net/dev` is per namespace).
fn host_interfaces() -> Option<HashSet<String>> {
    let text = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(name, _)| name.trim().to_string())
            .collect(),
    )
}

/// keepalived's check that the interfaces a VRRP instance names exist (`if_get_by_ifname`
/// with `IF_CREATE_IF_DYNAMIC`): the instance's `interface`, its VIPs' `dev`, and tracked
/// interfaces, unless `global_defs` has `dynamic_interfaces`. keepalived reports each and
/// stops ("Non-existent interface specified in configuration"); `rvsd -t` fails on them (the
/// daemon, whose interfaces may appear later or live in another namespace, does not check).
/// `existing` is the host's interfaces.
pub fn missing_interfaces(config: &Config, existing: &HashSet<String>) -> Vec<Diagnostic> {
    if config
        .global
        .other
        .iter()
        .any(|s| s.keyword == "dynamic_interfaces")
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut missing = |name: &str, what: String, span: &Span| {
        if !existing.contains(name) {
            out.push(Diagnostic {
                severity: Severity::Error,
                span: Some(span.clone()),
                message: format!(
                    "interface {name} for {what} doesn't exist (keepalived stops: non-existent interface specified in configuration; `dynamic_interfaces` allows it)"
                ),
            });
        }
    };
    for inst in &config.vrrp_instances {
        let what = format!("vrrp_instance {}", inst.name);
        missing(&inst.interface, what.clone(), &inst.span);
        for vip in inst
            .virtual_ipaddress
            .iter()
            .chain(&inst.virtual_ipaddress_excluded)
        {
            if let Some(dev) = &vip.dev {
                missing(dev, format!("ip address {}", vip.addr), &vip.span);
            }
        }
        for t in &inst.track_interface {
            missing(&t.name, format!("track_interface of {what}"), &inst.span);
        }
    }
    for g in &config.vrrp_sync_groups {
        for t in &g.track_interface {
            missing(
                &t.name,
                format!("track_interface of vrrp_sync_group {}", g.name),
                &g.span,
            );
        }
    }
    out
}

/// Whether `program` is a file keepalived would run: a path that exists, or a name found in
/// `PATH` (keepalived's `check_script_secure` flags only scripts it finds).
fn script_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .any(|dir| !dir.is_empty() && Path::new(dir).join(program).is_file())
}

/// keepalived's "SECURITY VIOLATION - ... scripts are being executed but script_security not
/// enabled" (check_data.c for the checker's scripts, vrrp.c for VRRP's): without
/// `enable_script_security`, one error per kind when any such script exists. keepalived still
/// runs them, and so does rvsd.
pub fn script_security(config: &Config, exists: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
    if config.global.enable_script_security {
        return Vec::new();
    }
    let first = |argv: &[String]| argv.first().is_some_and(|p| exists(p));
    let mut check_span: Option<&Span> = None;
    for vs in &config.virtual_servers {
        for s in vs.quorum_up.iter().chain(&vs.quorum_down) {
            if check_span.is_none() && first(&s.argv) {
                check_span = Some(&s.span);
            }
        }
        for rs in &vs.real_servers {
            for s in rs.notify_up.iter().chain(&rs.notify_down) {
                if check_span.is_none() && first(&s.argv) {
                    check_span = Some(&s.span);
                }
            }
            for ck in &rs.checkers {
                if let rvs_keepalived::CheckerKind::Misc(m) = &ck.kind {
                    if check_span.is_none() && first(&m.command) {
                        check_span = Some(&ck.span);
                    }
                }
            }
        }
    }
    let mut vrrp_span: Option<&Span> = None;
    for s in &config.vrrp_scripts {
        if vrrp_span.is_none() && first(&s.script) {
            vrrp_span = Some(&s.span);
        }
    }
    let notifies = config
        .vrrp_instances
        .iter()
        .map(|i| &i.notify)
        .chain(config.vrrp_sync_groups.iter().map(|g| &g.notify));
    for n in notifies {
        for s in [&n.master, &n.backup, &n.fault, &n.stop, &n.any]
            .into_iter()
            .flatten()
        {
            if vrrp_span.is_none() && first(&s.argv) {
                vrrp_span = Some(&s.span);
            }
        }
    }
    let mut out = Vec::new();
    for (span, what) in [(check_span, "check scripts"), (vrrp_span, "scripts")] {
        if let Some(span) = span {
            out.push(Diagnostic {
                severity: Severity::Error,
                span: Some(span.clone()),
                message: format!(
                    "SECURITY VIOLATION - {what} are being executed but script_security not enabled (global_defs' enable_script_security)"
                ),
            });
        }
    }
    out
}

/// keepalived's "Error setting global script uid/gid": `global_defs`' `script_user USER [GROUP]`
/// naming a user or group this host does not have (scripts then run with keepalived's default
/// user, as rvsd's do).
pub fn script_user(config: &Config) -> Vec<Diagnostic> {
    let Some((user, group)) = &config.global.script_user else {
        return Vec::new();
    };
    let user_ok = matches!(nix::unistd::User::from_name(user), Ok(Some(_)));
    let group_ok = group
        .as_deref()
        .is_none_or(|g| matches!(nix::unistd::Group::from_name(g), Ok(Some(_))));
    if user_ok && group_ok {
        return Vec::new();
    }
    vec![global_error(
        config,
        format!(
            "global_defs script_user {user}{}: error setting global script uid/gid (no such user or group)",
            group.as_deref().map(|g| format!(" {g}")).unwrap_or_default()
        ),
    )]
}

/// An error about a `global_defs` setting, named after the top-level file (the setting's line
/// is not kept).
fn global_error(config: &Config, message: String) -> Diagnostic {
    let file = config
        .files
        .first()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default();
    Diagnostic {
        severity: Severity::Error,
        span: None,
        message: format!("{file}{message}"),
    }
}

/// keepalived's "Invalid smtp server": `global_defs`' `smtp_server` must be an address or a
/// name that resolves (keepalived resolves it once, at start).
pub fn smtp_server(config: &Config) -> Vec<Diagnostic> {
    use std::net::ToSocketAddrs;
    let Some(server) = &config.global.smtp_server else {
        return Vec::new();
    };
    if server.host.parse::<std::net::IpAddr>().is_ok() {
        return Vec::new();
    }
    let resolves = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some());
    if resolves {
        return Vec::new();
    }
    vec![global_error(
        config,
        format!(
            "global_defs smtp_server {} {}: invalid smtp server (not an address, and the name does not resolve)",
            server.host, server.port
        ),
    )]
}

/// `rvsd -t -f FILE`: prints every warning and error to stderr; true when the file has no
/// errors (as `keepalived -t`, which fails on every reported problem, on interfaces this
/// host does not have, and on scripts run without `enable_script_security`).
pub fn check(path: &Path) -> bool {
    let (config, mut report) = rvs_keepalived::parse_file_with(path, &options());
    if let Some(existing) = host_interfaces() {
        report.errors.extend(missing_interfaces(&config, &existing));
    }
    report
        .errors
        .extend(script_security(&config, script_exists));
    report.errors.extend(script_user(&config));
    report.errors.extend(smtp_server(&config));
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

    /// `rvsd -t` fails, as `keepalived -t`, on a VRRP interface this host does not have, unless
    /// `dynamic_interfaces` is set.
    #[test]
    fn missing_interfaces_fail_the_check() {
        let text = "vrrp_instance VI_1 {\n    interface rvs-nosuch0\n    virtual_router_id 5\n    virtual_ipaddress {\n        10.0.0.1/24 dev lo\n        10.0.0.2/24 dev rvs-nosuch1\n    }\n}\n";
        let (config, _) = rvs_keepalived::parse_str(text, Path::new("k.conf"));
        let existing: HashSet<String> = ["lo".to_string()].into();
        let got: Vec<String> = missing_interfaces(&config, &existing)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with(
                "k.conf:1: interface rvs-nosuch0 for vrrp_instance VI_1 doesn't exist"
            ),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("k.conf:6: interface rvs-nosuch1 for ip address 10.0.0.2"),
            "{got:?}"
        );
        let dynamic = format!("global_defs {{\n    dynamic_interfaces\n}}\n{text}");
        let (config, _) = rvs_keepalived::parse_str(&dynamic, Path::new("k.conf"));
        assert!(missing_interfaces(&config, &existing).is_empty());
        assert!(host_interfaces().is_some_and(|i| i.contains("lo")));
    }

    /// Scripts that exist, run without enable_script_security: one error for the checker's,
    /// one for VRRP's, as keepalived.
    #[test]
    fn scripts_without_script_security_are_reported() {
        let text = "vrrp_script chk {\n    script \"/bin/true\"\n}\nvirtual_server 10.0.0.1 80 {\n    lvs_sched rr\n    lb_kind NAT\n    protocol TCP\n    quorum_up \"/no/such/script\"\n    real_server 10.0.0.2 80 {\n        notify_up \"/bin/true up\"\n    }\n}\n";
        let (config, _) = rvs_keepalived::parse_str(text, Path::new("k.conf"));
        let exists = |p: &str| p == "/bin/true";
        let got: Vec<String> = script_security(&config, exists)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "k.conf:10: SECURITY VIOLATION - check scripts are being executed but script_security not enabled (global_defs' enable_script_security)",
                "k.conf:1: SECURITY VIOLATION - scripts are being executed but script_security not enabled (global_defs' enable_script_security)",
            ]
        );
        let secure = format!("global_defs {{\n    enable_script_security\n}}\n{text}");
        let (config, _) = rvs_keepalived::parse_str(
            "global_defs {\n    script_user rvs-no-such-user\n}\n",
            Path::new("k.conf"),
        );
        let got: Vec<String> = script_user(&config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            ["k.conf: global_defs script_user rvs-no-such-user: error setting global script uid/gid (no such user or group)"]
        );
        let (config, _) = rvs_keepalived::parse_str(
            "global_defs {\n    script_user root\n}\n",
            Path::new("k.conf"),
        );
        assert!(script_user(&config).is_empty());
        let (config, _) = rvs_keepalived::parse_str(
            "global_defs {\n    smtp_server bad..name.invalid\n}\n",
            Path::new("k.conf"),
        );
        assert_eq!(smtp_server(&config).len(), 1);
        let (config, _) = rvs_keepalived::parse_str(
            "global_defs {\n    smtp_server 127.0.0.1 25\n}\n",
            Path::new("k.conf"),
        );
        assert!(smtp_server(&config).is_empty());
        let (config, _) = rvs_keepalived::parse_str(&secure, Path::new("k.conf"));
        assert!(script_security(&config, exists).is_empty());
    }

    /// An error that stops keepalived refuses the file.
    #[test]
    fn fatal_errors_refuse_the_file() {
        let dir = tmpdir("fatal");
        let path = write(
            &dir,
            "vrrp_instance VI_1 {\n    virtual_router_id 5\n    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n",
        );
        let e = load_logged(&path).expect_err("no interface stops keepalived");
        assert!(e.contains("fatal: "), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
