//! Ethernet II frames with optional 802.1Q / 802.1ad VLAN tags.

use crate::field::{read_array, read_u16, room, write_u16};
use crate::{Result, WireError};

mod field {
    use crate::field::Field;
    /// Destination MAC address.
    pub(super) const DESTINATION: Field = 0..6;
    /// Source MAC address.
    pub(super) const SOURCE: Field = 6..12;
    /// EtherType (or the TPID of the first VLAN tag).
    pub(super) const ETHERTYPE: Field = 12..14;
    /// Tag control information of the first VLAN tag.
    pub(super) const VLAN_TCI: Field = 14..16;
    /// Length of one VLAN tag (TPID and TCI).
    pub(super) const VLAN_TAG_LEN: usize = 4;
}

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad service VLAN tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Legacy pre-standard QinQ tag.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Most VLAN tags walked before giving up.
pub const MAX_VLAN_TAGS: usize = 4;

/// A checked view of an Ethernet frame. VLAN tags are skipped; `ethertype` is the inner one.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
    l3_offset: usize,
    ethertype: u16,
    vlan_tags: u8,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks the header (and every VLAN tag) fits in the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let mut at = field::ETHERTYPE.start;
        let mut tags = 0u8;
        let mut ethertype = read_u16(b, at);
        while matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            if tags as usize >= MAX_VLAN_TAGS {
                return Err(WireError::Malformed);
            }
            at += field::VLAN_TAG_LEN;
            if b.len() < at + 2 {
                return Err(WireError::Truncated);
            }
            ethertype = read_u16(b, at);
            tags += 1;
        }
        Ok(Frame {
            buffer,
            l3_offset: at + field::ETHERTYPE.len(),
            ethertype,
            vlan_tags: tags,
        })
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The EtherType after any VLAN tags.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        self.ethertype
    }

    /// Offset of the layer-3 header from the start of the frame.
    #[inline]
    pub fn l3_offset(&self) -> usize {
        self.l3_offset
    }

    /// Number of VLAN tags skipped.
    #[inline]
    pub fn vlan_tags(&self) -> usize {
        self.vlan_tags as usize
    }

    /// VLAN id of the outermost tag, if any.
    #[inline]
    pub fn outer_vlan_id(&self) -> Option<u16> {
        (self.vlan_tags > 0).then(|| read_u16(self.buffer.as_ref(), field::VLAN_TCI.start) & 0x0fff)
    }

    /// The layer-3 payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.l3_offset..]
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    /// The layer-3 payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.l3_offset;
        &mut self.buffer.as_mut()[at..]
    }
}

/// The fields of an untagged Ethernet II header, to parse and to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// The addresses and the (inner, after any VLAN tags) EtherType of a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Repr {
        Repr {
            dst: frame.dst_addr(),
            src: frame.src_addr(),
            ethertype: frame.ethertype(),
        }
    }

    /// Length of the header `emit` writes (always [`HEADER_LEN`]: no VLAN tag).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The header as bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[field::DESTINATION].copy_from_slice(&self.dst);
        b[field::SOURCE].copy_from_slice(&self.src);
        write_u16(&mut b, field::ETHERTYPE.start, self.ethertype);
        b
    }

    /// Writes the header at the start of `buf`; `Truncated` when `buf` is shorter than it.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        room(buf, HEADER_LEN)?.copy_from_slice(&self.to_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged() {
        let mut f = [0u8; 20];
        f[0..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        f[12] = 0x08;
        let v = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(v.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.l3_offset(), 14);
        assert_eq!(v.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(v.vlan_tags(), 0);
        assert_eq!(v.payload().len(), 6);
    }

    #[test]
    fn qinq_tags_skipped() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[
            0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x86, 0xdd, 0x60,
        ]);
        let v = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(v.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(v.l3_offset(), 22);
        assert_eq!(v.vlan_tags(), 2);
        assert_eq!(v.outer_vlan_id(), Some(100));
    }

    #[test]
    fn truncated_tag() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(
            Frame::new_checked(&f[..]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Frame::new_checked(&f[..5]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn repr_emit_parse_round_trip() {
        let r = Repr {
            dst: [0xff; 6],
            src: [2, 0, 0, 0, 0, 1],
            ethertype: ETHERTYPE_ARP,
        };
        let mut b = [0u8; 16];
        r.emit(&mut b).unwrap();
        assert_eq!(
            b[..14],
            [255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 8, 6]
        );
        assert_eq!(Repr::parse(&Frame::new_checked(&b[..]).unwrap()), r);
        assert_eq!(r.emit(&mut b[..13]), Err(WireError::Truncated));
    }
}
