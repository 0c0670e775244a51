//! SCTP services as IPVS runs them (ip_vs_proto_sctp.c): scheduling on INIT only (unless
//! sloppy_sctp), the SCTP state machine and its timeouts, ActiveConn for ESTABLISHED, NAT in both
//! directions with the CRC32c computed again, direct routing and tunnels leaving packets alone,
//! ICMP errors, FULLNAT, connection sync and the listing names.
//!
//! The frames are built here, independently of rvs-wire: Ethernet and IP by etherparse (which
//! does not know SCTP), the SCTP packet by hand with its CRC32c from the `crc32c` crate.

mod common;

use common::*;
use etherparse::{IpNumber, PacketBuilder};
use rvs_engine::*;

const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const ABORT: u8 = 6;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const COOKIE_ECHO: u8 = 10;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;
const DATA: u8 = 0;

/// An SCTP packet: common header (ports, tag, CRC32c stored least significant byte first) and
/// chunks `(type, flags, value)`, each padded to 4 bytes.
fn sctp_packet(sp: u16, dp: u16, tag: u32, chunks: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sp.to_be_bytes());
    b.extend_from_slice(&dp.to_be_bytes());
    b.extend_from_slice(&tag.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    for (t, f, v) in chunks {
        b.extend_from_slice(&[*t, *f]);
        b.extend_from_slice(&((4 + v.len()) as u16).to_be_bytes());
        b.extend_from_slice(v);
        while b.len() % 4 != 0 {
            b.push(0);
        }
    }
    let crc = crc32c::crc32c(&b);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The chunks of a step of the handshake, as an endpoint would send them.
fn chunk(t: u8) -> Vec<(u8, u8, &'static [u8])> {
    const INIT_VALUE: &[u8] = &[
        0x11, 0x22, 0x33, 0x44, 0, 0, 0xff, 0xff, 0, 10, 0, 10, 0, 0, 0, 1,
    ];
    match t {
        INIT | INIT_ACK => vec![(t, 0, INIT_VALUE)],
        COOKIE_ECHO => vec![(t, 0, b"a cookie, 17 byte")],
        DATA => vec![(t, 3, b"\0\0\0\x01\0\0\0\0\0\0\0\0hello")],
        SACK => vec![(t, 0, &[0, 0, 0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0])],
        SHUTDOWN => vec![(t, 0, &[0, 0, 0, 1])],
        _ => vec![(t, 0, &[])],
    }
}

fn sctp4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ttl: u8, t: u8) -> Vec<u8> {
    raw4(src, dst, ttl, &sctp_packet(sp, dp, 7, &chunk(t)))
}

fn raw4(src: [u8; 4], dst: [u8; 4], ttl: u8, sctp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .write(&mut out, IpNumber(132), sctp)
        .expect("build");
    out
}

fn sctp6(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, hl: u8, t: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, hl)
        .write(&mut out, IpNumber(132), &sctp_packet(sp, dp, 7, &chunk(t)))
        .expect("build");
    out
}

/// The SCTP packet of an Ethernet frame (IPv4 or IPv6 without extension headers).
fn sctp_of(frame: &[u8]) -> &[u8] {
    let l3 = &frame[14..];
    if l3[0] >> 4 == 4 {
        let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
        &l3[usize::from(l3[0] & 15) * 4..total]
    } else {
        &l3[40..]
    }
}

/// The SCTP checksum of a frame verifies (and its IPv4 header checksum, when IPv4).
fn crc_ok(frame: &[u8]) -> bool {
    let s = sctp_of(frame);
    let mut z = s.to_vec();
    z[8..12].fill(0);
    let crc_right = crc32c::crc32c(&z).to_le_bytes() == s[8..12];
    let l3 = &frame[14..];
    let ip_right = l3[0] >> 4 != 4
        || etherparse::Ipv4HeaderSlice::from_slice(l3)
            .map(|h| h.to_header().calc_header_checksum() == h.header_checksum())
            .unwrap_or(false);
    crc_right && ip_right
}

