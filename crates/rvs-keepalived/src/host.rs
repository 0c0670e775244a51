//! The checks `keepalived -t` makes against the host rather than the file: interfaces a VRRP
//! instance names, scripts run without `enable_script_security`, `script_user`, and an
//! `smtp_server` name that must resolve. The policy is here, pure; what the host has comes
//! through [`Host`]: [`SystemHost`] reads the real system (the one part of this crate that looks
//! outside the file), tests give fixed facts.

use std::collections::HashSet;
use std::path::Path;

use crate::{Config, Diagnostic, Severity, Span};

/// What this host has, as far as keepalived's checks need to know.
pub trait Host {
    /// The interfaces of this network namespace, or `None` when they cannot be listed (the
    /// interface check is then skipped).
    fn interfaces(&self) -> Option<HashSet<String>>;
    /// Whether `program` is a file keepalived would run: a path that exists, or a name found in
    /// `PATH` (keepalived flags only scripts it finds).
    fn program_exists(&self, program: &str) -> bool;
    /// Whether the user `name` exists.
    fn user_exists(&self, name: &str) -> bool;
    /// Whether the group `name` exists.
    fn group_exists(&self, name: &str) -> bool;
    /// Whether the host name `name` resolves to an address (`port` for the lookup).
    fn resolves(&self, name: &str, port: u16) -> bool;
}

/// Every host problem of `config`, as `keepalived -t` reports them: missing interfaces
/// ([`Severity::Fatal`]: keepalived stops on them at run time too), then scripts keepalived
/// disables, script security, `script_user` and `smtp_server` errors (keepalived runs past
/// these).
pub fn check_host(config: &Config, host: &dyn Host) -> Vec<Diagnostic> {
    let mut out = host
        .interfaces()
        .map(|existing| missing_interfaces(config, &existing))
        .unwrap_or_default();
    out.extend(disabled_scripts(config, host).diagnostics);
    out.extend(script_security(config, host));
    out.extend(script_user(config, host));
    out.extend(smtp_server(config, host));
    out
}

/// The scripts keepalived drops on this host, and why.
#[derive(Debug, Default)]
pub struct DisabledScripts {
    /// `vrrp_script` names no instance or sync group may track.
    pub vrrp_scripts: Vec<String>,
    /// Whether `MISC_CHECK`s without their own `user` are removed.
    pub misc_without_user: bool,
    /// keepalived's errors for them.
    pub diagnostics: Vec<Diagnostic>,
}

/// keepalived's script checks that depend on the host:
/// - with `enable_script_security`, no `script_user` and no `keepalived_script` user here,
///   "Unable to set default user keepalived_script for script" (once), and every
///   `vrrp_script` and `MISC_CHECK` without its own `user` is removed (lib/notify.c
///   `get_default_script_user`, vrrp_parser.c, check_misc.c);
/// - a `vrrp_script` whose program is not found: "Disabling track script NAME since not
///   found/accessible" (vrrp.c `check_track_script_secure`), and no one tracks it.
pub fn disabled_scripts(config: &Config, host: &dyn Host) -> DisabledScripts {
    let mut out = DisabledScripts::default();
    let error = |span: &Span, message: String| Diagnostic {
        severity: Severity::Error,
        span: Some(span.clone()),
        message,
    };
    let no_default_user = config.global.enable_script_security
        && config.global.script_user.is_none()
        && !host.user_exists("keepalived_script");
    let misc_without_user: Vec<&Span> = config
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .flat_map(|rs| &rs.checkers)
        .filter(|ck| matches!(&ck.kind, crate::CheckerKind::Misc(m) if m.user.is_none()))
        .map(|ck| &ck.span)
        .collect();
    if no_default_user {
        let first = config
            .vrrp_scripts
            .iter()
            .filter(|s| s.user.is_none())
            .map(|s| &s.span)
            .chain(misc_without_user.iter().copied())
            .min_by_key(|s| s.line);
        if let Some(span) = first {
            out.diagnostics.push(error(
                span,
                "Unable to set default user keepalived_script for script".into(),
            ));
        }
        out.misc_without_user = !misc_without_user.is_empty();
        for span in &misc_without_user {
            out.diagnostics.push(error(
                span,
                "Unable to set default user for misc script - removing".into(),
            ));
        }
    }
    for s in &config.vrrp_scripts {
        if no_default_user && s.user.is_none() {
            out.diagnostics.push(error(
                &s.span,
                format!(
                    "Unable to set default user for vrrp script {} - removing",
                    s.name
                ),
            ));
            out.vrrp_scripts.push(s.name.clone());
        } else if s.script.first().is_some_and(|p| !host.program_exists(p)) {
            out.diagnostics.push(error(
                &s.span,
                format!(
                    "Disabling track script {} since not found/accessible",
                    s.name
                ),
            ));
            out.vrrp_scripts.push(s.name.clone());
        }
    }
    out
}

