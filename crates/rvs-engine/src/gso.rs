//! Software segmentation of GSO super-frames (TCP over IPv4/IPv6, UDP L4): what the kernel's
//! `skb_gso_segment` would do, for packets that must be encapsulated (virtio-net has no GSO type
//! for IP-in-IP). Every segment comes out complete: lengths, IPv4 ids and header checksums,
//! TCP sequence numbers and flags, full L4 checksums. Pure, never panics.

use rvs_wire::checksum;
use rvs_wire::ip::{TCP, UDP};
use rvs_wire::tcp::Flags;

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
        4 if l3.len() >= 20 => {
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            if u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff != 0 {
                return Err(GsoError::Unsupported);
            }
            (false, ihl, l3[9], total)
        }
        6 if l3.len() >= 40 => (
            true,
            40,
            l3[6],
            40 + usize::from(u16::from_be_bytes([l3[4], l3[5]])),
        ),
        _ => return Err(GsoError::Malformed),
    };
    if end > l3.len() || ip_hlen < 20 || end < ip_hlen {
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
    let l4_hlen = match kind {
        GsoKind::Tcp => {
            let off = *l3.get(ip_hlen + 12).ok_or(GsoError::Malformed)?;
            usize::from(off >> 4) * 4
        }
        GsoKind::UdpL4 => 8,
    };
    if l4_hlen < 8 || ip_hlen + l4_hlen > end {
        return Err(GsoError::Malformed);
    }
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
    let base_id = u16::from_be_bytes([l3[4], l3[5]]);
    let base_seq = u32::from_be_bytes([
        l3[lay.ip_hlen + 4],
        l3[lay.ip_hlen + 5],
        l3[lay.ip_hlen + 6],
        l3[lay.ip_hlen + 7],
    ]);
    let flags = l3[lay.ip_hlen + 13];
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
        let l4 = lay.ip_hlen;
        if lay.v6 {
            buf[4..6].copy_from_slice(&((seg_len - 40) as u16).to_be_bytes());
        } else {
            buf[2..4].copy_from_slice(&(seg_len as u16).to_be_bytes());
            buf[4..6].copy_from_slice(&base_id.wrapping_add(i as u16).to_be_bytes());
            buf[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&buf[..lay.ip_hlen]);
            buf[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let proto = match kind {
            GsoKind::Tcp => {
                let seq = base_seq.wrapping_add(chunk_start as u32);
                buf[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
                let mut f = flags;
                if i + 1 < count {
                    f &= !(Flags::FIN | Flags::PSH);
                }
                if i > 0 {
                    f &= !TCP_CWR;
                }
                buf[l4 + 13] = f;
                buf[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
                TCP
            }
            GsoKind::UdpL4 => {
                buf[l4 + 4..l4 + 6].copy_from_slice(&((seg_len - l4) as u16).to_be_bytes());
                buf[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
                UDP
            }
        };
        let l4_len = (seg_len - l4) as u32;
        let pseudo = if lay.v6 {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&buf[8..24]);
            d.copy_from_slice(&buf[24..40]);
            checksum::pseudo_header_v6(s, d, proto, l4_len)
        } else {
            checksum::pseudo_header_v4(
                [buf[12], buf[13], buf[14], buf[15]],
                [buf[16], buf[17], buf[18], buf[19]],
                proto,
                l4_len,
            )
        };
        let mut c = !checksum::fold(checksum::add_bytes(pseudo, &buf[l4..]));
        if proto == UDP && c == 0 {
            c = 0xffff;
        }
        let at = if proto == TCP { l4 + 16 } else { l4 + 6 };
        buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
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