fn sctp_engine(method: ForwardMethod, rport: u16) -> Engine {
    let e = Engine::new(EngineConfig {
        expected_connections: 1024,
        shards: 8,
        ..EngineConfig::default()
    });
    for vip in [ip4(VIP4), ip6(vip6())] {
        let k = key(Protocol::Sctp, vip, VPORT);
        e.add_service(svc(k, SchedulerKind::Rr)).expect("service");
        let rip = if vip.is_ipv4() {
            ip4(RIP4)
        } else {
            ip6(rip6())
        };
        let d = DestSpec {
            method,
            ..dest(rip, rport, 1)
        };
        e.add_dest(&k, d).expect("dest");
    }
    e
}

fn states(e: &Engine, now: u64) -> Vec<(Protocol, &'static str, u64)> {
    e.connections(Millis(now))
        .iter()
        .map(|c| (c.proto, c.state.name(), c.expires_in.0))
        .collect()
}

fn counts(e: &Engine, i: usize) -> (u32, u32) {
    let d = &e.services(Millis(0))[i].dests[0];
    (d.active_conns, d.inactive_conns)
}

#[test]
fn nat_v4_both_ways_with_crc32c_recomputed_and_the_association_states() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    let c = |t| sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, t);
    let c_out = |t| sctp4(CLIENT4, CPORT, RIP4, RPORT, 63, t);
    let s = |t| sctp4(RIP4, RPORT, CLIENT4, CPORT, 64, t);
    let s_out = |t| sctp4(VIP4, VPORT, CLIENT4, CPORT, 63, t);
    // (input, expected output, next hop, state after, its timeout, (ActiveConn, InActConn))
    type Step = (Vec<u8>, Vec<u8>, [u8; 4], &'static str, u64, (u32, u32));
    let steps: Vec<Step> = vec![
        (c(INIT), c_out(INIT), RIP4, "INIT1", 4_000, (0, 1)),
        (
            s(INIT_ACK),
            s_out(INIT_ACK),
            CLIENT4,
            "C-SENT",
            61_000,
            (0, 1),
        ),
        (
            c(COOKIE_ECHO),
            c_out(COOKIE_ECHO),
            RIP4,
            "C-REPLIED",
            61_000,
            (0, 1),
        ),
        (
            s(COOKIE_ACK),
            s_out(COOKIE_ACK),
            CLIENT4,
            "ESTABLISHED",
            900_000,
            (1, 0),
        ),
        (c(DATA), c_out(DATA), RIP4, "ESTABLISHED", 900_000, (1, 0)),
        (
            s(SACK),
            s_out(SACK),
            CLIENT4,
            "ESTABLISHED",
            900_000,
            (1, 0),
        ),
        (
            c(SHUTDOWN),
            c_out(SHUTDOWN),
            RIP4,
            "S-RECEIVED",
            61_000,
            (0, 1),
        ),
        (
            s(SHUTDOWN_ACK),
            s_out(SHUTDOWN_ACK),
            CLIENT4,
            "S-ACK-SENT",
            61_000,
            (0, 1),
        ),
        (
            c(SHUTDOWN_COMPLETE),
            c_out(SHUTDOWN_COMPLETE),
            RIP4,
            "CLOSED",
            61_000,
            (0, 1),
        ),
    ];
    let mut now = 0;
    for (i, (mut f, want, hop, st, timeout, cnt)) in steps.into_iter().enumerate() {
        now += 100;
        assert!(crc_ok(&f), "input {i} is valid");
        assert_eq!(run(&e, now, &mut f), fwd(ip4(hop)), "verdict of step {i}");
        assert_eq!(l3(&f), l3(&want), "output of step {i}");
        assert!(crc_ok(&f), "output checksums of step {i}");
        assert_eq!(
            states(&e, now),
            vec![(Protocol::Sctp, st, timeout)],
            "state after step {i}"
        );
        assert_eq!(counts(&e, 0), cnt, "counts after step {i}");
    }
    // CLOSED lasts IP_VS_SCTP_MAX_RTO (61 s).
    e.expire(Millis(now + 60_999));
    assert_eq!(e.connection_count(), 1);
    e.expire(Millis(now + 61_000));
    assert_eq!(e.connection_count(), 0);
    assert_eq!(counts(&e, 0), (0, 0));
    let st = &e.services(Millis(0))[0];
    assert_eq!(st.spec.key.proto, Protocol::Sctp);
    assert_eq!(
        (st.stats.conns, st.stats.in_pkts, st.stats.out_pkts),
        (1, 5, 4)
    );
}

