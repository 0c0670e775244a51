//! KernelBypass's set layout in a fresh namespace: full and incremental updates leave exactly the
//! expected elements, the kernel really drops what they name and nothing else, and lost chains
//! come back with `reattach`. Root required; the namespaces go away on Drop.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{in_ns, run, Lab};
use rvs_io::{BypassRule, KernelBypass, L4Proto};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn svc(vip: IpAddr, proto: L4Proto, port: u16) -> BypassRule {
    BypassRule::Service { proto, vip, port }
}

/// What a TCP connect from namespace `ns` to `to` ends in.
#[derive(Debug, PartialEq, Eq)]
enum Connect {
    Accepted,
    /// RST: the kernel saw the SYN.
    Refused,
    /// Nothing came back within the limit: the SYN or its answer was dropped.
    TimedOut,
}

fn connect_from(ns: &str, to: SocketAddr) -> Connect {
    in_ns(ns, move || {
        match TcpStream::connect_timeout(&to, Duration::from_millis(1500)) {
            Ok(_) => Connect::Accepted,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Connect::Refused,
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                Connect::TimedOut
            }
            Err(e) => panic!("connect to {to}: {e}"),
        }
    })
}

fn listen(ns: &str, addr: SocketAddr) -> TcpListener {
    in_ns(ns, move || TcpListener::bind(addr).expect("listen"))
}

fn rules_in(ns: &str, table: &'static str) -> BTreeSet<BypassRule> {
    in_ns(ns, move || {
        KernelBypass::rules_in(table).expect("read the table")
    })
}

fn nft(ns: &str, args: &[&str]) -> String {
    let mut v = vec!["ip", "netns", "exec", ns, "nft"];
    v.extend_from_slice(args);
    run(&v)
}

/// Packets counted by the base-chain rule that looks up `set` in chain `chain`.
fn counted(ns: &str, table: &str, chain: &str, set: &str) -> u64 {
    let text = nft(ns, &["list", "chain", "netdev", table, chain]);
    let needle = format!("@{set} ");
    let line = text
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no rule looks up {set}:\n{text}"));
    let mut words = line.split_whitespace();
    words.find(|w| *w == "packets");
    words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line}"))
}

#[test]
fn full_and_incremental_updates_leave_exactly_the_expected_elements() {
    let lab = Lab::new("sets1");
    let ns = lab.a.clone();
    let (a4, a6) = (ip(&lab.ip_a()), ip(&format!("fd77:{}::1", lab.net)));
    // The test runs in namespace a: nft applies to the calling thread's namespace.
    in_ns(&lab.a, move || updates_in_a(&ns, a4, a6));
}

