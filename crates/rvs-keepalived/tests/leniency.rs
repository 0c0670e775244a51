//! keepalived's run-time leniency and fix-ups (issue 11): for each fixture in
//! `tests/data/lenient/`, the verdict of the check (`keepalived -t`'s: valid, or invalid; and
//! whether keepalived would still start) and the lowered result rvsd runs. The last test runs
//! the real `keepalived -t` on every fixture and compares the verdicts.

mod common;

use rvs_api::{ForwardMethod, ServiceId};
use rvs_keepalived::vrrp::VrrpState;
use rvs_keepalived::{check, load_lenient, lower, CheckerKind, Lowered, Report, Severity};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lenient")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// What `rvsd -t` and rvsd's start make of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// `-t` exits 0.
    Valid,
    /// `-t` fails; the daemon runs with keepalived's fall-backs.
    Lenient,
    /// `-t` fails and the daemon does not start.
    Fatal,
}

fn verdict(report: &Report) -> Verdict {
    if report.is_ok() {
        Verdict::Valid
    } else if report.is_fatal() {
        Verdict::Fatal
    } else {
        Verdict::Lenient
    }
}

/// The fixture's check report (with its verdict asserted) and, unless fatal, what rvsd runs.
fn fixture(name: &str, want: Verdict) -> (Report, Option<Lowered>) {
    let path = data(name);
    let report = check(&path);
    assert_eq!(verdict(&report), want, "{name}:\n{report}");
    let lowered = match load_lenient(&path) {
        Ok(loaded) => {
            assert_ne!(want, Verdict::Fatal, "{name}");
            assert_eq!(loaded.errors, report.errors, "{name}");
            Some(lower(&loaded.config))
        }
        Err(e) => {
            assert_eq!(want, Verdict::Fatal, "{name}: {e}");
            None
        }
    };
    (report, lowered)
}

fn lenient(name: &str) -> (Report, Lowered) {
    let (r, l) = fixture(name, Verdict::Lenient);
    (r, l.unwrap_or_else(|| panic!("{name} runs")))
}

/// The report's errors, without the file name: `LINE: message`.
fn errors(report: &Report) -> Vec<String> {
    report
        .errors
        .iter()
        .map(|d| {
            let line = d.span.as_ref().map_or(0, |s| s.line);
            format!("{line}: {}", d.message)
        })
        .collect()
}

fn has_error(report: &Report, line: u32, needle: &str) {
    let errs = errors(report);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{line}: ")) && e.contains(needle)),
        "no error at line {line} containing {needle:?}: {errs:?}"
    );
}

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Tcp {
        addr: ip(addr),
        port,
    }
}

#[test]
fn forms_keepalived_accepts() {
    let (report, low) = fixture("forms_accepted.conf", Verdict::Valid);
    let low = low.expect("runs");
    // Top-level process options are accepted and said to be unused by rvs.
    let warned: Vec<&str> = report.warnings.iter().map(|d| d.message.as_str()).collect();
    for k in [
        "use_pid_dir",
        "instance",
        "child_wait_time",
        "net_namespace_ipvs",
    ] {
        assert!(
            warned.contains(&format!("{k}: accepted but not used by rvs").as_str()),
            "{warned:?}"
        );
    }
    assert!(low.global.enable_script_security);
    // One fwmark, an IPv4 and an IPv6 service.
    let ids: Vec<ServiceId> = low.services.iter().map(|s| s.config.id).collect();
    assert_eq!(
        ids,
        [
            ServiceId::Fwmark {
                mark: 7,
                ipv6: false
            },
            ServiceId::Fwmark {
                mark: 7,
                ipv6: true
            }
        ]
    );
    assert!(low.services[0].policy.alpha && low.services[0].policy.omega);
    assert_eq!(low.services[1].dests[0].weight, 3);
    // One VRID for an IPv4 and an IPv6 instance on one interface; the IPv6 one speaks v3.
    let inst = &low.vrrp.instances;
    assert_eq!(inst.len(), 2);
    assert_eq!(
        (inst[0].virtual_router_id, inst[1].virtual_router_id),
        (42, 42)
    );
    assert_eq!((inst[0].version, inst[1].version), (Some(2), Some(3)));
    assert_eq!(
        inst[0].virtual_ipaddress[0].broadcast,
        Some(ip("10.9.0.255")),
        "brd + sets the host bits"
    );
}

