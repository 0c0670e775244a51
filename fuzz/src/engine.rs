//! rvs-engine: `Engine::handle` on a table with a service of every forwarding method (NAT,
//! direct routing, tunnels, FULLNAT with the PROXY protocol, local), SCTP, SIP persistence,
//! a firewall-mark service and persistent port-0 service, IPv4 and IPv6.
//!
//! The input is a sequence of frames, each `[control, length (2 bytes, big endian), frame]`, so
//! that one input can open a connection and then use it. Control bits: 0 marks the frame
//! `CHECKSUM_PARTIAL`, 1 fills in its checksums first (so that mutated frames still reach the
//! connection code), 2-4 advance the clock (0 ms up to 20 minutes, so entries expire), 5 turns
//! the SYN proxy on or off, 6 marks an ACK's SYN cookie as checked by the BPF program (so
//! inputs reach the proxy's connections without knowing the engine's random cookie key).
//!
//! Invariants, for every verdict that sends a packet on: the packet parses as IP and every
//! checksum that held in the input holds in the output (IPv4 header, TCP, UDP, ICMP, SCTP; a
//! `CHECKSUM_PARTIAL` TCP/UDP field holds the pseudo-header sum); a PROXY protocol insertion
//! is counted in the lengths and the checksum; a tunnel's outer header is well formed; cut into
//! fragments for a small link, it is made again whole by reassembly. Fragments go through
//! `Engine::reassemble`, and a datagram they complete through `handle` again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_engine::*;
use rvs_wire::checksum::{add_bytes, fold, pseudo_header_v4, pseudo_header_v6};
use rvs_wire::{ethernet, ipv4, ipv6, sctp};

/// Clock advance per control value (bits 2-4), in milliseconds.
const ADVANCE_MS: [u64; 8] = [0, 1, 100, 1_000, 10_000, 60_000, 300_000, 1_200_000];

/// Runs the target.
pub fn target(data: &[u8]) {
    let engine = table();
    let mut now = 0;
    let mut rest = data;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let mut frame = tail[..len].to_vec();
        rest = &tail[len..];
        now += ADVANCE_MS[usize::from((ctl >> 2) & 7)];
        let partial = ctl & 1 != 0;
        if ctl & 2 != 0 {
            fill_checksums(&mut frame, partial);
        }
        if ctl & 0x20 != 0 {
            let mut policy = engine.policy();
            policy.syn_proxy = !policy.syn_proxy;
            engine.set_policy(policy);
        }
        let meta = PacketMeta {
            csum_partial: partial,
            cookie_checked: ctl & 0x40 != 0,
        };
        one(&engine, now, meta, frame);
    }
}

fn one(engine: &Engine, now: u64, mut meta: PacketMeta, mut frame: Vec<u8>) {
    let partial = meta.csum_partial;
    let before = ethernet::Frame::new_checked(&frame[..])
        .map(|f| sums(&frame[f.l3_offset()..], partial))
        .unwrap_or_default();
    let verdict = engine.handle(Millis(now), &mut meta, &mut frame);
    let out = match verdict {
        Verdict::Forward { l3_offset, .. } => {
            assert!(l3_offset >= 14, "{verdict:?}");
            frame[l3_offset..].to_vec()
        }
        Verdict::Deliver { l3_offset } => frame[l3_offset..].to_vec(),
        Verdict::Encapsulate {
            l3_offset,
            next_hop_ip,
            tunnel,
        } => {
            encapsulated(&tunnel, next_hop_ip, &frame[l3_offset..]);
            frame[l3_offset..].to_vec()
        }
        Verdict::ForwardInsert {
            l3_offset,
            payload_offset,
            end,
            insert,
            ..
        } => {
            assert!(l3_offset <= payload_offset && payload_offset <= end && end <= frame.len());
            let mut p = frame[l3_offset..payload_offset].to_vec();
            p.extend_from_slice(insert.as_bytes());
            p.extend_from_slice(&frame[payload_offset..end]);
            p
        }
        Verdict::Reassemble => {
            if let Some(whole) = engine.reassemble(Millis(now), &frame) {
                assert!(whole.max_fragment <= whole.frame.len(), "{whole:?}");
                one(engine, now, PacketMeta::default(), whole.frame);
            }
            return;
        }
        Verdict::PassToKernel | Verdict::Drop(_) | Verdict::Defer => return,
    };
    let after = sums(&out, meta.csum_partial);
    assert!(
        after.ip.is_some(),
        "{verdict:?}: output is not an IP packet"
    );
    for (name, b, a) in [("ip", before.ip, after.ip), ("l4", before.l4, after.l4)] {
        if b == Some(true) {
            assert_eq!(a, Some(true), "{verdict:?}: {name} checksum broken");
        }
    }
    if after.ip == Some(true) && !meta.csum_partial {
        cut_and_join(&out);
    }
}