fn updates_in_a(ns: &str, a4: IpAddr, a6: IpAddr) {
    let ns = ns.to_owned();
    let bypass =
        KernelBypass::install("rvs_sets", &["a0".to_owned(), "lo".to_owned()]).expect("install");
    let marked = BypassRule::MarkedService {
        proto: L4Proto::Udp,
        net: ip("10.88.0.0"),
        prefix_len: 16,
        first_port: 1000,
        last_port: 1999,
    };
    let overlapping = BypassRule::MarkedService {
        proto: L4Proto::Udp,
        net: ip("10.88.1.0"),
        prefix_len: 24,
        first_port: 1500,
        last_port: 2500,
    };
    let first: Vec<BypassRule> = vec![
        svc(a4, L4Proto::Tcp, 80),
        svc(a4, L4Proto::Udp, 0),
        svc(a6, L4Proto::Sctp, 443),
        marked,
        BypassRule::RealServerReply {
            proto: L4Proto::Tcp,
            rip: ip("10.66.0.2"),
            port: 8080,
        },
        BypassRule::RealServerReply {
            proto: L4Proto::Udp,
            rip: ip("fd66::2"),
            port: 0,
        },
        BypassRule::FullNatReply {
            proto: L4Proto::Tcp,
            rip: ip("fd66::3"),
            port: 80,
            laddr: a6,
        },
    ];
    bypass.apply(&first).expect("apply");
    assert_eq!(rules_in(&ns, "rvs_sets"), first.iter().copied().collect());
    let listed = nft(&ns, &["list", "set", "netdev", "rvs_sets", "svc4"]);
    assert!(listed.contains(&format!("{a4} . tcp . 80")), "{listed}");

    // One transaction: two deletions, three additions (one of them an overlapping marked
    // range, which an interval set would refuse).
    let add = [
        svc(a4, L4Proto::Tcp, 443),
        overlapping,
        BypassRule::FullNatReply {
            proto: L4Proto::Udp,
            rip: ip("10.66.0.9"),
            port: 0,
            laddr: a4,
        },
    ];
    let delete = [first[0], first[5]];
    bypass.apply_diff(&add, &delete).expect("diff");
    let mut expected: BTreeSet<BypassRule> = first.iter().copied().collect();
    expected.remove(&first[0]);
    expected.remove(&first[5]);
    expected.extend(add);
    assert_eq!(rules_in(&ns, "rvs_sets"), expected);
    let chain = nft(&ns, &["list", "chain", "netdev", "rvs_sets", "marked"]);
    assert_eq!(chain.matches("counter packets").count(), 2, "{chain}");

    // Deleting what is not there fails as a whole and changes nothing.
    let absent = svc(a4, L4Proto::Tcp, 9);
    let err = bypass.apply_diff(&[svc(a4, L4Proto::Tcp, 10)], &[absent]);
    assert!(matches!(err, Err(rvs_io::IoError::Nft(_))), "{err:?}");
    assert_eq!(rules_in(&ns, "rvs_sets"), expected);

    // Removing a marked rule rewrites the marked chain only with what is left.
    bypass.apply_diff(&[], &[marked]).expect("diff");
    expected.remove(&marked);
    assert_eq!(rules_in(&ns, "rvs_sets"), expected);

    // A full apply replaces everything; an empty one leaves empty sets and chains in place.
    bypass.apply(&[svc(a6, L4Proto::Udp, 53)]).expect("apply");
    assert_eq!(
        rules_in(&ns, "rvs_sets"),
        [svc(a6, L4Proto::Udp, 53)].into_iter().collect()
    );
    bypass.apply(&[]).expect("apply");
    assert!(rules_in(&ns, "rvs_sets").is_empty());
    let table = nft(&ns, &["list", "table", "netdev", "rvs_sets"]);
    assert_eq!(table.matches("type filter hook ingress").count(), 2);
    assert_eq!(table.matches("jump marked").count(), 2);

    // A killed rvsd leaves its table behind; the next install starts clean, and a failed
    // install leaves nothing.
    std::mem::forget(bypass);
    let again = KernelBypass::install("rvs_sets", &["a0".to_owned()]).expect("reinstall");
    let table = nft(&ns, &["list", "table", "netdev", "rvs_sets"]);
    assert_eq!(table.matches("type filter hook ingress").count(), 1);
    again.remove().expect("remove");
    assert!(!nft(&ns, &["list", "tables"]).contains("rvs_sets"));
    let bad = KernelBypass::install("rvs_sets", &["nope0".to_owned()]);
    assert!(
        matches!(bad, Err(rvs_io::IoError::NoSuchInterface(_))),
        "{bad:?}"
    );
    assert!(!nft(&ns, &["list", "tables"]).contains("rvs_sets"));
}

#[test]
fn the_kernel_drops_exactly_what_the_sets_name() {
    let lab = Lab::new("sets2");
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let (ip_a, ip_b) = (ip(&lab.ip_a()), ip(&lab.ip_b()));
    let a6 = ip(&format!("fd77:{}::1", lab.net));
    let at = |addr: IpAddr, port: u16| SocketAddr::new(addr, port);
    // Listeners on the director side (the kernel would accept these connections) and on the
    // real-server side.
    let _listeners = [
        listen(&a, at(ip_a, 80)),
        listen(&a, at(ip_a, 81)),
        listen(&a, at(ip_a, 7005)),
        listen(&a, at(a6, 80)),
        listen(&b, at(ip_b, 8080)),
        listen(&b, at(ip_b, 9000)),
    ];
    in_ns(&lab.a, move || drops_in_a(&a, &b, (ip_a, ip_b, a6)));
}

