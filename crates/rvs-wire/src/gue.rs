//! GUE, generic UDP encapsulation (draft-ietf-intarea-gue), variant 0, as Linux's `fou` module
//! reads and writes it: the 4-byte base header, then optional fields of `hlen` 32-bit words;
//! Linux's only flag is the private-flags word, whose remote-checksum-offload flag announces
//! a 4-byte option (checksum start and field position, from the inner packet's start).

use crate::field::{read_u16, read_u32, room, write_u16, write_u32};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    /// Variant (2 bits), control bit, hlen (5 bits: optional fields in 32-bit words).
    pub(super) const VER_C_HLEN: usize = 0;
    /// IP protocol of the payload (or control message type).
    pub(super) const PROTO_CTYPE: usize = 1;
    pub(super) const FLAGS: Field = 2..4;
    /// The private flags word (present with [`super::FLAG_PRIV`]).
    pub(super) const PRIV_FLAGS: Field = 4..8;
    /// Remote checksum option: start, then field position (with [`super::PFLAG_REMCSUM`]).
    pub(super) const REMCSUM_START: Field = 8..10;
    pub(super) const REMCSUM_FIELD: Field = 10..12;
}

/// Length of the base header.
pub const MIN_HEADER_LEN: usize = field::PRIV_FLAGS.start;
/// The flag of the private flags word (Linux `GUE_FLAG_PRIV`).
pub const FLAG_PRIV: u16 = 0x0001;
/// The private flag of the remote checksum option (Linux `GUE_PFLAG_REMCSUM`).
pub const PFLAG_REMCSUM: u32 = 1 << 31;
/// Bytes the private flags word and the remote checksum option add.
pub const REMCSUM_OPTIONS_LEN: usize = field::REMCSUM_FIELD.end - field::PRIV_FLAGS.start;

/// A checked view of a GUE packet (variant 0: header, optional fields, payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks variant 0 and that the header with its optional fields is present, and that
    /// the private flags and the remote checksum option fit in them when flagged.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        if p.version() != 0 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < p.header_len() {
            return Err(WireError::Truncated);
        }
        if p.flags() & FLAG_PRIV != 0 {
            if p.header_len() < field::PRIV_FLAGS.end {
                return Err(WireError::Malformed);
            }
            let pflags = read_u32(p.buffer.as_ref(), field::PRIV_FLAGS.start);
            if pflags & PFLAG_REMCSUM != 0 && p.header_len() < field::REMCSUM_FIELD.end {
                return Err(WireError::Malformed);
            }
        }
        Ok(p)
    }

    /// Wraps bytes that already passed [`Packet::new_checked`] (or that a [`Repr`] emitted)
    /// without checking them again. Getters may panic on bytes that would not pass.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Variant (0 for a checked view).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }

    /// True for a control message.
    pub fn control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x20 != 0
    }

    /// Header length, optional fields included.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + usize::from(self.buffer.as_ref()[field::VER_C_HLEN] & 0x1f) * 4
    }

    /// IP protocol of the payload (control type for a control message).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO_CTYPE]
    }

    /// Flags word.
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// The private flags, when present.
    pub fn private_flags(&self) -> Option<u32> {
        (self.flags() & FLAG_PRIV != 0)
            .then(|| read_u32(self.buffer.as_ref(), field::PRIV_FLAGS.start))
    }

    /// The remote checksum option, when present.
    pub fn remote_checksum(&self) -> Option<RemoteChecksum> {
        let b = self.buffer.as_ref();
        self.private_flags()
            .filter(|f| f & PFLAG_REMCSUM != 0)
            .map(|_| RemoteChecksum {
                start: read_u16(b, field::REMCSUM_START.start),
                field: read_u16(b, field::REMCSUM_FIELD.start),
            })
    }

    /// The bytes after the header and its optional fields.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// The remote checksum offload option: the inner packet's checksum is left for the receiver,
/// which sums from `start` and stores the result at `field` (both from the inner packet's
/// start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteChecksum {
    /// Where checksumming starts.
    pub start: u16,
    /// Where the checksum field is.
    pub field: u16,
}

/// A GUE data header as rvs sends it (`ipvs_gue_encap`): variant 0, optionally the private
/// flags word with the remote checksum option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// IP protocol of the payload.
    pub protocol: u8,
    /// The remote checksum option, if any.
    pub remote_checksum: Option<RemoteChecksum>,
}

impl Repr {
    /// The fields of a checked data message; `Malformed` for a control message or one with
    /// other options than Linux's.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let r = Repr {
            protocol: p.protocol(),
            remote_checksum: p.remote_checksum(),
        };
        let plain = p.flags() == 0 && p.header_len() == MIN_HEADER_LEN;
        let remcsum = p.flags() == FLAG_PRIV
            && p.private_flags() == Some(PFLAG_REMCSUM)
            && p.header_len() == r.header_len();
        if p.control() || !(plain || remcsum) {
            return Err(WireError::Malformed);
        }
        Ok(r)
    }

    /// Length of the header `emit` writes: 4, or 12 with the remote checksum option.
    pub const fn header_len(&self) -> usize {
        if self.remote_checksum.is_some() {
            MIN_HEADER_LEN + REMCSUM_OPTIONS_LEN
        } else {
            MIN_HEADER_LEN
        }
    }

    /// Writes the header at the start of `buf`; `Truncated` when `buf` is shorter than it.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.header_len();
        let b = room(buf, len)?;
        b[field::VER_C_HLEN] = ((len - MIN_HEADER_LEN) / 4) as u8;
        b[field::PROTO_CTYPE] = self.protocol;
        match self.remote_checksum {
            None => write_u16(b, field::FLAGS.start, 0),
            Some(r) => {
                write_u16(b, field::FLAGS.start, FLAG_PRIV);
                write_u32(b, field::PRIV_FLAGS.start, PFLAG_REMCSUM);
                write_u16(b, field::REMCSUM_START.start, r.start);
                write_u16(b, field::REMCSUM_FIELD.start, r.field);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header() {
        let r = Repr {
            protocol: 4,
            remote_checksum: None,
        };
        let mut b = [0xffu8; 5];
        r.emit(&mut b).unwrap();
        assert_eq!(b, [0, 4, 0, 0, 0xff]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[0xff]);
        assert_eq!(Repr::parse(&p), Ok(r));
        assert_eq!(r.emit(&mut b[..3]), Err(WireError::Truncated));
    }

    #[test]
    fn remote_checksum_header() {
        let r = Repr {
            protocol: 41,
            remote_checksum: Some(RemoteChecksum {
                start: 40,
                field: 56,
            }),
        };
        let mut b = [0u8; 12];
        r.emit(&mut b).unwrap();
        assert_eq!(b, [2, 41, 0, 1, 0x80, 0, 0, 0, 0, 40, 0, 56]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 12);
        assert_eq!(Repr::parse(&p), Ok(r));
        assert_eq!(r.emit(&mut b[..11]), Err(WireError::Truncated));
    }

    #[test]
    fn rejects() {
        // Variant 1, options cut short, remote checksum flagged without room for it.
        assert_eq!(
            Packet::new_checked(&[0x40, 4, 0, 0][..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            Packet::new_checked(&[1, 4, 0, 0, 0][..]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[1, 4, 0, 1, 0x80, 0, 0, 0][..]).unwrap_err(),
            WireError::Malformed
        );
        let control = [0x20, 0, 0, 0];
        let p = Packet::new_checked(&control[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(WireError::Malformed));
    }
}
