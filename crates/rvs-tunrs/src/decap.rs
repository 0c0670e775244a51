//! Pure parsing of encapsulated packets: outer IPv4 (as raw IPv4 sockets deliver it, header
//! included; raw IPv6 sockets deliver only the payload, which [`ipip`] and [`gre`] take from
//! offset 0), GRE (RFC 2784/2890) and GUE (draft-ietf-intarea-gue, variant 0, with the
//! remote-checksum private option IPVS uses). Every function checks before it indexes.

use rvs_wire::checksum::{checksum, fold, sum};
use rvs_wire::ipv4::Packet;
use rvs_wire::WireError;

/// IP protocol number of IPv4-in-IP.
pub const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6-in-IP.
pub const PROTO_IPV6: u8 = 41;
/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecapError {
    /// Shorter than its headers say.
    #[error("truncated")]
    Truncated,
    /// A header field is impossible or unsupported.
    #[error("malformed or unsupported header")]
    Malformed,
    /// The payload is not the IP version the header announces.
    #[error("inner packet is not the announced IP version")]
    BadInner,
    /// The GRE checksum does not verify.
    #[error("bad GRE checksum")]
    BadChecksum,
    /// A GUE control message (not data).
    #[error("GUE control message")]
    Control,
}

/// A decapsulated inner packet: where it lies in the buffer, and a remote checksum to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// Start of the inner IP packet in the buffer.
    pub start: usize,
    /// End (exclusive) of the inner IP packet.
    pub end: usize,
    /// GUE remote checksum offload: (checksum start, checksum field), relative to `start`.
    pub remote_csum: Option<(usize, usize)>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, DecapError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(DecapError::Truncated)
}

/// Checks that `buf[start..]` begins with an IP packet of `version` and returns its end.
fn inner_end(buf: &[u8], start: usize, version: u8) -> Result<usize, DecapError> {
    let p = buf.get(start..).ok_or(DecapError::Truncated)?;
    if p.first().map(|b| b >> 4) != Some(version) {
        return Err(DecapError::BadInner);
    }
    let len = match version {
        4 => {
            let total = usize::from(be16(p, 2)?);
            if total < 20 || usize::from(p[0] & 0x0f) * 4 < 20 {
                return Err(DecapError::BadInner);
            }
            total
        }
        _ => 40 + usize::from(be16(p, 4)?),
    };
    if len > p.len() {
        return Err(DecapError::Truncated);
    }
    Ok(start + len)
}

/// The IP version an IPIP-style protocol number or GRE protocol type carries.
fn version_of_proto(proto: u8) -> Result<u8, DecapError> {
    match proto {
        PROTO_IPIP => Ok(4),
        PROTO_IPV6 => Ok(6),
        _ => Err(DecapError::Malformed),
    }
}

/// Strips an outer IPv4 header (as a raw `AF_INET` socket delivers the packet): returns the
/// protocol and where the payload lies.
pub fn outer_ipv4(buf: &[u8]) -> Result<(u8, usize, usize), DecapError> {
    let p = Packet::new_checked(buf).map_err(|e| match e {
        WireError::Truncated => DecapError::Truncated,
        WireError::Malformed => DecapError::Malformed,
    })?;
    if p.is_fragment() {
        return Err(DecapError::Malformed);
    }
    Ok((p.protocol(), p.header_len(), usize::from(p.total_len())))
}

/// IPIP / IPv6-in-IP: the payload `buf[start..end]` of protocol `proto` is the inner packet.
pub fn ipip(buf: &[u8], proto: u8, start: usize, end: usize) -> Result<Inner, DecapError> {
    let body = buf.get(..end).ok_or(DecapError::Truncated)?;
    let inner_end = inner_end(body, start, version_of_proto(proto)?)?;
    Ok(Inner {
        start,
        end: inner_end,
        remote_csum: None,
    })
}