#[test]
fn nat_v6_both_ways() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    let mut f = sctp6(client6(), CPORT, vip6(), VPORT, 64, INIT);
    assert_eq!(run(&e, 0, &mut f), fwd(ip6(rip6())));
    assert_eq!(
        l3(&f),
        l3(&sctp6(client6(), CPORT, rip6(), RPORT, 63, INIT))
    );
    assert!(crc_ok(&f));
    let mut r = sctp6(rip6(), RPORT, client6(), CPORT, 64, INIT_ACK);
    assert_eq!(run(&e, 1, &mut r), fwd(ip6(client6())));
    assert_eq!(
        l3(&r),
        l3(&sctp6(vip6(), VPORT, client6(), CPORT, 63, INIT_ACK))
    );
    assert!(crc_ok(&r));
    assert_eq!(states(&e, 1), vec![(Protocol::Sctp, "C-SENT", 61_000)]);
}

#[test]
fn nat_without_port_change_keeps_the_packets_own_checksum() {
    // No pseudo header: new addresses leave the CRC32c valid, so IPVS does not compute it; a
    // packet that came with a wrong checksum keeps it (the real server drops it, as it would
    // without a director).
    let e = sctp_engine(ForwardMethod::Masq, VPORT);
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    assert_eq!(l3(&f), l3(&sctp4(CLIENT4, CPORT, RIP4, VPORT, 63, INIT)));
    assert!(crc_ok(&f));
    let mut bad = sctp_packet(CPORT, VPORT, 7, &chunk(DATA));
    bad[8] ^= 0xff;
    let mut f = raw4(CLIENT4, VIP4, 64, &bad);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(RIP4)));
    assert_eq!(sctp_of(&f), &bad[..]);
    assert!(!crc_ok(&f));
    // A CHECKSUM_PARTIAL frame gets a complete checksum whatever the ports.
    let e = sctp_engine(ForwardMethod::Masq, VPORT);
    let mut f = raw4(CLIENT4, VIP4, 64, &{
        let mut p = sctp_packet(CPORT, VPORT, 7, &chunk(INIT));
        p[8..12].fill(0);
        p
    });
    let mut meta = PacketMeta {
        csum_partial: true,
        ..Default::default()
    };
    assert_eq!(e.handle(Millis(0), &mut meta, &mut f), fwd(ip4(RIP4)));
    assert!(crc_ok(&f));
}

