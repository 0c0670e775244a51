//! VRRP interoperability: rvsd (`-f` a VRRP-only keepalived.conf) and a real keepalived in
//! VRRP-only mode on one segment, same VRID. Checks who holds the VIP (`ip -j addr show`)
//! through elections, SIGKILL / SIGTERM handovers, preemption, nopreempt, v2 with PASS and
//! with IPsec AH authentication, v3 over IPv4 and IPv6, unicast peers, track_script and
//! track_interface; notify scripts and the smtp alert of rvsd.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rvs_lab::{netns, wait_for, VrrpSegment, MAIL_ADDR, MAIL_HOST};

const VIP: &str = "10.77.0.100";
/// Election at start: master-down interval (3.6 s at priority 100) plus start-up.
const ELECT: Duration = Duration::from_secs(8);
/// 3 x advert_int + skew at priority 100 is 3.61 s; the bound is 4 s. A margin for
/// 50 ms polling and a loaded machine.
const FAILOVER: Duration = Duration::from_millis(4500);
/// A (re)started priority-150 instance (`state BACKUP` here; `state MASTER` the same in
/// keepalived 2.x) preempts only after its master-down interval, 3 x advert_int + 106/256 s =
/// 3.41 s (measured 3.5 s for a restarted keepalived); counted from spawning rvsd, never
/// sooner than this. `start_rvsd` returns only once the control socket answers, so the test
/// adds the time that took to the wait that follows: the sum is still counted from the spawn.
const PREEMPT_FLOOR: Duration = Duration::from_secs(3);

fn vip() -> IpAddr {
    VIP.parse().expect("VIP")
}

fn instance(version: u8, prio: u32, extra: &str, auth: bool) -> String {
    let vip = format!("{VIP}/24 dev eth0 label eth0:vip");
    instance_with(version, prio, extra, auth, &vip)
}

/// A `vrrp_instance` VI_1 (VRID 51, advert_int 1) holding the one VIP `vip_line`.
fn instance_with(version: u8, prio: u32, extra: &str, auth: bool, vip_line: &str) -> String {
    let auth = if auth {
        "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id rvs1\n  vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {prio}\n  advert_int 1\n  {auth}\n  virtual_ipaddress {{\n    {vip_line}\n  }}\n{extra}}}\n",
    )
}

fn seg(tag: &str) -> VrrpSegment {
    VrrpSegment::build(tag).expect("build the VRRP segment")
}

fn holds(s: &VrrpSegment, role: &str) -> bool {
    s.lab.has_addr(role, vip())
}

fn wait_holder(s: &VrrpSegment, holder: &str, other: &str, limit: Duration) -> Duration {
    wait_holder_of(s, vip(), holder, other, limit)
}

/// Waits until `holder` has `ip` (whatever the other node still shows).
fn wait_taken(s: &VrrpSegment, ip: IpAddr, holder: &str, limit: Duration) -> Duration {
    wait_for(limit, || s.lab.has_addr(holder, ip)).unwrap_or_else(|| {
        panic!(
            "{holder} did not take {ip} within {limit:?}\nlab logs in {}",
            s.lab.log_dir().display()
        )
    })
}

fn wait_holder_of(
    s: &VrrpSegment,
    ip: IpAddr,
    holder: &str,
    other: &str,
    limit: Duration,
) -> Duration {
    wait_for(limit, || {
        s.lab.has_addr(holder, ip) && !s.lab.has_addr(other, ip)
    })
    .unwrap_or_else(|| {
        panic!(
            "{holder} should hold {ip} alone within {limit:?} (holder has it: {}, other: {})\n\
                 rvsadm --vrrp on n1: {}\nlab logs in {}",
            s.lab.has_addr(holder, ip),
            s.lab.has_addr(other, ip),
            s.rvsadm_vrrp("n1").unwrap_or_default(),
            s.lab.log_dir().display()
        )
    })
}

/// An SMTP sink on the mail host; the received transcript accumulates.
fn smtp_sink(s: &VrrpSegment) -> Arc<Mutex<String>> {
    let addr = SocketAddr::new(MAIL_ADDR.parse().expect("mail address"), 2525);
    rvs_lab::smtp_sink(&s.lab, MAIL_HOST, addr).expect("SMTP sink")
}