/// Link size the output is cut to when longer.
const SMALL_LINK: usize = 576;

/// Cuts a packet the engine sends into fragments for a small link as the data plane would
/// ([`fragment::split`]), checks each fits and is IP, and that a reassembler makes the packet
/// again from them.
fn cut_and_join(packet: &[u8]) {
    let v6 = packet[0] >> 4 == 6;
    let eth: [u8; 14] = [
        2,
        0,
        0,
        0,
        0,
        1,
        2,
        0,
        0,
        0,
        0,
        2,
        if v6 { 0x86 } else { 0x08 },
        if v6 { 0xdd } else { 0 },
    ];
    let mut frames = Vec::new();
    let cut = fragment::split(packet, SMALL_LINK, 9, |h, d| {
        frames.push([&eth[..], h, d].concat());
    });
    match cut {
        // An IPv6 packet with a fragment header, or a header longer than the small link.
        Err(fragment::FragmentError::AlreadyFragmented | fragment::FragmentError::MtuTooSmall) => {
            return
        }
        Err(e) => panic!("a packet sent on could not be cut: {e}"),
        Ok(_) if frames.len() < 2 => return,
        Ok(_) => {}
    }
    let mut r = reasm::Reassembler::new(ReasmLimits::default());
    let mut whole = None;
    for f in &frames {
        assert!(
            f.len() - 14 <= SMALL_LINK,
            "a fragment longer than the link"
        );
        match r.collect(0, f) {
            reasm::Collected::Complete(w) => whole = Some(w),
            reasm::Collected::Held => {}
            reasm::Collected::Refused(why) => {
                panic!("a fragment of a valid packet refused: {why:?}")
            }
        }
    }
    let whole = whole.expect("the fragments make the packet again");
    let ip_len = if v6 {
        40 + usize::from(u16::from_be_bytes([packet[4], packet[5]]))
    } else {
        usize::from(u16::from_be_bytes([packet[2], packet[3]]))
    };
    assert_eq!(&whole.frame[14..], &packet[..ip_len], "reassembled differs");
}

/// The outer header the data plane would put in front of `inner`.
fn encapsulated(tunnel: &TunnelConfig, dst: IpAddr, inner: &[u8]) {
    let src = match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(192, 168, 7, 1)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0xfd00, 7, 0, 0, 0, 0, 0, 1)),
    };
    let Ok(outer) = tunnel::outer_header(tunnel, src, dst, inner, 1, None) else {
        return;
    };
    let mut p = outer.as_bytes().to_vec();
    let len = ipv4::Packet::new_checked(inner)
        .map(|i| i.header_len() + i.payload().len())
        .or_else(|_| ipv6::Packet::new_checked(inner).map(|i| i.total_len()))
        .unwrap_or(inner.len());
    p.extend_from_slice(&inner[..len]);
    let s = sums(&p, false);
    assert_eq!(s.ip, Some(true), "{tunnel:?}: outer header");
    if tunnel.checksum == TunnelChecksum::Csum {
        assert_ne!(s.l4, Some(false), "{tunnel:?}: outer checksum");
    }
}

/// Which checksums of an IP packet hold: `None` where there is none to check (not IP, a
/// fragment, a transport rvs does not checksum).
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    ip: Option<bool>,
    l4: Option<bool>,
}

fn sums(l3: &[u8], partial: bool) -> Sums {
    let Some(t) = transport(l3) else {
        return Sums::default();
    };
    Sums {
        ip: Some(t.ip_ok),
        l4: t.seg.and_then(|(proto, seg)| {
            l4_ok(
                proto,
                t.pseudo(proto, seg.len()),
                seg,
                partial,
                t.v6.is_none(),
            )
        }),
    }
}

/// An IP packet's transport segment and pseudo-header addresses.
struct Transport<'a> {
    ip_ok: bool,
    v6: Option<([u8; 16], [u8; 16])>,
    v4: ([u8; 4], [u8; 4]),
    seg: Option<(u8, &'a [u8])>,
}

impl Transport<'_> {
    fn pseudo(&self, proto: u8, len: usize) -> u32 {
        match self.v6 {
            Some((s, d)) => pseudo_header_v6(s, d, proto, len as u32),
            None => pseudo_header_v4(self.v4.0, self.v4.1, proto, len as u32),
        }
    }
}

