//! End-to-end tests of tunnelling (`-i`, `--tun-type ipip|gue|gre`) through the real rvsd and
//! rvsadm: client 172.30.0.100 -> router -> director 10.0.0.8 (VIP 10.0.0.200), which tunnels
//! to real servers 10.20.0.7 and 10.20.0.14 on another network behind the router. The real
//! servers decapsulate with `rvs-tunrs` (this kernel has no ipip/gre/fou driver) and answer the
//! client directly. A capture on the director's `d0` checks the encapsulation on the wire.
//! The same runs over IPv6 (client 2001:db8:172::100, VIP6 2001:db8:10::200, real servers
//! 2001:db8:20::7 and ::14: ip6ip6, GUE and GRE over IPv6) and across families (an IPv4 VIP
//! tunnelled to IPv6 real servers, IPv4-in-IPv6).
//! The `tc_`/`xdp_` cases run the same through rvsd's BPF plane (`--dataplane tc|xdp`): the
//! program tunnels, and its counters show it did (rvsd only answers packets over the path MTU
//! with ICMP).
//! They need root; every topology is torn down by its guard, also when an assertion fails.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::{
    adm, assert_download_intact, assert_inbound_only_stats, assert_upload_intact, bpf_args,
    counter, pinned_connections, program_stats, tally, Bpffs,
};
use rvs_lab::{wait_for, Director, TunTopology, DIRECTOR};

const MB: usize = 1 << 20;
const SERVICE: &str = "10.0.0.200:80";

/// The address families of one case.
#[derive(Debug, Clone, Copy)]
struct Families {
    /// The service (VIP) and client are IPv6: the inner packet's family.
    vip_v6: bool,
    /// The real servers are IPv6: the outer header's family.
    rs_v6: bool,
}

/// IPv4 inside IPv4.
const V4: Families = Families {
    vip_v6: false,
    rs_v6: false,
};
/// IPv6 inside IPv6.
const V6: Families = Families {
    vip_v6: true,
    rs_v6: true,
};
/// An IPv6 service with IPv4 real servers: IPv6 inside IPv4.
const V6_IN_V4: Families = Families {
    vip_v6: true,
    rs_v6: false,
};
/// An IPv4 service with IPv6 real servers: IPv4 inside IPv6.
const V4_IN_V6: Families = Families {
    vip_v6: false,
    rs_v6: true,
};

/// How one tunnel type looks on the wire, for the capture check.
struct Wire {
    /// tcpdump filter that selects the encapsulated packets on the director's d0.
    filter: &'static str,
    /// The outer IPv4 protocol or IPv6 next header (4 / 41 ipip, 17 gue, 47 gre).
    outer_proto: u8,
    /// Where the inner IP header starts in a captured packet (outer headers' length).
    inner_offset: usize,
}

/// IPv4 in IPv4.
const IPIP_V4: Wire = Wire {
    filter: "ip proto 4",
    outer_proto: 4,
    inner_offset: 20,
};
/// IPv6 in IPv4.
const IPIP_6IN4: Wire = Wire {
    filter: "ip proto 41",
    outer_proto: 41,
    inner_offset: 20,
};
/// IPv6 in IPv6.
const IPIP_V6: Wire = Wire {
    filter: "ip6 proto 41",
    outer_proto: 41,
    inner_offset: 40,
};
/// IPv4 in IPv6.
const IPIP_4IN6: Wire = Wire {
    filter: "ip6 proto 4",
    outer_proto: 4,
    inner_offset: 40,
};
/// GUE on port 6080 over IPv4.
const GUE_V4: Wire = Wire {
    filter: "udp dst port 6080",
    outer_proto: 17,
    inner_offset: 32,
};
/// GUE on port 6080 over IPv6.
const GUE_V6: Wire = Wire {
    filter: "ip6 and udp dst port 6080",
    outer_proto: 17,
    inner_offset: 52,
};
/// GRE with a checksum over IPv4.
const GRE_CSUM_V4: Wire = Wire {
    filter: "ip proto 47",
    outer_proto: 47,
    inner_offset: 28,
};
/// GRE without a checksum over IPv4.
const GRE_V4: Wire = Wire {
    filter: "ip proto 47",
    outer_proto: 47,
    inner_offset: 24,
};
/// GRE with a checksum over IPv6.
const GRE_CSUM_V6: Wire = Wire {
    filter: "ip6 proto 47",
    outer_proto: 47,
    inner_offset: 48,
};

