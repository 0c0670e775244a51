//! End-to-end tests of `rvsd -f keepalived.conf`: health checkers driving the table, the sorry
//! server, reloads, and `rvsd -t`. NAT topology of seed 004 with nginx on every real server
//! (port 8090, `GET /` answers `hello,<RIP>`, `/page.html` a page the tests rewrite) next to
//! the built-in server (port 80, `GET /hold/S` holds a connection). Checkers run with
//! delay_loop 1, connect_timeout 1, retry 1, delay_before_retry 1, so a stopped server must be
//! gone within delay_loop x (retry + 1) + connect_timeout = 3 s (plus a margin).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use rvs_lab::{netns, NatTopology, RS_NGINX_PORT};

/// The detection bound plus a margin for the test's own polling and a loaded machine.
const DETECT: Duration = Duration::from_secs(3 + 4);

const TIMING: &str = "delay_loop 1\n    connect_timeout 1\n    retry 1\n    delay_before_retry 1";

struct Setup {
    topo: NatTopology,
    conf: PathBuf,
    nginx: Vec<Option<u32>>,
    rvsd_pid: u32,
}

impl Setup {
    /// `real_servers` real servers with nginx, rvsd serving `conf` (written to the lab's log
    /// directory).
    fn new(tag: &str, real_servers: usize, conf: &str) -> Setup {
        let topo = NatTopology::build(tag, real_servers).expect("build the NAT topology");
        Setup::on(topo, conf)
    }

    /// Like [`Setup::new`] on a topology already built (to start something there first).
    fn on(topo: NatTopology, conf: &str) -> Setup {
        let real_servers = topo.rips4.len();
        topo.start_real_servers().expect("start the real servers");
        let nginx = (0..real_servers)
            .map(|i| Some(topo.start_nginx_on(i).expect("start nginx")))
            .collect();
        let path = topo.lab.log_dir().join("keepalived.conf");
        std::fs::write(&path, conf).expect("write keepalived.conf");
        let p = path.display().to_string();
        let rvsd = topo.start_rvsd(&["-f", &p]).expect("start rvsd -f");
        Setup {
            topo,
            conf: path,
            nginx,
            rvsd_pid: rvsd.pid,
        }
    }

    fn stop_nginx(&mut self, index: usize) {
        if let Some(pid) = self.nginx[index].take() {
            self.topo.stop_nginx(pid);
        }
    }

    fn start_nginx(&mut self, index: usize) {
        self.nginx[index] = Some(self.topo.start_nginx_on(index).expect("restart nginx"));
    }

    fn listing(&self) -> String {
        adm(&self.topo, &["-Ln"])
    }