#[test]
fn v2_pass_rvsd_master_failover_to_keepalived_and_preempt_back_with_notify_and_smtp() {
    let s = seg("vrrpa");
    let sink = smtp_sink(&s);
    let log = s.lab.log_dir().join("notify.log");
    let script = s
        .lab
        .write_notify_script("notify.sh", &log)
        .expect("notify script");
    let sc = script.display();
    let rvsd_extra = format!(
        "  notify_master \"{sc} master-script\"\n  notify_backup \"{sc} backup-script\"\n  \
         notify {sc}\n  smtp_alert\n"
    );
    let mail = format!(
        "  notification_email {{\n    ops@example.test\n  }}\n  notification_email_from rvs@example.test\n  \
         smtp_server {MAIL_ADDR} 2525\n  smtp_connect_timeout 5\n"
    );
    let rvsd_conf = instance(2, 150, &rvsd_extra, true).replacen(
        "  vrrp_version 2\n",
        &format!("  vrrp_version 2\n{mail}"),
        1,
    );
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, "", true))
        .expect("keepalived");
    let rvsd = s.start_rvsd("n1", &rvsd_conf).expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);

    // SIGKILL rvsd: keepalived takes over within 3 x advert_int + skew.
    netns::signal(rvsd, Signal::SIGKILL);
    let took = wait_for(FAILOVER, || holds(&s, "n2"))
        .unwrap_or_else(|| panic!("keepalived did not take {VIP} within {FAILOVER:?}"));
    eprintln!("SIGKILL rvsd -> keepalived master in {took:?}");
    s.lab.kill(rvsd);
    s.remove_vip("n1", vip(), 24);

    // Restarted rvsd (priority 150) preempts back, as keepalived 2.x would: it starts BACKUP
    // and takes over when its master-down interval runs out, not at once.
    let spawned = Instant::now();
    let rvsd2 = s.start_rvsd("n1", &rvsd_conf).expect("rvsd again");
    let startup = spawned.elapsed();
    let took = startup + wait_holder(&s, "n1", "n2", ELECT);
    eprintln!("restarted rvsd preempted keepalived after {took:?} (socket up after {startup:?})");
    assert!(
        took >= PREEMPT_FLOOR,
        "restarted rvsd preempted after {took:?}, before its master-down interval"
    );

    let text = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("INSTANCE VI_1 MASTER 150"))
    });
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.is_some(), "notify log:\n{notes}");
    assert!(notes.contains("master-script"), "notify log:\n{notes}");
    let mailed = wait_for(Duration::from_secs(5), || {
        sink.lock()
            .expect("sink")
            .contains("Subject: [rvs1] VRRP Instance VI_1 - Entering MASTER state")
    });
    let transcript = sink.lock().expect("sink").clone();
    assert!(mailed.is_some(), "smtp transcript:\n{transcript}");
    assert!(
        transcript.contains("RCPT TO:<ops@example.test>"),
        "{transcript}"
    );
    assert!(
        transcript.contains("MAIL FROM:<rvs@example.test>"),
        "{transcript}"
    );

    // rvsadm --vrrp shows the instance as MASTER with its VIP.
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 MASTER 150/150 10.77.0.1 10.77.0.100"),
        "rvsadm --vrrp:\n{listing}"
    );
    s.lab.kill(rvsd2);
    s.lab.kill(ka);
}

#[test]
fn v2_keepalived_master_sigterm_hands_over_to_rvsd_quickly() {
    let s = seg("vrrpb");
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 150, "", true))
        .expect("keepalived");
    wait_holder(&s, "n2", "n1", ELECT);
    let _rvsd = s
        .start_rvsd("n1", &instance(2, 100, "", true))
        .expect("rvsd");
    // rvsd stays backup while keepalived advertises.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        holds(&s, "n2") && !holds(&s, "n1"),
        "keepalived must stay master"
    );
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 BACKUP 100/100 10.77.0.2 10.77.0.100"),
        "rvsd must be BACKUP behind keepalived before the SIGTERM:\n{listing}"
    );
    netns::signal(ka, Signal::SIGTERM);
    let took = wait_holder(&s, "n1", "n2", Duration::from_secs(2));
    eprintln!("SIGTERM keepalived -> rvsd master in {took:?}");
}