/// The address of `len` (4 or 16) bytes at `at` in `packet`.
fn addr_at(packet: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&packet[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            packet[at],
            packet[at + 1],
            packet[at + 2],
            packet[at + 3],
        ))
    }
}

/// Checks one captured encapsulated packet: outer header from the director to a real server
/// with the expected protocol, inner packet from the client to the VIP's port 80, untouched.
fn check_captured(topo: &TunTopology, fam: Families, wire: &Wire, packet: &[u8]) {
    let inner = wire.inner_offset;
    let inner_hlen = if fam.vip_v6 { 40 } else { 20 };
    assert!(
        packet.len() >= inner + inner_hlen + 4,
        "short capture: {packet:02x?}"
    );
    let (version, proto, src, dst) = if fam.rs_v6 {
        (6, packet[6], 8, 24)
    } else {
        (4, packet[9], 12, 16)
    };
    assert_eq!(packet[0] >> 4, version, "outer IP version: {packet:02x?}");
    assert_eq!(proto, wire.outer_proto, "outer protocol: {packet:02x?}");
    assert_eq!(
        addr_at(packet, src, fam.rs_v6),
        topo.dip(fam.rs_v6),
        "outer source is the director's address toward the RS"
    );
    let outer_dst = addr_at(packet, dst, fam.rs_v6);
    assert!(
        (0..topo.rips4.len()).any(|i| topo.rip(i, fam.rs_v6) == Some(outer_dst)),
        "outer destination {outer_dst} is a real server"
    );
    let (version, src, dst, l4) = if fam.vip_v6 {
        (6, inner + 8, inner + 24, inner + 40)
    } else {
        (
            4,
            inner + 12,
            inner + 16,
            inner + usize::from(packet[inner] & 0x0f) * 4,
        )
    };
    assert_eq!(packet[inner] >> 4, version, "inner version: {packet:02x?}");
    assert_eq!(
        addr_at(packet, src, fam.vip_v6),
        topo.client(fam.vip_v6),
        "inner source is the client, untouched"
    );
    assert_eq!(
        addr_at(packet, dst, fam.vip_v6),
        topo.vip(fam.vip_v6),
        "inner destination is the VIP, untouched"
    );
    let dport = u16::from_be_bytes([packet[l4 + 2], packet[l4 + 3]]);
    assert_eq!(dport, 80);
}

/// The IP packets of tcpdump `-x` output (each printed from its IP header as hex lines that
/// start with an offset, `0x0000:` opening a new packet).
fn hex_packets(text: &str) -> Vec<Vec<u8>> {
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        let Some((offset, hex)) = line.trim_start().split_once(':') else {
            continue;
        };
        if !offset.starts_with("0x") {
            continue;
        }
        if offset == "0x0000" {
            packets.push(Vec::new());
        }
        let Some(packet) = packets.last_mut() else {
            continue;
        };
        for word in hex.split_whitespace() {
            let mut i = 0;
            while i + 2 <= word.len() {
                if let Ok(b) = u8::from_str_radix(&word[i..i + 2], 16) {
                    packet.push(b);
                }
                i += 2;
            }
        }
    }
    packets
}

/// Which data plane the director runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plane {
    /// rvsd's engine on every packet (AF_PACKET).
    Packet,
    /// The BPF program at tc ingress.
    Tc,
    /// The BPF program at XDP.
    Xdp,
}

