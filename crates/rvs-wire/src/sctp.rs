//! SCTP packets (RFC 9260, formerly RFC 4960): the 12-byte common header, chunk iteration, and the
//! CRC32c checksum (RFC 9260 appendix A / RFC 4960 appendix B, RFC 3309).
//!
//! SCTP's checksum covers the whole SCTP packet (common header with the checksum field taken as
//! zero, then every chunk) and nothing of the IP header: there is no pseudo header, so changing
//! an address leaves it valid and changing a port means computing it again. The field holds the
//! CRC32c least significant byte first (as the RFC's reference code and Linux store it), so
//! [`Packet::checksum`] reads it as a little-endian number that compares with [`crc32c`].

use crate::field::{read_u16, read_u32, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const VERIFICATION_TAG: Field = 4..8;
    /// CRC32c, least significant byte first.
    pub(super) const CHECKSUM: Field = 8..12;
    /// Chunk header: type, flags, length.
    pub(super) const CHUNK_TYPE: usize = 0;
    pub(super) const CHUNK_FLAGS: usize = 1;
    pub(super) const CHUNK_LENGTH: Field = 2..4;
}

/// Common header length.
pub const HEADER_LEN: usize = field::CHECKSUM.end;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Chunk header length (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = field::CHUNK_LENGTH.end;

/// Chunk type numbers (RFC 9260 section 3.2, RFC 6525, RFC 4895, RFC 3758, RFC 5061).
pub mod chunk_type {
    /// Payload data.
    pub const DATA: u8 = 0;
    /// Initiation.
    pub const INIT: u8 = 1;
    /// Initiation acknowledgement.
    pub const INIT_ACK: u8 = 2;
    /// Selective acknowledgement.
    pub const SACK: u8 = 3;
    /// Heartbeat request.
    pub const HEARTBEAT: u8 = 4;
    /// Heartbeat acknowledgement.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// Abort.
    pub const ABORT: u8 = 6;
    /// Shutdown.
    pub const SHUTDOWN: u8 = 7;
    /// Shutdown acknowledgement.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// Operation error.
    pub const ERROR: u8 = 9;
    /// State cookie.
    pub const COOKIE_ECHO: u8 = 10;
    /// Cookie acknowledgement.
    pub const COOKIE_ACK: u8 = 11;
    /// Explicit congestion notification echo.
    pub const ECNE: u8 = 12;
    /// Congestion window reduced.
    pub const CWR: u8 = 13;
    /// Shutdown complete.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
    /// Authentication (RFC 4895).
    pub const AUTH: u8 = 15;
    /// Interleaved payload data (RFC 8260).
    pub const I_DATA: u8 = 64;
    /// Address configuration acknowledgement (RFC 5061).
    pub const ASCONF_ACK: u8 = 128;
    /// Stream re-configuration (RFC 6525).
    pub const RE_CONFIG: u8 = 130;
    /// Padding (RFC 4820).
    pub const PAD: u8 = 132;
    /// Forward TSN (RFC 3758).
    pub const FORWARD_TSN: u8 = 192;
    /// Address configuration change (RFC 5061).
    pub const ASCONF: u8 = 193;
    /// Interleaved forward TSN (RFC 8260).
    pub const I_FORWARD_TSN: u8 = 194;
}

/// The standard CRC32c (Castagnoli) of `bytes`, hardware-accelerated where the CPU can.
pub fn crc32c(bytes: &[u8]) -> u32 {
    ::crc32c::crc32c(bytes)
}

/// The SCTP checksum of a whole SCTP packet `b` (common header and chunks), computed with its
/// checksum field taken as zero whatever it holds. `b` shorter than the common header is summed
/// as it is.
pub fn compute_checksum(b: &[u8]) -> u32 {
    match (b.get(..CHECKSUM_OFFSET), b.get(HEADER_LEN..)) {
        (Some(head), Some(rest)) => {
            let crc = ::crc32c::crc32c(head);
            let crc = ::crc32c::crc32c_append(crc, &[0; 4]);
            ::crc32c::crc32c_append(crc, rest)
        }
        _ => ::crc32c::crc32c(b),
    }
}

#[inline]
fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// A chunk's 4-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Chunk type (see [`chunk_type`]).
    pub chunk_type: u8,
    /// Chunk flags.
    pub flags: u8,
    /// Chunk length: header and value, without the padding to 4 bytes.
    pub length: u16,
}

