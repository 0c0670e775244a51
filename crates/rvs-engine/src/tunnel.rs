//! Tunnelling (`-i`) as kernel IPVS does it in `ip_vs_tunnel_xmit` / `ip_vs_tunnel_xmit_v6`:
//! the client's packet travels untouched inside an outer IPv4/IPv6 header (IPIP), outer IP +
//! UDP + GUE header (`ipvs_gue_encap`), or outer IP + GRE header (`ipvs_gre_encap`).
//!
//! The engine decides *that* a packet is tunnelled ([`crate::Verdict::Encapsulate`]); the data
//! plane, which knows its own address toward the real server and the egress MTU, builds the outer
//! header per packet with [`outer_header`], and answers packets that cannot fit with [`too_big`].
//! [`TunnelTx::encapsulate`] runs the whole sequence for one received frame (path-MTU check,
//! checksum completion, software segmentation, one outer header per packet), leaving the data
//! plane only the sends and the counting. Everything here is pure and never panics.

use core::net::IpAddr;

use rvs_wire::{checksum, ethernet, gre, gue, icmpv4, icmpv6, ip, ipv4, ipv6, udp, WireError};

use crate::gso::{self, GsoError, GsoKind};
use crate::spec::{TunnelChecksum, TunnelConfig, TunnelKind};

/// IP protocol number of IPv4-in-IP.
pub const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6-in-IP.
pub const PROTO_IPV6: u8 = 41;
/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;
/// Lowest MTU IPVS accepts for a tunnel route (`mtu < 68` fails in `__ip_vs_get_out_rt`).
pub const MIN_TUNNEL_MTU: u32 = 68;
/// GUE header length (`struct guehdr`).
const GUE_HLEN: usize = gue::MIN_HEADER_LEN;
/// GUE private flags word plus the remote-checksum option (`GUE_LEN_PRIV + GUE_PLEN_REMCSUM`).
const GUE_REMCSUM_OPTLEN: usize = gue::REMCSUM_OPTIONS_LEN;
/// IPv6's minimum MTU, the most an ICMPv6 error may fill (RFC 4443 section 2.4 (c)).
const IPV6_MIN_MTU: usize = 1280;
/// The most an ICMPv4 error may fill (`icmp_send`: 576 bytes).
const IPV4_ERROR_MAX: usize = 576;
/// IPv6 and ICMPv6 headers of a "packet too big" error.
const ERROR_V6_LEN: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
/// IPv4 and ICMP headers of a "fragmentation needed" error.
const ERROR_V4_LEN: usize = ipv4::MIN_HEADER_LEN + icmpv4::HEADER_LEN;
/// Ephemeral port range used for the GUE source port (`udp_flow_src_port`, the default
/// `ip_local_port_range`).
const SPORT_MIN: u32 = 32768;
const SPORT_MAX: u32 = 60999;
/// Room for the largest outer header: IPv6 (40) + UDP (8) + GUE (4) + remote checksum (8).
const OUTER_MAX: usize = 64;

/// Why an outer header could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// The inner packet is not a complete IPv4/IPv6 packet.
    #[error("the inner packet is truncated or not IP")]
    BadInner,
    /// The outer packet would be longer than IP allows.
    #[error("the encapsulated packet would be too long")]
    TooLong,
    /// The outer source and destination differ in family.
    #[error("outer source and destination are of different families")]
    FamilyMismatch,
    /// The remote-checksum start lies outside the inner packet.
    #[error("the partial checksum's offsets are out of range")]
    BadChecksumOffsets,
}

/// An outer header built for one packet: at most 64 bytes, sent in front of the inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterHeader {
    bytes: [u8; OUTER_MAX],
    len: u8,
}

impl OuterHeader {
    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Header length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (an outer header has at least an IP header); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The inner packet's partial checksum (virtio `NEEDS_CSUM`), relative to the inner L3 start:
/// needed for GUE remote checksum offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialCsum {
    /// Where checksumming starts, from the inner IP header.
    pub start: u16,
    /// Where the checksum is stored, from `start`.
    pub offset: u16,
}

/// Facts of the inner packet the outer header copies.
#[derive(Debug, Clone, Copy)]
struct Inner {
    v6: bool,
    len: usize,
    dsfield: u8,
    ttl: u8,
    df: bool,
}

fn inner_facts(inner: &[u8]) -> Result<Inner, TunnelError> {
    header_facts(inner).and_then(|f| {
        if f.len > inner.len() {
            Err(TunnelError::BadInner)
        } else {
            Ok(f)
        }
    })
}

/// [`inner_facts`] of a packet that may be cut short (quoted in an ICMP error): `len` is what
/// is there of it.
fn quoted_facts(inner: &[u8]) -> Result<Inner, TunnelError> {
    header_facts(inner).map(|f| Inner {
        len: f.len.min(inner.len()),
        ..f
    })
}

