//! ICMP for IPv4 (RFC 792), with access to the packet quoted by error messages.

use crate::checksum;
use crate::field::{read_u16, read_u32, room, write_u16, write_u32};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    /// The rest of the header: identifier and sequence, MTU, pointer, ...
    pub(super) const REST: Field = 4..8;
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub(super) const NEXT_HOP_MTU: Field = 6..8;
}

/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination unreachable (code 4 = fragmentation needed).
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Source quench (deprecated).
pub const TYPE_SOURCE_QUENCH: u8 = 4;
/// Redirect.
pub const TYPE_REDIRECT: u8 = 5;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;
/// Parameter problem.
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;
/// Code of "fragmentation needed and DF set" under destination unreachable.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Time exceeded code: fragment reassembly time exceeded (RFC 792).
pub const CODE_REASSEMBLY_TIME: u8 = 1;
/// ICMP header length (type, code, checksum, 4 bytes rest-of-header).
pub const HEADER_LEN: usize = field::REST.end;

/// A checked view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the 8-byte header is present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }
    /// Wraps bytes that already passed [`Packet::new_checked`] without checking them again.
    /// Getters may panic on bytes that would not pass.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    /// The four bytes after the checksum (id/sequence, next-hop MTU, pointer, ...).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST.start)
    }
    /// Next-hop MTU of a "fragmentation needed" message.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }
    /// True for error messages that quote an offending packet.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            TYPE_DEST_UNREACHABLE
                | TYPE_SOURCE_QUENCH
                | TYPE_REDIRECT
                | TYPE_TIME_EXCEEDED
                | TYPE_PARAMETER_PROBLEM
        )
    }
    /// Data after the header: for errors, the quoted IP packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum over the whole message verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
    /// Recomputes the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::CHECKSUM.start, 0);
        let c = checksum::checksum(b);
        write_u16(b, field::CHECKSUM.start, c);
    }
    /// Data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The header of an ICMP message (type, code and the four bytes after the checksum), to parse
/// and to emit in front of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// The rest of the header (next-hop MTU, pointer, identifier and sequence, ...).
    pub rest_of_header: u32,
}

impl Repr {
    /// "Fragmentation needed and DF set" (type 3 code 4) announcing `mtu` (RFC 1191).
    #[inline]
    pub fn frag_needed(mtu: u16) -> Repr {
        Repr {
            msg_type: TYPE_DEST_UNREACHABLE,
            code: CODE_FRAG_NEEDED,
            rest_of_header: u32::from(mtu),
        }
    }

    /// "Fragment reassembly time exceeded" (type 11 code 1, RFC 792).
    #[inline]
    pub fn reassembly_time_exceeded() -> Repr {
        Repr {
            msg_type: TYPE_TIME_EXCEEDED,
            code: CODE_REASSEMBLY_TIME,
            rest_of_header: 0,
        }
    }

    /// The header fields of a checked message.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            msg_type: p.msg_type(),
            code: p.code(),
            rest_of_header: p.rest_of_header(),
        }
    }

    /// Length of the header `emit` writes ([`HEADER_LEN`]).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header at the start of `buf`, its checksum covering the header and
    /// `body`, the bytes that follow it in the message (quoted packet, echo data), which are
    /// not written. `Truncated` when `buf` is shorter than the header.
    #[inline]
    pub fn emit(&self, buf: &mut [u8], body: &[u8]) -> Result<()> {
        let b = room(buf, HEADER_LEN)?;
        b[field::TYPE] = self.msg_type;
        b[field::CODE] = self.code;
        write_u16(b, field::CHECKSUM.start, 0);
        write_u32(b, field::REST.start, self.rest_of_header);
        let c = !checksum::fold(checksum::add_bytes(checksum::sum(b), body));
        write_u16(b, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksum() {
        // ping: type 8, id 1, seq 1, payload "abcd"
        let mut b = [8, 0, 0, 0, 0, 1, 0, 1, b'a', b'b', b'c', b'd'];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(!p.is_error());
        assert_eq!(p.rest_of_header(), 0x0001_0001);
        // 0x0800 + 0x0001 + 0x0001 + 0x6162 + 0x6364 = 0xCCC8 -> !0xCCC8 = 0x3337
        assert_eq!(p.checksum(), 0x3337);
    }

    #[test]
    fn frag_needed() {
        let b = [3, 4, 0, 0, 0, 0, 0x05, 0xdc, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(p.code(), CODE_FRAG_NEEDED);
        assert_eq!(p.next_hop_mtu(), 1500);
        assert_eq!(p.payload(), &[0x45]);
        assert!(Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn repr_emits_checksummed_header() {
        let body = [b'a', b'b', b'c', b'd'];
        let r = Repr {
            msg_type: TYPE_ECHO_REQUEST,
            code: 0,
            rest_of_header: 0x0001_0001,
        };
        let mut b = [0u8; 12];
        r.emit(&mut b, &body).unwrap();
        b[8..].copy_from_slice(&body);
        // As in `echo_request_checksum`.
        assert_eq!(b[..8], [8, 0, 0x33, 0x37, 0, 1, 0, 1]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p), r);
        let f = Repr::frag_needed(1400);
        assert_eq!((f.msg_type, f.code, f.rest_of_header), (3, 4, 1400));
        assert_eq!(r.emit(&mut b[..7], &[]), Err(WireError::Truncated));
    }
}