#[test]
fn only_an_init_creates_a_connection_unless_sloppy_sctp() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    for (port, t) in [
        (CPORT, DATA),
        (CPORT + 1, COOKIE_ECHO),
        (CPORT + 2, ABORT),
        (CPORT + 3, INIT_ACK),
    ] {
        let mut f = sctp4(CLIENT4, port, VIP4, VPORT, 64, t);
        assert_eq!(
            run(&e, 0, &mut f),
            Verdict::Drop(DropReason::NoConnectionNonSyn),
            "chunk {t}"
        );
    }
    // No chunk at all: nothing to schedule on.
    let mut f = raw4(CLIENT4, VIP4, 64, &sctp_packet(CPORT, VPORT, 0, &[]));
    assert_eq!(
        run(&e, 0, &mut f),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
    // Less than a common header.
    let mut f = raw4(CLIENT4, VIP4, 64, &[0, 1, 0, 80, 0, 0]);
    assert_eq!(run(&e, 0, &mut f), Verdict::Drop(DropReason::Truncated));
    assert_eq!(e.connection_count(), 0);

    let mut p = e.policy();
    p.set("sloppy_sctp", 1).expect("known switch");
    e.set_policy(p);
    assert!(e.policy().values().contains(&("sloppy_sctp", 1)));
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, DATA);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(RIP4)));
    assert!(crc_ok(&f));
    // Created in NONE, the DATA takes it to ESTABLISHED (IPVS's INPUT row for NONE).
    assert_eq!(
        states(&e, 1),
        vec![(Protocol::Sctp, "ESTABLISHED", 900_000)]
    );
    assert_eq!(counts(&e, 0), (1, 0));
    let mut f = sctp4(CLIENT4, CPORT + 2, VIP4, VPORT, 64, ABORT);
    assert_eq!(
        run(&e, 2, &mut f),
        Verdict::Drop(DropReason::NoConnectionNonSyn)
    );
}

#[test]
fn rejected_init_and_init1_timeouts() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    // An INIT nobody answers: INIT1, 4 s.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    run(&e, 0, &mut f);
    assert_eq!(states(&e, 0), vec![(Protocol::Sctp, "INIT1", 4_000)]);
    // The client retransmits: INIT, 61 s.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    run(&e, 1000, &mut f);
    assert_eq!(states(&e, 1000), vec![(Protocol::Sctp, "INIT", 61_000)]);
    e.expire(Millis(62_000));
    assert_eq!(e.connection_count(), 0);
    // An INIT answered with ABORT by the server: REJECTED, 4 s.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    run(&e, 100_000, &mut f);
    let mut a = sctp4(RIP4, RPORT, CLIENT4, CPORT, 64, ABORT);
    assert_eq!(run(&e, 100_010, &mut a), fwd(ip4(CLIENT4)));
    assert!(crc_ok(&a));
    assert_eq!(
        states(&e, 100_010),
        vec![(Protocol::Sctp, "REJECTED", 4_000)]
    );
    e.expire(Millis(104_010));
    assert_eq!(e.connection_count(), 0);
    // A COOKIE_ECHO bundled with an ABORT counts as the ABORT.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    run(&e, 200_000, &mut f);
    let cookie_abort = sctp_packet(
        CPORT,
        VPORT,
        7,
        &[(COOKIE_ECHO, 0, b"cookie"), (ABORT, 0, &[])],
    );
    let mut f = raw4(CLIENT4, VIP4, 64, &cookie_abort);
    assert_eq!(run(&e, 200_010, &mut f), fwd(ip4(RIP4)));
    assert_eq!(
        states(&e, 200_010),
        vec![(Protocol::Sctp, "CLOSED", 61_000)]
    );
}

#[test]
fn an_init_on_a_closed_association_is_scheduled_again() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    let k = key(Protocol::Sctp, ip4(VIP4), VPORT);
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("second");
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    // The server rejects it: REJECTED is not CLOSED, so the next INIT stays on it.
    let mut a = sctp4(RIP4, RPORT, CLIENT4, CPORT, 64, ABORT);
    run(&e, 2, &mut a);
    assert_eq!(states(&e, 2)[0].1, "REJECTED");
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 3, &mut f), fwd(ip4(RIP4)));
    assert_eq!(states(&e, 3)[0].1, "INIT");
    // Closed by the client's ABORT: the next INIT is a new connection (rr: the other server).
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, ABORT);
    run(&e, 4, &mut f);
    assert_eq!(states(&e, 4)[0].1, "CLOSED");
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 5, &mut f), fwd(ip4(RIP4B)));
    assert_eq!(e.connection_count(), 1);
    assert_eq!(states(&e, 5)[0].1, "INIT1");
    // conn_reuse_mode 0 keeps it on the old one.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, ABORT);
    run(&e, 6, &mut f);
    let mut p = e.policy();
    p.set("conn_reuse_mode", 0).expect("switch");
    e.set_policy(p);
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 7, &mut f), fwd(ip4(RIP4B)));
    assert_eq!(states(&e, 7)[0].1, "INIT");
}