/// The fixed header's facts; the length at least the fixed header's.
fn header_facts(inner: &[u8]) -> Result<Inner, TunnelError> {
    // Only the fixed header's fields are read, once its bytes are known to be there.
    match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= ipv4::MIN_HEADER_LEN => {
            let p = ipv4::Packet::new_unchecked(inner);
            Ok(Inner {
                v6: false,
                len: usize::from(p.total_len()),
                dsfield: p.dscp_ecn(),
                ttl: p.ttl(),
                df: p.dont_frag(),
            })
        }
        Some(6) if inner.len() >= ipv6::HEADER_LEN => {
            let p = ipv6::Packet::new_unchecked(inner);
            Ok(Inner {
                v6: true,
                len: p.total_len(),
                dsfield: p.traffic_class(),
                ttl: p.hop_limit(),
                df: false,
            })
        }
        _ => Err(TunnelError::BadInner),
    }
    .and_then(|f| {
        let min = if f.v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        };
        if f.len < min {
            Err(TunnelError::BadInner)
        } else {
            Ok(f)
        }
    })
}

/// A header that did not fit: only the lengths can make `emit` fail, and they were checked.
fn too_long(_: WireError) -> TunnelError {
    TunnelError::TooLong
}

/// The length of the IP packet at the start of `l3` (IPv4 total length, IPv6 40 + payload
/// length), if it is complete: frames may carry Ethernet padding after it.
pub fn inner_len(l3: &[u8]) -> Option<usize> {
    inner_facts(l3).ok().map(|f| f.len)
}

/// `INET_ECN_encapsulate`: the outer DS field copies the inner one, except that CE becomes
/// ECT(0).
fn ecn_encapsulate(inner: u8) -> u8 {
    let ecn = inner & 3;
    (inner & !3) | if ecn == 3 { 2 } else { ecn }
}

/// The IP protocol of the payload right after the outer IP header (IPIP), before GUE/GRE.
fn inner_protocol(v6: bool) -> u8 {
    if v6 {
        PROTO_IPV6
    } else {
        PROTO_IPIP
    }
}

/// Bytes the encapsulation adds for `cfg` over an outer IP header of the given family, as the
/// MTU computation of `__ip_vs_get_out_rt` (IP_VS_RT_MODE_TUNNEL) subtracts them.
pub fn overhead(cfg: &TunnelConfig, outer_v6: bool, csum_partial: bool) -> usize {
    let ip = if outer_v6 { 40 } else { 20 };
    ip + match cfg.kind {
        TunnelKind::Ipip => 0,
        TunnelKind::Gue => {
            udp::HEADER_LEN
                + GUE_HLEN
                + if cfg.checksum == TunnelChecksum::RemCsum && csum_partial {
                    GUE_REMCSUM_OPTLEN
                } else {
                    0
                }
        }
        TunnelKind::Gre => {
            if cfg.checksum == TunnelChecksum::Csum {
                8
            } else {
                4
            }
        }
    }
}

/// The GUE source port of a flow: a hash of the inner addresses and ports scaled into the
/// ephemeral range (`udp_flow_src_port`), so one flow always uses one port.
fn gue_source_port(inner: &[u8], v6: bool) -> u16 {
    // `inner_facts` checked the fixed header is there.
    let mut addrs = [0u8; 32];
    let (addrs, l4) = if v6 {
        let p = ipv6::Packet::new_unchecked(inner);
        addrs[..16].copy_from_slice(&p.src_octets());
        addrs[16..].copy_from_slice(&p.dst_octets());
        (&addrs[..], ipv6::HEADER_LEN)
    } else {
        let p = ipv4::Packet::new_unchecked(inner);
        addrs[..4].copy_from_slice(&p.src_octets());
        addrs[4..8].copy_from_slice(&p.dst_octets());
        (&addrs[..8], p.header_len())
    };
    // The transport header's first four bytes: the ports of TCP, UDP and SCTP.
    let ports = inner.get(l4..l4 + 4).unwrap_or(&[]);
    let mut h: u32 = 0x811c_9dc5;
    for b in addrs.iter().chain(ports) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    let span = u64::from(SPORT_MAX - SPORT_MIN);
    ((u64::from(h) * span) >> 32) as u16 + SPORT_MIN as u16
}

