//! The seeds' files, a file using every keyword, and include handling.

use rvs_api::{ForwardMethod, ServiceId, TunnelChecksum, TunnelKind};
use rvs_keepalived::model::{LvsMethod, VsTarget};
use rvs_keepalived::vrrp::VrrpState;
use rvs_keepalived::{check, load, load_lenient, lower, CheckerKind, Lowered, MAX_INCLUDE_DEPTH};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn seed_002_nat_loads_and_lowers() {
    assert!(load(&data("seed002.conf")).is_err());
    let loaded = load_lenient(&data("seed002.conf")).unwrap_or_else(|e| panic!("{e}"));
    // The seed misspells smtp_alert and uses nb_get_retry where keepalived 2.2 no longer knows
    // it; keepalived -t fails on these and keepalived carries on, so does rvsd.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let got: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    let want = [
        "seed002.conf:15: unknown keyword 'smtp_alter' in vrrp_sync_group",
        "seed002.conf:60: unknown keyword 'nb_get_retry' in TCP_CHECK",
        "seed002.conf:75: nb_get_retry is deprecated - please use 'retry'",
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.ends_with(w), "{g} vs {w}");
    }

    let c = &loaded.config;
    assert_eq!(c.global.router_id.as_deref(), Some("DEMO"));
    assert_eq!(c.global.notification_email, ["admin@higkoo.org"]);
    assert_eq!(
        c.global
            .smtp_server
            .as_ref()
            .map(|s| (s.host.as_str(), s.port)),
        Some(("127.0.0.1", 25))
    );
    assert_eq!(c.vrrp_sync_groups[0].group, ["LVS_WAN", "LVS_LAN"]);
    assert_eq!(c.vrrp_instances.len(), 2);
    let wan = &c.vrrp_instances[0];
    assert_eq!(
        (
            wan.state,
            wan.interface.as_str(),
            wan.virtual_router_id,
            wan.priority
        ),
        (Some(VrrpState::Master), "eth0", 100, 100)
    );
    assert_eq!(
        wan.authentication.as_ref().map(|a| a.auth_pass.as_str()),
        Some("1c7f545a")
    );
    assert_eq!(wan.virtual_ipaddress[0].addr, ip("192.168.1.253"));
    assert_eq!(
        c.vrrp_instances[1].virtual_ipaddress[0].addr,
        ip("10.10.10.254")
    );

    let low = lower(c);
    assert_eq!(low.services.len(), 1);
    let svc = &low.services[0];
    assert_eq!(
        svc.config.id,
        ServiceId::Tcp {
            addr: ip("192.168.1.253"),
            port: 80
        }
    );
    assert_eq!(svc.config.scheduler, "wrr");
    assert_eq!(svc.config.persistence, Some(60));
    assert_eq!(svc.dests.len(), 2);
    assert!(svc
        .dests
        .iter()
        .all(|d| d.method == ForwardMethod::Masq && d.weight == 1));
    assert_eq!(low.checkers.len(), 2);
    let tcp = &low.checkers[0];
    assert!(tcp.policy.inhibit_on_failure);
    let ck = &tcp.checkers[0];
    assert_eq!(ck.spec.kind, CheckerKind::Tcp);
    assert_eq!(
        (ck.connect_ip, ck.connect_port, ck.retry),
        (ip("10.10.10.11"), 80, 1),
        "TCP_CHECK's nb_get_retry is skipped: keepalived's default"
    );
    assert_eq!(ck.connect_timeout, Duration::from_secs(10));
    assert_eq!(ck.delay_before_retry, Duration::from_secs(3));
    assert_eq!(
        ck.delay_loop,
        Duration::from_secs(6),
        "inherited from the virtual_server"
    );
    let CheckerKind::Http(h) = &low.checkers[1].checkers[0].spec.kind else {
        panic!("HTTP_GET expected")
    };
    assert_eq!(
        h.urls[0].digest.as_deref(),
        Some("3ef1267da49c9567b0243dc4be39653a")
    );
    assert_eq!(low.vrrp.instances[0].version, Some(2));
}

