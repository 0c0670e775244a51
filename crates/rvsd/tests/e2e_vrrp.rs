//! VRRP interoperability: rvsd (`-f` a VRRP-only keepalived.conf) and a real keepalived in
//! VRRP-only mode on one segment, same VRID. Checks who holds the VIP (`ip -j addr show`)
//! through elections, SIGKILL / SIGTERM handovers, preemption, nopreempt, v2 with PASS
//! authentication and v3; notify scripts and the smtp alert of rvsd.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use rvs_lab::{netns, VrrpSegment, MAIL_ADDR, MAIL_HOST};

const VIP: &str = "10.77.0.100";
/// Election at start: master-down interval (3.6 s at priority 100) plus start-up.
const ELECT: Duration = Duration::from_secs(8);
/// 3 x advert_int + skew at priority 100 is 3.61 s; the bound is 4 s. A margin for
/// 50 ms polling and a loaded machine.
const FAILOVER: Duration = Duration::from_millis(4500);
/// A (re)started priority-150 instance (`state BACKUP` here; `state MASTER` the same in
/// keepalived 2.x) preempts only after its master-down interval, 3 x advert_int + 106/256 s =
/// 3.41 s (measured 3.5 s for a restarted keepalived); counted from spawning rvsd, never
/// sooner than this.
const PREEMPT_FLOOR: Duration = Duration::from_secs(3);

fn vip() -> IpAddr {
    VIP.parse().expect("VIP")
}

fn instance(version: u8, prio: u32, extra: &str, auth: bool) -> String {
    let auth = if auth {
        "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }"
    } else {
        ""
    };
    format!(
        "global_defs {{\n  router_id rvs1\n  vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {prio}\n  advert_int 1\n  {auth}\n  virtual_ipaddress {{\n    {VIP}/24 dev eth0 label eth0:vip\n  }}\n{extra}}}\n",
    )
}

fn seg(tag: &str) -> VrrpSegment {
    VrrpSegment::build(tag).expect("build the VRRP segment")
}

fn holds(s: &VrrpSegment, role: &str) -> bool {
    s.has_addr(role, vip())
}

fn wait_holder(s: &VrrpSegment, holder: &str, other: &str, limit: Duration) -> Duration {
    s.wait_for(limit, || holds(s, holder) && !holds(s, other))
        .unwrap_or_else(|| {
            panic!(
                "{holder} should hold {VIP} alone within {limit:?} (holder has it: {}, other: {})\nlab logs in {}",
                holds(s, holder),
                holds(s, other),
                s.lab.log_dir().display()
            )
        })
}

/// A one-message SMTP sink on the mail host; the received transcript accumulates.
fn smtp_sink(s: &VrrpSegment) -> Arc<Mutex<String>> {
    let listener = s
        .lab
        .in_netns(MAIL_HOST, || TcpListener::bind((MAIL_ADDR, 2525)))
        .expect("bind the SMTP sink");
    let got = Arc::new(Mutex::new(String::new()));
    let out = got.clone();
    std::thread::spawn(move || {
        while let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut w = match stream.try_clone() {
                Ok(w) => w,
                Err(_) => return,
            };
            let mut r = BufReader::new(stream);
            let _ = w.write_all(b"220 sink ESMTP\r\n");
            let mut in_data = false;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                out.lock().expect("sink").push_str(&line);
                let reply: &[u8] = if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        b"250 queued\r\n"
                    } else {
                        continue;
                    }
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go ahead\r\n"
                } else if line.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                let _ = w.write_all(reply);
            }
        }
    });
    got
}

#[test]
fn v2_pass_rvsd_master_failover_to_keepalived_and_preempt_back_with_notify_and_smtp() {
    let s = seg("vrrpa");
    let sink = smtp_sink(&s);
    let log = s.lab.log_dir().join("notify.log");
    let script = s
        .write_file(
            "notify.sh",
            &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        )
        .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
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
        .start_keepalived("n2", &instance(2, 100, "", true))
        .expect("keepalived");
    let rvsd = s.start_rvsd("n1", &rvsd_conf).expect("rvsd");
    wait_holder(&s, "n1", "n2", ELECT);

    // SIGKILL rvsd: keepalived takes over within 3 x advert_int + skew.
    netns::signal(rvsd, Signal::SIGKILL);
    let took = s
        .wait_for(FAILOVER, || holds(&s, "n2"))
        .unwrap_or_else(|| panic!("keepalived did not take {VIP} within {FAILOVER:?}"));
    eprintln!("SIGKILL rvsd -> keepalived master in {took:?}");
    s.lab.kill(rvsd);
    s.remove_vip("n1", vip(), 24);

    // Restarted rvsd (priority 150) preempts back, as keepalived 2.x would: it starts BACKUP
    // and takes over when its master-down interval runs out, not at once.
    let rvsd2 = s.start_rvsd("n1", &rvsd_conf).expect("rvsd again");
    let took = wait_holder(&s, "n1", "n2", ELECT);
    eprintln!("restarted rvsd preempted keepalived after {took:?}");
    assert!(
        took >= PREEMPT_FLOOR,
        "restarted rvsd preempted after {took:?}, before its master-down interval"
    );

    let text = s.wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("INSTANCE VI_1 MASTER 150"))
    });
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.is_some(), "notify log:\n{notes}");
    assert!(notes.contains("master-script"), "notify log:\n{notes}");
    let mailed = s.wait_for(Duration::from_secs(5), || {
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
    let adm = rvs_lab::find_bin("rvsadm").expect("rvsadm");
    let sock = s.socket("n1");
    let out = std::process::Command::new(adm)
        .args(["--socket", &sock.display().to_string(), "--vrrp"])
        .output()
        .expect("run rvsadm --vrrp");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("VI_1 - eth0 51 v2 MASTER 150/150 10.77.0.1 10.77.0.100"),
        "rvsadm --vrrp:\n{listing}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.lab.kill(rvsd2);
    s.lab.kill(ka);
}

#[test]
fn v2_keepalived_master_sigterm_hands_over_to_rvsd_quickly() {
    let s = seg("vrrpb");
    let ka = s
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
    netns::signal(ka, Signal::SIGTERM);
    let took = wait_holder(&s, "n1", "n2", Duration::from_secs(2));
    eprintln!("SIGTERM keepalived -> rvsd master in {took:?}");
}

#[test]
fn nopreempt_higher_priority_rvsd_does_not_take_over() {
    let s = seg("vrrpc");
    let _ka = s
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
}

#[test]
fn v3_rvsd_master_and_sigterm_priority_zero_handover() {
    let s = seg("vrrpd");
    let _ka = s
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