/// Builds the outer header(s) for `inner` (one complete IP packet, see [`inner_len`]) sent from
/// `src` to `dst` (same family; either family may carry either inner family). `ident` is the
/// outer IPv4 identification (used when the inner packet does not set DF). `partial` describes
/// an inner checksum left for the receiver (GUE remote checksum offload only; other modes need
/// a complete inner checksum).
pub fn outer_header(
    cfg: &TunnelConfig,
    src: IpAddr,
    dst: IpAddr,
    inner: &[u8],
    ident: u16,
    partial: Option<PartialCsum>,
) -> Result<OuterHeader, TunnelError> {
    let facts = inner_facts(inner)?;
    let inner = &inner[..facts.len];
    let outer_v6 = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(TunnelError::FamilyMismatch),
    };
    let remcsum = match partial {
        Some(p) if cfg.kind == TunnelKind::Gue && cfg.checksum == TunnelChecksum::RemCsum => {
            Some(p)
        }
        _ => None,
    };
    let ip_len = if outer_v6 { 40 } else { 20 };
    let total = overhead(cfg, outer_v6, remcsum.is_some());
    let outer_total = total + inner.len();
    if outer_total > usize::from(u16::MAX) + if outer_v6 { 40 } else { 0 } {
        return Err(TunnelError::TooLong);
    }
    let mut out = OuterHeader {
        bytes: [0; OUTER_MAX],
        len: total as u8,
    };
    let (l3, rest) = out.bytes[..total].split_at_mut(ip_len);
    // The part after the outer IP header, written first so the IP header knows its protocol.
    let next = match cfg.kind {
        TunnelKind::Ipip => inner_protocol(facts.v6),
        TunnelKind::Gue => {
            let remote_checksum = match remcsum {
                None => None,
                Some(p) => Some(gue::RemoteChecksum {
                    start: p.start,
                    field: p
                        .start
                        .checked_add(p.offset)
                        .filter(|f| usize::from(*f) + 2 <= inner.len())
                        .ok_or(TunnelError::BadChecksumOffsets)?,
                }),
            };
            let (u, g) = rest.split_at_mut(udp::HEADER_LEN);
            gue::Repr {
                protocol: inner_protocol(facts.v6),
                remote_checksum,
            }
            .emit(g)
            .map_err(too_long)?;
            udp::Repr {
                src_port: gue_source_port(inner, facts.v6),
                dst_port: cfg.port,
                payload_len: (outer_total - ip_len - udp::HEADER_LEN) as u16,
                checksum: 0,
            }
            .emit(u)
            .map_err(too_long)?;
            if cfg.checksum != TunnelChecksum::NoCsum {
                let udp_len = (outer_total - ip_len) as u32;
                let pseudo = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        checksum::pseudo_header_v4(s.octets(), d.octets(), ip::UDP, udp_len)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        checksum::pseudo_header_v6(s.octets(), d.octets(), ip::UDP, udp_len)
                    }
                    _ => return Err(TunnelError::FamilyMismatch),
                };
                // The UDP and GUE headers have an even length: the sums chain.
                let c = udp::checksum(pseudo, &[rest, inner]);
                udp::Packet::new_unchecked(rest).set_checksum(c);
            }
            ip::UDP
        }
        TunnelKind::Gre => {
            gre::Repr {
                protocol_type: if facts.v6 {
                    ethernet::ETHERTYPE_IPV6
                } else {
                    ethernet::ETHERTYPE_IPV4
                },
                checksum: cfg.checksum == TunnelChecksum::Csum,
            }
            .emit(rest, inner)
            .map_err(too_long)?;
            PROTO_GRE
        }
    };
    let dsfield = ecn_encapsulate(facts.dsfield);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
            src_addr: s.octets(),
            dst_addr: d.octets(),
            protocol: next,
            payload_len: (outer_total - ip_len) as u16,
            ttl: facts.ttl,
            dscp_ecn: dsfield,
            // ip_select_ident: DF packets get id 0.
            ident: if facts.df { 0 } else { ident },
            dont_frag: facts.df,
        }
        .emit(l3),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
            src_addr: s.octets(),
            dst_addr: d.octets(),
            next_header: next,
            payload_len: (outer_total - ip_len) as u16,
            hop_limit: facts.ttl,
            traffic_class: dsfield,
            flow_label: 0,
        }
        .emit(l3),
        _ => return Err(TunnelError::FamilyMismatch),
    }
    .map_err(too_long)?;
    Ok(out)
}

/// The MTU to announce to the client when `inner` does not fit a tunnel route of `egress_mtu`
/// bytes: `Some(egress_mtu - overhead)` when the packet must be refused (inner IPv4 with DF, or
/// IPv6, longer than that, not itself ICMP), `None` when it may go (possibly fragmented by
/// the stack). `inner_len` is the length of the (largest segment of the) inner packet.
pub fn path_mtu_exceeded(
    inner_v6: bool,
    inner_df: bool,
    inner_len: usize,
    egress_mtu: u32,
    overhead: usize,
) -> Option<u32> {
    let room = egress_mtu.saturating_sub(overhead as u32);
    if inner_len <= room as usize || (!inner_v6 && !inner_df) {
        return None;
    }
    Some(room.max(MIN_TUNNEL_MTU))
}

/// Builds the ICMP "fragmentation needed" (IPv4, type 3 code 4) or ICMPv6 "packet too big"
/// error about `inner` (the client's packet, from its IP header) announcing `mtu`, into `out`
/// (cleared first) as an IP packet from the address the packet was sent to (the VIP, a local
/// address of the director, as `icmp_send` picks it) to its sender. Returns the address to
/// route it to (the client), or `None` when no error may be sent (not IP, or an ICMP error
/// itself... any ICMP/ICMPv6 packet, as `ip_vs_iph_icmp` excludes).
pub fn too_big(inner: &[u8], mtu: u32, ident: u16, out: &mut Vec<u8>) -> Option<IpAddr> {
    too_big_from(inner, None, mtu, ident, out)
}

