//! End-to-end tests of the kernel-bypass sets: many rvsadm commands from concurrent clients, then
//! the elements of rvsd's nftables sets must be exactly the rules `rvsadm -S -n` implies. Root
//! required; namespaces (and rvsd) are torn down by the topology guard.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use common::{adm, VIP};
use rvs_io::{BypassRule, KernelBypass, L4Proto};
use rvs_lab::{Director, FullNatTopology, NatTopology, DIRECTOR};

/// The name of the one rvsd table in the director's namespace.
fn rvsd_table(topo: &NatTopology) -> String {
    let out = topo
        .lab
        .exec(DIRECTOR, &["nft", "list", "tables"])
        .expect("nft list tables");
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("table netdev "))
        .filter(|n| n.starts_with("rvsd_"))
        .collect();
    assert_eq!(names.len(), 1, "one rvsd table: {text}");
    names[0].to_owned()
}

/// The rules the director's kernel holds in `table`.
fn kernel_rules(topo: &NatTopology, table: &str) -> BTreeSet<BypassRule> {
    topo.lab.in_netns(DIRECTOR, || {
        KernelBypass::rules_in(table).expect("read the sets back")
    })
}

fn proto_of(flag: &str) -> Option<L4Proto> {
    match flag {
        "-t" | "--tcp-service" => Some(L4Proto::Tcp),
        "-u" | "--udp-service" => Some(L4Proto::Udp),
        "--sctp-service" => Some(L4Proto::Sctp),
        _ => None,
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("address {text:?} in the save output: {e}"))
}

/// The rules an `rvsadm -S -n` listing implies: each service's VIP:port, each masqueraded real
/// server's replies, each FULLNAT real server's replies to each of the service's local
/// addresses. (No firewall-mark services here: their traffic comes from mark rules, which the
/// save format does not carry.)
fn rules_from_save(save: &str) -> BTreeSet<BypassRule> {
    let mut rules = BTreeSet::new();
    let mut laddrs: HashMap<(L4Proto, SocketAddr), Vec<IpAddr>> = HashMap::new();
    for line in save.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let value = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        let (Some(cmd), Some(kind), Some(svc)) = (words.first(), words.get(1), words.get(2)) else {
            continue;
        };
        let proto = proto_of(kind).unwrap_or_else(|| panic!("unexpected service in {line:?}"));
        let svc = addr(svc);
        match *cmd {
            "-A" => {
                rules.insert(BypassRule::Service {
                    proto,
                    vip: svc.ip(),
                    port: svc.port(),
                });
                let pool = value("--laddr").map_or_else(Vec::new, |l| {
                    l.split(',')
                        .map(|a| a.parse().expect("local address"))
                        .collect()
                });
                laddrs.insert((proto, svc), pool);
            }
            "-a" => {
                let rs = addr(value("-r").expect("-r in a real-server line"));
                let (rip, port) = (rs.ip(), rs.port());
                if words.contains(&"-m") {
                    rules.insert(BypassRule::RealServerReply { proto, rip, port });
                    rules.insert(BypassRule::RealServerFragments { proto, rip });
                }
                if words.contains(&"--fullnat") {
                    for laddr in laddrs.get(&(proto, svc)).into_iter().flatten() {
                        rules.insert(BypassRule::FullNatReply {
                            proto,
                            rip,
                            port,
                            laddr: *laddr,
                        });
                    }
                }
            }
            _ => panic!("unexpected save line {line:?}"),
        }
    }
    rules
}

/// A deterministic pseudo-random sequence per client thread.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// One random rvsadm command on a small shared pool of services and real servers, so that
/// concurrent clients step on each other (many commands fail, which is fine).
fn random_command(rng: &mut Lcg) -> Vec<String> {
    let flag = if rng.below(3) == 0 { "-u" } else { "-t" };
    let port = 1000 + rng.below(6);
    let svc = if rng.below(5) == 0 {
        format!("[2001:db8:1::253]:{port}")
    } else {
        format!("{VIP}:{port}")
    };
    let v6 = svc.starts_with('[');
    let host = 2 + rng.below(6);
    let masq = rng.below(3) != 0;
    let rs = match (v6, masq) {
        (false, true) => format!("10.10.10.{host}:{}", 8000 + rng.below(2)),
        (false, false) => format!("10.10.10.{host}:{port}"),
        (true, true) => format!("[2001:db8:10::{host}]:{}", 8000 + rng.below(2)),
        (true, false) => format!("[2001:db8:10::{host}]:{port}"),
    };
    let method = if masq { "-m" } else { "-g" };
    let words: Vec<&str> = match rng.below(10) {
        0..=2 => vec!["-A", flag, &svc, "-s", "rr"],
        3 => vec!["-D", flag, &svc],
        4..=6 => vec!["-a", flag, &svc, "-r", &rs, method],
        7 => vec!["-e", flag, &svc, "-r", &rs, method],
        _ => vec!["-d", flag, &svc, "-r", &rs],
    };
    words.into_iter().map(str::to_owned).collect()
}

