//! IP fragments and the path MTU through a NAT director, over veth (needs root; the rvsd and
//! rvs-lab binaries built): large UDP datagrams, fragmented by the client's and the real
//! server's kernels, are reassembled by rvsd, rewritten and cut again on their way both ways,
//! IPv4 and IPv6; a datagram too long for the real servers' link gets the client ICMP
//! "fragmentation needed" / "packet too big", and the client's next try, fragmented by its own
//! kernel to the announced MTU, goes through. The BPF plane passes fragments up to rvsd, which
//! reassembles them with the program's connection of the flow. A real server's own fragmented
//! datagram (not a service's reply) is handed to the director's kernel whole and reaches the
//! client.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use rvs_lab::server::udp::byte_sum;
use rvs_lab::NatTopology;

/// The NAT topology with a UDP service on port 53 of both VIPs to the real servers' 5353.
fn udp_director(tag: &str, extra: &[&str]) -> NatTopology {
    let topo = NatTopology::build(tag, 1).expect("build the NAT topology");
    topo.start_real_servers().expect("start the real servers");
    topo.start_rvsd(extra).expect("start rvsd");
    let vip6 = format!("[{}]:53", topo.vip6);
    let vip4 = format!("{VIP}:53");
    adm(&topo, &["-A", "-u", &vip4, "-s", "rr"]);
    adm(&topo, &["-A", "-u", &vip6, "-s", "rr"]);
    let rs4 = format!("{}:5353", topo.rips4[0]);
    let rs6 = format!("[{}]:5353", topo.rips6[0]);
    adm(&topo, &["-a", "-u", &vip4, "-r", &rs4, "-m"]);
    adm(&topo, &["-a", "-u", &vip6, "-r", &rs6, "-m"]);
    topo
}

/// A `big:ANSWER:` request of `len` bytes.
fn big_request(len: usize, answer: usize) -> Vec<u8> {
    let mut r = format!("big:{answer}:").into_bytes();
    r.extend((0..len - r.len()).map(|i| (i * 13 + 7) as u8));
    r
}

/// Sends `request` from the client to `to` on one socket up to `tries` times (one second
/// apart) and returns the first answer, with how many tries it took.
fn exchange(topo: &NatTopology, to: SocketAddr, request: &[u8], tries: usize) -> (Vec<u8>, usize) {
    topo.lab.in_netns("client", || {
        let bind: SocketAddr = if to.is_ipv6() {
            "[::]:0".parse().expect("any")
        } else {
            "0.0.0.0:0".parse().expect("any")
        };
        let sock = UdpSocket::bind(bind).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut buf = vec![0u8; 65_536];
        for attempt in 1..=tries {
            // A send may fail once the kernel knows the path MTU is smaller; the next one
            // fragments.
            let _ = sock.send_to(request, to);
            if let Ok(n) = sock.recv(&mut buf) {
                return (buf[..n].to_vec(), attempt);
            }
        }
        panic!("no answer from {to} in {tries} tries");
    })
}

/// Checks an answer: the real server's text, then the length and byte sum of `request`.
fn assert_answer(topo: &NatTopology, answer: &[u8], request: &[u8], len: usize) {
    assert_eq!(answer.len(), len, "answer length");
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(topo.rs_text(0).as_str()));
    assert_eq!(
        lines.next(),
        Some(format!("{} {}", request.len(), byte_sum(request)).as_str()),
        "the real server got the request whole"
    );
}

#[test]
fn a_fragmented_datagrams_cross_the_director_both_ways() {
    let topo = udp_director("frag", &[]);
    let request = big_request(4000, 6000);
    for vip in [IpAddr::V4(topo.vip4), IpAddr::V6(topo.vip6)] {
        let (answer, _) = exchange(&topo, SocketAddr::new(vip, 53), &request, 3);
        assert_answer(&topo, &answer, &request, 6000);
    }
    let c = counters(&topo);
    // Two requests and two answers, each three to five fragments.
    assert!(c["reasm_reassembled"] >= 4, "{c:?}");
    assert!(c["tx_fragmented"] >= 4, "{c:?}");
    assert_eq!(c["reasm_held_datagrams"], 0, "{c:?}");
    assert_eq!(c["reasm_invalid"], 0, "{c:?}");
    assert_eq!(c["drop_fragmented"], 0, "{c:?}");
    // The kernel did not forward the answers' later fragments untranslated: its bypass rules
    // dropped them (rvsd had its copies).
    for set in ["@rsfrag4", "@rsfrag6"] {
        assert!(bypass_drops(&topo, set) > 0, "nothing dropped by {set}");
    }
}