#[test]
fn direct_routing_leaves_the_packet_alone_and_uses_input_only_states() {
    let e = sctp_engine(ForwardMethod::Route, 0);
    for (i, (t, st)) in [
        (INIT, "INIT1"),
        (COOKIE_ECHO, "ESTABLISHED"),
        (DATA, "ESTABLISHED"),
        (SHUTDOWN_ACK, "CLOSED"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, t);
        let before = f.clone();
        assert_eq!(run(&e, i as u64, &mut f), fwd(ip4(RIP4)), "chunk {t}");
        assert_eq!(f, before, "unchanged frame for chunk {t}");
        assert_eq!(states(&e, i as u64)[0].1, st, "after chunk {t}");
    }
    // The real server's replies do not pass the director: one of them is not ours.
    let mut r = sctp4(RIP4, VPORT, CLIENT4, CPORT, 64, INIT_ACK);
    assert_eq!(run(&e, 9, &mut r), Verdict::PassToKernel);
    // IPv6 too.
    let mut f = sctp6(client6(), CPORT, vip6(), VPORT, 64, INIT);
    let before = f.clone();
    assert_eq!(run(&e, 10, &mut f), fwd(ip6(rip6())));
    assert_eq!(f, before);
}

#[test]
fn tunnel_encapsulates_the_unchanged_packet() {
    let e = sctp_engine(ForwardMethod::Tunnel, 0);
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    let before = f.clone();
    assert_eq!(
        run(&e, 0, &mut f),
        Verdict::Encapsulate {
            next_hop_ip: ip4(RIP4),
            l3_offset: 14,
            tunnel: TunnelConfig::default(),
        }
    );
    assert_eq!(f, before);
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, COOKIE_ECHO);
    assert!(matches!(run(&e, 1, &mut f), Verdict::Encapsulate { .. }));
    assert_eq!(states(&e, 1)[0].1, "ESTABLISHED");
    assert_eq!(counts(&e, 0), (1, 0));
}

#[test]
fn tcp_and_udp_services_on_the_same_port_stay_apart() {
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 0, &mut f), Verdict::PassToKernel);
    let k = key(Protocol::Tcp, ip4(VIP4), VPORT);
    e.add_service(svc(k, SchedulerKind::Rr)).expect("tcp");
    e.add_dest(&k, dest(ip4(RIP4B), 9, 1)).expect("dest");
    let mut f = tcp4(CLIENT4, CPORT, VIP4, VPORT, 64, SYN, &[]);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(RIP4B)));
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 2, &mut f), fwd(ip4(RIP4)));
    let mut names: Vec<_> = e
        .connections(Millis(2))
        .iter()
        .map(|c| (c.proto.name(), c.state.name()))
        .collect();
    names.sort();
    assert_eq!(names, [("SCTP", "INIT1"), ("TCP", "SYN_RECV")]);
}