#[test]
fn seed_003_dr_loads() {
    let loaded = load(&data("seed003_dr.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let low = lower(&loaded.config);
    assert!(low.services[0]
        .dests
        .iter()
        .all(|d| d.method == ForwardMethod::Route));
    let vip = &low.vrrp.instances[0].virtual_ipaddress[0];
    assert_eq!(
        (vip.prefix, vip.dev.as_deref(), vip.label.as_deref()),
        (24, Some("eth0"), Some("eth0:1"))
    );
    let CheckerKind::Http(h) = &low.checkers[0].checkers[0].spec.kind else {
        panic!()
    };
    assert_eq!(h.urls[0].status_codes, [(200, 200)]);
}

#[test]
fn every_keyword() {
    let path = data("every_keyword.conf");
    let report = check(&path);
    // What keepalived 2.2.7 also reports for this file (and fixes up or skips).
    let got: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let want = [
        "every_keyword.conf:176: nb_get_retry is deprecated - please use 'retry'",
        "every_keyword.conf:247: fwmark virtual_server group WEB, real_server 10.10.10.15 80 has port specified - port will be ignored",
        "every_keyword.conf:247: virtual_server group WEB (port 8080) and real_server 10.10.10.15 80 ports don't match",
        "every_keyword.conf:45: vrrp_instance VI_1: VRRPv2 advertisement interval must be an integer - rounding",
        "every_keyword.conf:45: vrrp_instance VI_1: strict mode does not support authentication - ignoring",
        "every_keyword.conf:45: vrrp_instance VI_1: ignoring track_interface eth0 since own interface",
        "every_keyword.conf:89: vrrp_sync_group G1: has only 1 virtual router - this probably isn't what you want",
    ];
    assert_eq!(got.len(), want.len(), "{report}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.ends_with(w), "{g} vs {w}");
    }
    assert_eq!(report.warnings, [], "{report}");
    let c = load_lenient(&path).unwrap().config;

    let g = &c.global;
    assert_eq!(g.notification_email.len(), 2);
    assert_eq!(g.smtp_server.as_ref().map(|s| s.port), Some(2525));
    assert_eq!(g.smtp_connect_timeout, Some(Duration::from_secs(30)));
    let sd = g.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (
            sd.interface.as_str(),
            sd.vrrp_instance.as_deref(),
            sd.sync_id,
            sd.group
        ),
        ("eth1", Some("VI_1"), Some(7), Some(ip("224.0.0.81")))
    );
    assert_eq!(g.lvs_timeouts.as_ref().and_then(|t| t.tcpfin), Some(120));
    assert_eq!(g.vrrp_version, Some(3));
    assert_eq!(g.script_user, Some(("root".into(), Some("root".into()))));
    assert!(g.enable_script_security);
    assert_eq!(g.other.len(), 2);
    assert_eq!(
        c.ssl.as_ref().and_then(|s| s.key.as_deref()),
        Some("/etc/ssl/client.key")
    );
    assert_eq!(c.track_files[0].weight, Some(2));

    let s = &c.vrrp_scripts[0];
    assert_eq!(s.script, ["/usr/bin/pgrep", "-x", "nginx"]);
    assert_eq!((s.weight, s.rise, s.fall, s.init_fail), (-20, 2, 3, true));
    let i = &c.vrrp_instances[0];
    assert_eq!(
        i.advert_int,
        Duration::from_secs(1),
        "0.5 s rounded up for VRRPv2"
    );
    assert!(i.nopreempt);
    assert_eq!(i.virtual_ipaddress.len(), 2);
    assert_eq!(i.virtual_ipaddress[0].broadcast, Some(ip("192.168.1.255")));
    assert_eq!(i.virtual_ipaddress[0].scope.as_deref(), Some("global"));
    assert_eq!(i.virtual_ipaddress_excluded[0].prefix, 64);
    assert_eq!(i.unicast_peer, [ip("192.168.1.3")]);
    // eth0, the instance's own interface, is tracked anyway: keepalived drops the entry.
    assert_eq!(i.track_interface.len(), 1);
    assert_eq!(i.track_interface[0].weight, Some(-10));
    assert_eq!(i.track_script[0].weight, Some(5));
    assert_eq!(i.notify.master.as_ref().map(|s| s.argv.len()), Some(2));
    assert!(i.notify.stop.is_some() && i.notify.any.is_some());
    assert_eq!(i.garp_master_refresh_repeat, Some(2));
    assert_eq!(i.other[0].keyword, "dont_track_primary");

    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.persistence_timeout,
        Some(360),
        "persistence_timeout without value"
    );
    assert_eq!(
        vs.persistence_granularity,
        Some("255.255.255.0".parse().unwrap())
    );
    assert_eq!(vs.sched_flags.names, ["sh-port", "sh-fallback", "flag-3"]);
    assert!(!vs.sched_flags.hashed, "keepalived sets no flag for hashed");
    assert!(vs.alpha && vs.omega && vs.ha_suspend && vs.inhibit_on_failure);
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    let sorry = vs.sorry_server.as_ref().unwrap();
    assert!(sorry.inhibit);
    assert_eq!(sorry.method, Some(LvsMethod::Dr));

    let low = lower(&c);
    // 1 + 1 fwmark + group: 2 addresses of a range, 1 address, 1 fwmark.
    assert_eq!(low.services.len(), 6);
    let s0 = &low.services[0];
    assert_eq!(s0.config.pe.as_deref(), Some("sip"));
    assert_eq!(s0.config.netmask, Some("255.255.255.0".parse().unwrap()));
    assert_eq!(s0.dests[0].method, ForwardMethod::Route);
    assert_eq!(
        (
            s0.dests[0].weight,
            s0.dests[0].u_threshold,
            s0.dests[0].l_threshold
        ),
        (5, 1000, 100)
    );
    assert_eq!(
        s0.dests[1].weight, 3,
        "virtual_server weight is the default"
    );
    assert_eq!(s0.dests[1].method, ForwardMethod::Masq);
    assert_eq!(
        s0.policy.sorry_server.as_ref().map(|d| d.method),
        Some(ForwardMethod::Route)
    );

    let rs1 = &low.checkers[0];
    assert!(!rs1.policy.inhibit_on_failure && rs1.policy.alpha);
    assert_eq!(
        rs1.policy.notify_up.as_ref().map(|s| s.argv.clone()),
        Some(vec!["/etc/keepalived/rs.sh".to_string(), "up".to_string()])
    );
    let http = &rs1.checkers[0];
    assert_eq!(
        (http.connect_ip, http.connect_port, http.retry),
        (ip("10.10.10.111"), 8080, 5)
    );
    assert_eq!(http.virtualhost.as_deref(), Some("checker.example.com"));
    let CheckerKind::Http(h) = &http.spec.kind else {
        panic!()
    };
    assert_eq!(h.urls[0].status_codes, [(200, 200), (301, 302)]);
    assert_eq!(
        h.urls[0].digest.as_deref(),
        Some("3ef1267da49c9567b0243dc4be39653a")
    );
    assert!(h.urls[0].regex_no_match && h.fast_recovery);
    assert_eq!(http.spec.common.bind_if.as_deref(), Some("eth1"));
    let ssl = &rs1.checkers[1];
    assert_eq!(
        (ssl.connect_port, ssl.retry),
        (443, 4),
        "retry inherited from the real_server"
    );
    assert_eq!(ssl.delay_before_retry, Duration::from_millis(1500));
    assert_eq!(ssl.virtualhost.as_deref(), Some("rs1.example.com"));
    let CheckerKind::Ssl(h) = &ssl.spec.kind else {
        panic!()
    };
    assert!(h.enable_sni);

    let rs2 = &low.checkers[1];
    let kinds: Vec<&str> = rs2.checkers.iter().map(|c| c.spec.kind.keyword()).collect();
    assert_eq!(
        kinds,
        [
            "TCP_CHECK",
            "MISC_CHECK",
            "DNS_CHECK",
            "SMTP_CHECK",
            "UDP_CHECK",
            "PING_CHECK",
            "FILE_CHECK"
        ]
    );
    assert_eq!(
        rs2.checkers[0].retry, 2,
        "retry inherited from the virtual_server"
    );
    assert_eq!(rs2.checkers[0].delay_loop, Duration::from_secs(6));
    let CheckerKind::Misc(m) = &rs2.checkers[1].spec.kind else {
        panic!()
    };
    assert_eq!(
        m.command,
        ["/usr/local/bin/check.sh", "10.10.10.12", "two words"]
    );
    assert!(m.dynamic);
    assert_eq!(m.group.as_deref(), Some("nogroup"));
    let CheckerKind::Dns(d) = &rs2.checkers[2].spec.kind else {
        panic!()
    };
    assert_eq!(
        (d.query_type.as_str(), d.name.as_str()),
        ("A", "www.example.com")
    );
    let CheckerKind::Smtp(sm) = &rs2.checkers[3].spec.kind else {
        panic!()
    };
    assert_eq!(sm.hosts[0].connect_ip, Some(ip("10.10.10.112")));
    let CheckerKind::Udp(u) = &rs2.checkers[4].spec.kind else {
        panic!()
    };
    assert_eq!(
        (
            u.payload.as_slice(),
            u.reply_prefix.as_slice(),
            u.require_reply
        ),
        (&[1u8, 2, 10][..], &[1u8, 2][..], true)
    );
    let CheckerKind::File(f) = &rs2.checkers[6].spec.kind else {
        panic!()
    };
    assert_eq!(
        (f.track_file.as_str(), f.weight, f.reverse),
        ("maint", Some(10), true)
    );

    let fw = &low.services[1];
    assert_eq!(
        fw.config.id,
        ServiceId::Fwmark {
            mark: 5,
            ipv6: false
        }
    );
    let t = fw.dests[0].tunnel.unwrap();
    assert_eq!(
        (t.kind, t.port, t.checksum),
        (TunnelKind::Gue, Some(6080), TunnelChecksum::RemCsum)
    );
    assert_eq!(fw.dests[1].tunnel.map(|t| t.kind), Some(TunnelKind::Gre));
    assert_eq!(fw.dests[0].port, 0);

    let ids: Vec<String> = low.services[2..]
        .iter()
        .map(|s| s.config.id.to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "UDP 192.168.1.250:80",
            "UDP 192.168.1.251:80",
            "UDP 192.168.1.253:8080",
            "FWM 9"
        ]
    );
    assert!(low.services[2].config.one_packet);
    assert_eq!(
        low.vrrp.instances[0].version,
        Some(2),
        "instance version overrides vrrp_version"
    );
    assert!(matches!(c.virtual_servers[2].target, VsTarget::Group(ref g) if g == "WEB"));
    // The whole lowered form serialises and reads back unchanged (for rvsd's status and reload
    // diffing).
    let json = serde_json::to_string(&low).expect("Lowered serialises");
    let back: Lowered = serde_json::from_str(&json).expect("Lowered deserialises");
    assert_eq!(back, low);
}

