//! UDP headers (RFC 768).

use crate::field::{read_u16, room, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

/// UDP header length.
pub const HEADER_LEN: usize = field::CHECKSUM.end;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A checked view of a UDP datagram. The length field is not checked against the buffer (GSO
/// super-frames and ICMP-embedded headers carry lengths that do not match what is present).
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
    /// Wraps bytes that already passed [`Packet::new_checked`] (or that a [`Repr`] emitted)
    /// without checking them again. Getters may panic on bytes that would not pass.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }
    /// Length field.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }
    /// True when the length field is zero.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field (0 = none, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }
    /// Data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }
    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }
    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, v);
    }
}

/// A UDP header's fields, to parse and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the data after the header (the length field is 8 more).
    pub payload_len: u16,
    /// Checksum field as written (0 = none over IPv4); see [`checksum`] to compute it.
    pub checksum: u16,
}

impl Repr {
    /// The fields of a checked header; `Malformed` when its length field is below 8.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let payload_len = p
            .len()
            .checked_sub(HEADER_LEN as u16)
            .ok_or(WireError::Malformed)?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len,
            checksum: p.checksum(),
        })
    }

    /// Length of the header `emit` writes ([`HEADER_LEN`]).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header at the start of `buf`. `Truncated` when `buf` is shorter,
    /// `Malformed` when the length field would not fit in 16 bits.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self
            .payload_len
            .checked_add(HEADER_LEN as u16)
            .ok_or(WireError::Malformed)?;
        let b = room(buf, HEADER_LEN)?;
        write_u16(b, field::SRC_PORT.start, self.src_port);
        write_u16(b, field::DST_PORT.start, self.dst_port);
        write_u16(b, field::LENGTH.start, len);
        write_u16(b, field::CHECKSUM.start, self.checksum);
        Ok(())
    }
}

/// The checksum field value of a datagram whose pseudo-header sum is `pseudo` (see
/// [`crate::checksum::pseudo_header_v4`] / [`crate::checksum::pseudo_header_v6`]) and whose
/// bytes (header with a zero checksum field, then data) are the concatenation of `parts`: the
/// complemented sum, 0 sent as 0xffff (0 means "no checksum"). Each part but the last must
/// have an even length.
pub fn checksum(pseudo: u32, parts: &[&[u8]]) -> u16 {
    let acc = parts
        .iter()
        .fold(pseudo, |acc, p| crate::checksum::add_bytes(acc, p));
    match !crate::checksum::fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_emit() {
        let mut b = [0x00, 0x35, 0xd4, 0x31, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.len(), p.checksum()),
            (53, 54321, 12, 0)
        );
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(5353);
        p.set_checksum(0xffff);
        assert_eq!(&b[..8], &[0x14, 0xe9, 0xd4, 0x31, 0x00, 0x0c, 0xff, 0xff]);
        assert_eq!(
            Packet::new_checked(&b[..7]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn repr_round_trip_and_checksum() {
        // 10.0.0.1:53 -> 10.0.0.2:54321, data "hi"
        let r = Repr {
            src_port: 53,
            dst_port: 54321,
            payload_len: 2,
            checksum: 0,
        };
        let mut b = [0u8; 10];
        r.emit(&mut b).unwrap();
        b[8..].copy_from_slice(b"hi");
        assert_eq!(b[..8], [0x00, 0x35, 0xd4, 0x31, 0x00, 0x0a, 0x00, 0x00]);
        let pseudo = crate::checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 10);
        let c = checksum(pseudo, &[&b[..8], &b[8..]]);
        // 0x0a00+0x0001+0x0a00+0x0002+0x0011+0x000a + 0x0035+0xd431+0x000a + 0x6869 = 0x150f7,
        // folded 0x50f8.
        assert_eq!(c, !0x50f8u16);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_checksum(c);
        let back = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(back, Repr { checksum: c, ..r });
        assert_eq!(r.emit(&mut b[..7]), Err(WireError::Truncated));
        let long = Repr {
            payload_len: u16::MAX,
            ..r
        };
        assert_eq!(long.emit(&mut b), Err(WireError::Malformed));
    }
}