#[test]
fn concurrent_commands_leave_exactly_the_rules_of_the_configuration() {
    // The FULLNAT topology: the NAT one plus the local addresses rvsd checks `--laddr` against.
    let fnat = FullNatTopology::build("bypasssets", 1).expect("build the FULLNAT topology");
    let topo = &fnat.nat;
    topo.start_rvsd(&[]).expect("start rvsd");
    let table = rvsd_table(topo);
    assert!(kernel_rules(topo, &table).is_empty());

    const CLIENTS: u64 = 8;
    const COMMANDS: usize = 40;
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            s.spawn(move || {
                let mut rng = Lcg(0x5eed + client);
                for _ in 0..COMMANDS {
                    let cmd = random_command(&mut rng);
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    // Failures (a service another client deleted...) are part of the game.
                    let out = topo.rvsadm(&args).expect("run rvsadm");
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        !stderr.contains("kernel-bypass") && !stderr.contains("nft"),
                        "{args:?}: {stderr}"
                    );
                }
            });
        }
    });
    let save = adm(topo, &["-S", "-n"]);
    let expected = rules_from_save(&save);
    assert!(
        expected.len() > 3,
        "the commands built something to compare:\n{save}"
    );
    assert_eq!(kernel_rules(topo, &table), expected, "after:\n{save}");

    // Every kind of rule, deterministically: FULLNAT with two local addresses, SCTP, a port-0
    // persistent service, an IPv6 one, and a method change that drops a rule.
    let fnat = format!("{VIP}:90");
    for cmd in [
        vec![
            "-A",
            "-t",
            &fnat,
            "-s",
            "rr",
            "--laddr",
            "10.10.10.101,10.10.10.102",
        ],
        vec!["-a", "-t", &fnat, "-r", "10.10.10.2:8088", "--fullnat"],
        vec!["-A", "--sctp-service", "192.168.1.253:36412", "-s", "rr"],
        vec![
            "-a",
            "--sctp-service",
            "192.168.1.253:36412",
            "-r",
            "10.10.10.3:3868",
            "-m",
        ],
        vec!["-A", "-u", "192.168.1.253:0", "-s", "rr", "-p", "60"],
        vec!["-a", "-u", "192.168.1.253:0", "-r", "10.10.10.4:0", "-m"],
        vec!["-A", "-t", "[2001:db8:1::253]:443", "-s", "wlc"],
        vec![
            "-a",
            "-t",
            "[2001:db8:1::253]:443",
            "-r",
            "[2001:db8:10::5]:8443",
            "-m",
        ],
        vec![
            "-a",
            "-t",
            "[2001:db8:1::253]:443",
            "-r",
            "[2001:db8:10::6]:443",
            "-m",
        ],
        vec![
            "-e",
            "-t",
            "[2001:db8:1::253]:443",
            "-r",
            "[2001:db8:10::6]:443",
            "-i",
        ],
    ] {
        adm(topo, &cmd);
    }
    let save = adm(topo, &["-S", "-n"]);
    let expected = rules_from_save(&save);
    let rules = kernel_rules(topo, &table);
    assert_eq!(rules, expected, "after:\n{save}");
    for wanted in [
        BypassRule::FullNatReply {
            proto: L4Proto::Tcp,
            rip: "10.10.10.2".parse().unwrap(),
            port: 8088,
            laddr: "10.10.10.102".parse().unwrap(),
        },
        BypassRule::Service {
            proto: L4Proto::Udp,
            vip: VIP.parse().unwrap(),
            port: 0,
        },
        BypassRule::RealServerReply {
            proto: L4Proto::Sctp,
            rip: "10.10.10.3".parse().unwrap(),
            port: 3868,
        },
        BypassRule::RealServerFragments {
            proto: L4Proto::Sctp,
            rip: "10.10.10.3".parse().unwrap(),
        },
    ] {
        assert!(rules.contains(&wanted), "{wanted:?} missing: {rules:?}");
    }
    assert!(!rules.contains(&BypassRule::RealServerReply {
        proto: L4Proto::Tcp,
        rip: "2001:db8:10::6".parse().unwrap(),
        port: 443,
    }));

    // Each interface's chain keeps its fixed set of lookups however many services there are.
    for chain in ["in0_d0", "in1_d1"] {
        let out = topo
            .lab
            .exec(DIRECTOR, &["nft", "list", "chain", "netdev", &table, chain])
            .expect("nft list chain");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("counter packets").count(), 15, "{text}");
    }

    // -C empties the sets; the table and its chains stay.
    adm(topo, &["-C"]);
    assert!(kernel_rules(topo, &table).is_empty());
    assert_eq!(rvsd_table(topo), table);
}