/// XDP on veth (see LAB-NOTES): every sender toward the director sends complete checksums (tx
/// offload off), the router's side of the director's link runs NAPI (GRO on) to take the
/// redirected frames, and no interface on the way in merges packets (GRO off elsewhere), so the
/// program sees the client's packets as they were sent.
fn prepare_for_xdp(topo: &TunTopology) {
    let ethtool = |role: &str, iface: &str, settings: &[&str]| {
        let mut args = vec!["ethtool", "-K", iface];
        args.extend_from_slice(settings);
        let out = topo.lab.exec(role, &args).expect("ethtool");
        assert!(
            out.status.success(),
            "ethtool -K {iface} in {role}: {out:?}"
        );
    };
    ethtool(rvs_lab::CLIENT, "eth0", &["tx", "off"]);
    ethtool(rvs_lab::ROUTER, "r0", &["tx", "off", "gro", "off"]);
    ethtool(rvs_lab::ROUTER, "r1", &["tx", "off", "gro", "on"]);
    // r1's GRO merges the tunnelled packets; r2 cuts them again with complete checksums.
    ethtool(rvs_lab::ROUTER, "r2", &["tx", "off"]);
    ethtool(DIRECTOR, "d0", &["tx", "off", "gro", "off"]);
}

/// One tunnel type, as rvsadm and the real servers are set up for it.
struct Case {
    /// Names the namespaces (after the plane's prefix).
    tag: &'static str,
    fam: Families,
    /// rvs-tunrs's mode on the real servers.
    tunrs: &'static [&'static str],
    /// rvsadm's tunnel options for the real servers.
    opts: &'static [&'static str],
    /// What `--tun-info` shows.
    info: &'static str,
    wire: Wire,
}

const CASE_IPIP: Case = Case {
    tag: "ipip",
    fam: V4,
    tunrs: &["--ipip"],
    opts: &[],
    info: "ipip",
    wire: IPIP_V4,
};
const CASE_GUE: Case = Case {
    tag: "gue",
    fam: V4,
    tunrs: &["--gue", "6080"],
    opts: &["--tun-type", "gue", "--tun-port", "6080"],
    info: "gue:6080:-c",
    wire: GUE_V4,
};
const CASE_GUE_CSUM: Case = Case {
    tag: "guec",
    fam: V4,
    tunrs: &["--gue", "6080"],
    opts: &["--tun-type", "gue", "--tun-port", "6080", "--tun-csum"],
    info: "gue:6080:+c",
    wire: GUE_V4,
};
const CASE_GUE_REMCSUM: Case = Case {
    tag: "gueremc",
    fam: V4,
    tunrs: &["--gue", "6080"],
    opts: &["--tun-type", "gue", "--tun-port", "6080", "--tun-remcsum"],
    info: "gue:6080:r+c",
    // Partial-checksum packets carry the private flags and the remote-checksum option
    // (GUE hlen 2): the real server completes the inner checksum.
    wire: Wire {
        filter: "udp dst port 6080 and udp[8] = 2",
        outer_proto: 17,
        inner_offset: 40,
    },
};
const CASE_GRE: Case = Case {
    tag: "grenoc",
    fam: V4,
    tunrs: &["--gre"],
    opts: &["--tun-type", "gre"],
    info: "gre:-c",
    wire: GRE_V4,
};
const CASE_GRE_CSUM: Case = Case {
    tag: "gre",
    fam: V4,
    tunrs: &["--gre"],
    opts: &["--tun-type", "gre", "--tun-csum"],
    info: "gre:+c",
    wire: GRE_CSUM_V4,
};
const CASE_IPIP_V6: Case = Case {
    tag: "ip6",
    fam: V6,
    tunrs: &["--ipip"],
    opts: &[],
    info: "ipip",
    wire: IPIP_V6,
};
const CASE_GUE_V6: Case = Case {
    tag: "gue6",
    fam: V6,
    tunrs: &["--gue", "6080"],
    opts: &["--tun-type", "gue", "--tun-port", "6080", "--tun-csum"],
    info: "gue:6080:+c",
    wire: GUE_V6,
};
const CASE_GRE_V6: Case = Case {
    tag: "gre6",
    fam: V6,
    tunrs: &["--gre"],
    opts: &["--tun-type", "gre", "--tun-csum"],
    info: "gre:+c",
    wire: GRE_CSUM_V6,
};
const CASE_4IN6: Case = Case {
    tag: "4in6",
    fam: V4_IN_V6,
    tunrs: &["--ipip"],
    opts: &[],
    info: "ipip",
    wire: IPIP_4IN6,
};
const CASE_6IN4: Case = Case {
    tag: "6in4",
    fam: V6_IN_V4,
    tunrs: &["--ipip"],
    opts: &[],
    info: "ipip",
    wire: IPIP_6IN4,
};
const CASE_GUE_6IN4: Case = Case {
    tag: "gue6in4",
    fam: V6_IN_V4,
    tunrs: &["--gue", "6080"],
    opts: &["--tun-type", "gue", "--tun-port", "6080"],
    info: "gue:6080:-c",
    wire: GUE_V4,
};