#[test]
fn lower_case_lb_kind_falls_back_to_nat() {
    let (report, low) = lenient("lb_kind_lower_case.conf");
    has_error(&report, 3, "lb_kind: expected NAT|DR|TUN, got 'dr'");
    has_error(&report, 1, "no forwarding method set, setting default NAT");
    let svc = &low.services[0];
    assert_eq!(svc.config.scheduler, "wrr");
    assert_eq!(svc.dests[0].method, ForwardMethod::Masq);
    assert_eq!(svc.dests[0].weight, 4);
}

#[test]
fn state_slave_is_backup() {
    let (report, low) = lenient("state_slave.conf");
    has_error(&report, 2, "unknown state 'SLAVE', defaulting to BACKUP");
    let i = &low.vrrp.instances[0];
    assert_eq!((i.state, i.priority), (Some(VrrpState::Backup), 90));
}

#[test]
fn persistence_out_of_range_is_ignored() {
    let (report, low) = lenient("persistence.conf");
    has_error(
        &report,
        5,
        "persistence_timeout: expected a number 1-2678400, got '0'",
    );
    has_error(&report, 13, "got '3000000'");
    assert_eq!(report.errors.len(), 2, "{report}");
    let p: Vec<Option<u32>> = low.services.iter().map(|s| s.config.persistence).collect();
    assert_eq!(p, [None, None, Some(2_678_400)]);
}

#[test]
fn routed_real_servers_take_the_service_port() {
    let (report, low) = lenient("routed_ports.conf");
    has_error(&report, 5, "ports don't match - resetting");
    has_error(&report, 14, "ports don't match - resetting");
    has_error(&report, 20, "has port specified - clearing");
    assert_eq!(report.errors.len(), 3, "{report}");
    let ports = |i: usize| -> Vec<u16> { low.services[i].dests.iter().map(|d| d.port).collect() };
    assert_eq!(
        ports(0),
        [80, 80],
        "DR: reset, and a missing port is the service's"
    );
    assert_eq!(ports(1), [81], "TUN: reset");
    assert_eq!(ports(2), [0], "fwmark: cleared");
    assert_eq!(ports(3), [8082, 82], "NAT keeps its port mapping");
    assert_eq!(low.services[0].dests[0].method, ForwardMethod::Route);
    assert_eq!(low.services[1].dests[0].method, ForwardMethod::Tunnel);
    // The checkers check the port the server was moved to.
    assert_eq!(low.checkers[0].dest.port(), 80);
}

#[test]
fn quorum_above_the_total_weight_is_lowered() {
    let (report, low) = lenient("quorum.conf");
    has_error(
        &report,
        1,
        "quorum 10 exceeds total weight of real servers 5, reducing quorum to 5",
    );
    has_error(
        &report,
        1,
        "hysteresis 8 >= quorum 5; setting hysteresis to 4",
    );
    let p = &low.services[0].policy;
    assert_eq!((p.quorum, p.hysteresis), (5, 4));
}

#[test]
fn nopreempt_is_cleared_for_state_master() {
    let (report, low) = lenient("nopreempt_master.conf");
    has_error(
        &report,
        1,
        "nopreempt will not work with initial state MASTER - clearing",
    );
    let i = &low.vrrp.instances[0];
    assert_eq!(
        (i.state, i.nopreempt, i.priority),
        (Some(VrrpState::Master), false, 150)
    );
}