#[test]
fn nopreempt_higher_priority_rvsd_does_not_take_over() {
    let s = seg("vrrpc");
    let _ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, "", false))
        .expect("keepalived");
    wait_holder(&s, "n2", "n1", ELECT);
    let _rvsd = s
        .start_rvsd("n1", &instance(2, 200, "  nopreempt\n", false))
        .expect("rvsd");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        holds(&s, "n2") && !holds(&s, "n1"),
        "nopreempt rvsd must leave keepalived master"
    );
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 BACKUP 200/200 10.77.0.2 10.77.0.100"),
        "nopreempt rvsd must run as BACKUP and name keepalived as master:\n{listing}"
    );
}

#[test]
fn v3_rvsd_master_and_sigterm_priority_zero_handover() {
    let s = seg("vrrpd");
    let _ka = s
        .lab
        .start_keepalived("n2", &instance(3, 100, "", false))
        .expect("keepalived");
    let rvsd = s
        .start_rvsd("n1", &instance(3, 150, "", false))
        .expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);
    netns::signal(rvsd, Signal::SIGTERM);
    // Priority 0 from rvsd: keepalived takes over after Skew_Time (0.6 s), and rvsd removed
    // its VIP on the way out.
    let took = wait_holder(&s, "n2", "n1", Duration::from_secs(2));
    eprintln!("SIGTERM rvsd (v3) -> keepalived master in {took:?}");
}

const VIP6: &str = "fd00::100";

#[test]
fn v3_ipv6_rvsd_master_with_unsolicited_na_then_failover_to_keepalived() {
    let s = seg("vrrpe");
    let vip6: IpAddr = VIP6.parse().expect("VIP6");
    let conf = |prio| instance_with(3, prio, "", false, &format!("{VIP6}/64 dev eth0"));
    let mac1 = s.lab.mac_of("n1", "eth0").expect("n1 MAC");
    // Neighbour advertisements (ICMPv6 type 136) sent by n1, seen on the mail host.
    let filter = format!("ether src {mac1} and icmp6 and ip6[40] == 136");
    let na = s
        .capture(MAIL_HOST, "eth0", &filter, Duration::from_secs(40))
        .expect("tcpdump");
    let ka = s
        .lab
        .start_keepalived("n2", &conf(100))
        .expect("keepalived");
    let rvsd = s.start_rvsd("n1", &conf(150)).expect("rvsd");
    wait_holder_of(&s, vip6, "n1", "n2", ELECT);
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v3 MASTER 150/150 fe80::") && listing.contains(VIP6),
        "rvsadm --vrrp:\n{listing}"
    );
    let needle = format!("neighbor advertisement, tgt is {VIP6}");
    let seen = wait_for(Duration::from_secs(5), || {
        !na.lines_with(&s, &[&needle]).is_empty()
    });
    assert!(
        seen.is_some(),
        "no unsolicited NA for {VIP6} from rvsd ({mac1}):\n{}",
        na.text(&s)
    );
    s.lab.kill(na.pid);

    // A SIGKILLed rvsd leaves its VIP behind: only the new holder is checked.
    netns::signal(rvsd, Signal::SIGKILL);
    let took = wait_taken(&s, vip6, "n2", FAILOVER);
    eprintln!("SIGKILL rvsd (v3, IPv6) -> keepalived master in {took:?}");
    s.lab.kill(rvsd);
    s.remove_vip("n1", vip6, 64);
    s.lab.kill(ka);
}

