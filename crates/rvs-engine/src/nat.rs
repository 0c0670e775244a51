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

use rvs_wire::{checksum, ip, ipv4, ipv6, sctp};

use crate::flow::v4_part;

/// Which end of the packet is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Source address and port (replies: real server -> virtual).
    Src,
    /// Destination address and port (requests: virtual -> real server).
    Dst,
}

/// Where the packet's headers are, from the parse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) v6: bool,
    pub(crate) l3: usize,
    pub(crate) l4: usize,
    pub(crate) end: usize,
    pub(crate) proto: u8,
}

/// Updates an L4 checksum field for an address and port change.
pub(crate) fn l4_checksum(
    field: u16,
    old_addr: &[u8; 16],
    new_addr: &[u8; 16],
    old_port: u16,
    new_port: u16,
    v6: bool,
    partial: bool,
) -> u16 {
    let (o4, n4) = (v4_part(old_addr), v4_part(new_addr));
    if partial {
        if v6 {
            checksum::update_partial128(field, *old_addr, *new_addr)
        } else {
            checksum::update_partial32(field, o4, n4)
        }
    } else {
        let c = if v6 {
            checksum::update128(field, *old_addr, *new_addr)
        } else {
            checksum::update32(field, o4, n4)
        };
        checksum::update16(c, old_port, new_port)
    }
}

/// Offset of the checksum field within a TCP or UDP header.
pub(crate) fn l4_checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        ip::TCP => Some(rvs_wire::tcp::CHECKSUM_OFFSET),
        ip::UDP => Some(rvs_wire::udp::CHECKSUM_OFFSET),
        _ => None,
    }
}

/// Rewrites one side of a TCP, UDP or SCTP packet in place. Returns false if the headers no
/// longer parse (cannot happen for a frame the engine parsed, but nothing here may panic).
pub(crate) fn rewrite(
    frame: &mut [u8],
    lay: &Layout,
    side: Side,
    new_addr: &[u8; 16],
    new_port: u16,
    partial: bool,
) -> bool {
    if lay.proto == ip::SCTP {
        let before = sctp_ports(frame, lay);
        return rewrite_side(frame, lay, side, new_addr, new_port, partial, true)
            && sctp_checksum(frame, lay, before, partial);
    }
    rewrite_side(frame, lay, side, new_addr, new_port, partial, true)
}

/// FULLNAT: rewrites both ends of a TCP, UDP or SCTP packet in place (the TTL / hop limit
/// decremented once).
pub(crate) fn rewrite_both(
    frame: &mut [u8],
    lay: &Layout,
    src: (&[u8; 16], u16),
    dst: (&[u8; 16], u16),
    partial: bool,
) -> bool {
    let before = if lay.proto == ip::SCTP {
        sctp_ports(frame, lay)
    } else {
        None
    };
    rewrite_side(frame, lay, Side::Dst, dst.0, dst.1, partial, true)
        && rewrite_side(frame, lay, Side::Src, src.0, src.1, partial, false)
        && (lay.proto != ip::SCTP || sctp_checksum(frame, lay, before, partial))
}

/// The source and destination ports of the SCTP packet of `frame`.
fn sctp_ports(frame: &[u8], lay: &Layout) -> Option<(u16, u16)> {
    let p = sctp::Packet::new_checked(frame.get(lay.l4..lay.end)?).ok()?;
    Some((p.src_port(), p.dst_port()))
}

/// Computes the SCTP checksum again when the ports are no longer `before` or the checksum was
/// left to the NIC (`partial`); otherwise the packet's own checksum stays valid.
fn sctp_checksum(
    frame: &mut [u8],
    lay: &Layout,
    before: Option<(u16, u16)>,
    partial: bool,
) -> bool {
    let Some(b) = frame.get_mut(lay.l4..lay.end) else {
        return false;
    };
    let Ok(mut p) = sctp::Packet::new_checked(b) else {
        return false;
    };
    if partial || before != Some((p.src_port(), p.dst_port())) {
        p.fill_checksum();
    }
    true
}

/// [`rewrite`] with the TTL decrement optional.
fn rewrite_side(
    frame: &mut [u8],
    lay: &Layout,
    side: Side,
    new_addr: &[u8; 16],
    new_port: u16,
    partial: bool,
    dec_ttl: bool,
) -> bool {
    let Some(l3) = frame.get_mut(lay.l3..lay.end) else {
        return false;
    };
    let old_addr = if lay.v6 {
        let Ok(mut p) = ipv6::Packet::new_checked(&mut l3[..]) else {
            return false;
        };
        let old = match side {
            Side::Src => p.src_octets(),
            Side::Dst => p.dst_octets(),
        };
        match side {
            Side::Src => p.set_src_addr(*new_addr),
            Side::Dst => p.set_dst_addr(*new_addr),
        }
        if dec_ttl {
            p.set_hop_limit(p.hop_limit().saturating_sub(1));
        }
        old
    } else {
        let Ok(mut p) = ipv4::Packet::new_checked(&mut l3[..]) else {
            return false;
        };
        let n4 = v4_part(new_addr);
        let old = match side {
            Side::Src => p.src_octets(),
            Side::Dst => p.dst_octets(),
        };
        match side {
            Side::Src => p.set_src_update_checksum(n4),
            Side::Dst => p.set_dst_update_checksum(n4),
        }
        if dec_ttl {
            p.set_ttl_update_checksum(p.ttl().saturating_sub(1));
        }
        crate::flow::mapped(old)
    };
    let Some(l4) = frame.get_mut(lay.l4..lay.end) else {
        return false;
    };
    rewrite_l4(
        l4, lay.proto, lay.v6, side, &old_addr, new_addr, new_port, partial,
    )
}

/// Rewrites the port and checksum of a TCP/UDP header (which may be cut short, as in an ICMP
/// quote: the checksum is only touched when present). For SCTP only the port: its checksum
/// covers the whole packet, which the caller computes again (a quoted one is left as IPVS's
/// `ip_vs_nat_icmp` leaves it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite_l4(
    l4: &mut [u8],
    proto: u8,
    v6: bool,
    side: Side,
    old_addr: &[u8; 16],
    new_addr: &[u8; 16],
    new_port: u16,
    partial: bool,
) -> bool {
    let Ok(mut ports) = rvs_wire::ports::Ports::new_checked(&mut l4[..]) else {
        return false;
    };
    let Some(coff) = l4_checksum_offset(proto) else {
        if proto != ip::SCTP {
            return false;
        }
        match side {
            Side::Src => ports.set_src_port(new_port),
            Side::Dst => ports.set_dst_port(new_port),
        }
        return true;
    };
    let old_port = match side {
        Side::Src => ports.src_port(),
        Side::Dst => ports.dst_port(),
    };
    match side {
        Side::Src => ports.set_src_port(new_port),
        Side::Dst => ports.set_dst_port(new_port),
    }
    let Some(field) = l4.get_mut(coff..coff + 2) else {
        return true;
    };
    let old = u16::from_be_bytes([field[0], field[1]]);
    let udp = proto == ip::UDP;
    if udp && !v6 && !partial && old == 0 {
        return true;
    }
    let mut new = l4_checksum(old, old_addr, new_addr, old_port, new_port, v6, partial);
    if udp && !partial && new == 0 {
        new = 0xffff;
    }
    field.copy_from_slice(&new.to_be_bytes());
    true
}