#[test]
fn vrrp_strict_drops_authentication() {
    let (report, low) = lenient("strict_auth.conf");
    has_error(
        &report,
        4,
        "strict mode does not support authentication - ignoring",
    );
    assert_eq!(report.errors.len(), 1, "{report}");
    let i = &low.vrrp.instances[0];
    assert!(i.authentication.is_none());
    assert_eq!(i.state, Some(VrrpState::Master));
}

#[test]
fn a_virtual_server_without_real_servers_is_ignored() {
    let (report, low) = lenient("no_real_servers.conf");
    has_error(&report, 1, "has no real servers - ignoring");
    let ids: Vec<ServiceId> = low.services.iter().map(|s| s.config.id).collect();
    assert_eq!(ids, [tcp("10.1.0.1", 81)]);
}

#[test]
fn a_service_without_protocol_is_udp() {
    let (report, low) = lenient("no_protocol.conf");
    has_error(&report, 1, "no protocol set - defaulting to UDP");
    assert_eq!(
        low.services[0].config.id,
        ServiceId::Udp {
            addr: ip("10.1.0.1"),
            port: 53
        }
    );
}

#[test]
fn unknown_scheduler_and_missing_method_default() {
    let (report, low) = lenient("scheduler_method_defaults.conf");
    has_error(&report, 2, "invalid scheduler 'bogus' - ignoring");
    has_error(&report, 1, "no scheduler set, setting default 'wlc'");
    has_error(&report, 1, "no forwarding method set, setting default NAT");
    assert_eq!(low.services[0].config.scheduler, "wlc");
    assert_eq!(low.services[0].dests[0].method, ForwardMethod::Masq);
}

#[test]
fn garp_interval_zero_is_out_of_range() {
    let (report, _) = lenient("garp_interval_zero.conf");
    has_error(&report, 2, "vrrp_garp_interval '0' is invalid");
    assert_eq!(
        report.errors.len(),
        1,
        "vrrp_gna_interval 0.5 is fine: {report}"
    );
}

#[test]
fn nb_get_retry_only_in_http_checkers() {
    let (report, low) = lenient("nb_get_retry.conf");
    has_error(&report, 6, "unknown keyword 'nb_get_retry' in real_server");
    has_error(
        &report,
        11,
        "nb_get_retry is deprecated - please use 'retry'",
    );
    has_error(&report, 14, "unknown keyword 'nb_get_retry' in TCP_CHECK");
    assert_eq!(report.errors.len(), 3, "{report}");
    let retry: Vec<u32> = low.checkers[0].checkers.iter().map(|c| c.retry).collect();
    assert_eq!(
        retry,
        [4, 1],
        "HTTP_GET applies it; TCP_CHECK keeps its default"
    );
}

#[test]
fn checker_defaults_per_type() {
    let (_, low) = fixture("checker_defaults.conf", Verdict::Valid);
    let low = low.expect("runs");
    let cks = &low.checkers[0].checkers;
    let kinds: Vec<&str> = cks.iter().map(|c| c.spec.kind.keyword()).collect();
    assert_eq!(kinds, ["MISC_CHECK", "DNS_CHECK", "TCP_CHECK", "HTTP_GET"]);
    let retry: Vec<u32> = cks.iter().map(|c| c.retry).collect();
    assert_eq!(retry, [0, 3, 1, 1]);
    let dbr: Vec<Duration> = cks.iter().map(|c| c.delay_before_retry).collect();
    assert_eq!(
        dbr,
        [
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(1),
            Duration::from_secs(3)
        ],
        "DNS: its delay_loop; HTTP: 3 s"
    );
    // The one-line url block: the path line keeps its first word only.
    let CheckerKind::Http(h) = &cks[3].spec.kind else {
        panic!("HTTP_GET")
    };
    assert_eq!(h.urls[0].path, "/health");
    assert!(
        h.urls[0].status_codes.is_empty(),
        "keepalived's default 2xx"
    );
}