fn transport(l3: &[u8]) -> Option<Transport<'_>> {
    match l3.first()? >> 4 {
        4 => {
            let p = ipv4::Packet::new_checked(l3).ok()?;
            let (h, n) = (p.header_len(), p.payload().len());
            Some(Transport {
                ip_ok: p.verify_checksum(),
                v6: None,
                v4: (p.src_octets(), p.dst_octets()),
                seg: (!p.is_fragment()).then(|| (p.protocol(), &l3[h..h + n])),
            })
        }
        6 => {
            let p = ipv6::Packet::new_checked(l3).ok()?;
            let o = p.upper_offset();
            let n = p.upper_payload().len();
            Some(Transport {
                ip_ok: true,
                v6: Some((p.src_octets(), p.dst_octets())),
                v4: ([0; 4], [0; 4]),
                seg: (!p.is_fragment()).then(|| (p.upper_protocol(), &l3[o..o + n])),
            })
        }
        _ => None,
    }
}

/// Offset of the checksum field of a transport protocol rvs checksums.
fn csum_at(proto: u8, seg_len: usize) -> Option<usize> {
    let (at, min) = match proto {
        6 => (16, 20),
        17 => (6, 8),
        1 | 58 => (2, 8),
        132 => (8, 12),
        _ => return None,
    };
    (seg_len >= min).then_some(at)
}

fn l4_ok(proto: u8, pseudo: u32, seg: &[u8], partial: bool, v4: bool) -> Option<bool> {
    let at = csum_at(proto, seg.len())?;
    let field = u16::from_be_bytes([seg[at], seg[at + 1]]);
    Some(match proto {
        132 => sctp::Packet::new_checked(seg).is_ok_and(|p| p.verify_checksum()),
        6 | 17 if partial => ones_eq(field, fold(pseudo)),
        17 if field == 0 && v4 => true,
        1 => fold(add_bytes(0, seg)) == 0xffff,
        _ => fold(add_bytes(pseudo, seg)) == 0xffff,
    })
}

fn ones_eq(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

/// Writes correct checksums into a frame (partial ones for TCP/UDP when `partial`).
fn fill_checksums(frame: &mut [u8], partial: bool) {
    let Ok(off) = ethernet::Frame::new_checked(&frame[..]).map(|f| f.l3_offset()) else {
        return;
    };
    let l3 = &mut frame[off..];
    if let Ok(mut p) = ipv4::Packet::new_checked(&mut *l3) {
        p.fill_checksum();
    }
    let Some((proto, start, len, pseudo)) = transport(l3).and_then(|t| {
        let (proto, seg) = t.seg?;
        let start = seg.as_ptr() as usize - l3.as_ptr() as usize;
        Some((proto, start, seg.len(), t.pseudo(proto, seg.len())))
    }) else {
        return;
    };
    let seg = &mut l3[start..start + len];
    let Some(at) = csum_at(proto, len) else {
        return;
    };
    seg[at..at + 2].fill(0);
    let value = match proto {
        132 => {
            if let Ok(mut s) = sctp::Packet::new_checked(&mut *seg) {
                s.fill_checksum();
            }
            return;
        }
        6 | 17 if partial => fold(pseudo),
        1 => !fold(add_bytes(0, seg)),
        _ => match !fold(add_bytes(pseudo, seg)) {
            0 if proto == 17 => 0xffff,
            v => v,
        },
    };
    seg[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16, net: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, last))
}

fn service(key: ServiceKey, scheduler: SchedulerKind) -> ServiceSpec {
    ServiceSpec::new(key, scheduler)
}

fn dest(addr: IpAddr, port: u16, method: ForwardMethod) -> DestSpec {
    DestSpec::new(addr, port, 1, method)
}

fn add(e: &Engine, s: ServiceSpec, dests: &[DestSpec]) {
    let key = s.key;
    e.add_service(s).expect("service");
    for d in dests {
        e.add_dest(&key, d.clone()).expect("dest");
    }
}

