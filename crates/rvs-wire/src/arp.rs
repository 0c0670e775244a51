//! ARP over Ethernet for IPv4 (RFC 826).

use crate::field::{read_array, read_u16, room, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const HTYPE: Field = 0..2;
    pub(super) const PTYPE: Field = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Field = 6..8;
    pub(super) const SHA: Field = 8..14;
    pub(super) const SPA: Field = 14..18;
    pub(super) const THA: Field = 18..24;
    pub(super) const TPA: Field = 24..28;
}

/// ARP request operation code.
pub const OP_REQUEST: u16 = 1;
/// ARP reply operation code.
pub const OP_REPLY: u16 = 2;
/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;
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
        if b[field::HLEN] != 6 || b[field::PLEN] != 4 {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buffer })
    }

    /// Wraps bytes that already passed [`Packet::new_checked`] (or that a [`Repr`] emitted)
    /// without checking them again. Getters may panic on bytes that would not pass.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE.start)
    }

    /// Operation (request 1, reply 2).
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER.start)
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::SHA.start)
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::SPA.start)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::THA.start)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        write_u16(self.buffer.as_mut(), field::OPER.start, op);
    }

    /// Sets the sender hardware and protocol addresses.
    pub fn set_sender(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&mac);
        b[field::SPA].copy_from_slice(&ip);
    }

    /// Sets the target hardware and protocol addresses.
    pub fn set_target(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::THA].copy_from_slice(&mac);
        b[field::TPA].copy_from_slice(&ip);
    }
}

/// An Ethernet/IPv4 ARP packet's fields, to parse and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Operation ([`OP_REQUEST`] or [`OP_REPLY`]).
    pub operation: u16,
    /// Sender hardware address.
    pub sender_hardware_addr: [u8; 6],
    /// Sender protocol address.
    pub sender_protocol_addr: [u8; 4],
    /// Target hardware address.
    pub target_hardware_addr: [u8; 6],
    /// Target protocol address.
    pub target_protocol_addr: [u8; 4],
}

impl Repr {
    /// The fields of a checked packet; `Malformed` unless it is Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if p.hardware_type() != HARDWARE_ETHERNET || p.protocol_type() != 0x0800 {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            operation: p.operation(),
            sender_hardware_addr: p.sender_hardware_addr(),
            sender_protocol_addr: p.sender_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// Length of the packet `emit` writes ([`PACKET_LEN`]).
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet (hardware type Ethernet, protocol type IPv4) at the start of `buf`;
    /// `Truncated` when `buf` is shorter than [`PACKET_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = room(buf, PACKET_LEN)?;
        write_u16(b, field::HTYPE.start, HARDWARE_ETHERNET);
        write_u16(b, field::PTYPE.start, crate::ethernet::ETHERTYPE_IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        write_u16(b, field::OPER.start, self.operation);
        b[field::SHA].copy_from_slice(&self.sender_hardware_addr);
        b[field::SPA].copy_from_slice(&self.sender_protocol_addr);
        b[field::THA].copy_from_slice(&self.target_hardware_addr);
        b[field::TPA].copy_from_slice(&self.target_protocol_addr);
        Ok(())
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

    #[test]
    fn repr_round_trip() {
        let r = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap()).unwrap();
        let mut b = [0xaau8; 30];
        r.emit(&mut b).unwrap();
        assert_eq!(b[..28], REQUEST);
        assert_eq!(b[28..], [0xaa, 0xaa]);
        assert_eq!(r.emit(&mut b[..27]), Err(WireError::Truncated));
        let mut other = REQUEST;
        other[1] = 6;
        let p = Packet::new_checked(&other[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(WireError::Malformed));
    }
}