#[test]
fn blocks_rvs_ignores_are_checked_and_warned_about() {
    let (report, _) = fixture("ignored_blocks.conf", Verdict::Valid);
    let warned: Vec<String> = report
        .warnings
        .iter()
        .map(|d| format!("{}: {}", d.span.as_ref().map_or(0, |s| s.line), d.message))
        .collect();
    // KEEPALIVED-MIB is served (rvsd's AgentX subagent): no warning for it.
    assert!(
        !warned.iter().any(|w| w.contains("enable_snmp_vrrp")),
        "{warned:?}"
    );
    for (line, k) in [
        (3, "enable_dbus"),
        (5, "static_ipaddress"),
        (8, "static_routes"),
        (11, "static_rules"),
    ] {
        assert!(
            warned.contains(&format!("{line}: {k}: accepted but not used by rvs")),
            "{warned:?}"
        );
    }
    // rvsd runs BFD sessions: bfd_instance is used, not warned about.
    assert!(
        !warned.iter().any(|w| w.contains("bfd_instance")),
        "{warned:?}"
    );
    let (report, _) = lenient("static_bad_address.conf");
    has_error(&report, 3, "10.1.5.300/24");
    let (report, _) = lenient("static_checked.conf");
    has_error(
        &report,
        2,
        "cannot track route 10.2.0.0/16 with no interface specified",
    );
    has_error(&report, 6, "rule has no preference specified");
    assert_eq!(report.errors.len(), 2, "{report}");
    let (report, _) = lenient("bfd_checked.conf");
    has_error(&report, 1, "bfd_instance B1: no neighbor address set");
    has_error(&report, 5, "are not of the same family");
    has_error(
        &report,
        11,
        "multiplier: expected a number 1-255, got '300'",
    );
    assert_eq!(report.errors.len(), 3, "{report}");
}

#[test]
fn fwmark_services_clear_ha_suspend_and_take_any_mask() {
    let (report, low) = lenient("fwmark_options.conf");
    has_error(
        &report,
        1,
        "cannot use ha_suspend with fwmarks - clearing ha_suspend",
    );
    assert_eq!(report.errors.len(), 1, "{report}");
    let svc = &low.services[0];
    assert!(!svc.policy.ha_suspend);
    assert_eq!(
        (svc.config.persistence, svc.config.netmask),
        (Some(360), Some("255.0.255.0".parse().unwrap())),
        "any mask, as keepalived and the kernel take it"
    );
}

#[test]
fn ah_master_undefined_track_script_and_family_conflict() {
    let (report, low) = lenient("vrrp_checks.conf");
    has_error(
        &report,
        4,
        "initial state MASTER is incompatible with AH authentication - clearing",
    );
    has_error(&report, 4, "unknown track_script 'chk_missing' - ignoring");
    has_error(
        &report,
        25,
        "ip_family inet6: conflicts with the virtual server's address family - ignoring",
    );
    assert_eq!(report.errors.len(), 3, "{report}");
    let i = &low.vrrp.instances[0];
    assert_eq!(i.state, Some(VrrpState::Backup));
    let tracked: Vec<&str> = i.track_script.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tracked, ["chk_up"]);
    assert_eq!(low.services[0].config.id, tcp("10.1.0.1", 80));
}

#[test]
fn real_servers_of_the_other_family_are_skipped_unless_tunnelled() {
    let (report, low) = lenient("family_mismatch.conf");
    has_error(&report, 7, "real_server 2001:db8:1::2: address family of virtual server and real server don't match - skipping real server");
    has_error(&report, 18, "real_server 10.1.0.5: address family");
    has_error(&report, 21, "sorry_server 2001:db8:1::9: address family of virtual server and sorry server don't match - skipping sorry server");
    assert_eq!(report.errors.len(), 3, "{report}");
    assert!(low.services[2].policy.sorry_server.is_none());
    let addrs =
        |i: usize| -> Vec<IpAddr> { low.services[i].dests.iter().map(|d| d.addr).collect() };
    assert_eq!(addrs(0), [ip("10.1.0.2"), ip("2001:db8:1::3")]);
    assert_eq!(addrs(1), [ip("2001:db8:1::4")]);
    assert_eq!(
        low.services[1].config.id,
        ServiceId::Fwmark {
            mark: 5,
            ipv6: true
        }
    );
}