fn drops_in_a(a: &str, b: &str, (ip_a, ip_b, a6): (IpAddr, IpAddr, IpAddr)) {
    let at = |addr: IpAddr, port: u16| SocketAddr::new(addr, port);
    let bypass = KernelBypass::install("rvs_drop", &["a0".to_owned()]).expect("install");
    // Before any rule, everything gets through.
    assert_eq!(connect_from(b, at(ip_a, 80)), Connect::Accepted);

    bypass
        .apply(&[
            svc(ip_a, L4Proto::Tcp, 80),
            svc(a6, L4Proto::Tcp, 80),
            BypassRule::MarkedService {
                proto: L4Proto::Tcp,
                net: ip_a,
                prefix_len: 32,
                first_port: 7000,
                last_port: 7010,
            },
            // Replies from the "real server" b:8080 (a NAT real server): dropped unless
            // addressed to the director itself.
            BypassRule::RealServerReply {
                proto: L4Proto::Tcp,
                rip: ip_b,
                port: 8080,
            },
        ])
        .expect("apply");
    // The service's SYN never reaches the kernel: no SYN-ACK, no RST.
    assert_eq!(connect_from(b, at(ip_a, 80)), Connect::TimedOut);
    assert_eq!(connect_from(b, at(a6, 80)), Connect::TimedOut);
    assert_eq!(connect_from(b, at(ip_a, 7005)), Connect::TimedOut);
    // Other ports still reach it: an open one accepts, a closed one refuses.
    assert_eq!(connect_from(b, at(ip_a, 81)), Connect::Accepted);
    assert_eq!(connect_from(b, at(ip_a, 82)), Connect::Refused);
    assert_eq!(connect_from(b, at(ip_a, 7011)), Connect::Refused);
    // The director's own connection to the real server (a health check) works.
    assert_eq!(connect_from(a, at(ip_b, 8080)), Connect::Accepted);
    assert!(counted(a, "rvs_drop", "in0_a0", "svc4") >= 1);
    assert!(counted(a, "rvs_drop", "in0_a0", "svc6") >= 1);
    assert_eq!(counted(a, "rvs_drop", "in0_a0", "rs4"), 0);
    let marked = nft(a, &["list", "chain", "netdev", "rvs_drop", "marked"]);
    assert!(!marked.contains("packets 0 "), "{marked}");

    // Incrementally: the service goes, a FULLNAT reply rule comes (b:9000 answering the
    // director's address a, as a FULLNAT real server answers a local address).
    let fnat = BypassRule::FullNatReply {
        proto: L4Proto::Tcp,
        rip: ip_b,
        port: 9000,
        laddr: ip_a,
    };
    bypass
        .apply_diff(&[fnat], &[svc(ip_a, L4Proto::Tcp, 80)])
        .expect("diff");
    assert_eq!(connect_from(b, at(ip_a, 80)), Connect::Accepted);
    assert_eq!(connect_from(a, at(ip_b, 9000)), Connect::TimedOut);
    assert!(counted(a, "rvs_drop", "in0_a0", "fnat4") >= 1);

    // A chain lost with its interface (kernels before 6.16) comes back with its rules.
    nft(a, &["delete", "chain", "netdev", "rvs_drop", "in0_a0"]);
    assert_eq!(connect_from(a, at(ip_b, 9000)), Connect::Accepted);
    assert_eq!(bypass.reattach().expect("reattach"), ["a0"]);
    assert!(
        bypass.reattach().expect("reattach again").is_empty(),
        "nothing to do the second time"
    );
    assert_eq!(connect_from(a, at(ip_b, 9000)), Connect::TimedOut);
    assert_eq!(connect_from(b, at(a6, 80)), Connect::TimedOut);

    // Removed: the kernel gets everything again.
    bypass.remove().expect("remove");
    assert_eq!(connect_from(b, at(a6, 80)), Connect::Accepted);
    assert_eq!(connect_from(a, at(ip_b, 9000)), Connect::Accepted);
}
