//! The virtio-net header that PACKET_VNET_HDR puts in front of every frame.
//!
//! Layout is `struct virtio_net_hdr` (10 bytes) from `<linux/virtio_net.h>`, fields in host byte order
//! (packet sockets use the legacy, native-endian header).

/// The virtio-net header carried with each frame on a `PACKET_VNET_HDR` socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VnetHdr::F_*` flags.
    pub flags: u8,
    /// `VnetHdr::GSO_*` segmentation type, possibly or'ed with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (Ethernet through L4) of a GSO frame.
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO frame.
    pub gso_size: u16,
    /// Offset from the frame start where checksumming starts (when [`VnetHdr::F_NEEDS_CSUM`]).
    pub csum_start: u16,
    /// Offset from `csum_start` at which to store the checksum.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire (and in memory).
    pub const LEN: usize = 10;
    /// The checksum is partial: the kernel must finish it from `csum_start`/`csum_offset`.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum has already been validated.
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 segmentation.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (legacy UFO).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 segmentation.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation offload (USO, L4).
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit: the TCP stream uses ECN (CWR must be set on the first segment only).
    pub const GSO_ECN: u8 = 0x80;

    /// True when the kernel must finish the L4 checksum of this frame.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// True when this is a GSO frame (larger than the MTU, segmented on the way out).
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }

    /// Adjusts the header after the frame's start moved by `delta` bytes (positive when bytes were
    /// inserted in front, e.g. an outer header added; negative when removed). Offsets that would
    /// fall outside the 16-bit range are left untouched and `false` is returned.
    pub fn shift(&mut self, delta: i32) -> bool {
        let start = i32::from(self.csum_start) + delta;
        let hdr = i32::from(self.hdr_len) + delta;
        let start_ok = !self.needs_csum() || (0..=i32::from(u16::MAX)).contains(&start);
        let hdr_ok = !self.is_gso() || (0..=i32::from(u16::MAX)).contains(&hdr);
        if !(start_ok && hdr_ok) {
            return false;
        }
        if self.needs_csum() {
            self.csum_start = start as u16;
        }
        if self.is_gso() {
            self.hdr_len = hdr as u16;
        }
        true
    }

    /// Reads a header from its 10 native-endian bytes.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        }
    }

    /// Writes the header as its 10 native-endian bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_ten_bytes() {
        assert_eq!(std::mem::size_of::<VnetHdr>(), VnetHdr::LEN);
    }

    #[test]
    fn bytes_round_trip() {
        let h = VnetHdr {
            flags: 1,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::from_bytes(&h.to_bytes()), h);
        assert!(h.needs_csum() && h.is_gso());
    }

    #[test]
    fn shift_moves_offsets_and_refuses_overflow() {
        let mut h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert!(h.shift(20));
        assert_eq!((h.csum_start, h.hdr_len), (54, 86));
        assert!(!h.shift(-100));
        assert_eq!((h.csum_start, h.hdr_len), (54, 86));
        let mut plain = VnetHdr::default();
        assert!(plain.shift(-100));
        assert_eq!(plain, VnetHdr::default());
    }
}
