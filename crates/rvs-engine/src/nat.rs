//! In-place NAT rewriting of TCP/UDP packets: one address and port of the packet replaced, the
//! IPv4 header checksum and the L4 checksum updated incrementally (RFC 1624), the TTL / hop
//! limit decremented.
//!
//! L4 checksum rules follow Linux's `inet_proto_csum_replace4/2`: a complete checksum gets the
//! address (pseudo header) and port change; a `CHECKSUM_PARTIAL` field holds the non-complemented
//! pseudo-header sum, so only the address change applies, uncomplemented. A zero IPv4 UDP
//! checksum means "none" and stays zero.
//!
//! SCTP has no pseudo header: its CRC32c covers the SCTP packet alone, so an address change
//! leaves it valid, and it is computed again over the whole packet only when a port changed or
//! the frame came `CHECKSUM_PARTIAL` (IPVS's `sctp_dnat_handler` / `sctp_snat_handler`).

use rvs_wire::{checksum, ip, ipv4, ipv6, ports, sctp, tcp, udp};

use crate::datapath::Parsed;
use crate::flow::v4_part;

/// Which end of the packet is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Source address and port (replies: real server -> virtual).
    Src,
    /// Destination address and port (requests: virtual -> real server).
    Dst,
}

/// The address and port change of one end of a packet.
#[derive(Debug, Clone, Copy)]
struct Change<'a> {
    old_addr: &'a [u8; 16],
    new_addr: &'a [u8; 16],
    old_port: u16,
    new_port: u16,
}

/// Updates an L4 checksum field for the change `c`.
fn l4_checksum(field: u16, c: &Change<'_>, v6: bool, partial: bool) -> u16 {
    let (o4, n4) = (v4_part(c.old_addr), v4_part(c.new_addr));
    if partial {
        if v6 {
            checksum::update_partial128(field, *c.old_addr, *c.new_addr)
        } else {
            checksum::update_partial32(field, o4, n4)
        }
    } else {
        let sum = if v6 {
            checksum::update128(field, *c.old_addr, *c.new_addr)
        } else {
            checksum::update32(field, o4, n4)
        };
        checksum::update16(sum, c.old_port, c.new_port)
    }
}

/// The new value of the checksum field `old` of a TCP or UDP header for the change `c`, or
/// `None` when it stays as it is: a zero IPv4 UDP checksum means "none". A complete UDP
/// checksum that comes out 0 is sent as 0xffff.
fn l4_field(proto: u8, v6: bool, partial: bool, old: u16, c: &Change<'_>) -> Option<u16> {
    let udp = proto == ip::UDP;
    if udp && !v6 && !partial && old == 0 {
        return None;
    }
    let new = l4_checksum(old, c, v6, partial);
    Some(if udp && !partial && new == 0 {
        0xffff
    } else {
        new
    })
}

/// Offset of the checksum field within a TCP or UDP header.
pub(crate) fn l4_checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        ip::TCP => Some(tcp::CHECKSUM_OFFSET),
        ip::UDP => Some(udp::CHECKSUM_OFFSET),
        _ => None,
    }
}

/// Rewrites one end of the parsed TCP, UDP or SCTP packet `p` in `frame` to `to` (address,
/// port). The headers are not parsed again: the parser checked them, and the old address and
/// port come from `p`. Returns false when `p` does not fit the frame (it always does for the
/// frame it was parsed from; nothing here may panic).
pub(crate) fn rewrite(frame: &mut [u8], p: &Parsed, side: Side, to: (&[u8; 16], u16)) -> bool {
    rewrite_side(frame, p, side, to, true) && (p.lay.proto != ip::SCTP || sctp_checksum(frame, p))
}

/// FULLNAT: rewrites both ends of the parsed TCP, UDP or SCTP packet `p` in place (the TTL /
/// hop limit decremented once).
pub(crate) fn rewrite_both(
    frame: &mut [u8],
    p: &Parsed,
    src: (&[u8; 16], u16),
    dst: (&[u8; 16], u16),
) -> bool {
    rewrite_side(frame, p, Side::Dst, dst, true)
        && rewrite_side(frame, p, Side::Src, src, false)
        && (p.lay.proto != ip::SCTP || sctp_checksum(frame, p))
}