/// GRE (version 0): checksum (verified), key and sequence are accepted; routing is not.
pub fn gre(buf: &[u8], start: usize, end: usize) -> Result<Inner, DecapError> {
    let g = buf.get(start..end).ok_or(DecapError::Truncated)?;
    let flags = be16(g, 0)?;
    if flags & 0x4000 != 0 || flags & 0x0007 != 0 || flags & 0x0ff8 & !0x3000 != 0 {
        return Err(DecapError::Malformed);
    }
    let mut hlen = 4;
    if flags & 0x8000 != 0 {
        if g.len() < 8 {
            return Err(DecapError::Truncated);
        }
        if fold(sum(g)) != 0xffff {
            return Err(DecapError::BadChecksum);
        }
        hlen += 4;
    }
    if flags & 0x2000 != 0 {
        hlen += 4;
    }
    if flags & 0x1000 != 0 {
        hlen += 4;
    }
    let version = match be16(g, 2)? {
        0x0800 => 4,
        0x86dd => 6,
        _ => return Err(DecapError::Malformed),
    };
    if hlen > g.len() {
        return Err(DecapError::Truncated);
    }
    let inner_end = inner_end(g, hlen, version)?;
    Ok(Inner {
        start: start + hlen,
        end: start + inner_end,
        remote_csum: None,
    })
}

/// GUE variant 0 (the UDP payload `buf`): data messages only; the private flags word with the
/// remote-checksum option is understood, other options are skipped by the header length.
pub fn gue(buf: &[u8]) -> Result<Inner, DecapError> {
    let first = *buf.first().ok_or(DecapError::Truncated)?;
    if first >> 6 != 0 {
        return Err(DecapError::Malformed);
    }
    if first & 0x20 != 0 {
        return Err(DecapError::Control);
    }
    let hlen = 4 + usize::from(first & 0x1f) * 4;
    if hlen > buf.len() {
        return Err(DecapError::Truncated);
    }
    let version = version_of_proto(buf[1])?;
    let flags = be16(buf, 2)?;
    let mut remote_csum = None;
    if flags & 1 != 0 {
        let private = buf
            .get(4..8)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .filter(|_| hlen >= 8)
            .ok_or(DecapError::Malformed)?;
        if private & (1 << 31) != 0 {
            if hlen < 12 {
                return Err(DecapError::Malformed);
            }
            remote_csum = Some((usize::from(be16(buf, 8)?), usize::from(be16(buf, 10)?)));
        }
    }
    let end = inner_end(buf, hlen, version)?;
    Ok(Inner {
        start: hlen,
        end,
        remote_csum,
    })
}

