//! ICMP / ICMPv6 errors about a connection's packets: the quoted packet is translated like the
//! packet it quotes would have been, the outer header follows it, and the ICMP checksum is
//! recomputed (with the pseudo header for ICMPv6).

use rvs_wire::{icmpv4, icmpv6, ip, ipv4, ipv6, ports};

use crate::datapath::Layout;
use crate::flow::{mapped, v4_part, Direction};
use crate::nat::{rewrite_quoted_l4, Side};

/// The packet quoted inside an ICMP error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quoted {
    pub(crate) proto: u8,
    /// Absolute offsets in the frame.
    pub(crate) l3: usize,
    pub(crate) l4: usize,
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// Addresses of the connection the error is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnAddrs {
    pub(crate) vaddr: [u8; 16],
    pub(crate) vport: u16,
    pub(crate) daddr: [u8; 16],
    pub(crate) dport: u16,
    /// FULLNAT connections: the other end's rewrite too.
    pub(crate) fullnat: Option<FullNatAddrs>,
}

/// The client and local ends of a FULLNAT connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FullNatAddrs {
    pub(crate) client: [u8; 16],
    pub(crate) cport: u16,
    pub(crate) laddr: [u8; 16],
    pub(crate) lport: u16,
}

/// True when the ICMP message at `lay.l4` is an error message.
pub(crate) fn is_error(frame: &[u8], lay: &Layout) -> bool {
    let Some(b) = frame.get(lay.l4..lay.end) else {
        return false;
    };
    if lay.v6 {
        icmpv6::Packet::new_checked(b).is_ok_and(|p| p.is_error())
    } else {
        icmpv4::Packet::new_checked(b).is_ok_and(|p| p.is_error())
    }
}

/// Parses the quoted TCP/UDP/SCTP packet of an ICMP error (same address family as the outer one).
pub(crate) fn parse_quoted(frame: &[u8], lay: &Layout) -> Option<Quoted> {
    let l3 = lay.l4 + icmpv4::HEADER_LEN; // same 8-byte header for ICMPv6
    let b = frame.get(l3..lay.end)?;
    let (proto, l4_rel, src, dst) = if lay.v6 {
        let q = ipv6::Packet::new_checked_quoted(b).ok()?;
        if q.is_fragment() && q.fragment().is_some_and(|f| f.offset != 0) {
            return None;
        }
        (
            q.upper_protocol(),
            q.upper_offset(),
            q.src_octets(),
            q.dst_octets(),
        )
    } else {
        let q = ipv4::Packet::new_checked_quoted(b).ok()?;
        if q.frag_offset() != 0 {
            return None;
        }
        (
            q.protocol(),
            q.header_len(),
            mapped(q.src_octets()),
            mapped(q.dst_octets()),
        )
    };
    if proto != ip::TCP && proto != ip::UDP && proto != ip::SCTP {
        return None;
    }
    let p = ports::Ports::new_checked(b.get(l4_rel..)?).ok()?;
    Some(Quoted {
        proto,
        l3,
        l4: l3 + l4_rel,
        src,
        dst,
        sport: p.src_port(),
        dport: p.dst_port(),
    })
}

