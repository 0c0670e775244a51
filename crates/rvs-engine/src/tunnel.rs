//! Tunnelling (`-i`) as kernel IPVS does it in `ip_vs_tunnel_xmit` / `ip_vs_tunnel_xmit_v6`:
//! the client's packet travels untouched inside an outer IPv4/IPv6 header (IPIP), outer IP +
//! UDP + GUE header (`ipvs_gue_encap`), or outer IP + GRE header (`ipvs_gre_encap`).
//!
//! The engine decides *that* a packet is tunnelled ([`crate::Verdict::Encapsulate`]); the data
//! plane, which knows its own address toward the real server and the egress MTU, builds the outer
//! header per packet with [`outer_header`], and answers packets that cannot fit with [`too_big`].
//! Everything here is pure and never panics.

use core::net::IpAddr;

use rvs_wire::checksum;

use crate::spec::{TunnelChecksum, TunnelConfig, TunnelKind};

/// IP protocol number of IPv4-in-IP.
pub const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6-in-IP.
pub const PROTO_IPV6: u8 = 41;
/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// Lowest MTU IPVS accepts for a tunnel route (`mtu < 68` fails in `__ip_vs_get_out_rt`).
pub const MIN_TUNNEL_MTU: u32 = 68;
/// GUE header length (`struct guehdr`).
const GUE_HLEN: usize = 4;
/// GUE private flags word plus the remote-checksum option (`GUE_LEN_PRIV + GUE_PLEN_REMCSUM`).
const GUE_REMCSUM_OPTLEN: usize = 8;
/// The 16-bit GUE header flag announcing the private flags word (`GUE_FLAG_PRIV`).
const GUE_FLAG_PRIV: u16 = 1;
/// The private flag of the remote-checksum option (`GUE_PFLAG_REMCSUM`).
const GUE_PFLAG_REMCSUM: u32 = 1 << 31;
/// The GRE header's checksum-present bit.
const GRE_FLAG_CSUM: u16 = 0x8000;
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
    match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= 20 => Ok(Inner {
            v6: false,
            len: usize::from(u16::from_be_bytes([inner[2], inner[3]])),
            dsfield: inner[1],
            ttl: inner[8],
            df: inner[6] & 0x40 != 0,
        }),
        Some(6) if inner.len() >= 40 => Ok(Inner {
            v6: true,
            len: 40 + usize::from(u16::from_be_bytes([inner[4], inner[5]])),
            dsfield: (inner[0] << 4) | (inner[1] >> 4),
            ttl: inner[7],
            df: false,
        }),
        _ => Err(TunnelError::BadInner),
    }
    .and_then(|f| {
        if f.len > inner.len() || f.len < if f.v6 { 40 } else { 20 } {
            Err(TunnelError::BadInner)
        } else {
            Ok(f)
        }
    })
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
            8 + GUE_HLEN
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
    let (addrs, l4) = if v6 {
        (inner.get(8..40), 40)
    } else {
        let ihl = usize::from(inner[0] & 0x0f) * 4;
        (inner.get(12..20), ihl)
    };
    let ports = inner.get(l4..l4 + 4).unwrap_or(&[]);
    let mut h: u32 = 0x811c_9dc5;
    for b in addrs.unwrap_or(&[]).iter().chain(ports) {
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
    let b = &mut out.bytes;
    let mut next = inner_protocol(facts.v6);
    // The part after the outer IP header, written first so the IP header knows its protocol.
    match cfg.kind {
        TunnelKind::Ipip => {}
        TunnelKind::Gue => {
            let udp_len = (outer_total - ip_len) as u16;
            let gue = ip_len + 8;
            let optlen = if remcsum.is_some() {
                GUE_REMCSUM_OPTLEN
            } else {
                0
            };
            b[gue] = (optlen / 4) as u8; // version 0, control 0, hlen in words
            b[gue + 1] = next;
            if let Some(p) = remcsum {
                b[gue + 2..gue + 4].copy_from_slice(&GUE_FLAG_PRIV.to_be_bytes());
                b[gue + 4..gue + 8].copy_from_slice(&GUE_PFLAG_REMCSUM.to_be_bytes());
                let start = p.start;
                let field = start
                    .checked_add(p.offset)
                    .filter(|f| usize::from(*f) + 2 <= inner.len())
                    .ok_or(TunnelError::BadChecksumOffsets)?;
                b[gue + 8..gue + 10].copy_from_slice(&start.to_be_bytes());
                b[gue + 10..gue + 12].copy_from_slice(&field.to_be_bytes());
            }
            let u = ip_len;
            let sport = gue_source_port(inner, facts.v6);
            b[u..u + 2].copy_from_slice(&sport.to_be_bytes());
            b[u + 2..u + 4].copy_from_slice(&cfg.port.to_be_bytes());
            b[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
            if cfg.checksum != TunnelChecksum::NoCsum {
                let pseudo = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(
                        s.octets(),
                        d.octets(),
                        PROTO_UDP,
                        u32::from(udp_len),
                    ),
                    (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(
                        s.octets(),
                        d.octets(),
                        PROTO_UDP,
                        u32::from(udp_len),
                    ),
                    _ => return Err(TunnelError::FamilyMismatch),
                };
                let acc = checksum::add_bytes(pseudo, &b[u..total]);
                let acc = checksum::add_bytes(acc, inner);
                let c = !checksum::fold(acc);
                let c = if c == 0 { 0xffff } else { c };
                b[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
            }
            next = PROTO_UDP;
        }
        TunnelKind::Gre => {
            let g = ip_len;
            let ethertype: u16 = if facts.v6 { 0x86dd } else { 0x0800 };
            b[g + 2..g + 4].copy_from_slice(&ethertype.to_be_bytes());
            if cfg.checksum == TunnelChecksum::Csum {
                b[g..g + 2].copy_from_slice(&GRE_FLAG_CSUM.to_be_bytes());
                let acc = checksum::add_bytes(0, &b[g..total]);
                let c = !checksum::fold(checksum::add_bytes(acc, inner));
                b[g + 4..g + 6].copy_from_slice(&c.to_be_bytes());
            }
            next = PROTO_GRE;
        }
    }
    let dsfield = ecn_encapsulate(facts.dsfield);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b[0] = 0x45;
            b[1] = dsfield;
            b[2..4].copy_from_slice(&(outer_total as u16).to_be_bytes());
            // ip_select_ident: DF packets get id 0.
            let id = if facts.df { 0 } else { ident };
            b[4..6].copy_from_slice(&id.to_be_bytes());
            b[6] = if facts.df { 0x40 } else { 0 };
            b[8] = facts.ttl;
            b[9] = next;
            b[12..16].copy_from_slice(&s.octets());
            b[16..20].copy_from_slice(&d.octets());
            let c = checksum::checksum(&b[..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b[0] = 0x60 | (dsfield >> 4);
            b[1] = dsfield << 4;
            b[4..6].copy_from_slice(&((outer_total - 40) as u16).to_be_bytes());
            b[6] = next;
            b[7] = facts.ttl;
            b[8..24].copy_from_slice(&s.octets());
            b[24..40].copy_from_slice(&d.octets());
        }
        _ => return Err(TunnelError::FamilyMismatch),
    }
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
    let facts = inner_facts(inner).ok()?;
    let inner = &inner[..facts.len];
    out.clear();
    if facts.v6 {
        if inner[6] == 58 {
            return None;
        }
        let quoted = &inner[..inner.len().min(1280 - 48)];
        let plen = (8 + quoted.len()) as u16;
        let mut h = [0u8; 48];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h[6] = 58;
        h[7] = 64;
        h[8..24].copy_from_slice(&inner[24..40]);
        h[24..40].copy_from_slice(&inner[8..24]);
        h[40] = 2; // packet too big
        h[44..48].copy_from_slice(&mtu.to_be_bytes());
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&inner[24..40]);
        dst.copy_from_slice(&inner[8..24]);
        let acc = checksum::pseudo_header_v6(src, dst, 58, u32::from(plen));
        let acc = checksum::add_bytes(checksum::add_bytes(acc, &h[40..48]), quoted);
        h[42..44].copy_from_slice(&(!checksum::fold(acc)).to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(quoted);
        Some(IpAddr::V6(dst.into()))
    } else {
        if inner[9] == 1 {
            return None;
        }
        let quoted = &inner[..inner.len().min(576 - 28)];
        let total = (28 + quoted.len()) as u16;
        let mut h = [0u8; 28];
        h[0] = 0x45;
        h[1] = (facts.dsfield & 0x1e) | 0xc0;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        h[8] = 64;
        h[9] = 1;
        h[12..16].copy_from_slice(&inner[16..20]);
        h[16..20].copy_from_slice(&inner[12..16]);
        let c = checksum::checksum(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h[20] = 3;
        h[21] = 4;
        h[26..28].copy_from_slice(&(mtu.min(0xffff) as u16).to_be_bytes());
        let acc = checksum::add_bytes(checksum::add_bytes(0, &h[20..28]), quoted);
        h[22..24].copy_from_slice(&(!checksum::fold(acc)).to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(quoted);
        Some(IpAddr::V4(
            [inner[12], inner[13], inner[14], inner[15]].into(),
        ))
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