#[test]
fn unicast_peers_elect_and_fail_over_with_adverts_to_the_peer() {
    let s = seg("vrrpf");
    let unicast = |me: &str, peer: &str| {
        format!("  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n")
    };
    let (a1, a2) = (VrrpSegment::addr_of("n1"), VrrpSegment::addr_of("n2"));
    // Every VRRP packet each node puts on the segment, seen at its bridge port.
    let limit = Duration::from_secs(40);
    let from1 = s
        .capture("sw", "p1", "ip proto 112", limit)
        .expect("tcpdump p1");
    let from2 = s
        .capture("sw", "p2", "ip proto 112", limit)
        .expect("tcpdump p2");
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, &unicast(a2, a1), true))
        .expect("keepalived");
    let rvsd = s
        .start_rvsd("n1", &instance(2, 150, &unicast(a1, a2), true))
        .expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);
    // A few adverts as master, then check where they went.
    std::thread::sleep(Duration::from_secs(2));
    let (mac1, mac2) = (
        s.lab.mac_of("n1", "eth0").expect("mac"),
        s.lab.mac_of("n2", "eth0").expect("mac"),
    );
    let to_peer = format!("{a1} > {a2}: VRRPv2, Advertisement, vrid 51, prio 150");
    let sent = from1.lines_with(&s, &[&to_peer, &format!("{mac1} > {mac2}")]);
    let text1 = from1.text(&s);
    assert!(sent.len() >= 2, "rvsd's unicast adverts:\n{text1}");
    assert!(
        !text1.contains("224.0.0.18"),
        "rvsd used multicast:\n{text1}"
    );

    netns::signal(rvsd, Signal::SIGKILL);
    let took = wait_taken(&s, vip(), "n2", FAILOVER);
    eprintln!("SIGKILL rvsd (unicast) -> keepalived master in {took:?}");
    std::thread::sleep(Duration::from_secs(2));
    let back = format!("{a2} > {a1}: VRRPv2, Advertisement, vrid 51, prio 100");
    let text2 = from2.text(&s);
    assert!(
        from2.lines_with(&s, &[&back]).len() >= 2,
        "keepalived's unicast adverts:\n{text2}"
    );
    assert!(
        !text2.contains("224.0.0.18"),
        "keepalived used multicast:\n{text2}"
    );
    s.lab.kill(from1.pid);
    s.lab.kill(from2.pid);
    s.lab.kill(rvsd);
    s.remove_vip("n1", vip(), 24);
    s.lab.kill(ka);
}

/// Dropping below keepalived (150 - 60 = 90 < 100), then back: keepalived preempts after its
/// master-down interval once the script has failed (up to 1 s), and rvsd likewise.
const TRACK_SWITCH: Duration = Duration::from_secs(9);

#[test]
fn track_script_failure_hands_over_to_keepalived_and_recovery_preempts_back() {
    let s = seg("vrrpg");
    let flag = s.lab.write_file("healthy", "ok\n").expect("flag file");
    let extra = "  track_script {\n    chk_flag\n  }\n";
    let script = format!(
        "vrrp_script chk_flag {{\n  script \"test -f {}\"\n  interval 1\n  weight -60\n  \
         fall 1\n  rise 1\n}}\n",
        flag.display()
    );
    let conf = format!("{}{script}", instance(2, 150, extra, true));
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, "", true))
        .expect("keepalived");
    let rvsd = s.start_rvsd("n1", &conf).expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);

    std::fs::remove_file(&flag).expect("remove the flag");
    let took = wait_holder(&s, "n2", "n1", TRACK_SWITCH);
    eprintln!("track_script failed -> keepalived master in {took:?}");
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 BACKUP 90/150"),
        "rvsadm --vrrp:\n{listing}"
    );

    std::fs::write(&flag, "ok\n").expect("restore the flag");
    let took = wait_holder(&s, "n1", "n2", TRACK_SWITCH);
    eprintln!("track_script recovered -> rvsd preempted in {took:?}");
    s.lab.kill(rvsd);
    s.lab.kill(ka);
}

#[test]
fn track_interface_down_faults_rvsd_and_up_brings_it_back() {
    let s = seg("vrrph");
    s.add_link("n1", "trk0").expect("tracked link");
    let extra = "  track_interface {\n    trk0\n  }\n";
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, "", true))
        .expect("keepalived");
    let rvsd = s
        .start_rvsd("n1", &instance(2, 150, extra, true))
        .expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);

    s.set_link("n1", "trk0", false).expect("trk0 down");
    let took = wait_holder(&s, "n2", "n1", FAILOVER);
    eprintln!("tracked link down -> keepalived master in {took:?}");
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 FAULT"),
        "rvsadm --vrrp:\n{listing}"
    );

    s.set_link("n1", "trk0", true).expect("trk0 up");
    let took = wait_holder(&s, "n1", "n2", ELECT);
    eprintln!("tracked link up -> rvsd master again in {took:?}");
    s.lab.kill(rvsd);
    s.lab.kill(ka);
}

