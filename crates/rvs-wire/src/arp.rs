//! ARP over Ethernet for IPv4 (RFC 826).

use crate::field::{read_array, read_u16};
use crate::{Result, WireError};

/// ARP request operation code.
pub const OP_REQUEST: u16 = 1;
/// ARP reply operation code.
pub const OP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// A checked view of an Ethernet/IPv4 ARP packet (hardware length 6, protocol length 4).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks length and that the address lengths are Ethernet/IPv4.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buffer })
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// Operation (request 1, reply 2).
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), 8)
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), 14)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), 18)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        crate::field::write_u16(self.buffer.as_mut(), 6, op);
    }

    /// Sets the sender hardware and protocol addresses.
    pub fn set_sender(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[8..14].copy_from_slice(&mac);
        b[14..18].copy_from_slice(&ip);
    }

    /// Sets the target hardware and protocol addresses.
    pub fn set_target(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[18..24].copy_from_slice(&mac);
        b[24..28].copy_from_slice(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_hardware_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.sender_protocol_addr(), [10, 0, 0, 1]);
        assert_eq!(p.target_protocol_addr(), [10, 0, 0, 2]);
    }

    #[test]
    fn emit_reply() {
        let mut b = REQUEST;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_operation(OP_REPLY);
        p.set_sender([2, 0, 0, 0, 0, 2], [10, 0, 0, 2]);
        p.set_target([2, 0, 0, 0, 0, 1], [10, 0, 0, 1]);
        assert_eq!(&b[6..8], &[0, 2]);
        assert_eq!(&b[8..18], &[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        assert_eq!(&b[18..28], &[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut b = REQUEST;
        b[4] = 8;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Truncated
        );
    }
}