/// Packets the director's kernel-bypass rules looking up `set` dropped, over its interfaces.
fn bypass_drops(topo: &NatTopology, set: &str) -> u64 {
    let out = topo
        .lab
        .exec_ok("director", &["nft", "list", "ruleset"])
        .expect("nft list ruleset");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(set))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "packets")?;
            words.get(at + 1)?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn b_too_long_for_the_path_gets_icmp_then_fragments() {
    let topo = udp_director("mtu", &[]);
    too_long_for_the_path(&topo);
    assert!(counter(&topo, "tx_too_big") >= 2);
}

#[test]
fn d_too_long_for_the_path_of_the_bpf_plane() {
    let fs = Bpffs::mount("mtu");
    let args = bpf_args(&fs.pins());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = udp_director("mtubpf", &args);
    too_long_for_the_path(&topo);
    // The program sent the full-size datagrams up as they came, before rewriting them.
    let stats = program_stats(&fs.pins());
    assert!(stats["punt_frag_needed"] >= 2, "{stats:?}");
}

/// The real servers' segment at 1400 bytes; full-size datagrams from the client get ICMP, and
/// the client's next tries (fragmented by its kernel) go through.
fn too_long_for_the_path(topo: &NatTopology) {
    // The real servers' segment (director side, bridge, real server) at 1400 bytes.
    let lab = &topo.lab;
    lab.ip("director", &["link set d1 mtu 1400".to_string()])
        .expect("director MTU");
    lab.ip(
        "switch",
        &[
            "link set p0 mtu 1400".to_string(),
            "link set p1 mtu 1400".to_string(),
        ],
    )
    .expect("switch MTU");
    lab.ip("rs1", &["link set eth0 mtu 1400".to_string()])
        .expect("real server MTU");
    // Full-size packets for a 1500-byte link: DF set (the socket's default path-MTU discovery).
    let cases = [
        (IpAddr::V4(topo.vip4), 1500 - 28),
        (IpAddr::V6(topo.vip6), 1500 - 48),
    ];
    for (vip, len) in cases {
        let request = big_request(len, 100);
        let (answer, tries) = exchange(topo, SocketAddr::new(vip, 53), &request, 4);
        assert_answer(topo, &answer, &request, 100);
        assert!(
            tries >= 2,
            "the first full-size datagram cannot have passed"
        );
        let route = lab
            .exec_ok("client", &["ip", "route", "get", &vip.to_string()])
            .expect("ip route get");
        let route = String::from_utf8_lossy(&route.stdout).into_owned();
        assert!(
            route.contains("mtu 1400"),
            "the client learnt the path MTU: {route}"
        );
    }
    let c = counters(topo);
    assert!(c["reasm_reassembled"] >= 2, "{c:?}");
}

#[test]
fn c_fragmented_datagrams_cross_the_bpf_plane_both_ways() {
    let fs = Bpffs::mount("frag");
    let args = bpf_args(&fs.pins());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = udp_director("fragbpf", &args);
    // A small request the program schedules and a fragmented answer rvsd reassembles with the
    // program's connection (a DNS answer over EDNS), then a fragmented request too.
    let small = big_request(100, 6000);
    let large = big_request(4000, 6000);
    for vip in [IpAddr::V4(topo.vip4), IpAddr::V6(topo.vip6)] {
        for request in [&small, &large] {
            let (answer, _) = exchange(&topo, SocketAddr::new(vip, 53), request, 3);
            assert_answer(&topo, &answer, request, 6000);
        }
    }
    let c = counters(&topo);
    assert!(c["reasm_reassembled"] >= 6, "{c:?}");
    assert_eq!(c["reasm_invalid"], 0, "{c:?}");
}

/// A real server's own datagram, not a service's reply: sent from a port no service uses to the
/// client, fragmented by the real server's kernel. The director's kernel bypass keeps every
/// fragment of a NAT real server's traffic from the kernel (the BPF program punts them), so
/// rvsd reassembles it, the engine leaves it to the kernel, and rvsd hands it over through its
/// TUN device, cut again; the client gets it whole, IPv4 and IPv6.
fn a_real_servers_own_datagram_reaches_the_client(topo: &NatTopology) {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    for (client, rip) in [
        (IpAddr::V4(topo.client4), IpAddr::V4(topo.rips4[0])),
        (IpAddr::V6(topo.client6), IpAddr::V6(topo.rips6[0])),
    ] {
        let got = topo.lab.in_netns("client", || {
            let sock = UdpSocket::bind(SocketAddr::new(client, 7777)).expect("bind");
            sock.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let mut buf = vec![0u8; 65_536];
            for _ in 0..3 {
                topo.lab.in_netns("rs1", || {
                    let out = UdpSocket::bind(SocketAddr::new(rip, 7000)).expect("bind");
                    out.send_to(&payload, SocketAddr::new(client, 7777))
                        .expect("send");
                });
                if let Ok(n) = sock.recv(&mut buf) {
                    return Some(buf[..n].to_vec());
                }
            }
            None
        });
        let got = got.unwrap_or_else(|| panic!("{rip} -> {client}: nothing arrived"));
        assert_eq!(got.len(), payload.len(), "{rip} -> {client}");
        assert!(
            got == payload,
            "{rip} -> {client}: the datagram arrived changed"
        );
    }
    let c = counters(topo);
    assert!(c["tx_to_kernel"] >= 2, "{c:?}");
    assert_eq!(c["reasm_held_datagrams"], 0, "{c:?}");
}