/// `instance(2, prio, extra, true)` with keepalived's IPsec AH instead of PASS.
fn ah_instance(prio: u32, extra: &str) -> String {
    instance(2, prio, extra, true).replace("auth_type PASS", "auth_type AH")
}

#[test]
fn v2_ah_authentication_interoperates_both_ways() {
    let s = seg("vrrpi");
    let limit = Duration::from_secs(60);
    let from1 = s
        .capture("sw", "p1", "ip proto 51", limit)
        .expect("tcpdump p1");
    let ka = s
        .lab
        .start_keepalived("n2", &ah_instance(100, ""))
        .expect("keepalived");
    let rvsd = s.start_rvsd("n1", &ah_instance(150, "")).expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);
    // keepalived verifies rvsd's ICVs: it stays backup well past its master-down interval.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        holds(&s, "n1") && !holds(&s, "n2"),
        "keepalived must accept rvsd's AH adverts and stay backup\nlab logs in {}",
        s.lab.log_dir().display()
    );
    let a1 = VrrpSegment::addr_of("n1");
    let sealed = from1.lines_with(&s, &[&format!("{a1} > 224.0.0.18: AH(spi=0x0a4d0001")]);
    assert!(sealed.len() >= 4, "rvsd's AH adverts:\n{}", from1.text(&s));
    s.lab.kill(from1.pid);

    // Its priority-0 advert on SIGTERM is sealed too: keepalived takes over at once.
    netns::signal(rvsd, Signal::SIGTERM);
    let took = wait_holder(&s, "n2", "n1", Duration::from_secs(2));
    eprintln!("SIGTERM rvsd (AH) -> keepalived master in {took:?}");
    s.lab.kill(rvsd);

    // A lower-priority rvsd verifies keepalived's ICVs (whose sequence numbers go on from
    // rvsd's): it stays backup and names keepalived as master.
    let rvsd2 = s
        .start_rvsd("n1", &ah_instance(50, ""))
        .expect("rvsd again");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        holds(&s, "n2") && !holds(&s, "n1"),
        "rvsd must accept keepalived's AH adverts and stay backup\nlab logs in {}",
        s.lab.log_dir().display()
    );
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    let a2 = VrrpSegment::addr_of("n2");
    assert!(
        listing.contains(&format!("VI_1 - eth0 51 v2 BACKUP 50/50 {a2}")),
        "rvsadm --vrrp:\n{listing}"
    );
    s.lab.kill(rvsd2);
    s.lab.kill(ka);
}