/// One tunnel type end to end on `plane`: rr over two real servers behind the router, the
/// encapsulation on the wire, 1 MB each way (GSO segmentation and PMTU on the way in), and the
/// listings; with BPF, the program's counters show that it tunnelled the packets itself.
fn tun_case(plane: Plane, case: &Case) {
    let Case {
        fam,
        tunrs: tunrs_args,
        opts: tun_opts,
        info,
        ref wire,
        ..
    } = *case;
    let prefix = match plane {
        Plane::Packet => "tun",
        Plane::Tc => "tc",
        Plane::Xdp => "xdp",
    };
    let tag = format!("{prefix}{}", case.tag);
    let tag = tag.as_str();
    // Declared first, dropped last: after rvsd and the namespaces are gone.
    let fs = (plane != Plane::Packet).then(|| Bpffs::mount(tag));
    let topo = TunTopology::build(tag, 2).expect("build the TUN topology");
    topo.start_real_servers(tunrs_args)
        .expect("start the real servers");
    let mut args = fs
        .as_ref()
        .map(|fs| bpf_args(&fs.pins()))
        .unwrap_or_default();
    if plane == Plane::Xdp {
        prepare_for_xdp(&topo);
        args[1] = "xdp".into();
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _rvsd = topo.start_rvsd(&args).expect("start rvsd");
    let service = SocketAddr::new(topo.vip(fam.vip_v6), 80).to_string();
    let service = service.as_str();
    adm(&topo, &["-A", "-t", service, "-s", "rr"]);
    for index in 0..topo.rips4.len() {
        let rip = topo
            .rip(index, fam.rs_v6)
            .map(|ip| ip.to_string())
            .expect("real server");
        let mut args = vec!["-a", "-t", service, "-r", rip.as_str(), "-i"];
        args.extend_from_slice(tun_opts);
        adm(&topo, &args);
    }

    // The listings show the tunnel settings as ipvsadm does.
    let listing = adm(&topo, &["-Ln", "--tun-info"]);
    assert!(listing.contains("Tunnel"), "{listing}");
    assert!(listing.contains(info), "--tun-info shows {info}: {listing}");
    let saved = adm(&topo, &["-S", "-n"]);
    assert!(saved.contains(" -i"), "{saved}");
    if !tun_opts.is_empty() {
        assert!(
            saved.contains("--tun-type"),
            "-S keeps the tunnel type: {saved}"
        );
    }

    // Capture the director's output while the client makes 10 connections.
    // (XDP's redirects skip the director's packet taps: captured where the router receives.)
    let (role, iface) = match plane {
        Plane::Xdp => (rvs_lab::ROUTER, "r1"),
        _ => (DIRECTOR, "d0"),
    };
    let mut capture = vec![
        "timeout", "20", "tcpdump", "-i", iface, "-n", "-l", "-x", "-c", "4",
    ];
    capture.extend(wire.filter.split_whitespace());
    let tcpdump = topo.lab.spawn(role, &capture).expect("start tcpdump");
    assert!(
        wait_for(Duration::from_secs(5), || topo
            .lab
            .log_of(tcpdump)
            .contains("listening on"))
        .is_some(),
        "tcpdump did not start: {}",
        topo.lab.log_of(tcpdump)
    );
    let answers: Vec<String> = (0..10)
        .map(|_| {
            topo.curl(&format!("http://{service}/"))
                .expect("curl through the VIP")
                .trim()
                .to_owned()
        })
        .collect();
    let counts = tally(&answers);
    assert_eq!(counts.get(&topo.rs_text(0)), Some(&5), "{answers:?}");
    assert_eq!(counts.get(&topo.rs_text(1)), Some(&5), "{answers:?}");
    assert!(
        topo.lab
            .wait_exit(tcpdump, Duration::from_secs(20))
            .is_some(),
        "tcpdump did not see 4 packets"
    );
    let packets = hex_packets(&topo.lab.log_of(tcpdump));
    assert_eq!(packets.len(), 4, "{}", topo.lab.log_of(tcpdump));
    for packet in &packets {
        check_captured(&topo, fam, wire, packet);
    }

    // 1 MB down (replies go straight from the RS) and up (segmented, PMTU-checked) intact.
    let url = format!("http://{service}");
    assert_download_intact(&topo, &url, MB);
    assert_upload_intact(&topo, &url);
    // 10 curls, the download and the upload, counted inbound only.
    assert_inbound_only_stats(&topo, service, 12);
    let stats = adm(&topo, &["--counters"]);
    eprintln!("{tag}: counters\n{stats}");
    // The upload's full-size segments did not fit the tunnel: the doctor says so.
    if counter(&topo, "tx_tunnel_too_big") > 0 {
        let report = adm(&topo, &["--doctor"]);
        assert!(report.contains("tunnel-mtu: director\n"), "{report}");
    }
    if let Some(fs) = &fs {
        // At tc, an outer checksum over a GSO frame (and remote checksum offload) is rvsd's.
        let rvsd_tunnels = plane == Plane::Tc
            && tun_opts
                .iter()
                .any(|o| *o == "--tun-csum" || *o == "--tun-remcsum");
        assert_program_tunnelled(&fs.pins(), tag, rvsd_tunnels);
    }
}

/// The program tunnelled the connections itself: they are in its table, it forwarded, and
/// nothing went up to rvsd but packets over the path MTU (which rvsd answers with ICMP), and,
/// with `rvsd_tunnels`, frames it leaves to rvsd's tunnel transmitter (some must have gone).
fn assert_program_tunnelled(pins: &std::path::Path, tag: &str, rvsd_tunnels: bool) {
    let stats = program_stats(pins);
    eprintln!("{tag}: program counters {stats:?}");
    assert!(pinned_connections(pins) >= 12, "the program's connections");
    // At least the 12 connections' handshakes, requests and closes (the 1 MB upload comes
    // mostly as GSO frames, a few dozen), unless rvsd tunnels (remote checksum offload: all).
    assert!(stats["forwarded"] >= 60 || rvsd_tunnels, "{stats:?}");
    assert!(stats["conn_created"] >= 12, "{stats:?}");
    for reason in ["punt_service", "punt_connection", "punt_other"] {
        assert_eq!(stats[reason], 0, "{reason}: {stats:?}");
    }
    assert_eq!(stats["punt_tunnel"] > 0, rvsd_tunnels, "{stats:?}");
}

#[test]
fn a_ipip() {
    tun_case(Plane::Packet, &CASE_IPIP);
}

#[test]
fn b_gue() {
    tun_case(Plane::Packet, &CASE_GUE);
}

#[test]
fn c_gue_with_checksum() {
    tun_case(Plane::Packet, &CASE_GUE_CSUM);
}

#[test]
fn d_gre() {
    tun_case(Plane::Packet, &CASE_GRE_CSUM);
}

#[test]
fn e_a_tunnelled_server_takes_the_service_port_as_with_ipvsadm() {
    let topo = TunTopology::build("tunport", 1).expect("build the TUN topology");
    topo.start_rvsd(&[]).expect("start rvsd");
    adm(&topo, &["-A", "-t", SERVICE, "-s", "rr"]);
    let out = topo
        .rvsadm(&["-a", "-t", SERVICE, "-r", "10.20.0.7:8080", "-i"])
        .expect("run rvsadm");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.as_ref()), (Some(0), ""));
    let listing = adm(&topo, &["-Ln"]);
    assert!(listing.contains("-> 10.20.0.7:80 "), "{listing}");
    assert!(!listing.contains("8080"), "{listing}");
}

