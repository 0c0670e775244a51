//! ICMP for IPv6 (RFC 4443), with access to the packet quoted by error messages.

use crate::checksum;
use crate::field::{read_u16, read_u32, write_u16};
use crate::{Result, WireError};

/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Parameter problem.
pub const TYPE_PARAMETER_PROBLEM: u8 = 4;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 129;
/// ICMPv6 header length (type, code, checksum, 4 bytes).
pub const HEADER_LEN: usize = 8;

/// A checked view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the 8-byte header is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// The four bytes after the checksum (MTU for packet-too-big, pointer, ...).
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }
    /// True for error messages (types below 128) that quote an offending packet.
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
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum (with the IPv6 pseudo header) verifies.
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, b.len() as u32);
        checksum::fold(checksum::add_bytes(acc, b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), 2, v);
    }
    /// Recomputes the checksum over the pseudo header and the whole buffer.
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        let b = self.buffer.as_mut();
        write_u16(b, 2, 0);
        let acc = checksum::pseudo_header_v6(src, dst, crate::ip::ICMPV6, b.len() as u32);
        let c = !checksum::fold(checksum::add_bytes(acc, b));
        write_u16(b, 2, c);
    }
    /// Data after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
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
}
