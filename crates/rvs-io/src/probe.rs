//! Active probes of a direct-routing real server's setup (for `rvsadm --doctor`), sent and
//! watched on one interface with packet sockets of their own (in no fanout group, so they see
//! every frame beside the data plane's workers and never join their group):
//!
//! - [`arp_answerers`]: who answers an ARP request for the VIP (with DR only the director
//!   may: a real server holding the VIP on `lo` must not, `arp_ignore=1`);
//! - [`echo_answered`]: whether a real server answers an ICMP echo sent to the VIP at its MAC
//!   address (as DR delivers packets: it does when it holds the VIP on `lo`);
//! - [`syn_probe`]: whether a real server accepts a TCP connection to the VIP at its MAC
//!   address (the client's path through a DR director), for health checks that test it.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use rvs_wire::{arp, checksum, ethernet, ip, ipv4, tcp};

use crate::{IoError, PacketSocket, VnetHdr};

const BROADCAST: [u8; 6] = [0xff; 6];
const MIN_FRAME: usize = 60;
/// ICMP echo request and reply types.
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// Numbers for probes: ICMP identifiers and TCP source ports.
static NEXT_PROBE: AtomicU16 = AtomicU16::new(0);

/// The first local port of TCP probes: above Linux's default ephemeral range (32768-60999).
pub const PROBE_PORTS_START: u16 = 61000;

/// A local port for a TCP probe, from 61000-65535 in turn (shared by every prober, so two
/// probes in flight never use one port).
pub fn probe_port() -> u16 {
    let span = u16::MAX - PROBE_PORTS_START + 1;
    PROBE_PORTS_START + NEXT_PROBE.fetch_add(1, Ordering::Relaxed) % span
}

/// An ARP request from `src_mac`/`src_ip` for `target`, broadcast.
pub fn arp_request_frame(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; MIN_FRAME];
    let (eth, body) = f.split_at_mut(ethernet::HEADER_LEN);
    let built = ethernet::Repr {
        dst: BROADCAST,
        src: src_mac,
        ethertype: ethernet::ETHERTYPE_ARP,
    }
    .emit(eth)
    .and_then(|()| {
        arp::Repr {
            operation: arp::OP_REQUEST,
            sender_hardware_addr: src_mac,
            sender_protocol_addr: src_ip.octets(),
            target_hardware_addr: [0; 6],
            target_protocol_addr: target.octets(),
        }
        .emit(body)
    });
    if built.is_err() {
        f.clear();
    }
    f
}

/// An ICMP echo request from `src_ip` to `dst_ip`, sent to the Ethernet address `dst_mac`.
pub fn echo_request_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ident: u16,
) -> Vec<u8> {
    let mut icmp = vec![ECHO_REQUEST, 0, 0, 0];
    icmp.extend(ident.to_be_bytes());
    icmp.extend(1u16.to_be_bytes());
    icmp.extend(b"rvsadm --doctor");
    let sum = rvs_wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN];
    let (eth, l3) = f.split_at_mut(ethernet::HEADER_LEN);
    let built = ethernet::Repr {
        dst: dst_mac,
        src: src_mac,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(eth)
    .and_then(|()| {
        ipv4::Repr {
            src_addr: src_ip.octets(),
            dst_addr: dst_ip.octets(),
            protocol: ip::ICMP,
            payload_len: icmp.len() as u16,
            ttl: 64,
            dscp_ecn: 0,
            ident,
            dont_frag: true,
        }
        .emit(l3)
    });
    if built.is_err() {
        return Vec::new();
    }
    f.extend(icmp);
    f
}

/// How long one wait for frames lasts at most while a probe watches (how late it notices
/// that it has its answer).
const WATCH_SLICE: Duration = Duration::from_millis(20);

/// Sends `frame` on `ifname` and hands every frame seen there to `seen`, until `seen` says it
/// has what it waited for or `wait` is over. Returns the sending socket, for a follow-up.
fn send_and_watch(
    ifname: &str,
    frame: &[u8],
    wait: Duration,
    mut seen: impl FnMut(&[u8]) -> bool,
) -> Result<PacketSocket, IoError> {
    let mut rx = PacketSocket::open_watch(ifname)?;
    let tx = PacketSocket::open_tx(ifname)?;
    tx.send(&VnetHdr::default(), frame)?;
    let deadline = Instant::now() + wait;
    let mut done = false;
    while !done {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        rx.recv_batch(left.min(WATCH_SLICE), 64, |_, f| done |= seen(f))?;
    }
    Ok(tx)
}

