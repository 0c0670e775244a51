//! IPv6 headers (RFC 8200) with an extension-header walk to the upper-layer protocol.

use core::net::Ipv6Addr;

use crate::field::{read_array, read_u16, read_u32, room, write_u16, write_u32};
use crate::ip;
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Field = 8..24;
    pub(super) const DST_ADDR: Field = 24..40;
    /// Extension headers: next header and length bytes.
    pub(super) const EXT_NXT_HDR: usize = 0;
    pub(super) const EXT_LEN: usize = 1;
    /// Fragment header: offset and flags, identification.
    pub(super) const FRAG_OFF_FLAGS: Field = 2..4;
    pub(super) const FRAG_IDENT: Field = 4..8;
}

/// Fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;
/// Most extension headers walked before the packet is called malformed.
pub const MAX_EXT_HEADERS: usize = 8;

/// Fragment header contents, when the packet has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// A checked view of an IPv6 packet; extension headers have been walked.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    upper_protocol: u8,
    upper_offset: usize,
    fragment: Option<FragmentInfo>,
    /// End of the packet bytes present (40 + payload length, or less when quoted).
    end: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 6, that the payload length fits, and walks hop-by-hop, routing, fragment,
    /// destination-options and AH headers to the upper-layer protocol.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::check(buffer, false)
    }

    /// Like `new_checked`, for a packet quoted inside an ICMPv6 error: the payload may be cut
    /// short; the extension headers walked must still be present.
    #[inline]
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        Self::check(buffer, true)
    }

    fn check(buffer: T, quoted: bool) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_TC_FLOW.start] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        let mut end = HEADER_LEN + read_u16(b, field::LENGTH.start) as usize;
        if b.len() < end {
            if !quoted {
                return Err(WireError::Truncated);
            }
            end = b.len();
        }
        let mut next = b[field::NXT_HDR];
        let mut at = HEADER_LEN;
        let mut fragment = None;
        let mut walked = 0;
        loop {
            let len = match next {
                ip::HOP_BY_HOP | ip::IPV6_ROUTING | ip::IPV6_DEST_OPTS => {
                    if end < at + 2 {
                        return Err(WireError::Truncated);
                    }
                    (b[at + field::EXT_LEN] as usize + 1) * 8
                }
                ip::IPV6_FRAGMENT => {
                    if end < at + 8 {
                        return Err(WireError::Truncated);
                    }
                    let off_flags = read_u16(b, at + field::FRAG_OFF_FLAGS.start);
                    fragment = Some(FragmentInfo {
                        offset: off_flags & 0xfff8,
                        more: off_flags & 1 != 0,
                        ident: read_u32(b, at + field::FRAG_IDENT.start),
                    });
                    8
                }
                ip::AH => {
                    if end < at + 2 {
                        return Err(WireError::Truncated);
                    }
                    (b[at + field::EXT_LEN] as usize + 2) * 4
                }
                _ => break,
            };
            walked += 1;
            if walked > MAX_EXT_HEADERS {
                return Err(WireError::Malformed);
            }
            if end < at + len {
                return Err(WireError::Truncated);
            }
            next = b[at + field::EXT_NXT_HDR];
            at += len;
            if fragment.is_some_and(|f| f.offset != 0) {
                // A non-first fragment: what follows is not a header.
                break;
            }
        }
        Ok(Packet {
            buffer,
            upper_protocol: next,
            upper_offset: at,
            fragment,
            end,
        })
    }

    /// Wraps bytes that already passed [`Packet::new_checked`] without checking them again, for
    /// the fixed header's fields: extension headers are not walked, so `upper_protocol` is the
    /// fixed header's next header, `upper_offset` is 40 and `fragment` is `None`. Getters may
    /// panic on bytes that would not pass `new_checked`.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        let b = buffer.as_ref();
        let next = b.get(field::NXT_HDR).copied().unwrap_or(ip::IPV6_NO_NEXT);
        let payload = b
            .get(field::LENGTH)
            .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let end = (HEADER_LEN + payload).min(b.len());
        Packet {
            buffer,
            upper_protocol: next,
            upper_offset: HEADER_LEN,
            fragment: None,
            end,
        }
    }

    /// IP version (always 6 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        let at = field::VER_TC_FLOW.start;
        (b[at] << 4) | (b[at + 1] >> 4)
    }

    /// Flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000f_ffff
    }

    /// Payload length field (everything after the fixed header).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Total length of the packet (40 + payload length).
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    /// Next-header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_octets())
    }

    /// Source address bytes.
    #[inline]
    pub fn src_octets(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// Destination address bytes.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// The upper-layer protocol after the extension headers.
    #[inline]
    pub fn upper_protocol(&self) -> u8 {
        self.upper_protocol
    }

    /// Offset of the upper-layer header from the start of the IPv6 header.
    #[inline]
    pub fn upper_offset(&self) -> usize {
        self.upper_offset
    }

    /// Fragment header, if any.
    #[inline]
    pub fn fragment(&self) -> Option<FragmentInfo> {
        self.fragment
    }

    /// True when the packet carries a fragment header that is not an atomic fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0 || f.more)
    }

    /// Upper-layer length for the pseudo header (from the length field).
    #[inline]
    pub fn upper_len(&self) -> usize {
        self.total_len().saturating_sub(self.upper_offset)
    }

    /// Upper-layer bytes (bounded by the payload length and the bytes present).
    #[inline]
    pub fn upper_payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.upper_offset..self.end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the payload length field (the view's bounds stay those of the length it was built
    /// with).
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the traffic class (the flow label and version stay).
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        let v = read_u32(b, field::VER_TC_FLOW.start);
        let v = (v & 0xf00f_ffff) | (u32::from(tc) << 20);
        write_u32(b, field::VER_TC_FLOW.start, v);
    }

    /// Sets the fixed header's next-header field.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr);
    }

    /// Upper-layer bytes, mutable.
    #[inline]
    pub fn upper_payload_mut(&mut self) -> &mut [u8] {
        let (o, t) = (self.upper_offset, self.end);
        &mut self.buffer.as_mut()[o..t]
    }
}

