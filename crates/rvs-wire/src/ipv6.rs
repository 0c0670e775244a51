//! IPv6 headers (RFC 8200) with an extension-header walk to the upper-layer protocol.

use core::net::Ipv6Addr;

use crate::field::{read_array, read_u16, read_u32};
use crate::ip;
use crate::{Result, WireError};

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
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::check(buffer, false)
    }

    /// Like `new_checked`, for a packet quoted inside an ICMPv6 error: the payload may be cut
    /// short; the extension headers walked must still be present.
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        Self::check(buffer, true)
    }

    fn check(buffer: T, quoted: bool) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        let mut end = HEADER_LEN + read_u16(b, 4) as usize;
        if b.len() < end {
            if !quoted {
                return Err(WireError::Truncated);
            }
            end = b.len();
        }
        let mut next = b[6];
        let mut at = HEADER_LEN;
        let mut fragment = None;
        let mut walked = 0;
        loop {
            let len = match next {
                ip::HOP_BY_HOP | ip::IPV6_ROUTING | ip::IPV6_DEST_OPTS => {
                    if end < at + 2 {
                        return Err(WireError::Truncated);
                    }
                    (b[at + 1] as usize + 1) * 8
                }
                ip::IPV6_FRAGMENT => {
                    if end < at + 8 {
                        return Err(WireError::Truncated);
                    }
                    let off_flags = read_u16(b, at + 2);
                    fragment = Some(FragmentInfo {
                        offset: off_flags & 0xfff8,
                        more: off_flags & 1 != 0,
                        ident: read_u32(b, at + 4),
                    });
                    8
                }
                ip::AH => {
                    if end < at + 2 {
                        return Err(WireError::Truncated);
                    }
                    (b[at + 1] as usize + 2) * 4
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
            next = b[at];
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

    /// IP version (always 6 for a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length field (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }

    /// Total length of the packet (40 + payload length).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    /// Next-header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_octets())
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_octets())
    }

    /// Source address bytes.
    pub fn src_octets(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), 8)
    }

    /// Destination address bytes.
    pub fn dst_octets(&self) -> [u8; 16] {
        read_array(self.buffer.as_ref(), 24)
    }

    /// The upper-layer protocol after the extension headers.
    pub fn upper_protocol(&self) -> u8 {
        self.upper_protocol
    }

    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub fn upper_offset(&self) -> usize {
        self.upper_offset
    }

    /// Fragment header, if any.
    pub fn fragment(&self) -> Option<FragmentInfo> {
        self.fragment
    }

    /// True when the packet carries a fragment header that is not an atomic fragment.
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset != 0 || f.more)
    }

    /// Upper-layer length for the pseudo header (from the length field).
    pub fn upper_len(&self) -> usize {
        self.total_len().saturating_sub(self.upper_offset)
    }

    /// Upper-layer bytes (bounded by the payload length and the bytes present).
    pub fn upper_payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.upper_offset..self.end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[7] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[8..24].copy_from_slice(&addr);
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[24..40].copy_from_slice(&addr);
    }

    /// Upper-layer bytes, mutable.
    pub fn upper_payload_mut(&mut self) -> &mut [u8] {
        let (o, t) = (self.upper_offset, self.end);
        &mut self.buffer.as_mut()[o..t]
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
}