#[test]
fn long_auth_pass_and_instance_sync_daemon() {
    let (report, low) = lenient("deprecated_vrrp.conf");
    has_error(&report, 6, "lvs_sync_daemon_interface is deprecated");
    has_error(&report, 9, "truncating auth_pass to 8 characters");
    assert_eq!(report.errors.len(), 2, "{report}");
    let i = &low.vrrp.instances[0];
    assert_eq!(
        i.authentication.as_ref().map(|a| a.auth_pass.as_str()),
        Some("12345678")
    );
    let d = low
        .global
        .lvs_sync_daemon
        .as_ref()
        .expect("set from the instance");
    assert_eq!(
        (d.interface.as_str(), d.vrrp_instance.as_deref()),
        ("eth0", Some("VI_1"))
    );
}

#[test]
fn tracking_the_own_interface_is_dropped() {
    let (report, low) = lenient("track_own_interface.conf");
    has_error(
        &report,
        9,
        "vrrp_instance VI_1: ignoring track_interface eth0 since own interface",
    );
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(low.vrrp.instances[0].track_interface.is_empty());
    assert_eq!(low.vrrp.sync_groups[0].group, ["VI_1", "VI_2"]);
}

#[test]
fn vrrp_values_fall_back_as_keepalived() {
    let (report, low) = lenient("vrrp_values.conf");
    has_error(&report, 4, "priority: expected a number 1-255, got '0'");
    has_error(&report, 5, "advert_int");
    has_error(&report, 7, "bad prefix length in '10.0.0.1/33' - using 32");
    has_error(&report, 8, "got 'bogus'");
    has_error(&report, 12, "got '10.0.0.300'");
    has_error(
        &report,
        1,
        "a unicast keyword has been specified without any unicast peers - defaulting to multicast",
    );
    assert_eq!(report.errors.len(), 6, "{report}");
    let i = &low.vrrp.instances[0];
    assert_eq!((i.priority, i.advert_int), (100, Duration::from_secs(1)));
    let vips: Vec<(IpAddr, u8)> = i
        .virtual_ipaddress
        .iter()
        .map(|v| (v.addr, v.prefix))
        .collect();
    assert_eq!(vips, [(ip("10.0.0.1"), 32), (ip("10.0.0.2"), 32)]);
    assert!(i.unicast_peer.is_empty());
}

#[test]
fn an_empty_group_is_removed_with_its_virtual_server() {
    let (report, low) = lenient("empty_group.conf");
    has_error(
        &report,
        1,
        "virtual_server_group EMPTY has no entries - removing",
    );
    let ids: Vec<ServiceId> = low.services.iter().map(|s| s.config.id).collect();
    assert_eq!(
        ids,
        [
            tcp("10.1.0.1", 80),
            tcp("10.1.0.2", 80),
            tcp("10.1.0.3", 80)
        ]
    );
}

#[test]
fn scheduler_flags_follow_the_scheduler_given_before_them() {
    let (report, low) = lenient("flags_and_delay.conf");
    has_error(&report, 2, "hashed only applies to sh scheduler - ignoring");
    has_error(
        &report,
        9,
        "delay_loop: expected a time in seconds above 0, got '0'",
    );
    has_error(
        &report,
        14,
        "delay_loop: expected a time in seconds above 0, got '0'",
    );
    assert_eq!(report.errors.len(), 3, "{report}");
    assert!(report
        .warnings
        .iter()
        .any(|d| d.message.contains("lthreshold is above uthreshold")));
    let svc = &low.services[0];
    assert_eq!(svc.config.scheduler, "mh");
    assert_eq!(svc.config.sched_flags, ["mh-port", "flag-2"]);
    assert_eq!(
        low.checkers[0].checkers[0].delay_loop,
        Duration::from_secs(60)
    );
}

