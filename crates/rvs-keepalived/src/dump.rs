//! `rvsd --dump-conf`: a [`Lowered`] configuration as text, the way rvsd will apply it.
//!
//! The virtual services come first as ipvsadm-save lines (the caller renders them, so they are
//! byte for byte what `rvsadm -S -n` prints for the same table; [`service_views`] gives it the
//! input), then the service policies (quorum, sorry server, alpha/omega), the checkers of each
//! real server with every inherited option resolved, the VRRP scripts, instances and sync groups,
//! and the global settings rvs uses. Every default keepalived applies is written out.

use crate::checker::{CheckerKind, CommonCheck, HttpCheck, UrlCheck};
use crate::lower::{Lowered, RealServerChecks, ResolvedChecker, ServicePolicy};
use crate::model::Script;
use crate::vrrp::{Tracked, VirtualIp, VrrpInstance, VrrpNotify, VrrpScript, VrrpSyncGroup};
use rvs_api::{DestConfig, DestView, ForwardMethod, ServiceId, ServiceView};
use std::fmt::Write as _;
use std::time::Duration;

/// The lowered services as daemon views without traffic (zero counters), for an ipvsadm-save
/// renderer such as `rvsadm::render::save`.
pub fn service_views(lowered: &Lowered) -> Vec<ServiceView> {
    lowered
        .services
        .iter()
        .map(|s| ServiceView {
            config: s.config.clone(),
            stats: Default::default(),
            rates: Default::default(),
            dests: s
                .dests
                .iter()
                .map(|d| DestView {
                    config: d.clone(),
                    active_conns: 0,
                    inactive_conns: 0,
                    persist_conns: 0,
                    stats: Default::default(),
                    rates: Default::default(),
                })
                .collect(),
        })
        .collect()
}

/// The whole dump: `save` is the ipvsadm-save text of [`service_views`] (as `rvsadm -S -n`
/// prints it), the rest is rendered here. Sections are separated by a blank line and start with
/// a `# ` title; within a section, an indented line belongs to the line above it.
pub fn render(lowered: &Lowered, save: &str) -> String {
    let mut out = String::new();
    out.push_str("# virtual services (ipvsadm-save, as `rvsadm -S -n` prints them)\n");
    out.push_str(save);
    if !save.is_empty() && !save.ends_with('\n') {
        out.push('\n');
    }

    out.push_str("\n# service policies\n");
    for s in &lowered.services {
        policy(&mut out, &s.config.id, &s.policy);
    }

    out.push_str("\n# real servers and their checkers\n");
    for rs in &lowered.checkers {
        real_server(&mut out, rs);
    }

    out.push_str("\n# vrrp scripts\n");
    for s in &lowered.vrrp.scripts {
        vrrp_script(&mut out, s);
    }
    out.push_str("\n# vrrp instances\n");
    for i in &lowered.vrrp.instances {
        vrrp_instance(&mut out, i);
    }
    out.push_str("\n# vrrp sync groups\n");
    for g in &lowered.vrrp.sync_groups {
        sync_group(&mut out, g);
    }

    out.push_str("\n# global\n");
    global(&mut out, lowered);
    out
}

/// `TCP 10.0.0.1:80`, `FWM 1`, `FWM 1 IPv6`.
fn service_name(id: &ServiceId) -> String {
    match id {
        ServiceId::Fwmark { mark, ipv6: true } => format!("FWM {mark} IPv6"),
        _ => id.to_string(),
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Seconds, with a fraction only when there is one: `6s`, `0.5s`.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A word as a shell would need it: quoted when empty or when it holds blanks or quotes.
fn word(w: &str) -> String {
    if !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"' || c == '\\')
    {
        return w.to_string();
    }
    format!("'{}'", w.replace('\'', r"'\''"))
}

fn script(out: &mut String, indent: &str, name: &str, s: &Option<Script>) {
    if let Some(s) = s {
        let argv: Vec<String> = s.argv.iter().map(|a| word(a)).collect();
        let _ = writeln!(out, "{indent}{name} {}", argv.join(" "));
    }
}

fn method_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "NAT",
        ForwardMethod::Route => "DR",
        ForwardMethod::Tunnel => "TUN",
        ForwardMethod::Local => "LOCAL",
        ForwardMethod::FullNat => "FULLNAT",
    }
}