/// The Ethernet addresses that answer an ARP request for `target` sent on `ifname` from
/// `src_mac`/`src_ip` within `wait`.
pub fn arp_answerers(
    ifname: &str,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    wait: Duration,
) -> Result<Vec<[u8; 6]>, IoError> {
    let mut macs = Vec::new();
    send_and_watch(
        ifname,
        &arp_request_frame(src_mac, src_ip, target),
        wait,
        |f| {
            // Every answer within the wait counts: never done early.
            let Ok(eth) = ethernet::Frame::new_checked(f) else {
                return false;
            };
            if eth.ethertype() != ethernet::ETHERTYPE_ARP {
                return false;
            }
            let Ok(a) = arp::Packet::new_checked(&f[ethernet::HEADER_LEN..]) else {
                return false;
            };
            let mac = a.sender_hardware_addr();
            if a.operation() == arp::OP_REPLY
                && a.sender_protocol_addr() == target.octets()
                && mac != src_mac
                && !macs.contains(&mac)
            {
                macs.push(mac);
            }
            false
        },
    )?;
    Ok(macs)
}

/// Whether an ICMP echo request to `dst_ip` at the Ethernet address `dst_mac` (from
/// `src_mac`/`src_ip`, on `ifname`) is answered from `dst_ip` within `wait`.
pub fn echo_answered(
    ifname: &str,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    wait: Duration,
) -> Result<bool, IoError> {
    let ident = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
    let mut answered = false;
    send_and_watch(
        ifname,
        &echo_request_frame(src_mac, dst_mac, src_ip, dst_ip, ident),
        wait,
        |f| {
            let Some(l3) = f.get(ethernet::HEADER_LEN..) else {
                return answered;
            };
            let Ok(p) = ipv4::Packet::new_checked(l3) else {
                return answered;
            };
            let icmp = l3.get(p.header_len()..).unwrap_or_default();
            answered |= p.protocol() == ip::ICMP
                && p.src_octets() == dst_ip.octets()
                && p.dst_octets() == src_ip.octets()
                && icmp.first() == Some(&ECHO_REPLY)
                && icmp.get(4..6) == Some(&ident.to_be_bytes()[..]);
            answered
        },
    )?;
    Ok(answered)
}

/// An IPv4 TCP segment with no options or payload from `src_ip:sport` to `dst_ip:dport`
/// (the IP packet, checksums filled in), with TTL 1: only a host that takes it for itself
/// answers, never one that would forward it (a real server without the VIP, whose kernel
/// routes it on, perhaps back to the director and to another real server).
pub fn tcp_packet(
    (src_ip, sport): (Ipv4Addr, u16),
    (dst_ip, dport): (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut seg = vec![0u8; tcp::MIN_HEADER_LEN];
    {
        let mut t = tcp::Packet::new_unchecked(&mut seg[..]);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        t.set_seq_number(seq);
        t.set_ack_number(ack);
        t.set_flags(tcp::Flags(flags));
    }
    seg[12] = 5 << 4; // data offset: 20 bytes
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
    let pseudo =
        checksum::pseudo_header_v4(src_ip.octets(), dst_ip.octets(), ip::TCP, seg.len() as u32);
    let sum = checksum::fold(checksum::add_bytes(pseudo, &seg));
    tcp::Packet::new_unchecked(&mut seg[..]).set_checksum(!sum);
    let mut l3 = vec![0u8; ipv4::MIN_HEADER_LEN];
    let built = ipv4::Repr {
        src_addr: src_ip.octets(),
        dst_addr: dst_ip.octets(),
        protocol: ip::TCP,
        payload_len: seg.len() as u16,
        ttl: 1,
        dscp_ecn: 0,
        ident: sport,
        dont_frag: true,
    }
    .emit(&mut l3);
    if built.is_err() {
        return Vec::new();
    }
    l3.extend(seg);
    l3
}

/// `l3` (an IPv4 packet, or an outer header and its inner packet) in an Ethernet frame from
/// `src_mac` to `dst_mac`.
pub fn ipv4_frame(src_mac: [u8; 6], dst_mac: [u8; 6], l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN];
    let built = ethernet::Repr {
        dst: dst_mac,
        src: src_mac,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut f);
    if built.is_err() {
        return Vec::new();
    }
    f.extend_from_slice(l3);
    f
}

/// A TCP segment with no options or payload from `src_ip:sport` to `dst_ip:dport`, sent to the
/// Ethernet address `dst_mac`.
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    from: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    ipv4_frame(src_mac, dst_mac, &tcp_packet(from, to, seq, ack, flags))
}

/// An initial sequence number that differs from one probe to the next and between runs (a
/// server may still hold the previous use of the same ports in TIME_WAIT).
pub fn random_isn(salt: u16) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u16(salt);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// The TCP header of `f` if it is an IPv4 segment from `src` to `dst`.
fn answer_to(
    f: &[u8],
    (src_ip, sport): (Ipv4Addr, u16),
    (dst_ip, dport): (Ipv4Addr, u16),
) -> Option<tcp::Packet<&[u8]>> {
    let l3 = f.get(ethernet::HEADER_LEN..)?;
    let p = ipv4::Packet::new_checked(l3).ok()?;
    if p.protocol() != ip::TCP
        || p.src_octets() != src_ip.octets()
        || p.dst_octets() != dst_ip.octets()
    {
        return None;
    }
    let t = tcp::Packet::new_checked(l3.get(p.header_len()..)?).ok()?;
    (t.src_port() == sport && t.dst_port() == dport).then_some(t)
}