/// One whole chunk (header and value; the padding after it is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    bytes: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// Chunk type (see [`chunk_type`]).
    #[inline]
    pub fn chunk_type(&self) -> u8 {
        self.bytes[field::CHUNK_TYPE]
    }
    /// Chunk flags.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.bytes[field::CHUNK_FLAGS]
    }
    /// Chunk length field (header and value, without padding).
    #[inline]
    pub fn length(&self) -> u16 {
        read_u16(self.bytes, field::CHUNK_LENGTH.start)
    }
    /// The value after the 4-byte header.
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        &self.bytes[CHUNK_HEADER_LEN..]
    }
    /// Header and value.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The chunks of an SCTP packet in order. A chunk whose length field is below 4 yields
/// `Err(Malformed)`, one that runs past the buffer `Err(Truncated)`; iteration ends after an
/// error. The padding of the last chunk may be missing.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let err = |s: &mut Self, e| {
            s.rest = &[];
            Some(Err(e))
        };
        if self.rest.len() < CHUNK_HEADER_LEN {
            return err(self, WireError::Truncated);
        }
        let len = usize::from(read_u16(self.rest, field::CHUNK_LENGTH.start));
        if len < CHUNK_HEADER_LEN {
            return err(self, WireError::Malformed);
        }
        let Some(bytes) = self.rest.get(..len) else {
            return err(self, WireError::Truncated);
        };
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Chunk { bytes }))
    }
}