#[test]
fn includes_globs_relative_and_nested() {
    let loaded = load(&data("inc/main.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.errors.is_empty());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.virtual_servers.len(), 2, "README does not match *.conf");
    let ports: Vec<_> = c.virtual_servers.iter().map(|v| v.target.clone()).collect();
    assert_eq!(
        ports[1],
        VsTarget::Addr {
            addr: ip("192.168.1.253"),
            port: 443
        }
    );
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!(rs.len(), 2);
    assert!(rs[0].span.file.ends_with("inc/nested/rs.conf") && rs[0].span.line == 1);
    assert!(rs[1].span.file.ends_with("inc/nested/deeper.conf"));
    assert_eq!(c.files.len(), 5);
}

#[test]
fn include_cycle_is_an_error() {
    let report = check(&data("cycle/a.conf"));
    assert_eq!(report.errors.len(), 1, "{report}");
    // The include statement of b.conf, line 1, names the file that closes the cycle.
    assert_eq!(
        report.errors[0].to_string(),
        format!(
            "{}:1: include: '{}' includes itself",
            data("cycle/b.conf").display(),
            data("cycle/a.conf").display()
        )
    );
}

#[test]
fn missing_include_names_the_including_line() {
    // keepalived logs "Config files missing" for a plain include and runs (its -t passes).
    let report = check(&data("missing/main.conf"));
    assert_eq!(report.errors.len(), 0, "{report}");
    assert_eq!(report.warnings.len(), 2, "{report}");
    let first = report.warnings[0].to_string();
    assert!(
        first.contains("missing/main.conf:4: include: Config files missing '"),
        "{first}"
    );
    assert!(first.contains("nope.conf"), "{first}");
    assert!(report.warnings[1]
        .to_string()
        .contains("missing/main.conf:5: include: '"));
    assert!(report.warnings[1]
        .to_string()
        .ends_with("none-*.conf' matches no file"));
}

#[test]
fn missing_top_level_file() {
    let report = check(Path::new("/nonexistent/keepalived.conf"));
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0]
        .to_string()
        .starts_with("/nonexistent/keepalived.conf: cannot read: "));
}

