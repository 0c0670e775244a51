//! The first four bytes of a TCP, UDP or SCTP header: source and destination port.
//!
//! ICMP errors quote only the first 8 bytes of the offending transport header, too little for a
//! checked TCP view; this view needs only the ports.

use crate::field::{read_u16, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
}

/// A checked view of a transport header's port pair.
#[derive(Debug, Clone)]
pub struct Ports<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ports<T> {
    /// Checks four bytes are present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::DST_PORT.end {
            return Err(WireError::Truncated);
        }
        Ok(Ports { buffer })
    }
    /// Wraps bytes that already passed [`Ports::new_checked`] without checking them again.
    /// Getters may panic on bytes that would not pass.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ports { buffer }
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
    /// Number of bytes of the transport header present.
    #[inline]
    pub fn available(&self) -> usize {
        self.buffer.as_ref().len()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ports<T> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let mut b = [0, 80, 0x1f, 0x90];
        let mut p = Ports::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (80, 8080));
        p.set_src_port(443);
        assert_eq!(b, [1, 0xbb, 0x1f, 0x90]);
        assert!(Ports::new_checked(&b[..3]).is_err());
    }
}
