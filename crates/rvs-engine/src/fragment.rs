//! Cutting an IP packet into fragments that fit a link: IPv4 as a router does (RFC 791 and
//! RFC 1812 section 5.2.6; options without the copied flag only in the first fragment), IPv6 as
//! a source does (RFC 8200 section 4.5, a fragment header after the unfragmentable part).
//!
//! The director fragments what it forwards when it may: an IPv4 packet without DF, a datagram
//! it reassembled (no larger than its largest fragment was), and the outer packet of a tunnel.
//! Otherwise the sender gets ICMP "fragmentation needed" or "packet too big"
//! ([`crate::tunnel::too_big`]).

use rvs_wire::{ip, ipv4, ipv6};

/// Why a packet could not be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// The bytes are not a whole IPv4 or IPv6 packet.
    #[error("not a whole IP packet")]
    NotIp,
    /// Not even 8 bytes of data fit after the headers.
    #[error("the link's MTU leaves no room for data after the headers")]
    MtuTooSmall,
    /// An IPv6 packet that already has a fragment header (IPv6 fragments, atomic ones too, are
    /// not cut again).
    #[error("the IPv6 packet is already a fragment")]
    AlreadyFragmented,
}

/// Most bytes an IPv4 header takes.
const MAX_V4_HEADER: usize = 60;
/// IPv6's fragment header length.
const V6_FRAGMENT_HEADER: usize = 8;
/// Most bytes of IPv6 unfragmentable part copied per fragment.
const MAX_V6_HEAD: usize = 512;

/// Cuts `packet` (an IPv4 or IPv6 packet, its IP header first) into fragments of at most `max`
/// bytes, calling `emit(header, data)` for each in order; returns how many. `ident` is the
/// identification of IPv6 fragments (IPv4 fragments keep the packet's own). DF is not looked at:
/// the caller decides whether the packet may be fragmented.
pub fn split(
    packet: &[u8],
    max: usize,
    ident: u32,
    emit: impl FnMut(&[u8], &[u8]),
) -> Result<usize, FragmentError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => split_v4(packet, max, emit),
        Some(6) => split_v6(packet, max, ident, emit),
        _ => Err(FragmentError::NotIp),
    }
}

/// Cuts the IPv4 packet `packet` into fragments of at most `max` bytes (see [`split`]). A packet
/// that is itself a fragment is cut again: offsets count from its own, and the last piece keeps
/// its more-fragments flag.
pub fn split_v4(
    packet: &[u8],
    max: usize,
    mut emit: impl FnMut(&[u8], &[u8]),
) -> Result<usize, FragmentError> {
    let p = ipv4::Packet::new_checked(packet).map_err(|_| FragmentError::NotIp)?;
    let hlen = p.header_len();
    let total = usize::from(p.total_len());
    let data = &packet[hlen..total];
    let (df, more_after, base) = (p.dont_frag(), p.more_frags(), usize::from(p.frag_offset()));
    let mut first = [0u8; MAX_V4_HEADER];
    first[..hlen].copy_from_slice(&packet[..hlen]);
    let mut rest = [0u8; MAX_V4_HEADER];
    let rest_len = copied_header(&packet[..hlen], &mut rest);
    let mut pos = 0;
    let mut count = 0;
    while pos < data.len() || count == 0 {
        let header: &mut [u8] = if count == 0 {
            &mut first[..hlen]
        } else {
            &mut rest[..rest_len]
        };
        let room = max.saturating_sub(header.len()) & !7;
        if room == 0 {
            return Err(FragmentError::MtuTooSmall);
        }
        let take = room.min(data.len() - pos);
        let last = pos + take == data.len();
        let offset = base + pos;
        let hl = header.len();
        let mut h = ipv4::Packet::new_unchecked(&mut *header);
        h.set_total_len((hl + take) as u16);
        h.set_frag_fields(df, !last || more_after, offset as u16);
        h.fill_checksum();
        emit(header, &data[pos..pos + take]);
        pos += take;
        count += 1;
    }
    Ok(count)
}

