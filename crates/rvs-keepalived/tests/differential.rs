//! Differential test against the real keepalived (2.2.x, installed by scripts/install-deps).
//!
//! Every file under tests/data/diff/ (the top level; `inc/` holds included files) and 200
//! generated ones go through `keepalived -t -f FILE -l -D` and through [`rvs_keepalived::check`]
//! (what `rvsd -t` answers). The verdicts are compared in three classes:
//!
//! * valid: keepalived exits 0 / rvs reports no error;
//! * invalid: keepalived exits 5 or 6 (it reports errors, or insecure scripts, but would run
//!   past them) / rvs has errors, none fatal;
//! * fatal: any other keepalived exit (4: missing file, bad interface, fatal) / a fatal error.
//!
//! keepalived -t's status does not tell every error that stops keepalived at run time from the
//! ones it runs past (both exit 5), so an rvs fatal error where keepalived exits 5 agrees.
//!
//! For the hand-written fixtures, the lowered result is also compared with what keepalived's
//! documented defaults and fix-ups give (keepalived.conf(5) and keepalived's check_data.c /
//! vrrp_data.c), see [`expectations`].
//!
//! Every disagreement is collected and reported in one run, with the file and both outputs. A
//! construct the parser does not handle like keepalived yet is listed in [`KNOWN_DIFFERENCES`]
//! so the suite stays green; the list is checked both ways (a listed fixture that agrees fails
//! the test, so the list only shrinks). Generated files are keyed `gen:MUTATION`.
//!
//! keepalived -t refuses VRRP instances on missing or loopback interfaces, so the fixtures name
//! `eth0` and the copies checked name this machine's first non-loopback interface instead.
//!
//! `RVS_DIFF_VERBOSE=1 cargo test -p rvs-keepalived --test differential -- --nocapture` prints
//! every differing file with both outputs, the known differences included.

mod common;

use rvs_keepalived::host::{check_host, SystemHost};
use rvs_keepalived::{lower, parse_file, Lowered, Report};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Fixtures (or `gen:MUTATION` keys of generated files) whose verdict or lowering differs from
/// keepalived's today, with the reason. Shrink it as the parser catches up; never grow it to
/// hide a regression.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// How many files the generator writes.
const GENERATED: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    Invalid,
    Fatal,
}

/// This machine's interface for the VRRP fixtures: eth0 if present, else the first
/// non-loopback one.
fn interface() -> String {
    if Path::new("/sys/class/net/eth0").exists() {
        return "eth0".into();
    }
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().next().unwrap_or_else(|| "eth0".into())
}

fn replace_bytes(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Copies `from` into `to` (recursively), naming `iface` instead of eth0.
fn copy_tree(from: &Path, to: &Path, iface: &str) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        let dest = to.join(e.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest, iface);
        } else {
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let text = replace_bytes(&text, b"eth0", iface.as_bytes());
            std::fs::write(&dest, text).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        }
    }
}