/// Computes the SCTP checksum again when the ports are no longer the parsed ones or the
/// checksum was left to the NIC (`CHECKSUM_PARTIAL`); otherwise the packet's own checksum
/// stays valid.
fn sctp_checksum(frame: &mut [u8], p: &Parsed) -> bool {
    let Some(b) = frame.get_mut(p.lay.l4..p.lay.end) else {
        return false;
    };
    let mut s = sctp::Packet::new_unchecked(b);
    if p.csum_partial || (s.src_port(), s.dst_port()) != (p.flow.sport, p.flow.dport) {
        s.fill_checksum();
    }
    true
}

/// [`rewrite`] of one end, with the TTL decrement optional.
fn rewrite_side(
    frame: &mut [u8],
    p: &Parsed,
    side: Side,
    (new_addr, new_port): (&[u8; 16], u16),
    dec_ttl: bool,
) -> bool {
    let lay = &p.lay;
    let Some(l3) = frame.get_mut(lay.l3..lay.end) else {
        return false;
    };
    if lay.v6 {
        let mut ip = ipv6::Packet::new_unchecked(l3);
        match side {
            Side::Src => ip.set_src_addr(*new_addr),
            Side::Dst => ip.set_dst_addr(*new_addr),
        }
        if dec_ttl {
            ip.set_hop_limit(ip.hop_limit().saturating_sub(1));
        }
    } else {
        let mut ip = ipv4::Packet::new_unchecked(l3);
        let n4 = v4_part(new_addr);
        match side {
            Side::Src => ip.set_src_update_checksum(n4),
            Side::Dst => ip.set_dst_update_checksum(n4),
        }
        if dec_ttl {
            ip.set_ttl_update_checksum(ip.ttl().saturating_sub(1));
        }
    }
    let (old_addr, old_port) = match side {
        Side::Src => (&p.flow.src, p.flow.sport),
        Side::Dst => (&p.flow.dst, p.flow.dport),
    };
    let change = Change {
        old_addr,
        new_addr,
        old_port,
        new_port,
    };
    let Some(l4) = frame.get_mut(lay.l4..lay.end) else {
        return false;
    };
    // SCTP: only the port (its checksum covers the whole packet: see `sctp_checksum`).
    let mut ports = ports::Ports::new_unchecked(&mut l4[..]);
    match side {
        Side::Src => ports.set_src_port(new_port),
        Side::Dst => ports.set_dst_port(new_port),
    }
    let (v6, partial) = (lay.v6, p.csum_partial);
    match lay.proto {
        ip::TCP => {
            let mut t = tcp::Packet::new_unchecked(l4);
            if let Some(c) = l4_field(ip::TCP, v6, partial, t.checksum(), &change) {
                t.set_checksum(c);
            }
        }
        ip::UDP => {
            let mut u = udp::Packet::new_unchecked(l4);
            if let Some(c) = l4_field(ip::UDP, v6, partial, u.checksum(), &change) {
                u.set_checksum(c);
            }
        }
        ip::SCTP => {}
        _ => return false,
    }
    true
}

/// Rewrites the port and checksum of the TCP, UDP or SCTP header quoted by an ICMP error, as
/// far as it is quoted (the checksum is only touched when present). `old_addr` is the address
/// the quoted IP header had on that side. For SCTP only the port: its checksum covers the
/// whole packet, and a quoted one is left as IPVS's `ip_vs_nat_icmp` leaves it.
pub(crate) fn rewrite_quoted_l4(
    l4: &mut [u8],
    proto: u8,
    v6: bool,
    side: Side,
    old_addr: &[u8; 16],
    (new_addr, new_port): (&[u8; 16], u16),
) -> bool {
    let coff = l4_checksum_offset(proto);
    if coff.is_none() && proto != ip::SCTP {
        return false;
    }
    let Ok(mut ports) = ports::Ports::new_checked(&mut l4[..]) else {
        return false;
    };
    let old_port = match side {
        Side::Src => ports.src_port(),
        Side::Dst => ports.dst_port(),
    };
    match side {
        Side::Src => ports.set_src_port(new_port),
        Side::Dst => ports.set_dst_port(new_port),
    }
    let Some(field) = coff.and_then(|at| l4.get_mut(at..at + 2)) else {
        return true;
    };
    let change = Change {
        old_addr,
        new_addr,
        old_port,
        new_port,
    };
    let old = u16::from_be_bytes([field[0], field[1]]);
    if let Some(new) = l4_field(proto, v6, false, old, &change) {
        field.copy_from_slice(&new.to_be_bytes());
    }
    true
}