#[test]
fn f_gue_remote_checksum() {
    tun_case(Plane::Packet, &CASE_GUE_REMCSUM);
}

#[test]
fn g_ipip_over_ipv6() {
    tun_case(Plane::Packet, &CASE_IPIP_V6);
}

#[test]
fn h_gue_over_ipv6() {
    tun_case(Plane::Packet, &CASE_GUE_V6);
}

#[test]
fn i_gre_over_ipv6() {
    tun_case(Plane::Packet, &CASE_GRE_V6);
}

#[test]
fn j_ipv4_service_with_ipv6_real_servers() {
    tun_case(Plane::Packet, &CASE_4IN6);
}

#[test]
fn k_ipv6_service_with_ipv4_real_servers() {
    tun_case(Plane::Packet, &CASE_6IN4);
}

#[test]
fn tc_a_ipip() {
    tun_case(Plane::Tc, &CASE_IPIP);
}

#[test]
fn tc_b_gue() {
    tun_case(Plane::Tc, &CASE_GUE);
}

#[test]
fn tc_c_gre() {
    tun_case(Plane::Tc, &CASE_GRE);
}

#[test]
fn tc_d_ipip_over_ipv6() {
    tun_case(Plane::Tc, &CASE_IPIP_V6);
}

#[test]
fn tc_e_ipv4_service_with_ipv6_real_servers() {
    tun_case(Plane::Tc, &CASE_4IN6);
}