/// [`too_big`] from `src` when given (and of the packet's family): the director's own address
/// toward the sender, for an error about a packet that was not addressed to the director (a
/// real server's reply on its way to the client).
pub fn too_big_from(
    inner: &[u8],
    src: Option<IpAddr>,
    mtu: u32,
    ident: u16,
    out: &mut Vec<u8>,
) -> Option<IpAddr> {
    icmp_error(inner, src, ErrorKind::TooBig(mtu), ident, out)
}

/// Builds the ICMP "fragment reassembly time exceeded" error (IPv4 type 11 code 1, ICMPv6
/// type 3 code 1) about `first`, the first fragment of a datagram whose other fragments did
/// not come in time (from its IP header; it may be cut short), into `out` as for
/// [`too_big_from`]: from `src`, or else the address the fragment was sent to, to its
/// sender. Returns the address to route it to, or `None` as for [`too_big`].
pub fn reassembly_timeout_from(
    first: &[u8],
    src: Option<IpAddr>,
    ident: u16,
    out: &mut Vec<u8>,
) -> Option<IpAddr> {
    icmp_error(first, src, ErrorKind::ReassemblyTimeout, ident, out)
}

/// The ICMP errors the director makes about a packet.
#[derive(Clone, Copy)]
enum ErrorKind {
    /// Fragmentation needed / packet too big, announcing an MTU.
    TooBig(u32),
    /// Fragment reassembly time exceeded.
    ReassemblyTimeout,
}

/// The error of `kind` about `inner` (see [`too_big_from`]).
fn icmp_error(
    inner: &[u8],
    src: Option<IpAddr>,
    kind: ErrorKind,
    ident: u16,
    out: &mut Vec<u8>,
) -> Option<IpAddr> {
    let facts = quoted_facts(inner).ok()?;
    let inner = &inner[..facts.len];
    out.clear();
    if facts.v6 {
        // `inner_facts` checked the fixed header is there.
        let p = ipv6::Packet::new_unchecked(inner);
        if p.next_header() == ip::ICMPV6 {
            return None;
        }
        let quoted = &inner[..inner.len().min(IPV6_MIN_MTU - ERROR_V6_LEN)];
        let src = match src {
            Some(IpAddr::V6(a)) => a.octets(),
            _ => p.dst_octets(),
        };
        let dst = p.src_octets();
        let mut h = [0u8; ERROR_V6_LEN];
        let (l3, msg) = h.split_at_mut(ipv6::HEADER_LEN);
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: ip::ICMPV6,
            payload_len: (icmpv6::HEADER_LEN + quoted.len()) as u16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(l3)
        .ok()?;
        match kind {
            ErrorKind::TooBig(mtu) => icmpv6::Repr::packet_too_big(mtu),
            ErrorKind::ReassemblyTimeout => icmpv6::Repr::reassembly_time_exceeded(),
        }
        .emit(msg, src, dst, quoted)
        .ok()?;
        out.extend_from_slice(&h);
        out.extend_from_slice(quoted);
        Some(IpAddr::V6(dst.into()))
    } else {
        let p = ipv4::Packet::new_unchecked(inner);
        if p.protocol() == ip::ICMP {
            return None;
        }
        let quoted = &inner[..inner.len().min(IPV4_ERROR_MAX - ERROR_V4_LEN)];
        let mut h = [0u8; ERROR_V4_LEN];
        let (l3, msg) = h.split_at_mut(ipv4::MIN_HEADER_LEN);
        let src = match src {
            Some(IpAddr::V4(a)) => a.octets(),
            _ => p.dst_octets(),
        };
        ipv4::Repr {
            src_addr: src,
            dst_addr: p.src_octets(),
            protocol: ip::ICMP,
            payload_len: (icmpv4::HEADER_LEN + quoted.len()) as u16,
            ttl: 64,
            // icmp_send: the quoted packet's TOS bits, network-control precedence.
            dscp_ecn: (facts.dsfield & 0x1e) | 0xc0,
            ident,
            dont_frag: false,
        }
        .emit(l3)
        .ok()?;
        match kind {
            ErrorKind::TooBig(mtu) => icmpv4::Repr::frag_needed(mtu.min(0xffff) as u16),
            ErrorKind::ReassemblyTimeout => icmpv4::Repr::reassembly_time_exceeded(),
        }
        .emit(msg, quoted)
        .ok()?;
        out.extend_from_slice(&h);
        out.extend_from_slice(quoted);
        Some(IpAddr::V4(p.src_addr()))
    }
}

/// Whether the inner IPv4 packet sets DF (false for IPv6 and garbage).
pub fn inner_dont_fragment(inner: &[u8]) -> bool {
    inner_facts(inner).is_ok_and(|f| f.df)
}