/// A checked view of an SCTP packet (common header, then chunks).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the 12-byte common header is present (chunks are checked as they are read).
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
    /// Verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VERIFICATION_TAG.start)
    }
    /// Checksum field as a CRC32c value (the field is stored least significant byte first).
    #[inline]
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes(crate::field::read_array(
            self.buffer.as_ref(),
            field::CHECKSUM.start,
        ))
    }
    /// The checksum this packet should carry (CRC32c over the whole buffer, checksum field as
    /// zero).
    #[inline]
    pub fn compute_checksum(&self) -> u32 {
        compute_checksum(self.buffer.as_ref())
    }
    /// True when the checksum field matches the packet.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
    }
    /// The bytes after the common header (the chunks and their padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// The chunks, in order.
    #[inline]
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks {
            rest: self.payload(),
        }
    }
    /// The header of the chunk starting `offset` bytes after the common header, when its four
    /// bytes are present (its value need not be: this is how IPVS peeks at chunk types).
    #[inline]
    pub fn chunk_header_at(&self, offset: usize) -> Option<ChunkHeader> {
        let b = self.payload().get(offset..)?.get(..CHUNK_HEADER_LEN)?;
        Some(ChunkHeader {
            chunk_type: b[field::CHUNK_TYPE],
            flags: b[field::CHUNK_FLAGS],
            length: read_u16(b, field::CHUNK_LENGTH.start),
        })
    }
    /// The first chunk's header, when present.
    #[inline]
    pub fn first_chunk_header(&self) -> Option<ChunkHeader> {
        self.chunk_header_at(0)
    }
    /// The offset (after the common header) of the chunk that follows the chunk at `offset`
    /// of length `length`: the length rounded up to 4 bytes.
    #[inline]
    pub fn next_chunk_offset(offset: usize, length: u16) -> usize {
        offset.saturating_add(align4(usize::from(length)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (the checksum must be computed again).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }
    /// Sets the destination port (the checksum must be computed again).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }
    /// Sets the verification tag (the checksum must be computed again).
    #[inline]
    pub fn set_verification_tag(&mut self, v: u32) {
        self.buffer.as_mut()[field::VERIFICATION_TAG].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the checksum field to a CRC32c value (stored least significant byte first).
    #[inline]
    pub fn set_checksum(&mut self, v: u32) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_le_bytes());
    }
    /// Computes the checksum over the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn crc32c_check_values() {
        // RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xff, 0..=31.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        // The usual check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn init_packet_parse_verify_emit() {
        // An INIT 1000 -> 80 as scapy 2.5 builds it (checksum bytes b3 55 cf ab).
        let mut b = hex("03e8005000000000b355cfab01000014112233440000ffff000a000a00000001");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1000, 80));
        assert_eq!(p.verification_tag(), 0);
        assert_eq!(p.checksum(), 0xabcf_55b3);
        assert!(p.verify_checksum());
        let chunks: Vec<_> = p.chunks().collect::<Result<_>>().unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].chunk_type(), chunk_type::INIT);
        assert_eq!((chunks[0].flags(), chunks[0].length()), (0, 20));
        assert_eq!(&chunks[0].value()[..4], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(
            p.first_chunk_header(),
            Some(ChunkHeader {
                chunk_type: 1,
                flags: 0,
                length: 20
            })
        );

        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst_port(8080);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_verification_tag(0x0102_0304);
        p.set_src_port(1);
        p.set_checksum(0xdead_beef);
        assert_eq!(&b[..12], &hex("00011f9001020304efbeadde")[..]);
    }

    #[test]
    fn chunk_iteration_padding_and_errors() {
        // COOKIE_ECHO of length 5 (3 padding bytes), then ABORT of length 4.
        let mut b = vec![0u8; 12];
        b.extend([10, 0, 0, 5, 0xaa, 0, 0, 0, 6, 1, 0, 4]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let types: Vec<_> = p.chunks().map(|c| c.unwrap().chunk_type()).collect();
        assert_eq!(types, [chunk_type::COOKIE_ECHO, chunk_type::ABORT]);
        let first = p.first_chunk_header().unwrap();
        let next = Packet::<&[u8]>::next_chunk_offset(0, first.length);
        assert_eq!(next, 8);
        assert_eq!(p.chunk_header_at(next).unwrap().flags, 1);
        assert_eq!(p.chunk_header_at(12), None);

        // Last chunk without its padding: fine.
        let mut c = vec![0u8; 12];
        c.extend([0, 3, 0, 5, 7]);
        let p = Packet::new_checked(&c[..]).unwrap();
        assert_eq!(p.chunks().count(), 1);

        // Length below 4: malformed, then the end.
        let mut d = vec![0u8; 12];
        d.extend([4, 0, 0, 2, 0, 0, 0, 0]);
        let p = Packet::new_checked(&d[..]).unwrap();
        let v: Vec<_> = p.chunks().collect();
        assert_eq!(v, [Err(WireError::Malformed)]);

        // Length past the end, or a cut header: truncated.
        let mut e = vec![0u8; 12];
        e.extend([0, 0, 0, 40, 1, 2]);
        let p = Packet::new_checked(&e[..]).unwrap();
        assert_eq!(p.chunks().collect::<Vec<_>>(), [Err(WireError::Truncated)]);
        let p = Packet::new_checked(&e[..14]).unwrap();
        assert_eq!(p.chunks().collect::<Vec<_>>(), [Err(WireError::Truncated)]);
        // No chunks at all.
        let p = Packet::new_checked(&e[..12]).unwrap();
        assert_eq!(p.chunks().count(), 0);
        assert_eq!(p.first_chunk_header(), None);

        assert_eq!(
            Packet::new_checked(&e[..11]).unwrap_err(),
            WireError::Truncated
        );
        b.truncate(0);
        assert_eq!(compute_checksum(&b), crc32c(&[]));
    }
}