#[test]
fn icmp_error_from_the_real_server_is_translated() {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let e = sctp_engine(ForwardMethod::Masq, RPORT);
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    run(&e, 0, &mut f);
    let frag = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    });
    // The quote keeps its own checksum (IPVS's ip_vs_nat_icmp rewrites addresses and ports).
    let quoted = l3(&sctp4(CLIENT4, CPORT, RIP4, RPORT, 63, DATA));
    let mut quoted_back = quoted.clone();
    quoted_back[16..20].copy_from_slice(&VIP4);
    quoted_back[22..24].copy_from_slice(&VPORT.to_be_bytes());
    let fix = etherparse::Ipv4HeaderSlice::from_slice(&quoted_back)
        .unwrap()
        .to_header()
        .calc_header_checksum();
    quoted_back[10..12].copy_from_slice(&fix.to_be_bytes());
    let mut f = icmp4_error(RIP4, CLIENT4, 64, frag.clone(), &quoted);
    assert_eq!(run(&e, 1, &mut f), fwd(ip4(CLIENT4)));
    assert_eq!(
        l3(&f),
        l3(&icmp4_error(VIP4, CLIENT4, 63, frag, &quoted_back))
    );
}

#[test]
fn fullnat_rewrites_both_ends_with_one_valid_checksum() {
    const LIP4: [u8; 4] = [192, 168, 7, 201];
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Sctp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.local_addrs = vec![ip4(LIP4)];
    e.add_service(spec).expect("service");
    e.add_dest(
        &k,
        DestSpec {
            method: ForwardMethod::FullNat,
            ..dest(ip4(RIP4), RPORT, 1)
        },
    )
    .expect("dest");
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, INIT);
    assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    assert!(crc_ok(&f));
    let s = sctp_of(&f);
    let lport = u16::from_be_bytes([s[0], s[1]]);
    assert_eq!(&l3(&f)[12..20], &[LIP4, RIP4].concat()[..]);
    assert_eq!(l3(&f), l3(&sctp4(LIP4, lport, RIP4, RPORT, 63, INIT)));
    let mut r = sctp4(RIP4, RPORT, LIP4, lport, 64, INIT_ACK);
    assert_eq!(run(&e, 1, &mut r), fwd(ip4(CLIENT4)));
    assert_eq!(
        l3(&r),
        l3(&sctp4(VIP4, VPORT, CLIENT4, CPORT, 63, INIT_ACK))
    );
    assert!(crc_ok(&r));
}

#[test]
fn sync_carries_ipvs_sctp_state_numbers() {
    let master = sctp_engine(ForwardMethod::Masq, RPORT);
    master.set_sync_export(true);
    let steps = [
        (true, INIT),
        (false, INIT_ACK),
        (true, COOKIE_ECHO),
        (false, COOKIE_ACK),
        (true, DATA),
        (true, DATA),
        (true, DATA),
    ];
    for (i, (from_client, t)) in steps.into_iter().enumerate() {
        let mut f = if from_client {
            sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, t)
        } else {
            sctp4(RIP4, RPORT, CLIENT4, CPORT, 64, t)
        };
        run(&master, i as u64, &mut f);
    }
    // ESTABLISHED (IPVS's 8) by the packet count (the third incoming packet).
    let recs = master.sync_drain();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].protocol, recs[0].state), (132, 8));
    // A SHUTDOWN from the client: S-RECEIVED (10) at once.
    let mut f = sctp4(CLIENT4, CPORT, VIP4, VPORT, 64, SHUTDOWN);
    run(&master, 10, &mut f);
    let recs = master.sync_drain();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, 10);

    let backup = sctp_engine(ForwardMethod::Masq, RPORT);
    let mut rec = recs[0].clone();
    rec.state = 8;
    backup.sync_import(Millis(0), &rec).expect("import");
    assert_eq!(
        states(&backup, 0),
        vec![(Protocol::Sctp, "ESTABLISHED", u64::from(rec.timeout) * 1000)]
    );
    assert_eq!(counts(&backup, 0), (1, 0));
    let mut r = sctp4(RIP4, RPORT, CLIENT4, CPORT, 64, SACK);
    assert_eq!(run(&backup, 1, &mut r), fwd(ip4(CLIENT4)));
    assert!(crc_ok(&r));
    rec.state = 14;
    assert_eq!(
        backup.sync_import(Millis(0), &rec),
        Err(SyncImportError::Unsupported)
    );
}