/// Completes a partial (`NEEDS_CSUM`) checksum in software, as `skb_checksum_help` does: the
/// field at `start + offset` holds the pseudo-header sum; the complemented sum of everything
/// from `start` to the end of `data` replaces it. False when the offsets are out of range.
pub fn complete_checksum(data: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start.saturating_add(offset);
    if start > data.len() || field.saturating_add(2) > data.len() {
        return false;
    }
    let c = !checksum::fold(checksum::sum(&data[start..]));
    // A UDP checksum of 0 means "none"; the kernel sends 0xffff instead (CSUM_MANGLED_0).
    let c = if c == 0 { 0xffff } else { c };
    data[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// How a frame asks to be segmented: the virtio-net GSO type, in the engine's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Segmentation {
    /// One packet, sent as it is.
    #[default]
    None,
    /// A super-frame to cut into segments of at most `size` payload bytes.
    Gso {
        /// TCP or UDP segmentation.
        kind: GsoKind,
        /// The most payload bytes per segment (virtio `gso_size`).
        size: u16,
    },
    /// A GSO type the engine cannot cut (the frame is refused).
    Unsupported,
}

/// A partial checksum as the frame carries it (virtio `NEEDS_CSUM`): offsets count from the
/// start of the frame, not of the inner IP header (compare [`PartialCsum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCsum {
    /// Where checksumming starts, from the frame start (virtio `csum_start`).
    pub start: u16,
    /// Where the checksum is stored, from `start` (virtio `csum_offset`).
    pub offset: u16,
}

/// What the receiving socket said of a frame's offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// Whether and how the frame is to be segmented.
    pub segmentation: Segmentation,
    /// The checksum left for the sender to complete, if any.
    pub csum: Option<FrameCsum>,
}

/// Where a frame is tunnelled to: the destination's tunnel settings and the route toward it.
#[derive(Debug, Clone, Copy)]
pub struct TunnelRoute<'a> {
    /// The destination's encapsulation.
    pub cfg: &'a TunnelConfig,
    /// The director's address toward the real server (outer source).
    pub src: IpAddr,
    /// The real server (outer destination).
    pub dst: IpAddr,
    /// The egress MTU toward the real server.
    pub mtu: u32,
}

/// Why a frame could not be tunnelled at all (nothing was sent; counted as a tunnel error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelSendError {
    /// No complete IPv4/IPv6 packet starts at the frame's L3 offset.
    #[error("the frame holds no complete IP packet")]
    BadInner,
    /// The frame's GSO type is not one the engine segments.
    #[error("unsupported GSO type")]
    UnsupportedGso,
    /// The GSO frame is not a TCP/UDP packet the engine can segment.
    #[error("the GSO frame cannot be segmented")]
    NotSegmentable,
    /// The partial checksum's offsets lie outside the inner packet.
    #[error("the partial checksum's offsets are out of range")]
    BadChecksumOffsets,
}

/// What became of a frame handed to [`TunnelTx::encapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelSent<'a> {
    /// Its packets went to the `emit` callback. `segments` is `None` for a frame sent whole,
    /// else the outcome of software segmentation: how many segments, or why cutting stopped
    /// (the segments before were emitted).
    Sent {
        /// The software segmentation of a GSO frame, when there was one.
        segments: Option<Result<usize, GsoError>>,
    },
    /// It does not fit the path: nothing was emitted; the client is to be told with `reply`,
    /// an ICMP error IP packet and the address to route it to, unless no error may be sent
    /// (the client's packet was ICMP itself).
    TooBig {
        /// The ICMP "fragmentation needed" / "packet too big" error and its destination.
        reply: Option<(IpAddr, &'a [u8])>,
    },
}

/// Per-thread state of the tunnel transmitter: the outer IPv4 identification counter and
/// buffers for ICMP errors and software-segmented GSO frames, kept from one frame to the next
/// so that tunnelling allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct TunnelTx {
    ident: u16,
    icmp: Vec<u8>,
    segments: Vec<u8>,
}

/// The next outer IPv4 identification.
fn next_ident(ident: &mut u16) -> u16 {
    *ident = ident.wrapping_add(1);
    *ident
}