/// Completes a checksum the sender left for us (GUE remote checksum offload): the field at
/// `field` holds the pseudo-header sum; the complemented sum from `start` to the end replaces it.
pub fn apply_remote_csum(inner: &mut [u8], start: usize, field: usize) -> Result<(), DecapError> {
    if start >= inner.len() || field < start || field + 2 > inner.len() {
        return Err(DecapError::Malformed);
    }
    let c = checksum(&inner[start..]);
    let c = if c == 0 { 0xffff } else { c };
    inner[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Completes the inner TCP/UDP checksum of `inner` (a whole IP packet) when the sender left it
/// partial: the field holds just the pseudo-header sum and the segment does not verify. On veth
/// a tunnelled skb keeps CHECKSUM_PARTIAL (the BPF data plane tunnels without completing it,
/// as a NIC would), which a kernel decapsulator trusts but raw and UDP sockets cannot see.
/// Returns whether it completed one; anything else is left as it is.
pub fn complete_partial(inner: &mut [u8]) -> bool {
    use rvs_wire::checksum::{pseudo_header_v4, pseudo_header_v6};
    let (proto, l4, pseudo) = match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= 20 => {
            let hlen = usize::from(inner[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
            if hlen < 20 || total < hlen || total > inner.len() {
                return false;
            }
            let mut src = [0u8; 4];
            let mut dst = [0u8; 4];
            src.copy_from_slice(&inner[12..16]);
            dst.copy_from_slice(&inner[16..20]);
            let pseudo = pseudo_header_v4(src, dst, inner[9], (total - hlen) as u32);
            (inner[9], hlen..total, pseudo)
        }
        Some(6) if inner.len() >= 40 => {
            let total = 40 + usize::from(u16::from_be_bytes([inner[4], inner[5]]));
            if total > inner.len() {
                return false;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&inner[8..24]);
            dst.copy_from_slice(&inner[24..40]);
            let pseudo = pseudo_header_v6(src, dst, inner[6], (total - 40) as u32);
            (inner[6], 40..total, pseudo)
        }
        _ => return false,
    };
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    let Some(segment) = inner.get_mut(l4) else {
        return false;
    };
    let Some(stored) = segment.get(field..field + 2) else {
        return false;
    };
    let stored = u16::from_be_bytes([stored[0], stored[1]]);
    if stored != fold(pseudo) || fold(rvs_wire::checksum::add_bytes(pseudo, segment)) == 0xffff {
        return false;
    }
    segment[field..field + 2].copy_from_slice(&[0, 0]);
    let c = !fold(rvs_wire::checksum::add_bytes(pseudo, segment));
    let c = if c == 0 && proto == 17 { 0xffff } else { c };
    segment[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn inner4() -> Vec<u8> {
        ipv4(6, &[0u8; 20])
    }

    #[test]
    fn ipip_v4_in_v4() {
        let inner = inner4();
        let outer = ipv4(PROTO_IPIP, &inner);
        let (proto, s, e) = outer_ipv4(&outer).expect("outer");
        assert_eq!(proto, PROTO_IPIP);
        let got = ipip(&outer, proto, s, e).expect("inner");
        assert_eq!(&outer[got.start..got.end], &inner[..]);
    }

    #[test]
    fn ipip_rejects_wrong_version_and_truncation() {
        let inner = inner4();
        let outer = ipv4(PROTO_IPV6, &inner);
        let (proto, s, e) = outer_ipv4(&outer).expect("outer");
        assert_eq!(ipip(&outer, proto, s, e), Err(DecapError::BadInner));
        assert_eq!(outer_ipv4(&outer[..30]), Err(DecapError::Truncated));
        // Fragments (more-fragments set, or an offset) are not reassembled: dropped.
        let mut frag = outer.clone();
        frag[6] = 0x20;
        assert_eq!(outer_ipv4(&frag), Err(DecapError::Malformed));
        frag[6] = 0;
        frag[7] = 1;
        assert_eq!(outer_ipv4(&frag), Err(DecapError::Malformed));
        let mut v6 = outer.clone();
        v6[0] = 0x65;
        assert_eq!(outer_ipv4(&v6), Err(DecapError::Malformed));
        for cut in 0..outer.len() {
            let _ = outer_ipv4(&outer[..cut]).and_then(|(p, s, e)| ipip(&outer[..cut], p, s, e));
        }
    }

    fn inner6() -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p.extend_from_slice(&[0u8; 20]);
        p
    }

    #[test]
    fn every_family_inside_every_family() {
        // IPv6 inside IPv4 (protocol 41).
        let inner = inner6();
        let outer = ipv4(PROTO_IPV6, &inner);
        let (proto, s, e) = outer_ipv4(&outer).expect("outer");
        let got = ipip(&outer, proto, s, e).expect("6in4");
        assert_eq!(&outer[got.start..got.end], &inner[..]);
        // Payloads of raw IPv6 sockets: IPv6 (41) and IPv4 (4) inside IPv6.
        let got = ipip(&inner, PROTO_IPV6, 0, inner.len()).expect("6in6");
        assert_eq!((got.start, got.end), (0, 60));
        let v4 = inner4();
        let got = ipip(&v4, PROTO_IPIP, 0, v4.len()).expect("4in6");
        assert_eq!((got.start, got.end), (0, 40));
        assert_eq!(
            ipip(&v4, PROTO_IPV6, 0, v4.len()),
            Err(DecapError::BadInner)
        );
        // GRE and GUE carrying IPv6.
        let mut g = vec![0, 0, 0x86, 0xdd];
        g.extend_from_slice(&inner);
        let got = gre(&g, 0, g.len()).expect("gre6");
        assert_eq!(&g[got.start..got.end], &inner[..]);
        let mut u = vec![0, PROTO_IPV6, 0, 0];
        u.extend_from_slice(&inner);
        let got = gue(&u).expect("gue6");
        assert_eq!(&u[got.start..got.end], &inner[..]);
        for cut in 0..u.len() {
            let _ = gue(&u[..cut]);
            let _ = gre(&g[..cut], 0, cut);
            let _ = ipip(
                &inner[..cut.min(inner.len())],
                PROTO_IPV6,
                0,
                cut.min(inner.len()),
            );
        }
    }

    #[test]
    fn gre_with_and_without_checksum() {
        let inner = inner4();
        let mut g = vec![0, 0, 0x08, 0x00];
        g.extend_from_slice(&inner);
        let got = gre(&g, 0, g.len()).expect("plain");
        assert_eq!(&g[got.start..got.end], &inner[..]);
        let mut c = vec![0x80, 0, 0x08, 0x00, 0, 0, 0, 0];
        c.extend_from_slice(&inner);
        let ck = !fold(sum(&c));
        c[4..6].copy_from_slice(&ck.to_be_bytes());
        let got = gre(&c, 0, c.len()).expect("csum");
        assert_eq!(got.start, 8);
        c[10] ^= 1;
        assert_eq!(gre(&c, 0, c.len()), Err(DecapError::BadChecksum));
        assert_eq!(gre(&[0x40, 0, 8, 0], 0, 4), Err(DecapError::Malformed));
    }

    #[test]
    fn partial_inner_checksum_is_completed_once() {
        use rvs_wire::checksum::pseudo_header_v4;
        let mut tcp = vec![0u8; 24];
        tcp[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        tcp[12] = 5 << 4;
        tcp[20..].copy_from_slice(b"data");
        let mut p = ipv4(6, &tcp);
        let pseudo = pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 24);
        p[20 + 16..20 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
        assert!(complete_partial(&mut p));
        assert_eq!(
            fold(rvs_wire::checksum::add_bytes(pseudo, &p[20..])),
            0xffff
        );
        let done = p.clone();
        assert!(
            !complete_partial(&mut p),
            "a complete checksum is left alone"
        );
        assert_eq!(p, done);
    }

    #[test]
    fn gue_plain_remcsum_and_garbage() {
        let inner = inner4();
        let mut g = vec![0, PROTO_IPIP, 0, 0];
        g.extend_from_slice(&inner);
        assert_eq!(gue(&g).expect("plain").start, 4);
        let mut r = vec![2, PROTO_IPIP, 0, 1, 0x80, 0, 0, 0, 0, 20, 0, 36];
        r.extend_from_slice(&inner);
        let got = gue(&r).expect("remcsum");
        assert_eq!((got.start, got.remote_csum), (12, Some((20, 36))));
        assert_eq!(gue(&[0x20, 4, 0, 0]), Err(DecapError::Control));
        assert_eq!(gue(&[0x40, 4, 0, 0]), Err(DecapError::Malformed));
        assert_eq!(gue(&[0, 17, 0, 0]), Err(DecapError::Malformed));
        for cut in 0..r.len() {
            let _ = gue(&r[..cut]);
        }
    }

    #[test]
    fn remote_checksum_completes_the_field() {
        let mut p = inner4();
        apply_remote_csum(&mut p, 20, 36).expect("in range");
        assert_eq!(fold(sum(&p[20..])), 0xffff);
        assert!(apply_remote_csum(&mut p, 20, 39).is_err());
    }
}