/// Whether `holder` has `ip`, and `other` never does, at every 50 ms sample for `window`.
fn held_throughout(
    s: &VrrpSegment,
    ip: IpAddr,
    holder: &str,
    other: &str,
    window: Duration,
) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < window {
        if !s.lab.has_addr(holder, ip) || s.lab.has_addr(other, ip) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Rewrites rvsd's configuration file on `role` and has rvsd reload it with `rvsadm --reload`.
fn reload(s: &VrrpSegment, role: &str, conf: &str) -> (bool, String) {
    s.lab
        .write_file(&format!("{role}-rvsd.conf"), conf)
        .expect("rewrite the configuration");
    s.rvsadm(role, &["--reload"]).expect("rvsadm --reload")
}

#[test]
fn reload_keeps_the_master_adds_removes_and_changes_instances() {
    let s = seg("vrrpj");
    let vi2 = "vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n  priority 150\n  \
               advert_int 1\n  virtual_ipaddress {\n    10.77.0.102/24 dev eth0\n  }\n}\n";
    let vip2: IpAddr = "10.77.0.102".parse().expect("VIP2");
    let ka = s
        .lab
        .start_keepalived("n2", &instance(2, 100, "", true))
        .expect("keepalived");
    let base = instance(2, 150, "", true);
    let rvsd = s.start_rvsd("n1", &base).expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);

    // 1. VI_1 unchanged (moved down the file by a comment), VI_2 added, by SIGHUP: VI_1
    // stays master throughout, VI_2 starts as a new instance.
    let with_vi2 = format!("# reloaded\n{base}{vi2}");
    s.lab
        .write_file("n1-rvsd.conf", &with_vi2)
        .expect("rewrite");
    netns::signal(rvsd, Signal::SIGHUP);
    assert!(
        held_throughout(&s, vip(), "n1", "n2", Duration::from_secs(5)),
        "VI_1 must stay master across a reload that does not change it"
    );
    wait_for(ELECT, || s.lab.has_addr("n1", vip2)).unwrap_or_else(|| {
        panic!(
            "VI_2 did not start: {}",
            s.rvsadm_vrrp("n1").unwrap_or_default()
        )
    });

    // 2. VI_1 changed (priority 150 -> 120, still above keepalived): it resumes MASTER at
    // once, so keepalived never takes the VIP.
    let (ok, text) = reload(&s, "n1", &format!("{}{vi2}", instance(2, 120, "", true)));
    assert!(ok, "rvsadm --reload: {text}");
    assert!(
        held_throughout(&s, vip(), "n1", "n2", Duration::from_secs(5)),
        "a reloaded master must resume MASTER at once"
    );
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 MASTER 120/120"),
        "rvsadm --vrrp:\n{listing}"
    );

    // 3. A file keepalived would not start with (an instance without an interface) changes
    // nothing and says where it is wrong.
    let (ok, text) = reload(
        &s,
        "n1",
        &format!(
            "{}{vi2}vrrp_instance VI_3 {{\n  virtual_router_id 53\n}}\n",
            instance(2, 120, "", true)
        ),
    );
    assert!(!ok, "a broken file must be refused: {text}");
    assert!(
        text.contains("n1-rvsd.conf:"),
        "the error names file:line: {text}"
    );
    assert!(s.lab.has_addr("n1", vip()) && s.lab.has_addr("n1", vip2));

    // 4. VI_2 removed and VI_1 lowered below keepalived: VI_2's VIP goes at once, and
    // keepalived preempts VI_1.
    let (ok, text) = reload(&s, "n1", &instance(2, 50, "", true));
    assert!(ok, "rvsadm --reload: {text}");
    wait_for(Duration::from_secs(2), || !s.lab.has_addr("n1", vip2))
        .expect("VI_2's VIP must be removed with the instance");
    let took = wait_holder(&s, "n2", "n1", FAILOVER);
    eprintln!("VI_1 lowered to 50 by reload -> keepalived master in {took:?}");
    let listing = s.rvsadm_vrrp("n1").expect("rvsadm --vrrp");
    assert!(
        listing.contains("VI_1 - eth0 51 v2 BACKUP 50/50") && !listing.contains("VI_2"),
        "rvsadm --vrrp:\n{listing}"
    );
    s.lab.kill(rvsd);
    s.lab.kill(ka);
}

/// Reads a dump file `path` written after `send` signals a daemon (the file is removed first;
/// up to 5 s for it to appear).
fn dump_after(path: &str, send: impl FnOnce()) -> String {
    let _ = std::fs::remove_file(path);
    send();
    take_dump(path, Duration::from_secs(5)).unwrap_or_else(|| panic!("{path} was not written"))
}