/// Translates an ICMP error in place. The outer headers were checked by the parser and
/// [`is_error`], the quoted ones by [`parse_quoted`]: they are not checked again.
///
/// `Direction::Input`: from the client side about a reply (quoted VIP -> client): the outer
/// destination and the quoted source become the real server's. `Direction::Output`: from the
/// real-server side about a request (quoted client -> RIP): the quoted destination becomes the
/// virtual address and port, and the outer source too when it is the real server itself.
pub(crate) fn translate(
    frame: &mut [u8],
    lay: &Layout,
    q: &Quoted,
    dir: Direction,
    c: &ConnAddrs,
) -> bool {
    let (side, new_addr, new_port) = match dir {
        Direction::Input => (Side::Src, c.daddr, c.dport),
        Direction::Output => (Side::Dst, c.vaddr, c.vport),
    };
    if !translate_quoted(frame, lay, q, side, &new_addr, new_port) {
        return false;
    }
    // FULLNAT: the quoted packet's other end too (local address <-> client).
    if let Some(f) = &c.fullnat {
        let (side, addr, port) = match dir {
            Direction::Input => (Side::Dst, f.laddr, f.lport),
            Direction::Output => (Side::Src, f.client, f.cport),
        };
        if !translate_quoted(frame, lay, q, side, &addr, port) {
            return false;
        }
    }
    // 3. The outer header.
    let Some(l3) = frame.get_mut(lay.l3..lay.end) else {
        return false;
    };
    let (src, dst) = if lay.v6 {
        let mut p = ipv6::Packet::new_unchecked(l3);
        match dir {
            Direction::Input => p.set_dst_addr(c.daddr),
            Direction::Output => {
                if p.src_octets() == c.daddr {
                    p.set_src_addr(c.vaddr);
                }
            }
        }
        match (dir, &c.fullnat) {
            (Direction::Input, Some(f)) => p.set_src_addr(f.laddr),
            (Direction::Output, Some(f)) => p.set_dst_addr(f.client),
            _ => {}
        }
        p.set_hop_limit(p.hop_limit().saturating_sub(1));
        (p.src_octets(), p.dst_octets())
    } else {
        let mut p = ipv4::Packet::new_unchecked(l3);
        match dir {
            Direction::Input => p.set_dst_update_checksum(v4_part(&c.daddr)),
            Direction::Output => {
                if mapped(p.src_octets()) == c.daddr {
                    p.set_src_update_checksum(v4_part(&c.vaddr));
                }
            }
        }
        match (dir, &c.fullnat) {
            (Direction::Input, Some(f)) => p.set_src_update_checksum(v4_part(&f.laddr)),
            (Direction::Output, Some(f)) => p.set_dst_update_checksum(v4_part(&f.client)),
            _ => {}
        }
        p.set_ttl_update_checksum(p.ttl().saturating_sub(1));
        ([0; 16], [0; 16])
    };
    // 4. The ICMP checksum over the whole message.
    let Some(msg) = frame.get_mut(lay.l4..lay.end) else {
        return false;
    };
    if lay.v6 {
        icmpv6::Packet::new_unchecked(msg).fill_checksum(src, dst);
    } else {
        icmpv4::Packet::new_unchecked(msg).fill_checksum();
    }
    true
}

/// Rewrites one end of the quoted packet (its IP header and, as far as quoted, its transport
/// header).
fn translate_quoted(
    frame: &mut [u8],
    lay: &Layout,
    q: &Quoted,
    side: Side,
    new_addr: &[u8; 16],
    new_port: u16,
) -> bool {
    // 1. The quoted IP header.
    let Some(qb) = frame.get_mut(q.l3..lay.end) else {
        return false;
    };
    let old_quoted = if lay.v6 {
        let mut p = ipv6::Packet::new_unchecked(&mut qb[..]);
        match side {
            Side::Src => p.set_src_addr(*new_addr),
            Side::Dst => p.set_dst_addr(*new_addr),
        }
        match side {
            Side::Src => q.src,
            Side::Dst => q.dst,
        }
    } else {
        let mut p = ipv4::Packet::new_unchecked(&mut qb[..]);
        match side {
            Side::Src => p.set_src_update_checksum(v4_part(new_addr)),
            Side::Dst => p.set_dst_update_checksum(v4_part(new_addr)),
        }
        match side {
            Side::Src => q.src,
            Side::Dst => q.dst,
        }
    };
    // 2. The quoted transport header (its checksum only when quoted in full).
    let Some(ql4) = frame.get_mut(q.l4..lay.end) else {
        return false;
    };
    rewrite_quoted_l4(
        ql4,
        q.proto,
        lay.v6,
        side,
        &old_quoted,
        (new_addr, new_port),
    )
}
