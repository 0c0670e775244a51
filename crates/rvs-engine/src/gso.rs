//! Software segmentation of GSO super-frames (TCP over IPv4/IPv6, UDP L4): what the kernel's
//! `skb_gso_segment` would do, for packets that must be encapsulated (virtio-net has no GSO type
//! for IP-in-IP). Every segment comes out complete: lengths, IPv4 ids and header checksums,
//! TCP sequence numbers and flags, full L4 checksums. Pure, never panics.

use rvs_wire::ip::{TCP, UDP};
use rvs_wire::tcp::{self, Flags};
use rvs_wire::{checksum, ipv4, ipv6, udp};

/// TCP's CWR flag (`rvs_wire` names the flags up to URG only).
const TCP_CWR: u8 = 0x80;

/// What kind of super-frame is being cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP segmentation (virtio `GSO_TCPV4` / `GSO_TCPV6`).
    Tcp,
    /// UDP segmentation (virtio `GSO_UDP_L4`): each datagram gets its own UDP header.
    UdpL4,
}

/// Why a super-frame could not be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    /// Not an IPv4/IPv6 packet of the expected transport, or truncated.
    #[error("not a segmentable TCP/UDP packet")]
    Malformed,
    /// IPv6 extension headers or IPv4 fragments are not segmented.
    #[error("unsupported header layout")]
    Unsupported,
    /// `gso_size` is 0.
    #[error("zero segment size")]
    ZeroSize,
}

/// Where the headers of the packet are.
struct Layout {
    v6: bool,
    ip_hlen: usize,
    l4_hlen: usize,
    end: usize,
}

fn layout(l3: &[u8], kind: GsoKind) -> Result<Layout, GsoError> {
    let version = l3.first().ok_or(GsoError::Malformed)? >> 4;
    let (v6, ip_hlen, proto, end) = match version {
        4 => {
            let p = ipv4::Packet::new_checked(l3).map_err(|_| GsoError::Malformed)?;
            if p.is_fragment() {
                return Err(GsoError::Unsupported);
            }
            (
                false,
                p.header_len(),
                p.protocol(),
                usize::from(p.total_len()),
            )
        }
        6 if l3.len() >= ipv6::HEADER_LEN => {
            // Extension headers are not walked: a next header other than the transport's is
            // refused below.
            let p = ipv6::Packet::new_unchecked(l3);
            (true, ipv6::HEADER_LEN, p.next_header(), p.total_len())
        }
        _ => return Err(GsoError::Malformed),
    };
    if end > l3.len() {
        return Err(GsoError::Malformed);
    }
    let want = match kind {
        GsoKind::Tcp => TCP,
        GsoKind::UdpL4 => UDP,
    };
    if proto != want {
        return Err(if v6 {
            GsoError::Unsupported
        } else {
            GsoError::Malformed
        });
    }
    let l4 = &l3[ip_hlen..end];
    let l4_hlen = match kind {
        GsoKind::Tcp => tcp::Packet::new_checked(l4)
            .map_err(|_| GsoError::Malformed)?
            .header_len(),
        GsoKind::UdpL4 => udp::Packet::new_checked(l4)
            .map(|_| udp::HEADER_LEN)
            .map_err(|_| GsoError::Malformed)?,
    };
    Ok(Layout {
        v6,
        ip_hlen,
        l4_hlen,
        end,
    })
}

/// Cuts the IP packet at the start of `l3` into segments of at most `gso_size` payload bytes
/// and calls `emit` with each complete segment (IP header first), in order. A packet whose
/// payload already fits is emitted once, with its checksums completed.
pub fn segment(
    l3: &[u8],
    kind: GsoKind,
    gso_size: usize,
    emit: impl FnMut(&[u8]),
) -> Result<usize, GsoError> {
    segment_with(l3, kind, gso_size, &mut Vec::new(), emit)
}

/// [`segment`] building the segments in `buf`, a scratch buffer the caller keeps from one
/// super-frame to the next so that segmenting allocates nothing once it has grown.
pub fn segment_with(
    l3: &[u8],
    kind: GsoKind,
    gso_size: usize,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, GsoError> {
    if gso_size == 0 {
        return Err(GsoError::ZeroSize);
    }
    let lay = layout(l3, kind)?;
    let hlen = lay.ip_hlen + lay.l4_hlen;
    let payload = &l3[hlen..lay.end];
    let headers = &l3[..hlen];
    // `layout` checked the headers: they are read and written through unchecked views.
    let base_id = if lay.v6 {
        0
    } else {
        ipv4::Packet::new_unchecked(headers).ident()
    };
    let (base_seq, flags) = match kind {
        GsoKind::Tcp => {
            let t = tcp::Packet::new_unchecked(&headers[lay.ip_hlen..]);
            (t.seq_number(), t.flags().0)
        }
        GsoKind::UdpL4 => (0, 0),
    };
    let count = payload.len().div_ceil(gso_size).max(1);
    buf.clear();
    buf.reserve(hlen + gso_size.min(payload.len()));
    for i in 0..count {
        let chunk_start = i * gso_size;
        let chunk = payload
            .get(chunk_start..payload.len().min(chunk_start + gso_size))
            .unwrap_or(&[]);
        buf.clear();
        buf.extend_from_slice(headers);
        buf.extend_from_slice(chunk);
        let seg_len = buf.len();
        let (ip_h, l4) = buf.split_at_mut(lay.ip_hlen);
        let l4_len = l4.len() as u32;
        let pseudo = if lay.v6 {
            let mut p = ipv6::Packet::new_unchecked(&mut *ip_h);
            p.set_payload_len((seg_len - ipv6::HEADER_LEN) as u16);
            let proto = p.next_header();
            checksum::pseudo_header_v6(p.src_octets(), p.dst_octets(), proto, l4_len)
        } else {
            let mut p = ipv4::Packet::new_unchecked(&mut *ip_h);
            p.set_total_len(seg_len as u16);
            p.set_ident(base_id.wrapping_add(i as u16));
            p.fill_checksum();
            checksum::pseudo_header_v4(p.src_octets(), p.dst_octets(), p.protocol(), l4_len)
        };
        match kind {
            GsoKind::Tcp => {
                let mut t = tcp::Packet::new_unchecked(&mut *l4);
                t.set_seq_number(base_seq.wrapping_add(chunk_start as u32));
                let mut f = flags;
                if i + 1 < count {
                    f &= !(Flags::FIN | Flags::PSH);
                }
                if i > 0 {
                    f &= !TCP_CWR;
                }
                t.set_flags(Flags(f));
                t.set_checksum(0);
                let c = !checksum::fold(checksum::add_bytes(pseudo, l4));
                tcp::Packet::new_unchecked(l4).set_checksum(c);
            }
            GsoKind::UdpL4 => {
                let mut u = udp::Packet::new_unchecked(&mut *l4);
                u.set_len(l4_len as u16);
                u.set_checksum(0);
                let c = udp::checksum(pseudo, &[l4]);
                udp::Packet::new_unchecked(l4).set_checksum(c);
            }
        }
        emit(buf);
    }
    Ok(count)
}

/// The length of the largest segment [`segment`] would emit for this packet (IP header through
/// payload), for the path-MTU check; `None` when it cannot be segmented.
pub fn largest_segment(l3: &[u8], kind: GsoKind, gso_size: usize) -> Option<usize> {
    let lay = layout(l3, kind).ok()?;
    let hlen = lay.ip_hlen + lay.l4_hlen;
    Some(hlen + (lay.end - hlen).min(gso_size))
}
