//! KernelBypass: nftables netdev ingress tables in a namespace.

mod common;

use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::{in_ns, try_run, Lab};
use rvs_io::{BypassRule, KernelBypass, L4Proto};

fn list(ns: &str, table: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "table", "netdev", table])
        .output()
        .expect("run nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packets counted by the rule whose text contains `needle`; `None` when no rule (with a
/// counter) matches.
fn counted(listing: &str, needle: &str) -> Option<u64> {
    listing.lines().find(|l| l.contains(needle)).and_then(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "packets")?;
        words.next()?.parse().ok()
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

#[test]
fn install_apply_replace_crash_and_remove() {
    let lab = Lab::new("nft1");
    let vip = ip(&lab.ip_a());
    let ns = lab.a.clone();
    in_ns(&lab.a, move || {
        let ifs = vec!["a0".to_owned(), "lo".to_owned()];
        let bypass = KernelBypass::install("rvs_t", &ifs).expect("install");
        let l = list(&ns, "rvs_t").expect("table exists");
        assert!(
            l.contains("hook ingress device \"a0\" priority -500; policy accept;"),
            "{l}"
        );
        assert!(l.contains("device \"lo\""), "{l}");
        let svc = BypassRule::Service {
            proto: L4Proto::Tcp,
            vip,
            port: 80,
        };
        bypass.apply(&[svc]).expect("apply");
        let l = list(&ns, "rvs_t").expect("table");
        // One set element, looked up by each interface's chain.
        assert_eq!(l.matches(&format!("{vip} . tcp . 80")).count(), 1, "{l}");
        assert_eq!(l.matches("th dport @svc4").count(), 2, "{l}");
        let rs = BypassRule::RealServerReply {
            proto: L4Proto::Udp,
            rip: ip("fd77::2"),
            port: 53,
        };
        bypass.apply(&[rs]).expect("replace");
        let l = list(&ns, "rvs_t").expect("table");
        assert!(!l.contains(". tcp . 80"), "old rules flushed: {l}");
        assert!(l.contains("fd77::2 . udp . 53"), "{l}");
        assert_eq!(
            l.matches("th sport @rs6 fib daddr type != local").count(),
            2
        );

        // A killed rvsd leaves its table behind; the next install starts clean.
        std::mem::forget(bypass);
        let again = KernelBypass::install("rvs_t", &["a0".to_owned()]).expect("reinstall");
        let l = list(&ns, "rvs_t").expect("table");
        assert!(!l.contains(". udp . 53") && !l.contains("\"lo\""), "{l}");
        again.remove().expect("remove");
        assert!(list(&ns, "rvs_t").is_none(), "table gone after remove");

        // Drop removes it too.
        let dropped = KernelBypass::install("rvs_t", &["a0".to_owned()]).expect("install");
        drop(dropped);
        assert!(list(&ns, "rvs_t").is_none(), "table gone after drop");

        let bad = KernelBypass::install("rvs_t", &["nope0".to_owned()]);
        assert!(
            matches!(bad, Err(rvs_io::IoError::NoSuchInterface(_))),
            "{bad:?}"
        );
        assert!(
            list(&ns, "rvs_t").is_none(),
            "failed install leaves nothing"
        );
    });
}

#[test]
fn rules_hide_traffic_from_the_kernel_but_not_health_checks() {
    let lab = Lab::new("nft2");
    let (ip_a, ip_b) = (lab.ip_a(), lab.ip_b());
    let ns_a = lab.a.clone();
    // Real server side: a TCP "health check" port and a route back through the director.
    let listener = {
        let addr = format!("{ip_b}:8080");
        in_ns(&lab.b, move || TcpListener::bind(addr).expect("listen"))
    };
    lab.ip(&lab.b, &["route", "add", "203.0.113.0/24", "via", &ip_a]);
    let service = {
        let addr = format!("{ip_a}:9999");
        in_ns(&lab.a, move || {
            let s = UdpSocket::bind(addr).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            s
        })
    };
    let bypass = {
        let (va, vb) = (ip(&ip_a), ip(&ip_b));
        in_ns(&lab.a, move || {
            let b = KernelBypass::install("rvs_f", &["a0".to_owned()]).expect("install");
            b.apply(&[
                BypassRule::Service {
                    proto: L4Proto::Udp,
                    vip: va,
                    port: 9999,
                },
                BypassRule::RealServerReply {
                    proto: L4Proto::Tcp,
                    rip: vb,
                    port: 8080,
                },
                BypassRule::RealServerReply {
                    proto: L4Proto::Udp,
                    rip: vb,
                    port: 5353,
                },
            ])
            .expect("apply");
            b
        })
    };
    let send_from_b = |src_port: u16, dst: String| {
        let src = format!("{}:{src_port}", lab.ip_b());
        in_ns(&lab.b, move || {
            let s = UdpSocket::bind(src).expect("bind");
            for _ in 0..3 {
                s.send_to(b"x", &dst).expect("send");
            }
        });
    };
    // Service traffic never reaches the kernel's socket.
    send_from_b(4000, format!("{ip_a}:9999"));
    let mut buf = [0u8; 16];
    assert!(
        service.recv_from(&mut buf).is_err(),
        "service datagram must be dropped"
    );
    // NAT replies to non-local destinations are dropped...
    send_from_b(5353, "203.0.113.9:53".to_owned());
    // ...but the director's own connection to the real server works.
    let target = format!("{ip_b}:8080");
    let connected = in_ns(&lab.a, move || {
        TcpStream::connect_timeout(&target.parse().expect("addr"), Duration::from_secs(2)).is_ok()
    });
    assert!(
        connected,
        "health check to the real server must reach the kernel"
    );
    drop(listener);
    let l = list(&ns_a, "rvs_f").expect("table");
    let rule = |needle: &str| {
        counted(&l, needle).unwrap_or_else(|| panic!("no counted rule with {needle:?}:\n{l}"))
    };
    assert!(rule("@svc4") >= 3, "{l}");
    // The three datagrams from port 5353; the health check's answers from 8080 (to the
    // director's own address) are not counted.
    assert_eq!(rule("@rs4"), 3, "{l}");
    // After removal the kernel gets service traffic again.
    in_ns(&lab.a, move || bypass.remove().expect("remove"));
    send_from_b(4001, format!("{ip_a}:9999"));
    assert!(
        service.recv_from(&mut buf).is_ok(),
        "delivered after remove"
    );
    assert!(!try_run(&[
        "ip", "netns", "exec", &lab.a, "nft", "list", "table", "netdev", "rvs_f"
    ]));
}