fn dest_text(d: &DestConfig) -> String {
    format!(
        "{} {} weight {}",
        d.socket_addr(),
        method_name(d.method),
        d.weight
    )
}

fn policy(out: &mut String, id: &ServiceId, p: &ServicePolicy) {
    let _ = writeln!(
        out,
        "{} quorum {} hysteresis {} alpha {} omega {} ha_suspend {}",
        service_name(id),
        p.quorum,
        p.hysteresis,
        yes(p.alpha),
        yes(p.omega),
        yes(p.ha_suspend)
    );
    if let Some(d) = &p.sorry_server {
        let _ = writeln!(
            out,
            "  sorry_server {} inhibit {}",
            dest_text(d),
            yes(p.sorry_server_inhibit)
        );
    }
    script(out, "  ", "quorum_up", &p.quorum_up);
    script(out, "  ", "quorum_down", &p.quorum_down);
    if let Some(a) = p.smtp_alert {
        let _ = writeln!(out, "  smtp_alert {}", yes(a));
    }
}

fn real_server(out: &mut String, rs: &RealServerChecks) {
    let p = &rs.policy;
    let _ = writeln!(
        out,
        "{} -> {} weight {} inhibit_on_failure {} alpha {} checkers {}",
        service_name(&rs.service),
        rs.dest,
        rs.weight,
        yes(p.inhibit_on_failure),
        yes(p.alpha),
        rs.checkers.len()
    );
    script(out, "  ", "notify_up", &p.notify_up);
    script(out, "  ", "notify_down", &p.notify_down);
    if let Some(a) = p.smtp_alert {
        let _ = writeln!(out, "  smtp_alert {}", yes(a));
    }
    for c in &rs.checkers {
        checker(out, c);
    }
}