/// The fields of a fixed IPv6 header, to parse and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: [u8; 16],
    /// Destination address.
    pub dst_addr: [u8; 16],
    /// Next header (the first extension header's type, or the upper-layer protocol).
    pub next_header: u8,
    /// Payload length (everything after the fixed header).
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits; higher bits are ignored).
    pub flow_label: u32,
}

impl Repr {
    /// The fixed header's fields of a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src_addr: p.src_octets(),
            dst_addr: p.dst_octets(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Length of the header `emit` writes ([`HEADER_LEN`]).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header at the start of `buf`; `Truncated` when `buf` is
    /// shorter.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = room(buf, HEADER_LEN)?;
        let word = (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xf_ffff);
        write_u32(b, field::VER_TC_FLOW.start, word);
        write_u16(b, field::LENGTH.start, self.payload_len);
        b[field::NXT_HDR] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr);
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.push(next);
        b.push(64);
        b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn plain_tcp() {
        let b = base(6, &[0u8; 20]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_protocol(), 6);
        assert_eq!(p.upper_offset(), 40);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.upper_len(), 20);
        assert!(!p.is_fragment());
    }

    #[test]
    fn ext_chain() {
        // hop-by-hop (8) -> dest opts (16) -> fragment (8, first, more) -> AH (12) -> UDP
        let mut pl = vec![60, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[44, 1]);
        pl.extend_from_slice(&[0u8; 14]);
        pl.extend_from_slice(&[51, 0, 0, 1, 0, 0, 0, 7]);
        pl.extend_from_slice(&[17, 1, 0, 0]);
        pl.extend_from_slice(&[0u8; 8]);
        pl.extend_from_slice(&[0u8; 8]);
        let b = base(0, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_protocol(), 17);
        assert_eq!(p.upper_offset(), 40 + 8 + 16 + 8 + 12);
        assert_eq!(
            p.fragment(),
            Some(FragmentInfo {
                offset: 0,
                more: true,
                ident: 7
            })
        );
        assert!(p.is_fragment());
    }

    #[test]
    fn non_first_fragment_stops() {
        let mut pl = vec![6, 0, 0x00, 0x10, 0, 0, 0, 1];
        pl.extend_from_slice(&[0xff; 8]);
        let b = base(44, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_protocol(), 6);
        assert_eq!(p.fragment().map(|f| f.offset), Some(16));
    }

    #[test]
    fn quoted_cut_short() {
        let b = base(17, &[0u8; 100]);
        assert!(Packet::new_checked(&b[..48]).is_err());
        let p = Packet::new_checked_quoted(&b[..48]).unwrap();
        assert_eq!(p.upper_payload().len(), 8);
        assert_eq!(p.upper_len(), 100);
    }

    #[test]
    fn truncated_ext() {
        let b = base(0, &[6, 3, 0, 0]);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = base(6, &[0u8; 4]);
        b.truncate(42);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn repr_round_trip() {
        let b = base(6, &[0u8; 20]);
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap());
        let mut out = [0xeeu8; 40];
        r.emit(&mut out).unwrap();
        assert_eq!(out[..], b[..40]);
        let r = Repr {
            traffic_class: 0xb8,
            flow_label: 0x12345,
            ..r
        };
        r.emit(&mut out).unwrap();
        assert_eq!(out[..4], [0x6b, 0x81, 0x23, 0x45]);
        let mut full = out.to_vec();
        full.extend_from_slice(&[0u8; 20]);
        assert_eq!(Repr::parse(&Packet::new_checked(&full[..]).unwrap()), r);
        assert_eq!(r.emit(&mut out[..39]), Err(WireError::Truncated));
    }

    #[test]
    fn unchecked_reads_the_fixed_header() {
        let b = base(17, &[0u8; 12]);
        let mut b2 = b.clone();
        Packet::new_unchecked(&mut b2[..]).set_payload_len(8);
        assert_eq!(b2[4..6], [0, 8]);
        let p = Packet::new_unchecked(&b[..]);
        assert_eq!(p.upper_protocol(), 17);
        assert_eq!(p.upper_payload().len(), 12);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        let _ = Packet::new_unchecked(&[0x60u8, 0, 0][..]);
    }
}
