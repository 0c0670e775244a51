//! ICMP for IPv6 (RFC 4443), with access to the packet quoted by error messages.

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
}

/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Time exceeded code: fragment reassembly time exceeded (RFC 4443 section 3.3).
pub const CODE_REASSEMBLY_TIME: u8 = 1;
/// Parameter problem.
pub const TYPE_PARAMETER_PROBLEM: u8 = 4;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 129;
/// ICMPv6 header length (type, code, checksum, 4 bytes).
pub const HEADER_LEN: usize = field::REST.end;

/// A checked view of an ICMPv6 message.
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
    /// The four bytes after the checksum (MTU for packet-too-big, pointer, ...).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST.start)
    }
    /// True for error messages (types below 128) that quote an offending packet.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            TYPE_DEST_UNREACHABLE
                | TYPE_PACKET_TOO_BIG
                | TYPE_TIME_EXCEEDED
                | TYPE_PARAMETER_PROBLEM
        )
    }
    /// Data after the header: for errors, the quoted IPv6 packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum (with the IPv6 pseudo header) verifies.
    #[inline]
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, b.len() as u32);
        checksum::fold(checksum::add_bytes(acc, b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
    /// Recomputes the checksum over the pseudo header and the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        let b = self.buffer.as_mut();
        write_u16(b, field::CHECKSUM.start, 0);
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, b.len() as u32);
        let c = !checksum::fold(checksum::add_bytes(acc, b));
        write_u16(b, field::CHECKSUM.start, c);
    }
    /// Data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The header of an ICMPv6 message (type, code and the four bytes after the checksum), to
/// parse and to emit in front of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// The rest of the header (MTU, pointer, identifier and sequence, ...).
    pub rest_of_header: u32,
}

impl Repr {
    /// "Packet too big" (type 2) announcing `mtu` (RFC 4443 section 3.2).
    #[inline]
    pub fn packet_too_big(mtu: u32) -> Repr {
        Repr {
            msg_type: TYPE_PACKET_TOO_BIG,
            code: 0,
            rest_of_header: mtu,
        }
    }

    /// "Fragment reassembly time exceeded" (type 3 code 1, RFC 4443 section 3.3).
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

    /// Writes the 8-byte header at the start of `buf`, its checksum covering the pseudo header
    /// of `src` -> `dst`, the header and `body`, the bytes that follow it in the message
    /// (quoted packet, echo data), which are not written. `Truncated` when `buf` is shorter
    /// than the header.
    #[inline]
    pub fn emit(&self, buf: &mut [u8], src: [u8; 16], dst: [u8; 16], body: &[u8]) -> Result<()> {
        let b = room(buf, HEADER_LEN)?;
        b[field::TYPE] = self.msg_type;
        b[field::CODE] = self.code;
        write_u16(b, field::CHECKSUM.start, 0);
        write_u32(b, field::REST.start, self.rest_of_header);
        let len = (HEADER_LEN + body.len()) as u32;
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, len);
        let acc = checksum::add_bytes(checksum::add_bytes(acc, b), body);
        write_u16(b, field::CHECKSUM.start, !checksum::fold(acc));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_too_big() {
        let mut b = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        b.extend_from_slice(&[0x60, 0, 0, 0]);
        let src = [0xfe; 16];
        let dst = [0x20; 16];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, [0; 16]));
        assert!(p.is_error());
        assert_eq!(p.rest_of_header(), 1280);
        assert_eq!(p.payload(), &[0x60, 0, 0, 0]);
    }

    #[test]
    fn echo_is_not_error() {
        let b = [128, 0, 0, 0, 0, 1, 0, 1];
        assert!(!Packet::new_checked(&b[..]).unwrap().is_error());
        assert!(Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn repr_matches_fill_checksum() {
        let src = [0xfe; 16];
        let dst = [0x20; 16];
        let body = [0x60, 0, 0, 0];
        let mut b = [0u8; 12];
        Repr::packet_too_big(1280)
            .emit(&mut b, src, dst, &body)
            .unwrap();
        b[8..].copy_from_slice(&body);
        let mut want = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00, 0x60, 0, 0, 0];
        Packet::new_checked(&mut want[..])
            .unwrap()
            .fill_checksum(src, dst);
        assert_eq!(b[..], want[..]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Repr::packet_too_big(1280));
        assert_eq!(
            Repr::packet_too_big(0).emit(&mut b[..7], src, dst, &[]),
            Err(WireError::Truncated)
        );
    }
}