#[test]
fn tc_f_gue_ipv6_service_with_ipv4_real_servers() {
    tun_case(Plane::Tc, &CASE_GUE_6IN4);
}

#[test]
fn tc_g_gue_with_checksum() {
    tun_case(Plane::Tc, &CASE_GUE_CSUM);
}

#[test]
fn tc_h_gue_remote_checksum() {
    tun_case(Plane::Tc, &CASE_GUE_REMCSUM);
}

#[test]
fn xdp_a_ipip() {
    tun_case(Plane::Xdp, &CASE_IPIP);
}

#[test]
fn xdp_b_gre_with_checksum() {
    tun_case(Plane::Xdp, &CASE_GRE_CSUM);
}

/// Health checks on the client's path through the tunnel (issue 16, `client_path`): the
/// checker's SYN to the VIP goes in the real server's tunnel (ipip), as clients' packets do,
/// and the server answers the director directly (see [`common::assert_client_path_checks`]).
#[test]
fn client_path_checks_go_through_the_tunnel() {
    let topo = TunTopology::build("tunpath", 2).expect("build the TUN topology");
    topo.start_real_servers(&["--ipip"])
        .expect("start the real servers");
    let rips: Vec<IpAddr> = (0..2).map(|i| topo.rip(i, false).expect("rip")).collect();
    common::assert_client_path_checks(
        &topo,
        "TUN",
        topo.vip(false),
        &rips,
        &topo.rs_text(0),
        |args| {
            topo.start_rvsd(args).expect("rvsd -f");
        },
    );
}