#[test]
fn tunnel_options_keepalived_refuses_leave_the_method_unset() {
    let (report, low) = lenient("tunnel_options.conf");
    has_error(&report, 9, "ipip tunnels do not support checksum option");
    has_error(
        &report,
        17,
        "gre tunnels do not support remote checksum option",
    );
    has_error(&report, 20, "only gue tunnels take a port");
    assert_eq!(report.errors.len(), 3, "{report}");
    let methods = |i: usize| -> Vec<ForwardMethod> {
        low.services[i].dests.iter().map(|d| d.method).collect()
    };
    // Without its own method a real server takes the service's (gue tunnel, then NAT).
    assert_eq!(methods(0), [ForwardMethod::Tunnel, ForwardMethod::Tunnel]);
    assert_eq!(
        low.services[0].dests[1].tunnel.map(|t| t.kind),
        Some(rvs_api::TunnelKind::Gue)
    );
    assert_eq!(methods(1), [ForwardMethod::Masq, ForwardMethod::Masq]);
}

#[test]
fn timers_out_of_keepalived_ranges_are_ignored() {
    let (report, low) = lenient("timer_ranges.conf");
    has_error(
        &report,
        6,
        "preempt_delay: expected a time of 0-1000 s, got '1001'",
    );
    has_error(
        &report,
        15,
        "connect_timeout: expected a time of 0.000001-4294.967295 s, got '0'",
    );
    has_error(&report, 17, "got '5000'");
    has_error(&report, 19, "got '0'");
    assert_eq!(report.errors.len(), 4, "{report}");
    assert_eq!(low.vrrp.instances[0].preempt_delay, None);
    assert_eq!(
        low.checkers[0].checkers[0].connect_timeout,
        rvs_keepalived::DEFAULT_CONNECT_TIMEOUT
    );
}

#[test]
fn unknown_keywords_fail_the_check_and_are_skipped() {
    let (report, low) = lenient("unknown_keyword.conf");
    has_error(&report, 5, "unknown keyword 'frobnicate' in virtual_server");
    assert_eq!(low.services[0].dests[0].weight, 5);
}

#[test]
fn errors_that_stop_keepalived_refuse_the_file() {
    let (report, _) = fixture("fatal_no_interface.conf", Verdict::Fatal);
    has_error(&report, 1, "expected interface");
    // An invalid router id leaves it unset: keepalived's VRRP process stops too.
    let text = "vrrp_instance V {\n    interface eth0\n    virtual_router_id 300\n    virtual_ipaddress {\n        10.9.0.9\n    }\n}\n";
    let e = rvs_keepalived::load_str_lenient(text, Path::new("k.conf")).expect_err("fatal");
    let text = e.report().to_string();
    assert!(
        text.contains("fatal: k.conf:1: vrrp_instance V: the virtual router id must be set"),
        "{text}"
    );
    assert!(
        text.contains("error: k.conf:3: virtual_router_id: expected a number 1-255, got '300'"),
        "{text}"
    );
    let (report, _) = fixture("fatal_loopback.conf", Verdict::Fatal);
    has_error(
        &report,
        2,
        "cannot use a loopback interface (lo) for vrrp - ignoring",
    );
    let (report, _) = fixture("fatal_same_vrid.conf", Verdict::Fatal);
    has_error(
        &report,
        8,
        "VRID 47 with IPv4 is already used on interface eth0",
    );
    assert!(report.errors.iter().any(|d| d.severity == Severity::Fatal));
}