impl TunnelTx {
    /// Tunnels the inner packet at `frame[l3_offset..]` along `route`, as `ip_vs_tunnel_xmit`
    /// does: refuses it with an ICMP error when it (or, for a GSO frame, its largest segment)
    /// does not fit the path MTU and may not be fragmented; completes a partial inner checksum
    /// unless GUE remote checksum offload carries it; cuts a GSO frame into segments; then calls
    /// `emit` once per packet, in order, with its outer header and the inner packet, or with
    /// the reason its outer header could not be built. Each packet, and each ICMP error, takes
    /// the next outer IPv4 identification. A frame sent whole is not copied.
    pub fn encapsulate<'s>(
        &'s mut self,
        route: &TunnelRoute<'_>,
        frame: &mut [u8],
        l3_offset: usize,
        offload: Offload,
        mut emit: impl FnMut(Result<(&OuterHeader, &[u8]), TunnelError>),
    ) -> Result<TunnelSent<'s>, TunnelSendError> {
        let inner_all = frame
            .get_mut(l3_offset..)
            .ok_or(TunnelSendError::BadInner)?;
        let len = inner_len(inner_all).ok_or(TunnelSendError::BadInner)?;
        let inner = &mut inner_all[..len];
        let inner_v6 = inner.first().is_some_and(|b| b >> 4 == 6);
        let gso = match offload.segmentation {
            Segmentation::None => None,
            Segmentation::Gso { kind, size } => Some((kind, usize::from(size))),
            Segmentation::Unsupported => return Err(TunnelSendError::UnsupportedGso),
        };
        // A GSO frame's segments get complete checksums; otherwise the partial checksum is
        // completed here or, with GUE remote checksum offload, left for the receiver.
        let partial = match (offload.csum, gso) {
            (Some(c), None) => Some(PartialCsum {
                start: usize::from(c.start)
                    .checked_sub(l3_offset)
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or(TunnelSendError::BadChecksumOffsets)?,
                offset: c.offset,
            }),
            _ => None,
        };
        let cfg = route.cfg;
        let remote_csum = partial
            .filter(|_| cfg.kind == TunnelKind::Gue && cfg.checksum == TunnelChecksum::RemCsum);
        let biggest = match gso {
            Some((kind, size)) => {
                gso::largest_segment(inner, kind, size).ok_or(TunnelSendError::NotSegmentable)?
            }
            None => len,
        };
        let overhead = overhead(cfg, route.dst.is_ipv6(), remote_csum.is_some());
        let Self {
            ident,
            icmp,
            segments,
        } = self;
        if let Some(room) = path_mtu_exceeded(
            inner_v6,
            inner_dont_fragment(inner),
            biggest,
            route.mtu,
            overhead,
        ) {
            let id = next_ident(ident);
            let reply = too_big(inner, room, id, icmp).map(|client| (client, icmp.as_slice()));
            return Ok(TunnelSent::TooBig { reply });
        }
        if let (Some(p), None) = (partial, remote_csum) {
            if !complete_checksum(inner, usize::from(p.start), usize::from(p.offset)) {
                return Err(TunnelSendError::BadChecksumOffsets);
            }
        }
        let mut one = |packet: &[u8], partial: Option<PartialCsum>| {
            let id = next_ident(ident);
            match outer_header(cfg, route.src, route.dst, packet, id, partial) {
                Ok(outer) => emit(Ok((&outer, packet))),
                Err(e) => emit(Err(e)),
            }
        };
        let segments = match gso {
            None => {
                one(inner, remote_csum);
                None
            }
            Some((kind, size)) => Some(gso::segment_with(inner, kind, size, segments, |seg| {
                one(seg, None)
            })),
        };
        Ok(TunnelSent::Sent { segments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const CLIENT: [u8; 4] = [192, 0, 2, 7];
    const VIP: [u8; 4] = [198, 51, 100, 1];
    const DIP: [u8; 4] = [10, 0, 0, 1];
    const RIP: [u8; 4] = [10, 0, 0, 8];
    /// An Ethernet header's worth of bytes in front of the inner packet.
    const L3: usize = 14;

    fn cfg(kind: TunnelKind, checksum: TunnelChecksum) -> TunnelConfig {
        TunnelConfig {
            kind,
            port: if kind == TunnelKind::Gue { 6080 } else { 0 },
            checksum,
        }
    }

    fn route(cfg: &TunnelConfig, mtu: u32) -> TunnelRoute<'_> {
        TunnelRoute {
            cfg,
            src: IpAddr::V4(Ipv4Addr::from(DIP)),
            dst: IpAddr::V4(Ipv4Addr::from(RIP)),
            mtu,
        }
    }

    /// A frame: `L3` bytes of link header, a client-to-VIP IPv4/TCP packet (ACK|PSH) with
    /// `payload` bytes, its TCP checksum field holding the pseudo-header sum (a partial
    /// checksum, as a GSO or `NEEDS_CSUM` frame has it), and 4 bytes of padding.
    fn frame(payload: usize, df: bool) -> Vec<u8> {
        let l4_len = 20 + payload;
        let mut f = vec![0u8; L3 + 20 + l4_len + 4];
        ipv4::Repr {
            src_addr: CLIENT,
            dst_addr: VIP,
            protocol: ip::TCP,
            payload_len: l4_len as u16,
            ttl: 63,
            dscp_ecn: 0,
            ident: 0x1234,
            dont_frag: df,
        }
        .emit(&mut f[L3..L3 + 20])
        .expect("ip header");
        let tcp = &mut f[L3 + 20..L3 + 20 + l4_len];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        for (i, b) in tcp[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let pseudo = checksum::fold(checksum::pseudo_header_v4(
            CLIENT,
            VIP,
            ip::TCP,
            l4_len as u32,
        ));
        tcp[16..18].copy_from_slice(&pseudo.to_be_bytes());
        f
    }

    fn inner(f: &[u8]) -> &[u8] {
        &f[L3..f.len() - 4]
    }

    /// The TCP checksum's partial-checksum offsets, from the frame start.
    const TCP_CSUM: FrameCsum = FrameCsum {
        start: (L3 + 20) as u16,
        offset: 16,
    };

    type Emitted = Vec<Result<(Vec<u8>, Vec<u8>), TunnelError>>;

    fn collect(out: &mut Emitted) -> impl FnMut(Result<(&OuterHeader, &[u8]), TunnelError>) + '_ {
        |p| out.push(p.map(|(o, i)| (o.as_bytes().to_vec(), i.to_vec())))
    }

    #[test]
    fn ipip_frame_is_sent_whole_with_one_outer_header() {
        let c = cfg(TunnelKind::Ipip, TunnelChecksum::NoCsum);
        let mut f = frame(100, true);
        let before = f.clone();
        let mut tx = TunnelTx::default();
        let mut out = Emitted::new();
        let sent = tx
            .encapsulate(
                &route(&c, 1500),
                &mut f,
                L3,
                Offload::default(),
                collect(&mut out),
            )
            .expect("sent");
        assert_eq!(sent, TunnelSent::Sent { segments: None });
        assert_eq!(f, before, "the frame is untouched");
        let r = route(&c, 1500);
        let want = outer_header(&c, r.src, r.dst, inner(&f), 1, None).expect("outer");
        assert_eq!(
            out,
            vec![Ok((want.as_bytes().to_vec(), inner(&f).to_vec()))],
            "one packet, without the padding"
        );
        assert_eq!(out[0].as_ref().expect("ok").0[9], PROTO_IPIP);
        // The next frame takes the next identification.
        let mut g = frame(100, false);
        let mut out2 = Emitted::new();
        tx.encapsulate(&r, &mut g, L3, Offload::default(), collect(&mut out2))
            .expect("sent");
        let want = outer_header(&c, r.src, r.dst, inner(&g), 2, None).expect("outer");
        assert_eq!(out2[0].as_ref().expect("ok").0, want.as_bytes());
    }

    #[test]
    fn gso_frame_is_cut_and_each_segment_gets_its_outer_header() {
        for c in [
            cfg(TunnelKind::Ipip, TunnelChecksum::NoCsum),
            cfg(TunnelKind::Gue, TunnelChecksum::Csum),
            cfg(TunnelKind::Gre, TunnelChecksum::Csum),
        ] {
            let mut f = frame(3000, true);
            let offload = Offload {
                segmentation: Segmentation::Gso {
                    kind: GsoKind::Tcp,
                    size: 1400,
                },
                csum: Some(TCP_CSUM),
            };
            let mut want_segs = Vec::new();
            gso::segment(inner(&f), GsoKind::Tcp, 1400, |s| {
                want_segs.push(s.to_vec())
            })
            .expect("cut");
            assert_eq!(want_segs.len(), 3);
            let r = route(&c, 1500);
            let mut tx = TunnelTx::default();
            let mut out = Emitted::new();
            let sent = tx
                .encapsulate(&r, &mut f, L3, offload, collect(&mut out))
                .expect("sent");
            assert_eq!(
                sent,
                TunnelSent::Sent {
                    segments: Some(Ok(3))
                }
            );
            let want: Emitted = want_segs
                .iter()
                .zip(1u16..)
                .map(|(s, id)| {
                    let o = outer_header(&c, r.src, r.dst, s, id, None).expect("outer");
                    Ok((o.as_bytes().to_vec(), s.clone()))
                })
                .collect();
            assert_eq!(out, want, "{c:?}");
        }
    }

    #[test]
    fn gso_with_zero_size_is_counted_as_cut_and_failed() {
        let c = cfg(TunnelKind::Ipip, TunnelChecksum::NoCsum);
        let mut f = frame(3000, true);
        let offload = Offload {
            segmentation: Segmentation::Gso {
                kind: GsoKind::Tcp,
                size: 0,
            },
            csum: None,
        };
        let mut out = Emitted::new();
        let mut tx = TunnelTx::default();
        let sent = tx
            .encapsulate(&route(&c, 1500), &mut f, L3, offload, collect(&mut out))
            .expect("planned");
        assert_eq!(
            sent,
            TunnelSent::Sent {
                segments: Some(Err(GsoError::ZeroSize))
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn too_big_answers_the_client_and_sends_nothing() {
        let c = cfg(TunnelKind::Ipip, TunnelChecksum::NoCsum);
        // 1500 bytes of inner packet with DF do not fit 1500 - 20.
        let mut f = frame(1460, true);
        let mut tx = TunnelTx::default();
        let mut out = Emitted::new();
        let sent = tx
            .encapsulate(
                &route(&c, 1500),
                &mut f,
                L3,
                Offload::default(),
                collect(&mut out),
            )
            .expect("planned");
        let mut want = Vec::new();
        let client = too_big(inner(&f), 1480, 1, &mut want).expect("an error may be sent");
        assert_eq!(client, IpAddr::V4(Ipv4Addr::from(CLIENT)));
        assert_eq!(
            sent,
            TunnelSent::TooBig {
                reply: Some((client, &want[..]))
            }
        );
        assert!(out.is_empty());
        // A GSO frame is judged by its largest segment: 20 + 20 + 1460 > 1400 - 20.
        let mut g = frame(3000, true);
        let offload = Offload {
            segmentation: Segmentation::Gso {
                kind: GsoKind::Tcp,
                size: 1460,
            },
            csum: Some(TCP_CSUM),
        };
        let sent = tx
            .encapsulate(&route(&c, 1400), &mut g, L3, offload, collect(&mut out))
            .expect("planned");
        let client = too_big(inner(&g), 1380, 2, &mut want).expect("an error may be sent");
        assert_eq!(
            sent,
            TunnelSent::TooBig {
                reply: Some((client, &want[..]))
            }
        );
        assert!(out.is_empty());
        // Without DF an IPv4 packet goes (the stack may fragment the outer packet).
        let mut h = frame(1460, false);
        let sent = tx
            .encapsulate(
                &route(&c, 1500),
                &mut h,
                L3,
                Offload::default(),
                collect(&mut out),
            )
            .expect("sent");
        assert_eq!(sent, TunnelSent::Sent { segments: None });
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn gue_remote_checksum_keeps_the_partial_checksum() {
        let c = cfg(TunnelKind::Gue, TunnelChecksum::RemCsum);
        let mut f = frame(200, true);
        let before = f.clone();
        let offload = Offload {
            segmentation: Segmentation::None,
            csum: Some(TCP_CSUM),
        };
        let r = route(&c, 1500);
        let mut out = Emitted::new();
        let mut tx = TunnelTx::default();
        let sent = tx
            .encapsulate(&r, &mut f, L3, offload, collect(&mut out))
            .expect("sent");
        assert_eq!(sent, TunnelSent::Sent { segments: None });
        assert_eq!(f, before, "the partial checksum is left for the receiver");
        let partial = PartialCsum {
            start: 20,
            offset: 16,
        };
        let want = outer_header(&c, r.src, r.dst, inner(&f), 1, Some(partial)).expect("outer");
        assert_eq!(
            want.len(),
            20 + 8 + 4 + 8,
            "with the remote checksum option"
        );
        assert_eq!(
            out,
            vec![Ok((want.as_bytes().to_vec(), inner(&f).to_vec()))]
        );
    }

    #[test]
    fn other_modes_complete_the_partial_checksum() {
        let c = cfg(TunnelKind::Gue, TunnelChecksum::Csum);
        let mut f = frame(200, true);
        let mut want = f.clone();
        assert!(complete_checksum(&mut want[L3..L3 + 240], 20, 16));
        assert_ne!(want, f);
        let offload = Offload {
            segmentation: Segmentation::None,
            csum: Some(TCP_CSUM),
        };
        let r = route(&c, 1500);
        let mut out = Emitted::new();
        TunnelTx::default()
            .encapsulate(&r, &mut f, L3, offload, collect(&mut out))
            .expect("sent");
        assert_eq!(f, want, "the checksum is completed in place");
        let outer = outer_header(&c, r.src, r.dst, inner(&f), 1, None).expect("outer");
        assert_eq!(
            out,
            vec![Ok((outer.as_bytes().to_vec(), inner(&f).to_vec()))]
        );
    }

    #[test]
    fn frames_that_cannot_be_tunnelled_are_refused_untouched() {
        let c = cfg(TunnelKind::Ipip, TunnelChecksum::NoCsum);
        let r = route(&c, 1500);
        let mut tx = TunnelTx::default();
        let mut out = Emitted::new();
        let f = frame(100, true);
        let cases = [
            (L3 + 1, Offload::default(), TunnelSendError::BadInner),
            (f.len() + 1, Offload::default(), TunnelSendError::BadInner),
            (
                L3,
                Offload {
                    segmentation: Segmentation::Unsupported,
                    csum: None,
                },
                TunnelSendError::UnsupportedGso,
            ),
            (
                L3,
                Offload {
                    segmentation: Segmentation::Gso {
                        kind: GsoKind::UdpL4,
                        size: 1000,
                    },
                    csum: None,
                },
                TunnelSendError::NotSegmentable,
            ),
            (
                L3,
                Offload {
                    segmentation: Segmentation::None,
                    csum: Some(FrameCsum {
                        start: 4,
                        offset: 16,
                    }),
                },
                TunnelSendError::BadChecksumOffsets,
            ),
            (
                L3,
                Offload {
                    segmentation: Segmentation::None,
                    csum: Some(FrameCsum {
                        start: TCP_CSUM.start,
                        offset: 200,
                    }),
                },
                TunnelSendError::BadChecksumOffsets,
            ),
        ];
        for (l3, offload, err) in cases {
            let mut g = f.clone();
            assert_eq!(
                tx.encapsulate(&r, &mut g, l3, offload, collect(&mut out)),
                Err(err)
            );
            assert_eq!(g, f);
        }
        assert!(out.is_empty());
        // No identification was taken.
        tx.encapsulate(
            &r,
            &mut f.clone(),
            L3,
            Offload::default(),
            collect(&mut out),
        )
        .expect("sent");
        let want = outer_header(&c, r.src, r.dst, inner(&f), 1, None).expect("outer");
        assert_eq!(out[0].as_ref().expect("ok").0, want.as_bytes());
    }
}