/// What a real server answered to a SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynAnswer {
    /// A SYN-ACK: something listens (the probe then resets the half-open connection).
    Accepted,
    /// A RST: nothing listens on the port.
    Refused,
    /// Nothing within the wait.
    Silent,
}

/// How a probe's IP packets leave: straight in a frame, or each wrapped first (in a tunnel's
/// outer header).
pub type Wrap<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;

/// Sends a TCP SYN from `src_ip` (a port of its own) to `dst_ip:dport` at the Ethernet address
/// `dst_mac` on `ifname`, and waits up to `wait` for the answer from `dst_ip:dport`, returning
/// as soon as it comes. After a SYN-ACK a RST closes the half-open connection on the server.
/// With `wrap`, each IP packet is wrapped before it goes into its frame (answers are expected
/// unwrapped, as tunnelled real servers answer clients directly).
pub fn syn_probe(
    ifname: &str,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    (dst_ip, dport): (Ipv4Addr, u16),
    wait: Duration,
    wrap: Option<Wrap<'_>>,
) -> Result<SynAnswer, IoError> {
    let frame = |l3: Vec<u8>| -> Vec<u8> {
        match wrap {
            None => ipv4_frame(src_mac, dst_mac, &l3),
            Some(w) => w(&l3)
                .map(|outer| ipv4_frame(src_mac, dst_mac, &outer))
                .unwrap_or_default(),
        }
    };
    let sport = probe_port();
    let isn = random_isn(sport);
    let from = (src_ip, sport);
    let to = (dst_ip, dport);
    let syn = frame(tcp_packet(from, to, isn, 0, tcp::Flags::SYN));
    if syn.is_empty() {
        return Err(IoError::Probe("the SYN could not be built".into()));
    }
    let mut answer = SynAnswer::Silent;
    let mut server_isn = 0u32;
    let tx = send_and_watch(ifname, &syn, wait, |f| {
        if let Some(t) = answer_to(f, to, from) {
            let flags = t.flags();
            if flags.rst() {
                answer = SynAnswer::Refused;
            } else if flags.syn() && flags.ack() && t.ack_number() == isn.wrapping_add(1) {
                server_isn = t.seq_number();
                answer = SynAnswer::Accepted;
            }
        }
        answer != SynAnswer::Silent
    })?;
    if answer == SynAnswer::Accepted {
        let rst = frame(tcp_packet(
            from,
            to,
            isn.wrapping_add(1),
            server_isn.wrapping_add(1),
            tcp::Flags::RST | tcp::Flags::ACK,
        ));
        tx.send(&VnetHdr::default(), &rst)?;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_frame_is_a_valid_tcp_segment() {
        let f = tcp_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            (Ipv4Addr::new(10, 0, 0, 8), 61001),
            (Ipv4Addr::new(10, 0, 0, 200), 80),
            7,
            0,
            tcp::Flags::SYN,
        );
        let p = ipv4::Packet::new_checked(&f[ethernet::HEADER_LEN..]).unwrap();
        let l4 = &f[ethernet::HEADER_LEN + p.header_len()..];
        let t = tcp::Packet::new_checked(l4).unwrap();
        assert!(t.flags().syn() && !t.flags().ack());
        assert_eq!((t.src_port(), t.dst_port(), t.seq_number()), (61001, 80, 7));
        let pseudo = checksum::pseudo_header_v4([10, 0, 0, 8], [10, 0, 0, 200], ip::TCP, 20);
        assert_eq!(
            checksum::fold(checksum::add_bytes(pseudo, l4)),
            0xffff,
            "checksum verifies"
        );
    }

    #[test]
    fn probe_frames_parse_back() {
        let mac = [2, 0, 0, 0, 0, 1];
        let arp_frame = arp_request_frame(
            mac,
            Ipv4Addr::new(10, 0, 0, 8),
            Ipv4Addr::new(10, 0, 0, 200),
        );
        let a = arp::Packet::new_checked(&arp_frame[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(a.operation(), arp::OP_REQUEST);
        assert_eq!(a.sender_protocol_addr(), [10, 0, 0, 8]);
        let echo = echo_request_frame(
            mac,
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(10, 0, 0, 8),
            Ipv4Addr::new(10, 0, 0, 200),
            77,
        );
        let p = ipv4::Packet::new_checked(&echo[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!((p.protocol(), p.dst_octets()), (ip::ICMP, [10, 0, 0, 200]));
        let icmp = &echo[ethernet::HEADER_LEN + p.header_len()..];
        assert_eq!(
            rvs_wire::checksum::checksum(icmp),
            0,
            "ICMP checksum verifies"
        );
    }
}