/// The IPv4 header of the fragments after the first: the fixed header and the options whose
/// copied flag is set, padded to 4 bytes. Returns its length.
fn copied_header(header: &[u8], out: &mut [u8; MAX_V4_HEADER]) -> usize {
    out[..ipv4::MIN_HEADER_LEN].copy_from_slice(&header[..ipv4::MIN_HEADER_LEN]);
    let mut len = ipv4::MIN_HEADER_LEN;
    let options = &header[ipv4::MIN_HEADER_LEN..];
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        let size = match kind {
            0 => break,
            1 => 1,
            _ => match options.get(at + 1) {
                Some(&n) if n >= 2 && at + usize::from(n) <= options.len() => usize::from(n),
                _ => break,
            },
        };
        if kind & 0x80 != 0 {
            out[len..len + size].copy_from_slice(&options[at..at + size]);
            len += size;
        }
        at += size;
    }
    while len % 4 != 0 {
        out[len] = 0;
        len += 1;
    }
    out[0] = (out[0] & 0xf0) | (len / 4) as u8;
    len
}

/// Cuts the IPv6 packet `packet` into fragments of at most `max` bytes with identification
/// `ident` (see [`split`]): each is the unfragmentable part (the fixed header, hop-by-hop and
/// routing headers and the destination options before a routing header), a fragment header
/// and a piece of the rest.
pub fn split_v6(
    packet: &[u8],
    max: usize,
    ident: u32,
    mut emit: impl FnMut(&[u8], &[u8]),
) -> Result<usize, FragmentError> {
    let p = ipv6::Packet::new_checked(packet).map_err(|_| FragmentError::NotIp)?;
    // Any fragment header, an atomic fragment's too (RFC 6946): a second one would follow it.
    if p.fragment().is_some() {
        return Err(FragmentError::AlreadyFragmented);
    }
    let total = p.total_len();
    let (unfrag, next_at) = unfragmentable(packet, total).ok_or(FragmentError::NotIp)?;
    if unfrag + V6_FRAGMENT_HEADER > MAX_V6_HEAD {
        return Err(FragmentError::MtuTooSmall);
    }
    let upper = packet[next_at];
    let data = &packet[unfrag..total];
    let mut head = [0u8; MAX_V6_HEAD];
    let hlen = unfrag + V6_FRAGMENT_HEADER;
    head[..unfrag].copy_from_slice(&packet[..unfrag]);
    head[next_at] = ip::IPV6_FRAGMENT;
    head[unfrag] = upper;
    head[unfrag + 4..unfrag + 8].copy_from_slice(&ident.to_be_bytes());
    let room = max.saturating_sub(hlen) & !7;
    if room == 0 {
        return Err(FragmentError::MtuTooSmall);
    }
    let mut pos = 0;
    let mut count = 0;
    while pos < data.len() || count == 0 {
        let take = room.min(data.len() - pos);
        let last = pos + take == data.len();
        let off_flags = (pos as u16 & 0xfff8) | u16::from(!last);
        head[unfrag + 2..unfrag + 4].copy_from_slice(&off_flags.to_be_bytes());
        let mut h = ipv6::Packet::new_unchecked(&mut head[..hlen]);
        h.set_payload_len((hlen - ipv6::HEADER_LEN + take) as u16);
        emit(&head[..hlen], &data[pos..pos + take]);
        pos += take;
        count += 1;
    }
    Ok(count)
}

/// The end of the unfragmentable part of an IPv6 packet and the position of the next-header
/// byte that names what follows it.
fn unfragmentable(packet: &[u8], total: usize) -> Option<(usize, usize)> {
    let (mut at, mut next_at) = (ipv6::HEADER_LEN, 6usize);
    let (mut end, mut end_next) = (at, next_at);
    loop {
        let next = *packet.get(next_at)?;
        if !matches!(next, ip::HOP_BY_HOP | ip::IPV6_ROUTING | ip::IPV6_DEST_OPTS) {
            return Some((end, end_next));
        }
        let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
        if at + len > total {
            return None;
        }
        next_at = at;
        at += len;
        // Destination options count as unfragmentable only before a routing header, which
        // moves the end past them when it comes.
        if next != ip::IPV6_DEST_OPTS {
            (end, end_next) = (at, next_at);
        }
    }
}
