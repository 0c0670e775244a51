//! Frame parsing for the data plane: Ethernet (VLAN tags skipped), IPv4/IPv6, and the L4 ports.
//!
//! A frame is parsed once, as `Engine::handle` (or `handle_cached`) starts, into a [`Parsed`];
//! everything after (connection lookup, state, NAT rewriting) reads it instead of parsing
//! again, and the rewriters wrap its already-checked offsets in unchecked views.

use rvs_wire::{ethernet, ip, ipv4, ipv6, sctp, tcp, udp, WireError};

use crate::flow::{mapped, Tuple};
use crate::verdict::{DropReason, PacketMeta};

/// Where the packet's headers are in the frame, from the parse. The parser checked that the
/// IP header lies in `l3..end` and, for TCP, UDP and SCTP (not fragments), that the transport
/// header lies in `l4..end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) v6: bool,
    pub(crate) l3: usize,
    pub(crate) l4: usize,
    pub(crate) end: usize,
    pub(crate) proto: u8,
}

/// The parsed packet context: what one parse of a frame found, threaded from the parser to
/// the rewriters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    pub(crate) lay: Layout,
    /// Protocol, family, addresses and ports (TCP, UDP, SCTP but not fragments: the ports;
    /// 0 otherwise). Made here, so the lookups read it where the parser wrote it instead of
    /// copying it (a copy's 16-byte loads waited on the parser's narrower stores).
    pub(crate) flow: Tuple,
    /// L3 length (IPv4 total length, IPv6 40 + payload length), as IPVS counts bytes.
    pub(crate) ip_len: u32,
    pub(crate) ttl: u8,
    pub(crate) fragment: bool,
    /// TCP: the flags byte. SCTP: IPVS's chunk event (`sctp_event::event`). Otherwise 0.
    pub(crate) flags: u8,
    /// The frame came `CHECKSUM_PARTIAL` (see [`PacketMeta::csum_partial`]).
    pub(crate) csum_partial: bool,
}

fn reason(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::Malformed => DropReason::Malformed,
    }
}

/// Parses the Ethernet and IP headers, and the transport header of a TCP, UDP or SCTP packet
/// that is not a fragment. `Ok(None)` for frames that are not IP.
///
/// Inlined into its one caller: returned through memory, the context was copied out of the
/// `Result` field by field, and those loads waited on the parser's stores.
#[inline(always)]
pub(crate) fn parse(frame: &[u8], meta: &PacketMeta) -> Result<Option<Parsed>, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(reason)?;
    let l3 = eth.l3_offset();
    let body = frame.get(l3..).ok_or(DropReason::Truncated)?;
    let (lay, src, dst, ip_len, ttl, fragment) = match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let p = ipv4::Packet::new_checked(body).map_err(reason)?;
            let total = p.total_len() as usize;
            let lay = Layout {
                v6: false,
                l3,
                l4: l3 + p.header_len(),
                end: l3 + total,
                proto: p.protocol(),
            };
            let (src, dst) = (mapped(p.src_octets()), mapped(p.dst_octets()));
            (lay, src, dst, total as u32, p.ttl(), p.is_fragment())
        }
        ethernet::ETHERTYPE_IPV6 => {
            let p = ipv6::Packet::new_checked(body).map_err(reason)?;
            let total = p.total_len();
            let lay = Layout {
                v6: true,
                l3,
                l4: l3 + p.upper_offset(),
                end: l3 + total,
                proto: p.upper_protocol(),
            };
            let (src, dst) = (p.src_octets(), p.dst_octets());
            (lay, src, dst, total as u32, p.hop_limit(), p.is_fragment())
        }
        _ => return Ok(None),
    };
    let (sport, dport, flags) = match lay.proto {
        ip::TCP | ip::UDP | ip::SCTP if !fragment => ports(frame, &lay)?,
        _ => (0, 0, 0),
    };
    Ok(Some(Parsed {
        lay,
        flow: Tuple {
            proto: lay.proto,
            v6: lay.v6,
            src,
            dst,
            sport,
            dport,
        },
        ip_len,
        ttl,
        fragment,
        flags,
        csum_partial: meta.csum_partial,
    }))
}

/// The ports (and TCP flags, or the SCTP event) of a TCP, UDP or SCTP packet.
#[inline]
fn ports(frame: &[u8], lay: &Layout) -> Result<(u16, u16, u8), DropReason> {
    let b = frame.get(lay.l4..lay.end).ok_or(DropReason::Truncated)?;
    Ok(match lay.proto {
        ip::TCP => {
            let t = tcp::Packet::new_checked(b).map_err(reason)?;
            (t.src_port(), t.dst_port(), t.flags().0)
        }
        ip::SCTP => {
            let s = sctp::Packet::new_checked(b).map_err(reason)?;
            (s.src_port(), s.dst_port(), crate::sctp_event::event(&s))
        }
        _ => {
            let u = udp::Packet::new_checked(b).map_err(reason)?;
            (u.src_port(), u.dst_port(), 0)
        }
    })
}