#[test]
fn vrrp_script_and_garp_zeros_become_one() {
    let (report, low) = lenient("vrrp_script_values.conf");
    has_error(&report, 7, "interval: must be greater than 0, setting to 1");
    has_error(&report, 8, "timeout: must be greater than 0, setting to 1");
    has_error(&report, 10, "rise: expected a number 1-4294967295, got '0'");
    has_error(
        &report,
        19,
        "garp_master_repeat: must be greater than 0, setting to 1",
    );
    has_error(
        &report,
        21,
        "garp_master_refresh_repeat: must be greater than 0, setting to 1",
    );
    has_error(&report, 22, "version: expected a number 2-3, got '4'");
    let s = &low.vrrp.scripts[0];
    assert_eq!(
        (s.interval, s.timeout, s.rise, s.fall),
        (Duration::from_secs(1), Some(Duration::from_secs(1)), 1, 1)
    );
    let i = &low.vrrp.instances[0];
    assert_eq!(
        (
            i.garp_master_repeat,
            i.garp_master_refresh_repeat,
            i.version
        ),
        (Some(1), Some(1), Some(2))
    );
}

#[test]
fn global_values_keepalived_refuses() {
    let (report, low) = lenient("global_values.conf");
    has_error(&report, 2, "notification_email: empty block");
    has_error(
        &report,
        5,
        "lvs_sync_daemon: expected a number 1-65535, got '0'",
    );
    has_error(
        &report,
        6,
        "vrrp_mcast_group4 [10.0.0.1] is not multicast - skipping",
    );
    has_error(
        &report,
        7,
        "smtp_alert: expected true or false, got 'maybe'",
    );
    assert_eq!(report.errors.len(), 8, "{report}");
    let d = low
        .global
        .lvs_sync_daemon
        .as_ref()
        .expect("sync daemon kept");
    assert_eq!((d.maxlen, d.port, d.ttl), (None, None, None));
    assert_eq!(low.global.smtp_alert, None);
}

#[test]
fn virtual_routes_rules_and_tracking_checked_as_keepalived() {
    let (report, low) = lenient("vrrp_routes_tracking.conf");
    has_error(&report, 11, "track_interface: duplicate lo - ignoring");
    has_error(
        &report,
        15,
        "cannot track route 10.10.0.0/24 with no interface specified",
    );
    has_error(&report, 16, "\"or\" for routes is deprecated");
    has_error(&report, 16, "cannot track route 10.11.0.0/24");
    has_error(&report, 17, "cannot track route 10.12.0.1/32");
    has_error(&report, 18, "\"gw\" for routes is deprecated");
    has_error(&report, 18, "cannot track route 0.0.0.0/0");
    has_error(
        &report,
        22,
        "virtual_rules: invalid to address '10.0.1./24'",
    );
    assert_eq!(report.errors.len(), 8, "{report}");
    let t = &low.vrrp.instances[0].track_interface;
    assert_eq!((t.len(), t[0].weight), (1, None));
}

#[test]
fn a_second_instance_or_sync_group_of_a_name_is_skipped() {
    let (report, low) = lenient("duplicate_names.conf");
    has_error(&report, 8, "vrrp_instance A: already defined - ignoring");
    has_error(&report, 20, "vrrp_sync_group G: already defined - ignoring");
    has_error(
        &report,
        15,
        "has only 1 virtual router - this probably isn't what you want",
    );
    assert_eq!(report.errors.len(), 3, "{report}");
    assert_eq!(low.vrrp.instances.len(), 1);
    assert_eq!(low.vrrp.instances[0].virtual_router_id, 60);
    assert_eq!(low.vrrp.sync_groups.len(), 1);
}

/// Most keepalived handlers read their parameter without checking and keepalived exits when it
/// is missing; the few that check report it and carry on.
#[test]
fn a_missing_parameter_is_fatal_unless_keepalived_checks_for_it() {
    let (report, _) = fixture("missing_param_fatal.conf", Verdict::Fatal);
    assert!(
        report.errors.iter().any(|d| d.severity == Severity::Fatal
            && d.to_string()
                .ends_with("missing_param_fatal.conf:2: lvs_sched: expected a scheduler name")),
        "{report}"
    );
    let (report, low) = lenient("missing_param_lenient.conf");
    has_error(&report, 2, "router_id: expected a router id");
    has_error(&report, 9, "virtualhost: expected a host name");
    assert_eq!(report.errors.len(), 2, "{report}");
    assert_eq!(low.services[0].dests[0].weight, 2);
}