fn target(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

fn checker(out: &mut String, c: &ResolvedChecker) {
    let _ = write!(
        out,
        "  {} {} connect_timeout {} retry {} delay_before_retry {} delay_loop {} warmup {}",
        c.spec.kind.keyword(),
        target(c.connect_ip, c.connect_port),
        secs(c.connect_timeout),
        c.retry,
        secs(c.delay_before_retry),
        secs(c.delay_loop),
        secs(c.warmup)
    );
    common_extra(out, &c.spec.common);
    if let (Some(v), CheckerKind::Http(_) | CheckerKind::Ssl(_)) = (&c.virtualhost, &c.spec.kind) {
        let _ = write!(out, " virtualhost {}", word(v));
    }
    out.push('\n');
    match &c.spec.kind {
        CheckerKind::Tcp | CheckerKind::Ping => {}
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => http(out, h),
        CheckerKind::Misc(m) => {
            let argv: Vec<String> = m.command.iter().map(|a| word(a)).collect();
            let _ = write!(out, "    misc_path {}", argv.join(" "));
            if let Some(t) = m.timeout {
                let _ = write!(out, " misc_timeout {}", secs(t));
            }
            if m.dynamic {
                out.push_str(" misc_dynamic");
            }
            if let Some(u) = &m.user {
                let _ = write!(out, " user {}", word(u));
                if let Some(g) = &m.group {
                    let _ = write!(out, " {}", word(g));
                }
            }
            out.push('\n');
        }
        CheckerKind::Dns(d) => {
            let _ = writeln!(out, "    type {} name {}", d.query_type, word(&d.name));
        }
        CheckerKind::Smtp(s) => {
            if let Some(h) = &s.helo_name {
                let _ = writeln!(out, "    helo_name {}", word(h));
            }
            for h in &s.hosts {
                let _ = write!(out, "    host");
                if let Some(ip) = h.connect_ip {
                    let _ = write!(out, " connect_ip {ip}");
                }
                if let Some(p) = h.connect_port {
                    let _ = write!(out, " connect_port {p}");
                }
                if let Some(t) = h.connect_timeout {
                    let _ = write!(out, " connect_timeout {}", secs(t));
                }
                common_extra(out, h);
                out.push('\n');
            }
        }
        CheckerKind::Udp(u) => {
            let _ = write!(out, "    payload {}", hex(&u.payload));
            if u.require_reply {
                let _ = write!(out, " require_reply {}", hex(&u.reply_prefix));
            }
            if let Some(n) = u.min_reply_length {
                let _ = write!(out, " min_reply_length {n}");
            }
            if let Some(n) = u.max_reply_length {
                let _ = write!(out, " max_reply_length {n}");
            }
            out.push('\n');
        }
        CheckerKind::File(f) => {
            let _ = write!(out, "    track_file {}", word(&f.track_file));
            if let Some(w) = f.weight {
                let _ = write!(out, " weight {w}");
            }
            if f.reverse {
                out.push_str(" reverse");
            }
            out.push('\n');
        }
    }
}

/// The common options that have no default to resolve: written only when set.
fn common_extra(out: &mut String, c: &CommonCheck) {
    if let Some(ip) = c.bindto {
        let _ = write!(out, " bindto {ip}");
    }
    if let Some(p) = c.bind_port {
        let _ = write!(out, " bind_port {p}");
    }
    if let Some(i) = &c.bind_if {
        let _ = write!(out, " bind_if {}", word(i));
    }
    if let Some(m) = c.fwmark {
        let _ = write!(out, " fwmark {m}");
    }
    if let Some(a) = c.alpha {
        let _ = write!(out, " alpha {}", yes(a));
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn http(out: &mut String, h: &HttpCheck) {
    let mut flags = Vec::new();
    if let Some(p) = &h.http_protocol {
        flags.push(format!("http_protocol {p}"));
    }
    if h.enable_sni {
        flags.push("enable_sni".into());
    }
    if h.tls_compliant {
        flags.push("tls_compliant".into());
    }
    if h.fast_recovery {
        flags.push("fast_recovery".into());
    }
    if !flags.is_empty() {
        let _ = writeln!(out, "    {}", flags.join(" "));
    }
    for u in &h.urls {
        url(out, u);
    }
}

fn url(out: &mut String, u: &UrlCheck) {
    let codes: Vec<String> = if u.status_codes.is_empty() {
        vec!["200-299".into()]
    } else {
        u.status_codes
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect()
    };
    let _ = write!(
        out,
        "    url {} status_code {}",
        word(&u.path),
        codes.join(",")
    );
    if let Some(d) = &u.digest {
        let _ = write!(out, " digest {d}");
    }
    if let Some(v) = &u.virtualhost {
        let _ = write!(out, " virtualhost {}", word(v));
    }
    if let Some(r) = &u.regex {
        let _ = write!(out, " regex {}", word(r));
        if u.regex_no_match {
            out.push_str(" regex_no_match");
        }
        if !u.regex_options.is_empty() {
            let _ = write!(out, " regex_options {}", u.regex_options.join(","));
        }
        if let Some(n) = u.regex_min_offset {
            let _ = write!(out, " regex_min_offset {n}");
        }
        if let Some(n) = u.regex_max_offset {
            let _ = write!(out, " regex_max_offset {n}");
        }
    }
    out.push('\n');
}

fn vrrp_script(out: &mut String, s: &VrrpScript) {
    let argv: Vec<String> = s.script.iter().map(|a| word(a)).collect();
    let _ = write!(
        out,
        "{} interval {} weight {}{} rise {} fall {}",
        s.name,
        secs(s.interval),
        s.weight,
        if s.reverse { " reverse" } else { "" },
        s.rise,
        s.fall
    );
    if let Some(t) = s.timeout {
        let _ = write!(out, " timeout {}", secs(t));
    }
    if let Some(u) = &s.user {
        let _ = write!(out, " user {}", word(u));
    }
    if s.init_fail {
        out.push_str(" init_fail");
    }
    let _ = writeln!(out, "\n  script {}", argv.join(" "));
}

fn vip(v: &VirtualIp) -> String {
    let mut s = format!("{}/{}", v.addr, v.prefix);
    if let Some(b) = v.broadcast {
        let _ = write!(s, " brd {b}");
    }
    if let Some(d) = &v.dev {
        let _ = write!(s, " dev {}", word(d));
    }
    if let Some(sc) = &v.scope {
        let _ = write!(s, " scope {}", word(sc));
    }
    if let Some(l) = &v.label {
        let _ = write!(s, " label {}", word(l));
    }
    for o in &v.options {
        let _ = write!(s, " {}", word(o));
    }
    s
}

fn tracked(out: &mut String, indent: &str, name: &str, list: &[Tracked]) {
    for t in list {
        let _ = write!(out, "{indent}{name} {}", word(&t.name));
        if let Some(w) = t.weight {
            let _ = write!(out, " weight {w}");
        }
        if t.reverse {
            out.push_str(" reverse");
        }
        out.push('\n');
    }
}

fn notify(out: &mut String, n: &VrrpNotify) {
    script(out, "  ", "notify_master", &n.master);
    script(out, "  ", "notify_backup", &n.backup);
    script(out, "  ", "notify_fault", &n.fault);
    script(out, "  ", "notify_stop", &n.stop);
    script(out, "  ", "notify", &n.any);
}

fn vrrp_instance(out: &mut String, i: &VrrpInstance) {
    let state = match i.state {
        Some(crate::vrrp::VrrpState::Master) => "MASTER",
        Some(crate::vrrp::VrrpState::Backup) => "BACKUP",
        None => "BACKUP (default)",
    };
    let _ = writeln!(
        out,
        "{} interface {} virtual_router_id {} version {} state {} priority {} advert_int {} preempt {}",
        i.name,
        word(&i.interface),
        i.virtual_router_id,
        i.version.unwrap_or(2),
        state,
        i.priority,
        secs(i.advert_int),
        yes(!i.nopreempt)
    );
    if let Some(d) = i.preempt_delay {
        let _ = writeln!(out, "  preempt_delay {}", secs(d));
    }
    match &i.authentication {
        Some(a) => {
            let _ = writeln!(
                out,
                "  authentication {} {}",
                word(&a.auth_type),
                word(&a.auth_pass)
            );
        }
        None => out.push_str("  authentication none\n"),
    }
    for v in &i.virtual_ipaddress {
        let _ = writeln!(out, "  virtual_ipaddress {}", vip(v));
    }
    for v in &i.virtual_ipaddress_excluded {
        let _ = writeln!(out, "  virtual_ipaddress_excluded {}", vip(v));
    }
    if let Some(ip) = i.unicast_src_ip {
        let _ = writeln!(out, "  unicast_src_ip {ip}");
    }
    if !i.unicast_peer.is_empty() {
        let peers: Vec<String> = i.unicast_peer.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(out, "  unicast_peer {}", peers.join(" "));
    }
    if let Some(ip) = i.mcast_src_ip {
        let _ = writeln!(out, "  mcast_src_ip {ip}");
    }
    tracked(out, "  ", "track_interface", &i.track_interface);
    tracked(out, "  ", "track_script", &i.track_script);
    let garp: [(&str, Option<String>); 4] = [
        ("garp_master_delay", i.garp_master_delay.map(secs)),
        (
            "garp_master_repeat",
            i.garp_master_repeat.map(|n| n.to_string()),
        ),
        ("garp_master_refresh", i.garp_master_refresh.map(secs)),
        (
            "garp_master_refresh_repeat",
            i.garp_master_refresh_repeat.map(|n| n.to_string()),
        ),
    ];
    for (k, v) in garp {
        if let Some(v) = v {
            let _ = writeln!(out, "  {k} {v}");
        }
    }
    notify(out, &i.notify);
    if i.smtp_alert {
        out.push_str("  smtp_alert yes\n");
    }
    for s in &i.other {
        let mut line = s.keyword.clone();
        for a in &s.args {
            line.push(' ');
            line.push_str(&word(a));
        }
        let _ = writeln!(out, "  {line} (not interpreted)");
    }
}

fn sync_group(out: &mut String, g: &VrrpSyncGroup) {
    let _ = writeln!(out, "{} group {}", g.name, g.group.join(" "));
    notify(out, &g.notify);
    tracked(out, "  ", "track_interface", &g.track_interface);
    tracked(out, "  ", "track_script", &g.track_script);
    if g.smtp_alert {
        out.push_str("  smtp_alert yes\n");
    }
}

fn global(out: &mut String, lowered: &Lowered) {
    let g = &lowered.global;
    if let Some(r) = &g.router_id {
        let _ = writeln!(out, "router_id {}", word(r));
    }
    if let Some(d) = &g.lvs_sync_daemon {
        let _ = write!(out, "lvs_sync_daemon {}", word(&d.interface));
        if let Some(i) = &d.vrrp_instance {
            let _ = write!(out, " {}", word(i));
        }
        if let Some(n) = d.sync_id {
            let _ = write!(out, " id {n}");
        }
        if let Some(n) = d.maxlen {
            let _ = write!(out, " maxlen {n}");
        }
        if let Some(n) = d.port {
            let _ = write!(out, " port {n}");
        }
        if let Some(n) = d.ttl {
            let _ = write!(out, " ttl {n}");
        }
        if let Some(ip) = d.group {
            let _ = write!(out, " group {ip}");
        }
        out.push('\n');
    }
    if let Some(t) = &g.lvs_timeouts {
        let v = |o: Option<u32>| o.map_or("-".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "lvs_timeouts tcp {} tcpfin {} udp {}",
            v(t.tcp),
            v(t.tcpfin),
            v(t.udp)
        );
    }
    if let Some(s) = &g.smtp_server {
        let _ = writeln!(out, "smtp_server {} {}", word(&s.host), s.port);
    }
    if !g.notification_email.is_empty() {
        let _ = writeln!(out, "notification_email {}", g.notification_email.join(" "));
    }
    if let Some(f) = &g.notification_email_from {
        let _ = writeln!(out, "notification_email_from {}", word(f));
    }
    if let Some((u, grp)) = &g.script_user {
        let _ = writeln!(
            out,
            "script_user {}{}",
            word(u),
            grp.as_deref()
                .map(|g| format!(" {}", word(g)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "enable_script_security {}",
        yes(g.enable_script_security)
    );
    for t in &lowered.track_files {
        let _ = write!(
            out,
            "track_file {} file {}",
            word(&t.name),
            t.file.as_deref().map_or("-".to_string(), word)
        );
        if let Some(w) = t.weight {
            let _ = write!(out, " weight {w}");
        }
        if t.reverse {
            out.push_str(" reverse");
        }
        if let Some(v) = t.init_file {
            let _ = write!(out, " init_file {v}");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_are_written_out() {
        let text = "virtual_server 10.0.0.1 80 {
  protocol TCP
  real_server 10.0.1.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n";
        // No lb_algo / lb_kind: keepalived reports both and defaults them, as rvsd runs it.
        let loaded =
            crate::load_str_lenient(text, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"));
        let lowered = crate::lower(&loaded.config);
        let out = render(&lowered, "-A -t 10.0.0.1:80 -s wlc\n");
        assert!(
            out.contains("TCP 10.0.0.1:80 quorum 1 hysteresis 0"),
            "{out}"
        );
        assert!(
            out.contains("  TCP_CHECK 10.0.1.1:80 connect_timeout 5s retry "),
            "{out}"
        );
        assert_eq!(service_views(&lowered).len(), 1);
    }

    #[test]
    fn words_are_quoted_when_needed() {
        assert_eq!(word("a"), "a");
        assert_eq!(word(""), "''");
        assert_eq!(word("a b"), "'a b'");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
    }
}