    /// Polls `-Ln` until `pred` holds; returns the listing and how long it took.
    fn wait(&self, within: Duration, pred: impl Fn(&str) -> bool) -> (String, Duration) {
        let start = Instant::now();
        loop {
            let l = self.listing();
            if pred(&l) {
                return (l, start.elapsed());
            }
            assert!(
                start.elapsed() < within,
                "condition not met within {within:?}:\n{l}\nhealth:\n{}",
                adm(&self.topo, &["--health"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn curls(&self, port: u16, n: usize) -> Vec<String> {
        curl_many(&self.topo, &format!("http://{VIP}:{port}/"), n)
    }
}

/// The `-Ln` line of real server `rs`, if listed.
fn rs_line<'a>(listing: &'a str, rs: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {rs} ")))
}

fn weight_of(listing: &str, rs: &str) -> Option<u32> {
    rs_line(listing, rs).and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
}

fn rs(i: u8) -> String {
    format!("10.10.10.{i}:{RS_NGINX_PORT}")
}

fn nat_conf(real_servers: &[u8], checker: &str, extra_vs: &str, extra_rs: &str) -> String {
    let mut out = format!(
        "global_defs {{\n    router_id rvs_e2e\n}}\n\
         virtual_server {VIP} {RS_NGINX_PORT} {{\n    {TIMING}\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{extra_vs}\n"
    );
    for i in real_servers {
        out.push_str(&format!(
            "    real_server 10.10.10.{i} {RS_NGINX_PORT} {{\n        weight 1\n{extra_rs}\n        {checker}\n    }}\n"
        ));
    }
    out.push_str("}\n");
    out
}

const TCP_CHECK: &str = "TCP_CHECK {\n            connect_timeout 1\n        }";

/// Alert mail from the director to a sink on its own loopback.
const MAIL: &str = "    notification_email {\n        ops@example.test\n    }\n    \
                    notification_email_from lvs@example.test\n    smtp_server 127.0.0.1 2525\n";

#[test]
fn a_stopped_nginx_is_removed_in_time_and_comes_back() {
    let conf = nat_conf(&[2, 3], TCP_CHECK, "    smtp_alert", "").replacen(
        "router_id rvs_e2e\n",
        &format!("router_id rvs_e2e\n{MAIL}"),
        1,
    );
    let topo = NatTopology::build("katcp", 2).expect("build the NAT topology");
    let addr = "127.0.0.1:2525".parse().expect("sink address");
    let sink = rvs_lab::smtp_sink(&topo.lab, rvs_lab::DIRECTOR, addr).expect("SMTP sink");
    let mut s = Setup::on(topo, &conf);
    s.wait(DETECT, |l| {
        rs_line(l, &rs(2)).is_some() && rs_line(l, &rs(3)).is_some()
    });
    let answers = s.curls(RS_NGINX_PORT, 4);
    assert!(
        answers.contains(&"hello,10.10.10.2".to_owned()),
        "{answers:?}"
    );

    s.stop_nginx(0);
    let (listing, took) = s.wait(DETECT, |l| rs_line(l, &rs(2)).is_none());
    assert!(rs_line(&listing, &rs(3)).is_some(), "{listing}");
    eprintln!("removed after {took:?}");
    let answers = s.curls(RS_NGINX_PORT, 6);
    assert!(
        answers.iter().all(|a| a == "hello,10.10.10.3"),
        "clients still reach the stopped server: {answers:?}"
    );
    let health = adm(&s.topo, &["--health"]);
    assert!(
        health.contains(&format!("{} removed -/1", rs(2))),
        "{health}"
    );
    assert!(
        health.contains("TCP_CHECK 10.10.10.2:8090 fail"),
        "{health}"
    );

    s.start_nginx(0);
    s.wait(DETECT, |l| weight_of(l, &rs(2)) == Some(1));
    let answers = s.curls(RS_NGINX_PORT, 4);
    assert!(
        answers.contains(&"hello,10.10.10.2".to_owned()),
        "{answers:?}"
    );

    // smtp_alert: keepalived's wording, one mail down and one up, none for the healthy server.
    let subject = |state: &str| {
        format!(
            "Subject: [rvs_e2e] Realserver [10.10.10.2]:tcp:{RS_NGINX_PORT} of virtual server \
             [{VIP}]:tcp:{RS_NGINX_PORT} - {state}"
        )
    };
    let text = || sink.lock().expect("sink").clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text().contains(&subject("UP")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mail = text();
    assert!(mail.contains(&subject("DOWN")), "{mail}");
    assert!(mail.contains("=> TCP CHECK failed on service <="), "{mail}");
    assert!(mail.contains(&subject("UP")), "{mail}");
    assert!(
        mail.contains("=> TCP CHECK succeed on service <="),
        "{mail}"
    );
    assert!(mail.contains("RCPT TO:<ops@example.test>"), "{mail}");
    assert!(!mail.contains("10.10.10.3"), "{mail}");
}

#[test]
fn b_inhibit_on_failure_sets_weight_zero() {
    let mut s = Setup::new(
        "kainhib",
        2,
        &nat_conf(&[2, 3], TCP_CHECK, "", "        inhibit_on_failure"),
    );
    s.wait(DETECT, |l| weight_of(l, &rs(2)) == Some(1));
    s.stop_nginx(0);
    let (listing, _) = s.wait(DETECT, |l| weight_of(l, &rs(2)) == Some(0));
    assert_eq!(weight_of(&listing, &rs(3)), Some(1), "{listing}");
    let answers = s.curls(RS_NGINX_PORT, 4);
    assert!(
        answers.iter().all(|a| a == "hello,10.10.10.3"),
        "{answers:?}"
    );
    s.start_nginx(0);
    s.wait(DETECT, |l| weight_of(l, &rs(2)) == Some(1));
}

fn genhash(topo: &NatTopology, ip: &str) -> String {
    let bin = rvs_lab::bin_path("rvs-genhash").display().to_string();
    let port = RS_NGINX_PORT.to_string();
    let out = topo
        .lab
        .exec(
            rvs_lab::DIRECTOR,
            &[&bin, "-s", ip, "-p", &port, "-u", "/page.html"],
        )
        .expect("run rvs-genhash");
    assert!(
        out.status.success(),
        "rvs-genhash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn c_http_get_digest_mismatch_fails_the_server() {
    // The digest is computed by rvs-genhash against a stand-in first: build the topology with a
    // placeholder config, then reload with the real digest.
    let placeholder = nat_conf(&[2, 3], TCP_CHECK, "", "");
    let s = Setup::new("kadigest", 2, &placeholder);
    let digest = genhash(&s.topo, "10.10.10.2");
    assert_eq!(digest.len(), 32, "{digest}");
    assert_eq!(digest, genhash(&s.topo, "10.10.10.3"));
    let http = format!(
        "HTTP_GET {{\n            url {{\n                path /page.html\n                digest {digest}\n            }}\n            connect_timeout 1\n        }}"
    );
    std::fs::write(&s.conf, nat_conf(&[2, 3], &http, "", "")).expect("write the config");
    adm(&s.topo, &["--reload"]);
    s.wait(DETECT, |l| {
        rs_line(l, &rs(2)).is_some() && rs_line(l, &rs(3)).is_some()
    });
    let health = adm(&s.topo, &["--health"]);
    assert!(health.contains("HTTP_GET"), "{health}");

    let page = s.topo.nginx_root_of(0).join("page.html");
    std::fs::write(&page, "changed\n").expect("change the page");
    s.wait(DETECT, |l| rs_line(l, &rs(2)).is_none());
    let answers = s.curls(RS_NGINX_PORT, 4);
    assert!(
        answers.iter().all(|a| a == "hello,10.10.10.3"),
        "{answers:?}"
    );

    std::fs::write(&page, rvs_lab::NGINX_PAGE).expect("restore the page");
    assert_eq!(genhash(&s.topo, "10.10.10.2"), digest);
    s.wait(DETECT, |l| rs_line(l, &rs(2)).is_some());
}

#[test]
fn d_sorry_server_serves_when_all_are_down() {
    let sorry = format!("    sorry_server 10.10.10.4 {RS_NGINX_PORT}");
    let mut s = Setup::new("kasorry", 3, &nat_conf(&[2, 3], TCP_CHECK, &sorry, ""));
    let (listing, _) = s.wait(DETECT, |l| {
        rs_line(l, &rs(2)).is_some() && rs_line(l, &rs(3)).is_some()
    });
    assert!(rs_line(&listing, &rs(4)).is_none(), "{listing}");
    s.stop_nginx(0);
    s.stop_nginx(1);
    let (listing, _) = s.wait(DETECT, |l| {
        rs_line(l, &rs(4)).is_some() && rs_line(l, &rs(2)).is_none() && rs_line(l, &rs(3)).is_none()
    });
    assert_eq!(weight_of(&listing, &rs(4)), Some(1), "{listing}");
    let answers = s.curls(RS_NGINX_PORT, 3);
    assert!(
        answers.iter().all(|a| a == "hello,10.10.10.4"),
        "{answers:?}"
    );
    let health = adm(&s.topo, &["--health"]);
    assert!(health.contains(&format!("{} sorry 1/1", rs(4))), "{health}");

    s.start_nginx(1);
    s.wait(DETECT, |l| {
        rs_line(l, &rs(4)).is_none() && rs_line(l, &rs(3)).is_some()
    });
    let answers = s.curls(RS_NGINX_PORT, 3);
    assert!(
        answers.iter().all(|a| a == "hello,10.10.10.3"),
        "{answers:?}"
    );
}

/// The reload test's service: port 80 (the built-in server, which can hold connections).
fn hold_conf(weight2: u32) -> String {
    format!(
        "virtual_server {VIP} 80 {{\n    {TIMING}\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n\
         real_server 10.10.10.2 80 {{\n        weight {weight2}\n        TCP_CHECK {{ connect_timeout 1 }}\n    }}\n\
         real_server 10.10.10.3 80 {{\n        weight 1\n        TCP_CHECK {{ connect_timeout 1 }}\n    }}\n}}\n"
    )
}

fn hup(pid: u32) {
    assert!(
        netns::pid_alive(pid),
        "kill -HUP {pid}: rvsd is not running"
    );
    netns::signal(pid, Signal::SIGHUP);
}

fn active_total(listing: &str) -> u32 {
    ["10.10.10.2:80", "10.10.10.3:80"]
        .iter()
        .map(|r| conns_of(listing, r).0)
        .sum()
}

#[test]
fn e_reloads_keep_traffic_and_connections() {
    let s = Setup::new("kareload", 2, &hold_conf(1));
    s.wait(DETECT, |l| {
        weight_of(l, "10.10.10.2:80") == Some(1) && weight_of(l, "10.10.10.3:80") == Some(1)
    });
    let saved = adm(&s.topo, &["-S", "-n"]);

    // A file keepalived would not start with (a VRRP instance without an interface): SIGHUP and
    // --reload both leave everything as it was.
    std::fs::write(
        &s.conf,
        "global_defs {\n}\nvrrp_instance VI_1 {\n  virtual_router_id 51\n}\n",
    )
    .expect("write a broken config");
    hup(s.rvsd_pid);
    std::thread::sleep(Duration::from_millis(500));
    let (code, err) = adm_err(&s.topo, &["--reload"]);
    assert_ne!(code, 0);
    assert!(err.contains("keepalived.conf:3"), "no file:line in: {err}");
    assert_eq!(adm(&s.topo, &["-S", "-n"]), saved);
    let answers = curl_many(&s.topo, &format!("http://{VIP}/"), 4);
    assert_eq!(tally(&answers).len(), 2, "{answers:?}");
    assert_eq!(adm(&s.topo, &["-S", "-n"]), saved);

    // A good reload that changes one weight: held connections go on and complete.
    let held: Vec<u32> = (0..4).map(|_| hold_connection(&s.topo, 4)).collect();
    let (before, _) = s.wait(DETECT, |l| active_total(l) == 4);
    std::fs::write(&s.conf, hold_conf(3)).expect("write the new config");
    hup(s.rvsd_pid);
    let (after, _) = s.wait(DETECT, |l| weight_of(l, "10.10.10.2:80") == Some(3));
    assert_eq!(weight_of(&after, "10.10.10.3:80"), Some(1), "{after}");
    for r in ["10.10.10.2:80", "10.10.10.3:80"] {
        assert_eq!(
            conns_of(&before, r).0,
            conns_of(&after, r).0,
            "{before}\n{after}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for pid in held {
        let left = deadline.saturating_duration_since(Instant::now());
        let status = s
            .topo
            .lab
            .wait_exit(pid, left)
            .unwrap_or_else(|| panic!("held connection {pid} did not finish"));
        assert!(status.contains("exit status: 0"), "held curl: {status}");
    }
}

/// An error keepalived runs past (`lb_kind dr`: not a method, NAT is used; `persistence_timeout
/// 0`: out of range, not persistent): rvsd starts with the same fall-backs, logs the problem with
/// its file:line, and `rvsd -t` fails on the file.
#[test]
fn g_lenient_errors_start_with_keepalived_fallbacks() {
    let conf = nat_conf(&[2, 3], TCP_CHECK, "    persistence_timeout 0", "").replacen(
        "lb_kind NAT",
        "lb_kind dr",
        1,
    );
    let s = Setup::new("kalenient", 2, &conf);
    let (listing, _) = s.wait(DETECT, |l| {
        rs_line(l, &rs(2)).is_some() && rs_line(l, &rs(3)).is_some()
    });
    assert!(
        listing.lines().all(|l| !l.contains("persistent")),
        "{listing}"
    );
    assert!(
        rs_line(&listing, &rs(2)).is_some_and(|l| l.contains("Masq")),
        "{listing}"
    );
    let answers = s.curls(RS_NGINX_PORT, 4);
    assert_eq!(tally(&answers).len(), 2, "{answers:?}");
    let log = s.topo.lab.log_of(s.rvsd_pid);
    let line_of = |needle: &str| {
        conf.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} in the file"))
    };
    for needle in ["lb_kind dr", "persistence_timeout 0"] {
        let at = format!("keepalived.conf:{}:", line_of(needle));
        assert!(log.contains(&at), "no {at} in rvsd's log:\n{log}");
    }
    let (ok, err) = rvsd_t(&s.conf);
    assert!(!ok, "{err}");
    assert!(
        err.contains("lb_kind: expected NAT|DR|TUN, got 'dr'"),
        "{err}"
    );
}

fn rvsd_t(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("-t")
        .arg("-f")
        .arg(path)
        .output()
        .expect("run rvsd -t");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn f_config_test_mode() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rvs-keepalived/tests/data");
    // Seed 003 names eth0, which this host may not have (keepalived -t checks interfaces too):
    // checked with dynamic_interfaces, then as written with an interface that cannot exist.
    let seed003 = std::fs::read_to_string(data.join("seed003_dr.conf")).expect("seed 003");
    let copy = std::env::temp_dir().join(format!("rvsd-t-003-{}.conf", std::process::id()));
    std::fs::write(
        &copy,
        format!("global_defs {{\n    dynamic_interfaces\n}}\n{seed003}"),
    )
    .unwrap();
    let (ok, err) = rvsd_t(&copy);
    assert!(ok, "seed 003's keepalived.conf must load: {err}");
    assert!(err.contains("is valid"), "{err}");
    std::fs::write(&copy, seed003.replace("eth0", "rvs-nosuch0")).unwrap();
    let (ok, err) = rvsd_t(&copy);
    let _ = std::fs::remove_file(&copy);
    assert!(!ok, "{err}");
    assert!(
        err.contains("fatal: ") && err.contains("interface rvs-nosuch0 for vrrp_instance"),
        "{err}"
    );
    // Seed 002 has errors keepalived -t also reports (a misspelt keyword, nb_get_retry where
    // keepalived 2.2 no longer knows it): -t fails, naming the lines.
    let (ok, err) = rvsd_t(&data.join("seed002.conf"));
    assert!(!ok, "{err}");
    assert!(
        err.contains("seed002.conf:15: unknown keyword 'smtp_alter'"),
        "{err}"
    );
    let broken = std::env::temp_dir().join(format!("rvsd-t-{}.conf", std::process::id()));
    std::fs::write(
        &broken,
        "virtual_server 10.0.0.1 80 {\n  delay_loop abc\n}\n",
    )
    .unwrap();
    let (ok, err) = rvsd_t(&broken);
    let _ = std::fs::remove_file(&broken);
    assert!(!ok, "{err}");
    assert!(err.contains(&format!("{}:2", broken.display())), "{err}");
}