/// Applies [`disabled_scripts`] as keepalived runs the file: the scripts and their tracking
/// are gone, and so are the `MISC_CHECK`s it removes.
pub fn drop_disabled_scripts(config: &mut Config, disabled: &DisabledScripts) {
    let gone = |name: &str| disabled.vrrp_scripts.iter().any(|n| n == name);
    config.vrrp_scripts.retain(|s| !gone(&s.name));
    for inst in &mut config.vrrp_instances {
        inst.track_script.retain(|t| !gone(&t.name));
    }
    for g in &mut config.vrrp_sync_groups {
        g.track_script.retain(|t| !gone(&t.name));
    }
    if disabled.misc_without_user {
        for rs in config
            .virtual_servers
            .iter_mut()
            .flat_map(|vs| &mut vs.real_servers)
        {
            rs.checkers
                .retain(|ck| !matches!(&ck.kind, crate::CheckerKind::Misc(m) if m.user.is_none()));
        }
    }
}

/// keepalived's check that the interfaces a VRRP instance names exist (`if_get_by_ifname`
/// with `IF_CREATE_IF_DYNAMIC`): the instance's `interface`, its VIPs' `dev`, and tracked
/// interfaces, unless `global_defs` has `dynamic_interfaces`. keepalived reports each and
/// stops ("Non-existent interface specified in configuration"), at `-t` and at run time alike,
/// so these are [`Severity::Fatal`]. `existing` is the host's interfaces.
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
                severity: Severity::Fatal,
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
/// keepalived's "SECURITY VIOLATION - ... scripts are being executed but script_security not
/// enabled" (check_data.c for the checker's scripts, vrrp.c for VRRP's): without
/// `enable_script_security`, one error per kind when any such script exists. keepalived still
/// runs them, and so does rvsd.
pub fn script_security(config: &Config, host: &dyn Host) -> Vec<Diagnostic> {
    if config.global.enable_script_security {
        return Vec::new();
    }
    let first = |argv: &[String]| argv.first().is_some_and(|p| host.program_exists(p));
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
                if let crate::CheckerKind::Misc(m) = &ck.kind {
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
pub fn script_user(config: &Config, host: &dyn Host) -> Vec<Diagnostic> {
    let Some((user, group)) = &config.global.script_user else {
        return Vec::new();
    };
    let user_ok = host.user_exists(user);
    let group_ok = group.as_deref().is_none_or(|g| host.group_exists(g));
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
pub fn smtp_server(config: &Config, host: &dyn Host) -> Vec<Diagnostic> {
    let Some(server) = &config.global.smtp_server else {
        return Vec::new();
    };
    if server.host.parse::<std::net::IpAddr>().is_ok() {
        return Vec::new();
    }
    if host.resolves(&server.host, server.port) {
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

/// The real host: interfaces of this network namespace, files, users and groups, DNS.
pub struct SystemHost;

impl Host for SystemHost {
    fn interfaces(&self) -> Option<HashSet<String>> {
        // `/proc/self/net/dev` lists the interfaces of this process's network namespace.
        let text = std::fs::read_to_string("/proc/self/net/dev").ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(name, _)| name.trim().to_string())
                .collect(),
        )
    }

    fn program_exists(&self, program: &str) -> bool {
        if program.contains('/') {
            return Path::new(program).is_file();
        }
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        path.split(':')
            .any(|dir| !dir.is_empty() && Path::new(dir).join(program).is_file())
    }

    fn user_exists(&self, name: &str) -> bool {
        matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
    }

    fn group_exists(&self, name: &str) -> bool {
        matches!(nix::unistd::Group::from_name(name), Ok(Some(_)))
    }

    fn resolves(&self, name: &str, port: u16) -> bool {
        use std::net::ToSocketAddrs;
        (name, port)
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real host's facts: the loopback interface, a program found by path and in PATH,
    /// root, an address; and their absence.
    #[test]
    fn system_host_reads_this_host() {
        let host = SystemHost;
        assert!(host.interfaces().is_some_and(|i| i.contains("lo")));
        assert!(host.program_exists("/bin/sh") && host.program_exists("sh"));
        assert!(!host.program_exists("/no/such/script"));
        assert!(host.user_exists("root") && host.group_exists("root"));
        assert!(!host.user_exists("rvs-no-such-user"));
        assert!(host.resolves("127.0.0.1", 25));
        assert!(!host.resolves("bad..name.invalid", 25));
    }

    /// A host with `lo`, `/bin/true`, root, and addresses only.
    struct Facts;

    impl Host for Facts {
        fn interfaces(&self) -> Option<HashSet<String>> {
            Some(["lo".to_string()].into())
        }
        fn program_exists(&self, program: &str) -> bool {
            program == "/bin/true"
        }
        fn user_exists(&self, name: &str) -> bool {
            name == "root"
        }
        fn group_exists(&self, name: &str) -> bool {
            name == "root"
        }
        fn resolves(&self, name: &str, _port: u16) -> bool {
            name.parse::<std::net::IpAddr>().is_ok()
        }
    }

    /// keepalived stops on a VRRP interface this host does not have, unless
    /// `dynamic_interfaces` is set.
    #[test]
    fn missing_interfaces_fail_the_check() {
        let text = "vrrp_instance VI_1 {\n    interface rvs-nosuch0\n    virtual_router_id 5\n    virtual_ipaddress {\n        10.0.0.1/24 dev lo\n        10.0.0.2/24 dev rvs-nosuch1\n    }\n}\n";
        let (config, _) = crate::parse_str(text, Path::new("k.conf"));
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
        let (config, _) = crate::parse_str(&dynamic, Path::new("k.conf"));
        assert!(missing_interfaces(&config, &existing).is_empty());
    }

    /// Scripts that exist, run without enable_script_security: one error for the checker's,
    /// one for VRRP's, as keepalived; unknown users and names that do not resolve.
    #[test]
    fn scripts_without_script_security_are_reported() {
        let text = "vrrp_script chk {\n    script \"/bin/true\"\n}\nvirtual_server 10.0.0.1 80 {\n    lvs_sched rr\n    lb_kind NAT\n    protocol TCP\n    quorum_up \"/no/such/script\"\n    real_server 10.0.0.2 80 {\n        notify_up \"/bin/true up\"\n    }\n}\n";
        let (config, _) = crate::parse_str(text, Path::new("k.conf"));
        let got: Vec<String> = script_security(&config, &Facts)
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
        let (config, _) = crate::parse_str(
            "global_defs {\n    script_user rvs-no-such-user\n}\n",
            Path::new("k.conf"),
        );
        let got: Vec<String> = script_user(&config, &Facts)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            ["k.conf: global_defs script_user rvs-no-such-user: error setting global script uid/gid (no such user or group)"]
        );
        let (config, _) = crate::parse_str(
            "global_defs {\n    script_user root\n}\n",
            Path::new("k.conf"),
        );
        assert!(script_user(&config, &Facts).is_empty());
        let (config, _) = crate::parse_str(
            "global_defs {\n    smtp_server bad..name.invalid\n}\n",
            Path::new("k.conf"),
        );
        assert_eq!(smtp_server(&config, &Facts).len(), 1);
        let (config, _) = crate::parse_str(
            "global_defs {\n    smtp_server 127.0.0.1 25\n}\n",
            Path::new("k.conf"),
        );
        assert!(smtp_server(&config, &Facts).is_empty());
        let (config, _) = crate::parse_str(&secure, Path::new("k.conf"));
        assert!(script_security(&config, &Facts).is_empty());
    }

    /// check_host gathers them all, missing interfaces as fatal.
    #[test]
    fn check_host_gathers_every_problem() {
        let text = "global_defs {\n    smtp_server no.such.host\n}\nvrrp_script c {\n    script /bin/true\n}\nvrrp_instance V {\n    interface eth9\n    virtual_router_id 1\n    track_script {\n        c\n    }\n}\n";
        let (config, _) = crate::parse_str(text, Path::new("k.conf"));
        let got = check_host(&config, &Facts);
        let fatal = got.iter().filter(|d| d.severity == Severity::Fatal).count();
        assert_eq!((got.len(), fatal), (3, 1), "{got:?}");
    }

    /// keepalived disables a tracked script it cannot find, and with script security but no
    /// default user removes every script without its own `user`; no one tracks them after.
    #[test]
    fn scripts_keepalived_disables_are_dropped() {
        let text = "vrrp_script gone {\n    script /no/such\n}\nvrrp_script ok {\n    script /bin/true\n}\nvrrp_instance V {\n    interface lo0\n    virtual_router_id 1\n    track_script {\n        gone\n        ok\n    }\n}\n";
        let (mut config, _) = crate::parse_str(text, Path::new("k.conf"));
        let d = disabled_scripts(&config, &Facts);
        assert_eq!(d.vrrp_scripts, ["gone"]);
        assert!(d.diagnostics[0]
            .to_string()
            .ends_with("Disabling track script gone since not found/accessible"));
        drop_disabled_scripts(&mut config, &d);
        assert_eq!(config.vrrp_scripts.len(), 1);
        assert_eq!(config.vrrp_instances[0].track_script.len(), 1);

        let secure = format!("global_defs {{\n    enable_script_security\n}}\n{text}");
        let (mut config, _) = crate::parse_str(&secure, Path::new("k.conf"));
        let d = disabled_scripts(&config, &Facts);
        assert_eq!(d.vrrp_scripts, ["gone", "ok"]);
        assert_eq!(d.diagnostics.len(), 3, "{:?}", d.diagnostics);
        drop_disabled_scripts(&mut config, &d);
        assert!(config.vrrp_scripts.is_empty());
        assert!(config.vrrp_instances[0].track_script.is_empty());
    }
}