/// A non-loopback interface of this host that can carry VRRP (keepalived -t checks that the
/// configured interface exists).
fn host_interface() -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    let multicast = |n: &String| {
        std::fs::read_to_string(format!("/sys/class/net/{n}/flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & 0x1000 != 0 && f & 0x1 != 0)
    };
    names
        .iter()
        .find(|n| n.as_str() == "eth0")
        .cloned()
        .or_else(|| names.into_iter().find(multicast))
}

/// keepalived -t's exit status: 0 valid; anything else, invalid. (keepalived -t exits 5 for the
/// errors that stop the daemon too, so "fatal" is compared as "invalid".)
#[test]
fn keepalived_gives_the_same_verdicts() {
    let bin = common::keepalived();
    let iface = host_interface()
        .expect("an up, multicast network interface for keepalived -t's VRRP checks");
    let dir = std::env::temp_dir().join(format!("rvs-leniency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(data(""))
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 19, "{fixtures:?}");
    let mut disagree = Vec::new();
    for src in &fixtures {
        let text = std::fs::read_to_string(src).expect("read fixture");
        let name = src.file_name().expect("file name");
        let copy = dir.join(name);
        std::fs::write(&copy, text.replace("eth0", &iface)).expect("write copy");
        let out = Command::new(&bin)
            .args(["-t", "-f"])
            .arg(&copy)
            .args(["-l", "-D"])
            .output()
            .expect("run keepalived -t");
        let keepalived_ok = out.status.success();
        let rvs_ok = check(&copy).is_ok();
        if keepalived_ok != rvs_ok {
            disagree.push(format!(
                "{}: keepalived {} ({:?}), rvs {}:\n{}{}",
                name.to_string_lossy(),
                if keepalived_ok { "valid" } else { "invalid" },
                out.status.code(),
                if rvs_ok { "valid" } else { "invalid" },
                String::from_utf8_lossy(&out.stderr),
                check(&copy)
            ));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

/// `persistence_granularity` as keepalived 2.2.7 reads it: an IPv4 service takes any of
/// inet_aton's forms (so `24` is the mask 0.0.0.24, not a /24), an IPv6 service a prefix length.
#[test]
fn granularity_reads_like_inet_aton_for_ipv4_and_a_prefix_for_ipv6() {
    let mask = |vip: &str, g: &str| {
        let text = format!(
            "virtual_server {vip} 80 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    persistence_timeout 50\n    persistence_granularity {g}\n    real_server {vip} 80 {{\n    }}\n}}\n"
        );
        let loaded =
            rvs_keepalived::load_str_lenient(&text, std::path::Path::new("g.conf")).expect("runs");
        let errors = loaded.errors.len();
        let low = rvs_keepalived::lower(&loaded.config);
        (
            low.services[0].config.netmask.map(|m| m.to_string()),
            errors,
        )
    };
    assert_eq!(mask("10.0.0.1", "24"), (Some("0.0.0.24".into()), 0));
    assert_eq!(
        mask("10.0.0.1", "255.255.0.0"),
        (Some("255.255.0.0".into()), 0)
    );
    assert_eq!(
        mask("10.0.0.1", "0xffffff00"),
        (Some("255.255.255.0".into()), 0)
    );
    assert_eq!(mask("10.0.0.1", "255.255.255.255"), (None, 0));
    assert_eq!(mask("10.0.0.1", "nope"), (None, 1));
    assert_eq!(
        mask("2001:db8::1", "64"),
        (Some("ffff:ffff:ffff:ffff::".into()), 0)
    );
    assert_eq!(mask("2001:db8::1", "255.255.255.0"), (None, 1));
}