/// The dump at `path` once written (within `limit`), removed after reading.
fn take_dump(path: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        // The daemon writes the file in one go; a partial read is retried.
        if let Some(text) = std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.ends_with('\n'))
        {
            let _ = std::fs::remove_file(path);
            return Some(text);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The statistics dump with the advert counts (which depend on timing) blanked.
fn stats_shape(text: &str) -> String {
    let mut section = "";
    text.lines()
        .map(|l| {
            if l.ends_with(':') {
                section = if l.trim() == "Advertisements:" {
                    "adverts"
                } else {
                    ""
                };
            }
            match l.split_once(": ") {
                Some((key, _)) if section == "adverts" => format!("{key}: N"),
                _ => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// keepalived's operational interface: `rvsd --signum` answers as `keepalived --signum`; an rvsd
/// and a keepalived, each MASTER of its own instance VI_1 on the segment, write the statistics
/// dump (SIGUSR2) with the same lines (the advert counts aside), the data dump (SIGUSR1) with the
/// lines keepalived's exporters read, and the JSON dump with keepalived's field names; the
/// statistics clear on STATS_CLEAR's signal.
#[test]
fn dumps_and_signals_as_keepalived_s() {
    let rvsd_bin = rvs_lab::bin_path("rvsd");
    for func in [
        "STOP",
        "RELOAD",
        "DATA",
        "STATS",
        "STATS_CLEAR",
        "JSON",
        "TDATA",
    ] {
        let run = |program: &std::path::Path| {
            let out = std::process::Command::new(program)
                .arg(format!("--signum={func}"))
                .output()
                .expect("run");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )
        };
        let ka = run(std::path::Path::new("keepalived"));
        let ours = run(&rvsd_bin);
        if ka.0 == Some(0) {
            assert_eq!(ours, ka, "--signum={func}");
        } else {
            assert_ne!(
                ours.0,
                Some(0),
                "--signum={func} is unknown to keepalived too"
            );
        }
    }
    let s = seg("vrrpdump");
    let ka_conf = instance_with(2, 100, "", false, "10.77.0.101/24 dev eth0")
        .replace("virtual_router_id 51", "virtual_router_id 52");
    let ka = s.lab.start_keepalived("n2", &ka_conf).expect("keepalived");
    let rvsd = s
        .start_rvsd("n1", &instance(2, 100, "", false))
        .expect("rvsd");
    let other: IpAddr = "10.77.0.101".parse().expect("addr");
    wait_for(ELECT, || holds(&s, "n1") && s.lab.has_addr("n2", other))
        .expect("both masters of their own instance");
    // Real-time signals have no `nix` `Signal` variant: kill(1) sends any number.
    let signal = |pid: u32, number: i32| {
        let status = std::process::Command::new("kill")
            .args([format!("-{number}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{number} {pid}");
    };
    let theirs = dump_after("/tmp/keepalived.stats", || signal(ka, 12));
    let ours = dump_after("/tmp/keepalived.stats", || signal(rvsd, 12));
    assert_eq!(
        stats_shape(&ours),
        stats_shape(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert!(ours.contains("  Became master: 1\n"), "{ours}");
    let data = dump_after("/tmp/keepalived.data", || signal(rvsd, 10));
    let theirs_data = dump_after("/tmp/keepalived.data", || signal(ka, 10));
    // keepalived's parent writes its own part beside it: not compared, but not left behind.
    let _ = take_dump("/tmp/keepalived_parent.data", Duration::from_secs(2));
    for line in [
        " VRRP Instance = VI_1",
        "   State = MASTER",
        "   Wantstate = MASTER",
        "   Interface = eth0",
        "   Virtual IP (1):",
    ] {
        assert!(data.lines().any(|l| l == line), "{line:?} in ours:\n{data}");
        assert!(theirs_data.lines().any(|l| l == line), "{line:?} in theirs");
    }
    assert!(
        data.contains("     10.77.0.100/24 dev eth0 scope global set\n"),
        "{data}"
    );
    assert!(theirs_data.contains("     10.77.0.101/24 dev eth0 scope global set\n"));
    let json_signal = libc::SIGRTMIN() + 2;
    let ours: serde_json::Value = serde_json::from_str(&dump_after("/tmp/keepalived.json", || {
        signal(rvsd, json_signal)
    }))
    .expect("our JSON");
    let theirs: serde_json::Value =
        serde_json::from_str(&dump_after("/tmp/keepalived.json", || {
            signal(ka, json_signal)
        }))
        .expect("keepalived's JSON");
    for part in ["data", "stats"] {
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v[0][part]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (ours_keys, theirs_keys) = (keys(&ours), keys(&theirs));
        assert!(!ours_keys.is_empty(), "{ours}");
        for k in &ours_keys {
            assert!(theirs_keys.contains(k), "{part}.{k} is not keepalived's");
        }
    }
    for k in ["iname", "state", "wantstate", "ifp_ifname", "version"] {
        assert_eq!(ours[0]["data"][k], theirs[0]["data"][k], "data.{k}");
    }
    // STATS_CLEAR zeroes the counts.
    signal(rvsd, libc::SIGRTMAX() - 1);
    std::thread::sleep(Duration::from_millis(500));
    let cleared = dump_after("/tmp/keepalived.stats", || signal(rvsd, 12));
    assert!(cleared.contains("  Became master: 0\n"), "{cleared}");
    s.lab.kill(rvsd);
    s.lab.kill(ka);
}