#[test]
fn include_depth_is_limited() {
    let dir = std::env::temp_dir().join(format!("rvs-keepalived-depth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..MAX_INCLUDE_DEPTH + 2 {
        std::fs::write(
            dir.join(format!("{i}.conf")),
            format!("include {}.conf\n", i + 1),
        )
        .unwrap();
    }
    let report = check(&dir.join("0.conf"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(report.errors.len(), 1, "{report}");
    let e = report.errors[0].to_string();
    let last = MAX_INCLUDE_DEPTH - 1;
    assert!(e.contains(&format!("{last}.conf:1: include: '")), "{e}");
    assert!(
        e.ends_with(&format!(
            "{MAX_INCLUDE_DEPTH}.conf': includes nested more than {MAX_INCLUDE_DEPTH} deep"
        )),
        "{e}"
    );
}

#[test]
fn lvs_sync_daemon_without_a_vrrp_instance() {
    let text = "global_defs {\n    lvs_sync_daemon d1 id 3 port 8849\n}\n";
    let loaded = rvs_keepalived::load_str(text, Path::new("sync.conf")).unwrap();
    let sd = loaded.config.global.lvs_sync_daemon.unwrap();
    assert_eq!(
        (sd.interface.as_str(), sd.vrrp_instance, sd.sync_id, sd.port),
        ("d1", None, Some(3), Some(8849))
    );
    let text = "global_defs {\n    lvs_sync_daemon d1 VI_2\n}\n";
    let loaded = rvs_keepalived::load_str(text, Path::new("sync.conf")).unwrap();
    let sd = loaded.config.global.lvs_sync_daemon.unwrap();
    assert_eq!(sd.vrrp_instance.as_deref(), Some("VI_2"));
}
