//! IPv4 headers (RFC 791), options included.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{read_array, read_u16, room, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub(super) const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC_ADDR: Field = 12..16;
    pub(super) const DST_ADDR: Field = 16..20;
}

/// The don't-fragment bit in the flags byte.
const FLAG_DF: u8 = 0x40;
/// The more-fragments bit in the flags byte.
const FLAG_MF: u8 = 0x20;

/// Minimum IPv4 header length.
pub const MIN_HEADER_LEN: usize = 20;

/// A checked view of an IPv4 packet.
///
/// `new_checked` accepts buffers longer than `total_len` (Ethernet padding); `payload` is bounded by
/// `total_len`.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    /// End of the packet bytes present: `total_len`, or less for a quoted (ICMP-embedded) one.
    end: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 4, `20 <= header_len <= total_len <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        let total = read_u16(b, field::LENGTH.start) as usize;
        if total < header_len {
            return Err(WireError::Malformed);
        }
        if b.len() < header_len || b.len() < total {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer, end: total })
    }

    /// Like `new_checked`, for a packet quoted inside an ICMP error: only the header must be
    /// present; the payload getters return what is there, up to `total_len`.
    #[inline]
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        let total = read_u16(b, field::LENGTH.start) as usize;
        if total < header_len {
            return Err(WireError::Malformed);
        }
        if b.len() < header_len {
            return Err(WireError::Truncated);
        }
        let end = total.min(b.len());
        Ok(Packet { buffer, end })
    }

    /// Wraps bytes that already passed [`Packet::new_checked`] (or [`Packet::new_checked_quoted`])
    /// without checking them again: for a packet a parser has validated once. Getters may panic
    /// on bytes that would not pass.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        let b = buffer.as_ref();
        let total = b
            .get(field::LENGTH)
            .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let end = total.min(b.len());
        Packet { buffer, end }
    }

    /// IP version (always 4 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    /// DSCP and ECN byte.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[field::FLG_OFF.start] & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLG_OFF.start] & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff) << 3
    }

    /// True for any fragment (first, middle or last).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Upper-layer protocol number.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_octets())
    }

    /// Source address bytes.
    #[inline]
    pub fn src_octets(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// Destination address bytes.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// The options bytes (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }

    /// The payload, bounded by `total_len` (and by the bytes present for a quoted packet).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.end]
    }

    /// Length of the upper-layer data (`total_len - header_len`), for pseudo headers.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        self.total_len() - self.header_len() as u16
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TTL and updates the header checksum incrementally.
    #[inline]
    pub fn set_ttl_update_checksum(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        // The TTL shares its 16-bit checksum word with the protocol.
        let old = read_u16(b, field::TTL);
        b[field::TTL] = ttl;
        let new = read_u16(b, field::TTL);
        let c = checksum::update16(read_u16(b, field::CHECKSUM.start), old, new);
        write_u16(b, field::CHECKSUM.start, c);
    }

    /// Sets the source address and updates the header checksum incrementally.
    #[inline]
    pub fn set_src_update_checksum(&mut self, addr: [u8; 4]) {
        let old = self.src_octets();
        let b = self.buffer.as_mut();
        b[field::SRC_ADDR].copy_from_slice(&addr);
        let c = checksum::update32(read_u16(b, field::CHECKSUM.start), old, addr);
        write_u16(b, field::CHECKSUM.start, c);
    }

    /// Sets the destination address and updates the header checksum incrementally.
    #[inline]
    pub fn set_dst_update_checksum(&mut self, addr: [u8; 4]) {
        let old = self.dst_octets();
        let b = self.buffer.as_mut();
        b[field::DST_ADDR].copy_from_slice(&addr);
        let c = checksum::update32(read_u16(b, field::CHECKSUM.start), old, addr);
        write_u16(b, field::CHECKSUM.start, c);
    }

    /// Sets the total length field without touching the checksum (nor the view's payload bounds,
    /// which stay those of the length it was built with).
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the identification without touching the checksum.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, ident);
    }

    /// Sets the flags and fragment offset (`offset` in bytes, a multiple of 8) without touching
    /// the checksum.
    #[inline]
    pub fn set_frag_fields(&mut self, dont_frag: bool, more: bool, offset: u16) {
        let mut v = (offset >> 3) & 0x1fff;
        if dont_frag {
            v |= u16::from(FLAG_DF) << 8;
        }
        if more {
            v |= u16::from(FLAG_MF) << 8;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Sets the DSCP and ECN byte without touching the checksum.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the TTL without touching the checksum.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the source address without touching the checksum.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr);
    }

    /// Sets the destination address without touching the checksum.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr);
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, c);
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        write_u16(b, field::CHECKSUM.start, 0);
        let c = checksum::checksum(&b[..hl]);
        write_u16(b, field::CHECKSUM.start, c);
    }

    /// The payload, bounded like `payload`, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.end);
        &mut self.buffer.as_mut()[h..t]
    }
}

/// The fields of an IPv4 header without options, to parse and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: [u8; 4],
    /// Destination address.
    pub dst_addr: [u8; 4],
    /// Upper-layer protocol.
    pub protocol: u8,
    /// Length of what follows the header (the total length is 20 more).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// The fields of a checked packet (its options, fragment fields and checksum left out).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src_addr: p.src_octets(),
            dst_addr: p.dst_octets(),
            protocol: p.protocol(),
            payload_len: p.payload_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        }
    }

    /// Length of the header `emit` writes ([`MIN_HEADER_LEN`]: no options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the 20-byte header at the start of `buf`, header checksum filled in. `Truncated`
    /// when `buf` is shorter than the header, `Malformed` when the total length would not fit
    /// in 16 bits.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = self
            .payload_len
            .checked_add(MIN_HEADER_LEN as u16)
            .ok_or(WireError::Malformed)?;
        let b = room(buf, MIN_HEADER_LEN)?;
        b[field::VER_IHL] = 0x40 | (MIN_HEADER_LEN / 4) as u8;
        b[field::DSCP_ECN] = self.dscp_ecn;
        write_u16(b, field::LENGTH.start, total);
        write_u16(b, field::IDENT.start, self.ident);
        write_u16(
            b,
            field::FLG_OFF.start,
            if self.dont_frag {
                u16::from(FLAG_DF) << 8
            } else {
                0
            },
        );
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        write_u16(b, field::CHECKSUM.start, 0);
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr);
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr);
        let c = checksum::checksum(b);
        write_u16(b, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real header: 10.0.0.1 -> 10.0.0.2, TCP, total 40, checksum 0x26cd.
    fn header() -> Vec<u8> {
        let mut h = vec![
            0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[0u8; 20]);
        h
    }

    #[test]
    fn parse_fields() {
        let h = header();
        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 20);
        assert_eq!(p.checksum(), 0x26cd);
    }

    #[test]
    fn known_checksum() {
        // Classic example header from the Wikipedia IPv4 checksum article: result 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum::checksum(&h), 0xb861);
    }

    #[test]
    fn options_and_padding() {
        let mut h = header();
        h[0] = 0x46;
        h[3] = 44;
        h.splice(20..20, [1, 1, 1, 0]);
        h.extend_from_slice(&[0xee; 6]); // Ethernet padding beyond total_len
        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn incremental_setters_keep_checksum_valid() {
        let mut h = header();
        let mut p = Packet::new_checked(&mut h[..]).unwrap();
        p.set_dst_update_checksum([192, 168, 1, 5]);
        p.set_src_update_checksum([172, 16, 0, 9]);
        p.set_ttl_update_checksum(63);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
        p.set_total_len(36);
        p.set_ident(0xbeef);
        assert_eq!((p.total_len(), p.ident()), (36, 0xbeef));
    }

    #[test]
    fn quoted_header_only() {
        let h = header();
        assert!(Packet::new_checked(&h[..28]).is_err());
        let p = Packet::new_checked_quoted(&h[..28]).unwrap();
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.payload().len(), 8);
        assert!(Packet::new_checked_quoted(&h[..19]).is_err());
    }

    #[test]
    fn rejects() {
        let mut h = header();
        assert_eq!(
            Packet::new_checked(&h[..39]).unwrap_err(),
            WireError::Truncated
        );
        h[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&h[..]).unwrap_err(),
            WireError::Malformed
        );
        h[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&h[..]).unwrap_err(),
            WireError::Malformed
        );
        h[0] = 0x45;
        h[3] = 10;
        assert_eq!(
            Packet::new_checked(&h[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn repr_emits_known_header() {
        // The Wikipedia example header of `known_checksum`.
        let r = Repr {
            src_addr: [192, 168, 0, 1],
            dst_addr: [192, 168, 0, 199],
            protocol: 17,
            payload_len: 0x73 - 20,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        let mut b = vec![0xffu8; 0x73];
        r.emit(&mut b).unwrap();
        assert_eq!(
            b[..20],
            [
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
                0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
            ]
        );
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p), r);
        assert_eq!(r.emit(&mut b[..19]), Err(WireError::Truncated));
        let long = Repr {
            payload_len: u16::MAX - 19,
            ..r
        };
        assert_eq!(long.emit(&mut b), Err(WireError::Malformed));
    }

    #[test]
    fn unchecked_matches_checked() {
        let mut h = header();
        h.extend_from_slice(&[0; 4]); // padding
        let c = Packet::new_checked(&h[..]).unwrap();
        let u = Packet::new_unchecked(&h[..]);
        assert_eq!(u.payload(), c.payload());
        assert_eq!(Repr::parse(&u), Repr::parse(&c));
        // Garbage does not panic the constructor.
        let _ = Packet::new_unchecked(&[0x45u8][..]);
    }
}
