//! GRE headers (RFC 2784, with RFC 2890's key and sequence number fields read).

use crate::checksum;
use crate::field::{read_u16, read_u32, room, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    /// Checksum-present, key-present and sequence-present bits, reserved bits, version.
    pub(super) const FLAGS_VERSION: Field = 0..2;
    pub(super) const PROTOCOL_TYPE: Field = 2..4;
    /// The optional fields start here, each 4 bytes: checksum (and reserved), key, sequence.
    pub(super) const OPTIONAL: usize = 4;
    pub(super) const CHECKSUM: Field = 4..6;
}

/// Length of the header without optional fields.
pub const MIN_HEADER_LEN: usize = field::OPTIONAL;
/// Checksum-present bit of the first 16-bit word.
pub const FLAG_CHECKSUM: u16 = 0x8000;
/// Key-present bit (RFC 2890).
pub const FLAG_KEY: u16 = 0x2000;
/// Sequence-number-present bit (RFC 2890).
pub const FLAG_SEQUENCE: u16 = 0x1000;
/// The version bits (version 0 is the only one this view reads).
const VERSION_MASK: u16 = 0x0007;

/// A checked view of a GRE packet (header, then the payload of `protocol_type`).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 0 and that the header, optional fields included, is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        if p.flags() & VERSION_MASK != 0 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < p.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Wraps bytes that already passed [`Packet::new_checked`] (or that a [`Repr`] emitted)
    /// without checking them again. Getters may panic on bytes that would not pass.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// The first 16-bit word: flag bits and version.
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_VERSION.start)
    }

    /// True when the checksum field is present.
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_CHECKSUM != 0
    }

    /// EtherType of the payload.
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL_TYPE.start)
    }

    /// Header length, optional fields included.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        MIN_HEADER_LEN
            + [FLAG_CHECKSUM, FLAG_KEY, FLAG_SEQUENCE]
                .iter()
                .filter(|&&bit| f & bit != 0)
                .count()
                * 4
    }

    /// The checksum field, when present.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| read_u16(self.buffer.as_ref(), field::CHECKSUM.start))
    }

    /// The key, when present.
    pub fn key(&self) -> Option<u32> {
        let at = field::OPTIONAL + if self.checksum_present() { 4 } else { 0 };
        (self.flags() & FLAG_KEY != 0).then(|| read_u32(self.buffer.as_ref(), at))
    }

    /// The sequence number, when present.
    pub fn sequence(&self) -> Option<u32> {
        let f = self.flags();
        let at = field::OPTIONAL
            + if f & FLAG_CHECKSUM != 0 { 4 } else { 0 }
            + if f & FLAG_KEY != 0 { 4 } else { 0 };
        (f & FLAG_SEQUENCE != 0).then(|| read_u32(self.buffer.as_ref(), at))
    }

    /// True when there is no checksum or it verifies over the header and the payload.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// A GRE header as rvs sends it (`ipvs_gre_encap`): version 0, no key or sequence number,
/// optionally a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// EtherType of the payload.
    pub protocol_type: u16,
    /// Whether the header carries a checksum over itself and the payload.
    pub checksum: bool,
}

impl Repr {
    /// The fields of a checked header; `Malformed` when it has a key or a sequence number,
    /// which this representation does not carry.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if p.flags() & (FLAG_KEY | FLAG_SEQUENCE) != 0 {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            protocol_type: p.protocol_type(),
            checksum: p.checksum_present(),
        })
    }

    /// Length of the header `emit` writes: 4, or 8 with the checksum.
    pub const fn header_len(&self) -> usize {
        if self.checksum {
            MIN_HEADER_LEN + 4
        } else {
            MIN_HEADER_LEN
        }
    }

    /// Writes the header at the start of `buf`; with a checksum, it covers the header and
    /// `payload` (the packet that follows it, not written). `Truncated` when `buf` is shorter
    /// than the header.
    pub fn emit(&self, buf: &mut [u8], payload: &[u8]) -> Result<()> {
        let b = room(buf, self.header_len())?;
        b.fill(0);
        if self.checksum {
            write_u16(b, field::FLAGS_VERSION.start, FLAG_CHECKSUM);
        }
        write_u16(b, field::PROTOCOL_TYPE.start, self.protocol_type);
        if self.checksum {
            let c = !checksum::fold(checksum::add_bytes(checksum::sum(b), payload));
            write_u16(b, field::CHECKSUM.start, c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_plain_and_checksummed() {
        let mut b = [0xaau8; 8];
        let plain = Repr {
            protocol_type: 0x0800,
            checksum: false,
        };
        plain.emit(&mut b, &[1, 2]).unwrap();
        assert_eq!(b[..4], [0, 0, 0x08, 0x00]);
        let p = Packet::new_checked(&b[..4]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(plain));
        assert_eq!(p.checksum(), None);

        let payload = [0x45, 0x00, 0x12, 0x34];
        let sum = Repr {
            protocol_type: 0x86dd,
            checksum: true,
        };
        sum.emit(&mut b, &payload).unwrap();
        // 0x8000 + 0x86dd + 0x4500 + 0x1234 = 0x15e11 -> 0x5e12, complemented 0xa1ed.
        assert_eq!(b, [0x80, 0, 0x86, 0xdd, 0xa1, 0xed, 0, 0]);
        let mut whole = b.to_vec();
        whole.extend_from_slice(&payload);
        let p = Packet::new_checked(&whole[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.payload(), &payload);
        assert_eq!(Repr::parse(&p), Ok(sum));
        assert_eq!(sum.emit(&mut b[..7], &[]), Err(WireError::Truncated));
    }

    #[test]
    fn optional_fields_and_rejects() {
        // Checksum, key and sequence all present.
        let b = [0xb0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0x45];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.key(), p.sequence()), (Some(7), Some(9)));
        assert_eq!(p.payload(), &[0x45]);
        assert_eq!(Repr::parse(&p), Err(WireError::Malformed));
        assert_eq!(
            Packet::new_checked(&b[..15]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[0, 1, 8, 0][..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            Packet::new_checked(&[0, 0, 8][..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