#[test]
fn persistence_keeps_an_sctp_client_on_its_server() {
    let e = Engine::new(EngineConfig::default());
    let k = key(Protocol::Sctp, ip4(VIP4), VPORT);
    let mut spec = svc(k, SchedulerKind::Rr);
    spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: ip4([255, 255, 255, 255]),
        pe: None,
    });
    e.add_service(spec).expect("service");
    e.add_dest(&k, dest(ip4(RIP4), RPORT, 1)).expect("a");
    e.add_dest(&k, dest(ip4(RIP4B), RPORT, 1)).expect("b");
    for port in [CPORT, CPORT + 1, CPORT + 2] {
        let mut f = sctp4(CLIENT4, port, VIP4, VPORT, 64, INIT);
        assert_eq!(run(&e, 0, &mut f), fwd(ip4(RIP4)));
    }
    let conns = e.connections(Millis(0));
    let template = conns.iter().find(|c| c.template).expect("template");
    assert_eq!(
        (template.proto, template.state.name()),
        (Protocol::Sctp, "NONE")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any INIT-opened association, any chunks after it, either family, with or without port
    /// mapping: what leaves the director carries a valid CRC32c and the translated tuple, and
    /// each packet's chunks are left byte for byte.
    #[test]
    fn nat_output_always_verifies(
        v6 in proptest::prelude::any::<bool>(),
        map_port in proptest::prelude::any::<bool>(),
        cport in 1u16..,
        tag in proptest::prelude::any::<u32>(),
        chunks in proptest::collection::vec(
            (proptest::prelude::any::<u8>(), proptest::prelude::any::<u8>(),
             proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
            1..4,
        ),
    ) {
        let rport = if map_port { RPORT } else { VPORT };
        let e = sctp_engine(ForwardMethod::Masq, rport);
        let build = |src: [u8; 16], dst: [u8; 16], body: &[u8]| {
            if v6 {
                let mut out = Vec::new();
                PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv6(src, dst, 64)
                    .write(&mut out, IpNumber(132), body)
                    .expect("build");
                out
            } else {
                raw4([src[12], src[13], src[14], src[15]], [dst[12], dst[13], dst[14], dst[15]], 64, body)
            }
        };
        let m = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
        let (client, vip, rip) = if v6 {
            (client6(), vip6(), rip6())
        } else {
            (m(CLIENT4), m(VIP4), m(RIP4))
        };
        let hop = |a: [u8; 16]| if v6 { ip6(a) } else { ip4([a[12], a[13], a[14], a[15]]) };
        let list: Vec<(u8, u8, &[u8])> = chunks.iter().map(|(t, f, v)| (*t, *f, &v[..])).collect();
        let init = sctp_packet(cport, VPORT, 0, &chunk(INIT));
        let mut f = build(client, vip, &init);
        proptest::prop_assert_eq!(run(&e, 0, &mut f), fwd(hop(rip)));
        proptest::prop_assert!(crc_ok(&f));
        // Both ways, any chunks: the packet the other end gets is the one it would get from
        // its peer directly (same chunks, the translated ports, a valid checksum).
        let body = sctp_packet(cport, VPORT, tag, &list);
        let mut f = build(client, vip, &body);
        proptest::prop_assert_eq!(run(&e, 1, &mut f), fwd(hop(rip)));
        proptest::prop_assert!(crc_ok(&f));
        proptest::prop_assert_eq!(sctp_of(&f), &sctp_packet(cport, rport, tag, &list)[..]);
        let mut r = build(rip, client, &sctp_packet(rport, cport, tag, &list));
        proptest::prop_assert_eq!(run(&e, 2, &mut r), fwd(hop(client)));
        proptest::prop_assert!(crc_ok(&r));
        proptest::prop_assert_eq!(sctp_of(&r), &sctp_packet(VPORT, cport, tag, &list)[..]);
    }
}