#[test]
fn e_a_real_servers_own_fragmented_datagram_reaches_the_client() {
    let topo = udp_director("fragown", &[]);
    a_real_servers_own_datagram_reaches_the_client(&topo);
}

#[test]
fn f_a_real_servers_own_fragmented_datagram_crosses_the_bpf_plane() {
    let fs = Bpffs::mount("fragown");
    let args = bpf_args(&fs.pins());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = udp_director("fragownbpf", &args);
    a_real_servers_own_datagram_reaches_the_client(&topo);
}

#[test]
fn g_a_lone_first_fragment_gets_time_exceeded() {
    let topo = udp_director("fragtime", &["--ipfrag-time", "1"]);
    a_lone_first_fragment_gets_time_exceeded(&topo);
}

#[test]
fn h_a_lone_first_fragment_gets_time_exceeded_from_the_bpf_plane() {
    let fs = Bpffs::mount("fragtimebpf");
    let mut args = bpf_args(&fs.pins());
    args.extend(["--ipfrag-time".to_string(), "1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let topo = udp_director("fragtimebpf", &args);
    wait_published(&fs.pins(), 2);
    a_lone_first_fragment_gets_time_exceeded(&topo);
}

/// The client sends only the first fragment of a UDP datagram to the VIP (a raw socket): after
/// `--ipfrag-time` (1 s) the director gives the datagram up and the client gets ICMP "fragment
/// reassembly time exceeded" (type 11 code 1) from the VIP, quoting its fragment, as the
/// kernel's defragmentation answers for a local address; the counters say so.
fn a_lone_first_fragment_gets_time_exceeded(topo: &NatTopology) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let (client, vip) = (topo.client4.octets(), topo.vip4.octets());
    // IPv4 header: id 0x4242, more fragments, offset 0; UDP to port 53 announcing 2008 bytes,
    // of which this fragment carries the header and 1000.
    let mut fragment = vec![0x45, 0, 0, 0, 0x42, 0x42, 0x20, 0, 64, 17, 0, 0];
    fragment.extend_from_slice(&client);
    fragment.extend_from_slice(&vip);
    let total = (fragment.len() + 8 + 1000) as u16;
    fragment[2..4].copy_from_slice(&total.to_be_bytes());
    fragment.extend_from_slice(&[0x9c, 0x40, 0, 53, 0x07, 0xd8, 0, 0]);
    fragment.extend((0..1000u32).map(|i| i as u8));
    let ns = topo.lab.ns("client");
    let got = rvs_lab::netns::in_netns(&ns, move || {
        let icmp = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("icmp");
        icmp.set_read_timeout(Some(Duration::from_secs(6)))
            .expect("timeout");
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).expect("raw");
        let to = SockAddr::from(SocketAddr::new(IpAddr::from(vip), 0));
        raw.send_to(&fragment, &to).expect("send the fragment");
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        let mut buf = [0u8; 2048];
        while std::time::Instant::now() < deadline {
            let Ok(n) = std::io::Read::read(&mut &icmp, &mut buf) else {
                break;
            };
            let packet = buf[..n].to_vec();
            let hlen = usize::from(packet[0] & 0x0f) * 4;
            if packet.get(hlen) == Some(&11) {
                return Some(packet);
            }
        }
        None
    })
    .expect("the client's namespace");
    let c = counters(topo);
    let got = got.unwrap_or_else(|| panic!("no ICMP time exceeded within 6 s: {c:?}"));
    assert_eq!(c["reasm_timeouts"], 1, "{c:?}");
    let hlen = usize::from(got[0] & 0x0f) * 4;
    assert_eq!(got[12..16], vip, "from the VIP");
    assert_eq!(
        (got[hlen], got[hlen + 1]),
        (11, 1),
        "reassembly time exceeded"
    );
    // The quote: the fragment's header (id 0x4242, MF) and its UDP header.
    let quote = &got[hlen + 8..];
    assert_eq!(quote[4..8], [0x42, 0x42, 0x20, 0], "{quote:?}");
    assert_eq!(quote[20..24], [0x9c, 0x40, 0, 53]);
}