/// The table (addresses as in the seed corpus, see tests/seeds.rs):
/// - 10.99.1.100 and 2001:db8:1::100, port 80, TCP, UDP and SCTP: NAT to port 8080;
/// - 10.99.1.101:80 TCP: direct routing; 10.99.1.102:80 TCP and UDP: tunnels (IPIP, GUE with
///   checksums, GRE with checksums, round robin);
/// - 10.99.1.103:80 and 2001:db8:1::103 port 80, TCP: FULLNAT, PROXY protocol v2 and v1;
/// - 10.99.1.104:5060 UDP: NAT with SIP persistence; 10.99.1.105:80 TCP: local;
/// - 10.99.1.106 port 0 TCP, persistent (300 s, /24): NAT;
/// - firewall mark 7 (TCP to 10.99.3.0/24): NAT, source hashing.
fn table() -> Engine {
    use ForwardMethod::*;
    let e = Engine::new(EngineConfig {
        expected_connections: 64,
        shards: 2,
        mh_table_size: 251,
        max_connections: 0,
        reassembly: Default::default(),
    });
    let rip4 = v4(192, 168, 7, 10);
    let rip6 = v6(0x10, 7);
    for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        let s4 = service(
            ServiceKey::new(proto, v4(10, 99, 1, 100), 80),
            SchedulerKind::Rr,
        );
        add(&e, s4, &[dest(rip4, 8080, Masq)]);
        let s6 = service(ServiceKey::new(proto, v6(0x100, 1), 80), SchedulerKind::Wlc);
        add(&e, s6, &[dest(rip6, 8080, Masq)]);
    }
    let dr = service(
        ServiceKey::new(Protocol::Tcp, v4(10, 99, 1, 101), 80),
        SchedulerKind::Rr,
    );
    add(&e, dr, &[dest(rip4, 0, Route)]);
    let tunnels = [
        (TunnelKind::Ipip, TunnelChecksum::NoCsum),
        (TunnelKind::Gue, TunnelChecksum::Csum),
        (TunnelKind::Gre, TunnelChecksum::Csum),
    ];
    let tun: Vec<DestSpec> = tunnels
        .iter()
        .enumerate()
        .map(|(i, (kind, checksum))| DestSpec {
            tunnel: TunnelConfig {
                kind: *kind,
                port: 6080,
                checksum: *checksum,
            },
            ..dest(v4(192, 168, 7, 20 + i as u8), 0, Tunnel)
        })
        .collect();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let s = service(
            ServiceKey::new(proto, v4(10, 99, 1, 102), 80),
            SchedulerKind::Rr,
        );
        add(&e, s, &tun);
    }
    for (vip, local, rip, pp) in [
        (
            v4(10, 99, 1, 103),
            v4(10, 99, 2, 1),
            rip4,
            ProxyProtocolVersion::V2,
        ),
        (v6(0x103, 1), v6(1, 2), rip6, ProxyProtocolVersion::V1),
    ] {
        let s = ServiceSpec {
            local_addrs: vec![local],
            proxy_protocol: Some(pp),
            ..service(ServiceKey::new(Protocol::Tcp, vip, 80), SchedulerKind::Rr)
        };
        add(&e, s, &[dest(rip, 8080, FullNat)]);
    }
    let sip = ServiceSpec {
        persistence: Some(Persistence {
            timeout_s: 300,
            netmask: v4(255, 255, 255, 255),
            pe: Some(PersistenceEngine::Sip),
        }),
        ..service(
            ServiceKey::new(Protocol::Udp, v4(10, 99, 1, 104), 5060),
            SchedulerKind::Rr,
        )
    };
    add(&e, sip, &[dest(rip4, 5060, Masq)]);
    let local = service(
        ServiceKey::new(Protocol::Tcp, v4(10, 99, 1, 105), 80),
        SchedulerKind::Rr,
    );
    add(&e, local, &[dest(v4(10, 99, 1, 105), 80, Local)]);
    let persistent = Persistence {
        timeout_s: 300,
        netmask: v4(255, 255, 255, 0),
        pe: None,
    };
    let any_port = ServiceSpec {
        persistence: Some(persistent),
        ..service(
            ServiceKey::new(Protocol::Tcp, v4(10, 99, 1, 106), 0),
            SchedulerKind::Lc,
        )
    };
    add(
        &e,
        any_port,
        &[dest(rip4, 0, Masq), dest(v4(192, 168, 7, 11), 0, Masq)],
    );
    let mark = ServiceSpec {
        persistence: Some(persistent),
        ..service(ServiceKey::fwmark(7, false), SchedulerKind::Sh)
    };
    add(&e, mark, &[dest(rip4, 0, Masq)]);
    e.add_mark_rule(MarkRule {
        proto: Protocol::Tcp,
        addr: v4(10, 99, 3, 0),
        prefix_len: 24,
        ports: (1, 65535),
        mark: 7,
    })
    .expect("mark rule");
    e
}
