//! Big-endian field access helpers. Callers guarantee the offsets are in bounds (checked views).
//!
//! Each header module names its fields as byte ranges in a private `mod field` (smoltcp's
//! style), so a field's offset and width are written once.

/// A fixed field: the byte range it occupies from the start of its header.
pub(crate) type Field = core::ops::Range<usize>;

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn read_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// The first `len` bytes of `buf`, or `Truncated` when it is shorter: where a `Repr` emits.
#[inline]
pub(crate) fn room(buf: &mut [u8], len: usize) -> crate::Result<&mut [u8]> {
    buf.get_mut(..len).ok_or(crate::WireError::Truncated)
}
