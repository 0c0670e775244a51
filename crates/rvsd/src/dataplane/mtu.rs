//! Packets longer than their path's MTU, for every forwarding method that sends the packet
//! itself (NAT, DR, FULLNAT; tunnels check their own in `rvs_engine::tunnel`): cut into
//! fragments when IPv4 allows it, refused with ICMP "fragmentation needed" / "packet too big"
//! otherwise, as the kernel's forwarding path does for IPVS (`ensure_mtu_is_adequate`,
//! `ip_fragment`). A datagram rvsd reassembled goes out cut again to no more than its largest
//! fragment was (the kernel's `frag_max_size`).
//!
//! The ICMP error must quote the packet as its sender sent it, before the engine rewrote it, so
//! the start of every frame that could be too long is kept in a [`Quote`] first.

use rvs_wire::ethernet;

/// Frames up to this many bytes of IP packet fit every link rvsd may send on (IPv4's minimum
/// datagram every host takes); longer ones have their start kept in a [`Quote`].
const ALWAYS_FITS: usize = 576;
/// Bytes of the original packet kept to quote in an ICMP error: its headers and the start of
/// its transport header, which is what the sender matches the error with.
const QUOTE_MAX: usize = 128;

/// The start of a received IP packet before the engine rewrote it.
pub(super) struct Quote {
    buf: [u8; QUOTE_MAX],
    len: usize,
}

impl Quote {
    /// Nothing kept.
    pub(super) fn new() -> Quote {
        Quote {
            buf: [0; QUOTE_MAX],
            len: 0,
        }
    }

    /// Keeps the start of `frame`'s IP packet when the packet is long enough to be refused
    /// somewhere; forgets it otherwise.
    pub(super) fn keep(&mut self, frame: &[u8]) {
        self.len = 0;
        if frame.len() <= ethernet::HEADER_LEN + ALWAYS_FITS {
            return;
        }
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            return;
        };
        let Some(packet) = frame.get(eth.l3_offset()..) else {
            return;
        };
        let len = packet.len().min(QUOTE_MAX);
        self.buf[..len].copy_from_slice(&packet[..len]);
        self.len = len;
    }

    /// The packet start kept, if any.
    pub(super) fn get(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.buf[..self.len])
    }
}

/// What to do with a packet on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// Send it as it is.
    Whole,
    /// Cut it into fragments of at most this many bytes.
    Cut(usize),
    /// Refuse it; tell the sender this MTU.
    Refuse(u32),
}

/// The IPv6 minimum MTU, the least a "packet too big" announces.
const IPV6_MIN_MTU: u32 = 1280;

/// Decides for a packet whose IP header is `header` (after any rewrite; its DF bit is the
/// sender's), `len` bytes long or, for a GSO frame, `segment` bytes per segment, on a path of
/// `mtu` bytes. `max_fragment` is set for a datagram rvsd reassembled: its largest fragment.
pub(super) fn fit(
    header: &[u8],
    len: usize,
    segment: Option<usize>,
    mtu: u32,
    max_fragment: Option<usize>,
) -> Fit {
    let mtu_bytes = mtu as usize;
    let limit = max_fragment.map_or(mtu_bytes, |m| m.min(mtu_bytes));
    if let Some(segment) = segment {
        return if segment <= mtu_bytes {
            Fit::Whole
        } else {
            Fit::Refuse(mtu)
        };
    }
    if len <= limit {
        return Fit::Whole;
    }
    // Its own fragments fitted this path: cut it as it came.
    if max_fragment.is_some_and(|m| m <= mtu_bytes) {
        return Fit::Cut(limit);
    }
    match header.first().map(|b| b >> 4) {
        Some(4) => {
            let dont_fragment = header.get(6).is_some_and(|b| b & 0x40 != 0);
            if dont_fragment {
                Fit::Refuse(mtu)
            } else {
                Fit::Cut(limit)
            }
        }
        Some(6) => Fit::Refuse(mtu.max(IPV6_MIN_MTU)),
        _ => Fit::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_DF: [u8; 20] = [
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    const V4: [u8; 20] = [
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    const V6: [u8; 1] = [0x60];

    #[test]
    fn packets_that_fit_go_whole() {
        assert_eq!(fit(&V4_DF, 1500, None, 1500, None), Fit::Whole);
        assert_eq!(fit(&V6, 1280, None, 1400, None), Fit::Whole);
        assert_eq!(fit(&V4, 1000, None, 1500, Some(1200)), Fit::Whole);
    }

    #[test]
    fn ipv4_without_df_is_cut_and_with_df_refused() {
        assert_eq!(fit(&V4, 1500, None, 1400, None), Fit::Cut(1400));
        assert_eq!(fit(&V4_DF, 1500, None, 1400, None), Fit::Refuse(1400));
    }

    #[test]
    fn ipv6_is_refused_unless_reassembled_from_fragments_that_fit() {
        assert_eq!(fit(&V6, 1500, None, 1400, None), Fit::Refuse(1400));
        assert_eq!(fit(&V6, 3000, None, 1500, Some(1280)), Fit::Cut(1280));
        assert_eq!(fit(&V6, 3000, None, 1400, Some(1500)), Fit::Refuse(1400));
        assert_eq!(fit(&V6, 3000, None, 1000, Some(1500)), Fit::Refuse(1280));
    }

    #[test]
    fn reassembled_datagrams_are_cut_to_their_largest_fragment() {
        assert_eq!(fit(&V4, 3000, None, 1500, Some(1000)), Fit::Cut(1000));
        assert_eq!(fit(&V4_DF, 3000, None, 1500, Some(1000)), Fit::Cut(1000));
        assert_eq!(fit(&V4_DF, 3000, None, 1400, Some(1500)), Fit::Refuse(1400));
        assert_eq!(fit(&V4, 3000, None, 1400, Some(1500)), Fit::Cut(1400));
    }

    #[test]
    fn gso_frames_are_judged_by_their_segments() {
        assert_eq!(fit(&V4, 64_000, Some(1500), 1500, None), Fit::Whole);
        assert_eq!(fit(&V4, 64_000, Some(1500), 1400, None), Fit::Refuse(1400));
    }

    #[test]
    fn only_long_packets_are_quoted() {
        let mut q = Quote::new();
        let mut frame = vec![0u8; 14 + 100];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        q.keep(&frame);
        assert!(q.get().is_none());
        let mut frame = vec![7u8; 14 + 1500];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        q.keep(&frame);
        assert_eq!(q.get(), Some(&[7u8; QUOTE_MAX][..]));
    }
}