/// keepalived's verdict and its messages.
fn run_keepalived(bin: &Path, file: &Path) -> (Verdict, String) {
    let out = Command::new(bin)
        .arg("-t")
        .arg("-f")
        .arg(file)
        .args(["-l", "-D"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let code = out.status.code();
    let text = format!(
        "exit {code:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = match code {
        Some(0) => Verdict::Valid,
        Some(5) | Some(6) => Verdict::Invalid,
        // keepalived's stopping exits (no memory 1, program error 2 (a keyword without its
        // parameter), fatal 3, config 4, no config 7); anything else (a signal, a missing
        // permission) is a broken run, not a verdict.
        Some(1..=4) | Some(7) => Verdict::Fatal,
        _ => panic!("keepalived -t did not give a verdict:\n{text}"),
    };
    (verdict, text)
}

/// Checkers of every real server, so a lowering that drops them fails the comparison.
fn checker_count(l: &Lowered) -> usize {
    l.checkers.iter().map(|rs| rs.checkers.len()).sum()
}

/// rvs's verdict.
fn rvs_verdict(report: &Report) -> Verdict {
    if report.is_ok() {
        Verdict::Valid
    } else if report.is_fatal() {
        Verdict::Fatal
    } else {
        Verdict::Invalid
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Collects the differences between the lowered result and keepalived's.
struct Expect<'a> {
    lowered: &'a Lowered,
    problems: Vec<String>,
}

impl Expect<'_> {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, keepalived: T) {
        if got != keepalived {
            self.problems
                .push(format!("{what}: rvs {got:?}, keepalived {keepalived:?}"));
        }
    }

    fn services(&mut self, n: usize) -> bool {
        self.eq("number of services", self.lowered.services.len(), n);
        self.lowered.services.len() == n
    }

    fn instances(&mut self, n: usize) -> bool {
        self.eq(
            "number of VRRP instances",
            self.lowered.vrrp.instances.len(),
            n,
        );
        self.lowered.vrrp.instances.len() == n
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What keepalived makes of each hand-written fixture (only facts taken from keepalived.conf(5)
/// and keepalived's sources; fixtures not named here are compared by verdict only).
fn expectations(name: &str, lowered: &Lowered) -> Vec<String> {
    use rvs_api::{ForwardMethod, ServiceId};
    use rvs_keepalived::CheckerKind;
    let mut x = Expect {
        lowered,
        problems: Vec::new(),
    };
    let l = lowered;
    // A guard `x.services(n)` / `x.instances(n)` records a wrong count itself; the arm then
    // compares the items.
    match name {
        "unknown_block" => {
            // lib/parser.c: the unknown keyword's block is not skipped; its '}' closes the
            // real server, so one real server runs, without a checker.
            if x.services(1) {
                let s = &l.services[0];
                x.eq("number of real servers", s.dests.len(), 1);
                x.eq("weight", s.dests.first().map(|d| d.weight), Some(2));
            }
            x.eq("number of checkers", checker_count(l), 0);
        }
        "defaults_lvs" => {
            if x.services(1) {
                let s = &l.services[0];
                // check_data.c: no scheduler -> IPVS_DEF_SCHED "wlc"; no forwarding -> NAT.
                x.eq("scheduler", s.config.scheduler.as_str(), "wlc");
                x.eq("number of real servers", s.dests.len(), 4);
                for d in &s.dests {
                    x.eq("forwarding method", d.method, ForwardMethod::Masq);
                    // keepalived.conf(5): real_server weight default 1.
                    x.eq("weight", d.weight, 1);
                }
            }
            x.eq("number of checkers", checker_count(l), 4);
            for rs in &l.checkers {
                for c in &rs.checkers {
                    let kind = c.spec.kind.keyword();
                    // keepalived.conf(5): delay_loop 60 s, connect_timeout 5 s, warmup enabled
                    // with delay_loop as its maximum.
                    x.eq(&format!("{kind} delay_loop"), c.delay_loop, secs(60));
                    x.eq(
                        &format!("{kind} connect_timeout"),
                        c.connect_timeout,
                        secs(5),
                    );
                    x.eq(&format!("{kind} warmup"), c.warmup, c.delay_loop);
                    // retry: 1, DNS_CHECK 3, MISC_CHECK 0; delay_before_retry: delay_loop for
                    // DNS_CHECK, 3 s for HTTP_GET/SSL_GET, 1 s otherwise.
                    let (retry, before) = match &c.spec.kind {
                        CheckerKind::Dns(_) => (3, c.delay_loop),
                        CheckerKind::Misc(_) => (0, secs(1)),
                        CheckerKind::Http(_) | CheckerKind::Ssl(_) => (1, secs(3)),
                        _ => (1, secs(1)),
                    };
                    x.eq(&format!("{kind} retry"), c.retry, retry);
                    if !matches!(c.spec.kind, CheckerKind::Misc(_)) {
                        x.eq(
                            &format!("{kind} delay_before_retry"),
                            c.delay_before_retry,
                            before,
                        );
                    }
                }
            }
        }
        "checker_default_retry" => {
            x.eq("number of checkers", checker_count(l), 2);
            for rs in &l.checkers {
                for c in &rs.checkers {
                    let retry = match c.spec.kind {
                        CheckerKind::Misc(_) => 0,
                        _ => 1,
                    };
                    x.eq(&format!("{} retry", c.spec.kind.keyword()), c.retry, retry);
                }
            }
        }
        "no_protocol" if x.services(1) => {
            // check_data.c: "no protocol set - defaulting to UDP" (the kernel's default).
            x.eq(
                "service",
                l.services[0].config.id,
                ServiceId::Udp {
                    addr: ip("10.20.0.1"),
                    port: 80,
                },
            );
        }
        "persistence_no_value" | "zero_port_without_persistence" if x.services(1) => {
            // IPVS_SVC_PERSISTENT_TIMEOUT: 6 minutes.
            x.eq("persistence", l.services[0].config.persistence, Some(360));
        }
        "persistence_zero" | "persistence_over_limit" if x.services(1) => {
            // "persistence_timeout invalid": the line is ignored.
            x.eq("persistence", l.services[0].config.persistence, None);
        }
        "bad_vs_address" => {
            // "Invalid virtual server IP address/port ... - skipping".
            x.services(0);
        }
        "alpha_omega_args" if x.services(1) => {
            let p = &l.services[0].policy;
            x.eq("alpha", p.alpha, true);
            x.eq("omega", p.omega, true);
            x.eq(
                "real server alpha",
                l.checkers.first().map(|c| c.policy.alpha),
                Some(false),
            );
        }
        "lb_kind_lowercase" if x.services(1) => {
            // "unknown [dr] routing method", then "no forwarding method set, setting default
            // NAT": keepalived compares case-sensitively.
            x.eq(
                "forwarding method",
                l.services[0].dests.first().map(|d| d.method),
                Some(ForwardMethod::Masq),
            );
        }
        "dr_port_reset" | "tun_port_reset" if x.services(1) => {
            // Unless NAT, the real server takes the virtual server's port.
            x.eq(
                "real server port",
                l.services[0].dests.first().map(|d| d.port),
                Some(80),
            );
        }
        "quorum_above_weight" if x.services(1) => {
            // "quorum exceeds total weight of real servers, reducing quorum" (2 + 2).
            x.eq("quorum", l.services[0].policy.quorum, 4);
        }
        "hysteresis_above_quorum" if x.services(1) => {
            x.eq("hysteresis", l.services[0].policy.hysteresis, 0);
        }
        "ops_with_tcp" if x.services(1) => {
            x.eq("ops", l.services[0].config.one_packet, false);
        }
        "duplicate_real_server" if x.services(1) => {
            x.eq("real servers", l.services[0].dests.len(), 1);
        }
        "virtual_server_sorry_only" => {
            // A sorry server is not a real server: "has no real servers - ignoring".
            x.services(0);
        }
        "vrrp_script_unused" => {
            // "vrrp script interval must be greater than 0, setting to 1".
            let i: Vec<Duration> = l.vrrp.scripts.iter().map(|s| s.interval).collect();
            x.eq("vrrp_script interval", i, vec![secs(1)]);
        }
        "vs_without_real_servers" => {
            // "Virtual server ... has no real servers - ignoring".
            x.services(1);
        }
        "nb_get_retry" => {
            let retry: Vec<u32> = l
                .checkers
                .iter()
                .flat_map(|r| r.checkers.iter().map(|c| c.retry))
                .collect();
            // TCP_CHECK does not know nb_get_retry ("Unknown keyword"), HTTP_GET takes it as
            // retry ("deprecated - please use 'retry'").
            x.eq("retry", retry, vec![1, 4]);
        }
        "one_line_url" => {
            let urls: Vec<(String, Vec<(u16, u16)>)> = l
                .checkers
                .iter()
                .flat_map(|r| &r.checkers)
                .filter_map(|c| match &c.spec.kind {
                    CheckerKind::Http(h) => Some(h),
                    _ => None,
                })
                .flat_map(|h| &h.urls)
                .map(|u| (u.path.clone(), u.status_codes.clone()))
                .collect();
            // keepalived reads `path / status_code 200` as one line: path takes "/" and ignores
            // the rest (`status_code 999` there is not reported), so the codes stay 200-299.
            x.eq("urls", urls, vec![("/".to_string(), vec![])]);
        }
        "sorry_server" if x.services(1) => {
            let p = &l.services[0].policy;
            x.eq(
                "sorry server",
                p.sorry_server.as_ref().map(|d| (d.addr, d.port)),
                Some((ip("10.20.9.9"), 80)),
            );
            x.eq("sorry_server_inhibit", p.sorry_server_inhibit, true);
            x.eq("quorum", p.quorum, 2);
            x.eq("hysteresis", p.hysteresis, 1);
        }
        "fwmark_v4_v6" => {
            let ids: Vec<ServiceId> = l.services.iter().map(|s| s.config.id).collect();
            x.eq(
                "services",
                ids,
                vec![
                    ServiceId::Fwmark {
                        mark: 1,
                        ipv6: false,
                    },
                    ServiceId::Fwmark {
                        mark: 2,
                        ipv6: true,
                    },
                ],
            );
        }
        "vs_group" => {
            // 10.20.0.1-3 port 80 and fwmark 7.
            x.services(4);
        }
        "variables" if x.services(1) => {
            x.eq(
                "service",
                l.services[0].config.id,
                ServiceId::Tcp {
                    addr: ip("10.20.0.1"),
                    port: 80,
                },
            );
        }
        "variables_multiline" if x.services(1) => {
            let w: Vec<u32> = l.services[0].dests.iter().map(|d| d.weight).collect();
            x.eq("weights", w, vec![1, 2]);
        }
        "seq" if x.services(1) => {
            let w: Vec<u32> = l.services[0].dests.iter().map(|d| d.weight).collect();
            x.eq("weights", w, vec![1, 2, 3]);
        }
        "seq_hex_step" if x.services(1) => {
            let a: Vec<IpAddr> = l.services[0].dests.iter().map(|d| d.addr).collect();
            x.eq(
                "real servers",
                a,
                vec![ip("fd00::10"), ip("fd00::20"), ip("fd00::30")],
            );
        }
        "seq_two_on_a_line" if x.services(1) => {
            let a: Vec<IpAddr> = l.services[0].dests.iter().map(|d| d.addr).collect();
            x.eq(
                "real servers",
                a,
                ["10.20.1.1", "10.20.1.2", "10.20.2.1", "10.20.2.2"]
                    .map(ip)
                    .to_vec(),
            );
        }
        "lst" if x.services(1) => {
            let w: Vec<u32> = l.services[0].dests.iter().map(|d| d.weight).collect();
            x.eq("weights", w, vec![5, 7]);
        }
        "include_braces" => {
            x.eq(
                "router_id",
                l.global.router_id.as_deref(),
                Some("FROM_INCLUDE"),
            );
            x.services(1);
        }
        "variables_nested" => {
            let t: Vec<Duration> = l
                .checkers
                .iter()
                .flat_map(|r| r.checkers.iter().map(|c| c.connect_timeout))
                .collect();
            x.eq("connect_timeout", t, vec![secs(2), secs(2)]);
        }
        "conditionals" => {
            x.eq("router_id", l.global.router_id.as_deref(), Some("APPLIED"));
        }
        "include_glob" => {
            x.eq(
                "router_id",
                l.global.router_id.as_deref(),
                Some("FROM_INCLUDE"),
            );
            x.services(1);
        }
        "vrrp_defaults" if x.instances(2) => {
            let v4 = &l.vrrp.instances[0];
            // vrrp_data.c / keepalived.conf(5): priority 100, advert_int 1 s, preempt,
            // version 2 but 3 for IPv6 instances, BACKUP.
            x.eq("priority", v4.priority, 100);
            x.eq("advert_int", v4.advert_int, secs(1));
            x.eq("nopreempt", v4.nopreempt, false);
            x.eq("version", v4.version, Some(2));
            x.eq(
                "state MASTER",
                v4.state == Some(rvs_keepalived::vrrp::VrrpState::Master),
                false,
            );
            x.eq("IPv6 version", l.vrrp.instances[1].version, Some(3));
        }
        "master_without_priority" | "nopreempt_master" if x.instances(1) => {
            // vrrp.c: no priority -> 255 (address owner) for state MASTER, else 100; an owner
            // cannot be nopreempt.
            x.eq("priority", l.vrrp.instances[0].priority, 255);
            x.eq("nopreempt", l.vrrp.instances[0].nopreempt, false);
        }
        "nopreempt_master_priority" if x.instances(1) => {
            // "nopreempt will not work with initial state MASTER - clearing".
            x.eq("nopreempt", l.vrrp.instances[0].nopreempt, false);
        }
        "priority_255_without_state" if x.instances(1) => {
            // vrrp.c: no state -> MASTER for the address owner.
            x.eq(
                "state",
                l.vrrp.instances[0].state,
                Some(rvs_keepalived::vrrp::VrrpState::Master),
            );
        }
        "state_slave" if x.instances(1) => {
            // "unknown state 'SLAVE', defaulting to BACKUP".
            x.eq(
                "state MASTER",
                l.vrrp.instances[0].state == Some(rvs_keepalived::vrrp::VrrpState::Master),
                false,
            );
        }
        "priority_out_of_range" if x.instances(1) => {
            // "Priority not valid! must be between 1 & 255. Using default 100".
            x.eq("priority", l.vrrp.instances[0].priority, 100);
        }
        "vrrp_full" if x.instances(2) => {
            let i = &l.vrrp.instances[0];
            x.eq("priority", i.priority, 150);
            x.eq("advert_int", i.advert_int, secs(2));
            x.eq(
                "unicast_peer",
                i.unicast_peer.clone(),
                vec![ip("10.30.0.2")],
            );
            x.eq("track_script", i.track_script.len(), 1);
            x.eq("sync groups", l.vrrp.sync_groups.len(), 1);
        }
        "vrrp_strict_auth" if x.instances(1) => {
            // vrrp_strict: "authentication is not allowed - removing".
            x.eq(
                "authentication",
                l.vrrp.instances[0].authentication.is_some(),
                false,
            );
        }
        "same_vrid_v4_v6" => {
            x.instances(2);
        }
        "vrid_out_of_range" => {
            // keepalived drops the instance with the bad VRID and runs the other.
            x.instances(1);
        }
        _ => {}
    }
    x.problems
}

/// A tiny deterministic generator (64-bit LCG, fixed seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// One mutation the generator may apply to a valid file: its name, the section it goes into,
/// and the line(s) it adds.
const MUTATIONS: &[(&str, &str, &str)] = &[
    ("none", "vs", ""),
    ("vs_unknown_keyword", "vs", "no_such_keyword 1"),
    ("vs_bad_delay_loop", "vs", "delay_loop abc"),
    ("vs_negative_delay_loop", "vs", "delay_loop -5"),
    ("vs_bad_lb_kind", "vs", "lb_kind XYZ"),
    ("vs_bad_protocol", "vs", "protocol ICMP"),
    ("vs_quorum_zero", "vs", "quorum 0"),
    (
        "vs_persistence_granularity",
        "vs",
        "persistence_granularity 255.255.255.0",
    ),
    (
        "vs_bad_granularity",
        "vs",
        "persistence_granularity 255.0.255.0",
    ),
    ("vs_virtualhost", "vs", "virtualhost www.example.com"),
    ("vs_ha_suspend", "vs", "ha_suspend"),
    ("vs_lvs_sched_flags", "vs", "lvs_sched sh\n    sh-port"),
    ("rs_weight_zero", "rs", "weight 0"),
    ("rs_weight_huge", "rs", "weight 70000"),
    ("rs_bad_weight", "rs", "weight abc"),
    ("rs_inhibit", "rs", "inhibit_on_failure"),
    (
        "rs_uthreshold",
        "rs",
        "uthreshold 100\n        lthreshold 10",
    ),
    ("rs_unknown_keyword", "rs", "no_such_keyword"),
    ("ck_bad_connect_port", "ck", "connect_port 70000"),
    ("ck_connect_ip", "ck", "connect_ip 10.20.5.5"),
    ("ck_bad_connect_ip", "ck", "connect_ip 10.20.5.300"),
    ("ck_retry", "ck", "retry 5"),
    ("ck_fractional_timeout", "ck", "connect_timeout 1.5"),
    ("ck_warmup", "ck", "warmup 2"),
    ("ck_unknown_keyword", "ck", "no_such_keyword 2"),
    ("vi_unknown_keyword", "vi", "no_such_keyword"),
    ("vi_priority_zero", "vi", "priority 0"),
    ("vi_priority_255", "vi", "priority 255"),
    ("vi_bad_advert_int", "vi", "advert_int abc"),
    ("vi_fractional_advert_int", "vi", "advert_int 0.5"),
    ("vi_preempt_delay", "vi", "preempt_delay 10"),
    ("vi_garp_master_delay", "vi", "garp_master_delay 3"),
    ("vi_version_3", "vi", "version 3"),
    ("vi_version_4", "vi", "version 4"),
    ("vi_bad_state", "vi", "state PRIMARY"),
    ("vi_dont_track_primary", "vi", "dont_track_primary"),
    ("gd_router_id", "gd", "router_id GEN"),
    ("gd_unknown_keyword", "gd", "no_such_global 1"),
    ("gd_vrrp_version_3", "gd", "vrrp_version 3"),
    ("gd_bad_vrrp_version", "gd", "vrrp_version 9"),
    ("gd_smtp_connect_timeout", "gd", "smtp_connect_timeout 30"),
    ("gd_lvs_sync_daemon", "gd", "lvs_sync_daemon eth0 VG id 5"),
    (
        "gd_lvs_timeouts",
        "gd",
        "lvs_timeouts tcp 900 tcpfin 120 udp 300",
    ),
    ("gd_bad_smtp_server", "gd", "smtp_server 10.0.0.300"),
    (
        "gd_vrrp_garp_master_delay",
        "gd",
        "vrrp_garp_master_delay 10",
    ),
    ("gd_script_security", "gd", "enable_script_security"),
    ("vs_sorry_server", "vs", "sorry_server 10.42.0.9 80"),
    ("vs_bad_sorry_server", "vs", "sorry_server 10.42.0.300 80"),
    ("vs_inhibit_on_failure", "vs", "inhibit_on_failure"),
    ("vs_persistence_engine", "vs", "persistence_engine sip"),
    ("vs_tun_gue_without_port", "vs", "lvs_method TUN type gue"),
    ("vs_tun_gre", "vs", "lvs_method TUN type gre"),
    ("vs_sh_port_with_rr", "vs", "lvs_sched rr\n    sh-port"),
    ("vs_ip_family_on_address", "vs", "ip_family inet6"),
    ("vs_quorum_up_script", "vs", "quorum_up /bin/true"),
    ("vs_smtp_alert", "vs", "smtp_alert"),
    ("vs_bad_retry", "vs", "retry -1"),
    ("vs_warmup_zero", "vs", "warmup 0"),
    ("rs_notify_up_script", "rs", "notify_up /bin/true"),
    ("rs_lvs_method_dr", "rs", "lvs_method DR"),
    ("rs_bad_lvs_method", "rs", "lvs_method FULLNAT"),
    ("rs_alpha_no_arg", "rs", "alpha"),
    ("ck_bindto", "ck", "bindto 10.42.0.1"),
    ("ck_bind_port", "ck", "bind_port 70000"),
    ("ck_fwmark", "ck", "fwmark 5"),
    ("ck_delay_loop", "ck", "delay_loop 3"),
    ("ck_bad_delay_before_retry", "ck", "delay_before_retry xyz"),
    (
        "vi_unicast_peer",
        "vi",
        "unicast_peer {\n        10.43.0.2\n    }",
    ),
    (
        "vi_auth_ah",
        "vi",
        "authentication {\n        auth_type AH\n        auth_pass secret\n    }",
    ),
    (
        "vi_auth_bad_type",
        "vi",
        "authentication {\n        auth_type MD5\n        auth_pass secret\n    }",
    ),
    (
        "vi_track_undefined_script",
        "vi",
        "track_script {\n        no_such_script\n    }",
    ),
    (
        "vi_bad_vip",
        "vi",
        "virtual_ipaddress_excluded {\n        10.43.0.300\n    }",
    ),
    (
        "vi_vip_ipv6_excluded",
        "vi",
        "virtual_ipaddress_excluded {\n        fd00::43/64\n    }",
    ),
    ("vi_notify_master_script", "vi", "notify_master /bin/true"),
    (
        "vi_garp_refresh",
        "vi",
        "garp_master_refresh 60\n    garp_master_refresh_repeat 2",
    ),
    ("vi_nopreempt", "vi", "nopreempt"),
    ("vs_delay_loop_zero", "vs", "delay_loop 0"),
    ("vs_flag_1_with_rr", "vs", "lvs_sched rr\n    flag-1"),
    ("vs_mh_port_with_sh", "vs", "lvs_sched sh\n    mh-port"),
    ("vs_hysteresis", "vs", "quorum 2\n    hysteresis 1"),
    (
        "vs_quoted_virtualhost",
        "vs",
        "virtualhost \"  www.example.com  \"",
    ),
    (
        "rs_lthreshold_above",
        "rs",
        "uthreshold 10\n        lthreshold 100",
    ),
    ("ck_connect_timeout_zero", "ck", "connect_timeout 0"),
    (
        "ck_delay_loop_bindto",
        "ck",
        "delay_loop 2\n            bindto 10.42.0.1",
    ),
    ("vi_advert_int_zero", "vi", "advert_int 0"),
    (
        "vi_v3_fractional_advert_int",
        "vi",
        "version 3\n    advert_int 0.5",
    ),
    ("vi_use_vmac", "vi", "use_vmac"),
    ("vi_garp_master_repeat_zero", "vi", "garp_master_repeat 0"),
    ("vi_preempt_delay_over", "vi", "preempt_delay 2000"),
    ("gd_vrrp_strict", "gd", "vrrp_strict"),
    ("gd_quoted_router_id", "gd", "router_id \"a b\""),
    (
        "gd_notification_email",
        "gd",
        "notification_email {\n        ops@example.com\n    }",
    ),
    ("vs_lb_algo_no_arg", "vs", "lb_algo"),
    ("vs_quorum_no_arg", "vs", "quorum"),
    ("rs_weight_no_arg", "rs", "weight"),
    ("ck_connect_port_no_arg", "ck", "connect_port"),
    ("vi_priority_no_arg", "vi", "priority"),
    ("vi_advert_int_no_arg", "vi", "advert_int"),
    ("gd_vrrp_version_no_arg", "gd", "vrrp_version"),
    ("gd_router_id_no_arg", "gd", "router_id"),
];

/// Generated file `n`: a valid base (random names, addresses, schedulers, checkers) plus at most
/// one mutation. Returns (mutation name, text).
fn generate(n: usize, rng: &mut Rng, iface: &str) -> (&'static str, String) {
    // Round robin, so every mutation is in at least two of the 200 files.
    let (mutation, section, line) = MUTATIONS[n % MUTATIONS.len()];
    let add = |s: &str, indent: &str| -> String {
        if s == section && !line.is_empty() {
            format!("{indent}{line}\n")
        } else {
            String::new()
        }
    };
    let mut text = String::new();
    text.push_str("global_defs {\n");
    text.push_str(&format!("    router_id R{}\n", rng.next() % 100));
    text.push_str(&add("gd", "    "));
    text.push_str("}\n");
    let sched = *rng.pick(&["rr", "wrr", "lc", "wlc", "sh", "mh", "dh", "sed", "nq"]);
    let kind = *rng.pick(&["NAT", "DR", "TUN"]);
    let proto = *rng.pick(&["TCP", "UDP"]);
    let vip = format!("10.40.{}.{}", rng.next() % 250, 1 + rng.next() % 250);
    let port = *rng.pick(&[80u16, 443, 8080, 53]);
    text.push_str(&format!("virtual_server {vip} {port} {{\n"));
    text.push_str(&format!("    delay_loop {}\n", 1 + rng.next() % 30));
    text.push_str(&format!("    lb_algo {sched}\n    lb_kind {kind}\n"));
    text.push_str(&format!("    protocol {proto}\n"));
    if rng.next() % 3 == 0 {
        text.push_str(&format!(
            "    persistence_timeout {}\n",
            1 + rng.next() % 600
        ));
    }
    text.push_str(&add("vs", "    "));
    let servers = 1 + rng.next() % 3;
    for n in 0..servers {
        text.push_str(&format!("    real_server 10.41.0.{} {port} {{\n", n + 1));
        text.push_str(&format!("        weight {}\n", 1 + rng.next() % 10));
        if n == 0 {
            text.push_str(&add("rs", "        "));
        }
        let checker = *rng.pick(&["TCP_CHECK", "HTTP_GET", "none"]);
        match checker {
            "none" if !(n == 0 && section == "ck") => {}
            "HTTP_GET" => {
                text.push_str("        HTTP_GET {\n            url {\n                path /health\n                status_code 200\n            }\n");
                text.push_str(&format!(
                    "            connect_timeout {}\n",
                    1 + rng.next() % 5
                ));
                if n == 0 {
                    text.push_str(&add("ck", "            "));
                }
                text.push_str("        }\n");
            }
            _ => {
                text.push_str("        TCP_CHECK {\n");
                text.push_str(&format!(
                    "            connect_timeout {}\n",
                    1 + rng.next() % 5
                ));
                if n == 0 {
                    text.push_str(&add("ck", "            "));
                }
                text.push_str("        }\n");
            }
        }
        text.push_str("    }\n");
    }
    text.push_str("}\n");
    if rng.next() % 2 == 0 || section == "vi" {
        text.push_str("vrrp_instance VG {\n");
        text.push_str(&format!("    interface {iface}\n"));
        text.push_str(&format!("    virtual_router_id {}\n", 1 + rng.next() % 255));
        text.push_str(&format!("    priority {}\n", 1 + rng.next() % 254));
        text.push_str(&format!("    advert_int {}\n", 1 + rng.next() % 5));
        text.push_str(&format!("    state {}\n", rng.pick(&["MASTER", "BACKUP"])));
        text.push_str(&add("vi", "    "));
        text.push_str(&format!(
            "    virtual_ipaddress {{\n        192.168.{}.{}/24\n    }}\n}}\n",
            rng.next() % 250,
            1 + rng.next() % 250
        ));
    }
    (mutation, text)
}

/// One file's comparison.
struct Outcome {
    key: String,
    file: PathBuf,
    problems: Vec<String>,
    keepalived: String,
    rvs: String,
}

fn compare(bin: &Path, key: &str, file: &Path, lowering: bool) -> Outcome {
    let (k, k_text) = run_keepalived(bin, file);
    // As `rvsd -t`: the file, then the host checks keepalived -t makes (interfaces, script
    // security, script_user, smtp_server) on this host.
    let (config, mut report) = parse_file(file);
    report.errors.extend(check_host(&config, &SystemHost));
    let r = rvs_verdict(&report);
    let mut problems = Vec::new();
    // keepalived -t exits 5 for some errors that stop its VRRP or checker process at run time
    // (an instance without a valid virtual_router_id): its status cannot tell them from the
    // errors it runs past, so rvs may call an "invalid" file fatal.
    let agree = k == r || (k == Verdict::Invalid && r == Verdict::Fatal);
    if !agree {
        problems.push(format!("verdict: keepalived {k:?}, rvs {r:?}"));
    }
    if k == Verdict::Valid {
        // keepalived knows every keyword of a file it accepts.
        for w in report
            .warnings
            .iter()
            .filter(|w| w.message.contains("unknown keyword"))
        {
            problems.push(format!("keepalived knows it: {}", w.message));
        }
    }
    if lowering && r != Verdict::Fatal && k != Verdict::Fatal {
        let (config, _) = parse_file(file);
        problems.extend(expectations(key, &lower(&config)));
    }
    Outcome {
        key: key.to_string(),
        file: file.to_path_buf(),
        problems,
        keepalived: k_text,
        rvs: format!("{r:?}\n{report}"),
    }
}

fn detail(o: &Outcome) -> String {
    let text = std::fs::read(&o.file).unwrap_or_default();
    format!(
        "=== {} ({})\n{}\n--- file\n{}--- keepalived -t\n{}--- rvs check\n{}",
        o.key,
        o.file.display(),
        o.problems.join("\n"),
        String::from_utf8_lossy(&text),
        o.keepalived,
        o.rvs
    )
}

#[test]
fn keepalived_and_rvs_agree() {
    let bin = common::keepalived();
    let iface = interface();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diff");
    let work = std::env::temp_dir().join(format!("rvs-differential-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(&src, &work, &iface);

    let mut outcomes = Vec::new();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap_or_else(|e| panic!("{}: {e}", work.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    fixtures.sort();
    for f in &fixtures {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        outcomes.push(compare(&bin, &name, f, true));
    }

    let gen_dir = work.join("gen");
    std::fs::create_dir_all(&gen_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(0x5EED_0011);
    for n in 0..GENERATED {
        let (mutation, text) = generate(n, &mut rng, &iface);
        let file = gen_dir.join(format!("gen{n:03}_{mutation}.conf"));
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        outcomes.push(compare(&bin, &format!("gen:{mutation}"), &file, false));
    }

    // Group by key: a key differs when any of its files does.
    let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in &outcomes {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut still_known = Vec::new();
    for (key, list) in &by_key {
        let differing: Vec<&&Outcome> = list.iter().filter(|o| !o.problems.is_empty()).collect();
        match (differing.is_empty(), known.get(key)) {
            (true, Some(_)) => fixed.push(key.to_string()),
            (false, None) => unexpected.extend(differing.iter().map(|o| detail(o))),
            (false, Some(reason)) => {
                let first: Vec<&str> = differing[0]
                    .problems
                    .iter()
                    .take(3)
                    .map(String::as_str)
                    .collect();
                still_known.push(format!("{key}: {reason} [{}]", first.join("; ")));
            }
            (true, None) => {}
        }
    }
    let stale: Vec<&str> = known
        .keys()
        .filter(|k| !by_key.contains_key(*k))
        .copied()
        .collect();
    eprintln!(
        "differential: {} fixtures, {} generated files, {} keys; {} known differences still differ",
        fixtures.len(),
        GENERATED,
        by_key.len(),
        still_known.len()
    );
    for k in &still_known {
        eprintln!("  known: {k}");
    }
    if std::env::var_os("RVS_DIFF_VERBOSE").is_some() {
        for o in outcomes.iter().filter(|o| !o.problems.is_empty()) {
            eprintln!("{}", detail(o));
        }
    }
    let mut failure = String::new();
    if !unexpected.is_empty() {
        failure.push_str(&format!(
            "{} file(s) differ from keepalived and are not in KNOWN_DIFFERENCES:\n{}\n",
            unexpected.len(),
            unexpected.join("\n")
        ));
    }
    if !fixed.is_empty() {
        failure.push_str(&format!(
            "these now agree with keepalived, remove it from KNOWN_DIFFERENCES: {fixed:?}\n"
        ));
    }
    if !stale.is_empty() {
        failure.push_str(&format!(
            "KNOWN_DIFFERENCES names no fixture or generated key, remove it: {stale:?}\n"
        ));
    }
    if failure.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        panic!("{failure}(files kept in {})", work.display());
    }
}
