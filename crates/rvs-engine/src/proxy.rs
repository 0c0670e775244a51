//! PROXY protocol (haproxy's specification, versions 1 and 2): the header a FULLNAT real server
//! reads at the start of the TCP stream to learn the client's address.

use core::net::{IpAddr, SocketAddr};

use rvs_wire::{checksum, ip, ipv4, ipv6, tcp};

use crate::datapath::Layout;
use crate::flow::to16;
use crate::spec::ProxyProtocolVersion;
pub use crate::verdict::{Insertion, MAX_HEADER};

/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

/// The header announcing a TCP connection from `client` to `server` (same family).
pub fn header(version: ProxyProtocolVersion, client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocolVersion::V1 => {
            let fam = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                client.ip(),
                server.ip(),
                client.port(),
                server.port()
            )
            .into_bytes()
        }
        ProxyProtocolVersion::V2 => {
            let mut h = Vec::with_capacity(52);
            h.extend_from_slice(&V2_SIGNATURE);
            h.push(0x21); // version 2, PROXY command
            match (client.ip(), server.ip()) {
                (IpAddr::V4(c), IpAddr::V4(s)) => {
                    h.push(0x11); // AF_INET, STREAM
                    h.extend_from_slice(&12u16.to_be_bytes());
                    h.extend_from_slice(&c.octets());
                    h.extend_from_slice(&s.octets());
                }
                (c, s) => {
                    h.push(0x21); // AF_INET6, STREAM
                    h.extend_from_slice(&36u16.to_be_bytes());
                    h.extend_from_slice(&to16(c));
                    h.extend_from_slice(&to16(s));
                }
            }
            h.extend_from_slice(&client.port().to_be_bytes());
            h.extend_from_slice(&server.port().to_be_bytes());
            h
        }
    }
}

/// Per-connection PROXY protocol state: the client's first data sequence number and the
/// header inserted there.
///
/// Client->server: the first segment carrying data at the client's first sequence number gets
/// the header in front of its payload (again on a retransmission); every later segment has its
/// sequence number moved forward by the header length. Server->client: acknowledgements are
/// moved back by it, and the MSS option of the SYN-ACK is lowered by it, so the grown first
/// segment still fits the path. SACK-permitted is removed from the client's SYN, so no SACK
/// blocks (which would need shifting too) are ever exchanged.
#[derive(Debug)]
pub(crate) struct ProxyState {
    /// The header bytes.
    pub(crate) header: Box<[u8]>,
    /// Sequence number of the client's first data byte (its SYN's sequence + 1).
    pub(crate) first_seq: u32,
    /// The client's SYN was seen (`first_seq` is known).
    pub(crate) synced: bool,
    /// The header was inserted at least once.
    pub(crate) inserted: bool,
}

impl ProxyState {
    /// A state for a new connection.
    pub(crate) fn new(header: Vec<u8>) -> Self {
        ProxyState {
            header: header.into_boxed_slice(),
            first_seq: 0,
            synced: false,
            inserted: false,
        }
    }

    /// The shift applied to client->server sequence numbers (and back on acknowledgements).
    pub(crate) fn delta(&self) -> u32 {
        self.header.len() as u32
    }
}

/// `a` is after `b` in sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn read32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Writes a 32-bit field of the TCP header and keeps a complete checksum right.
pub(crate) fn write32(tcp: &mut [u8], at: usize, new: u32, partial: bool) {
    let Some(old) = read32(tcp, at) else {
        return;
    };
    if let Some(f) = tcp.get_mut(at..at + 4) {
        f.copy_from_slice(&new.to_be_bytes());
    }
    if !partial {
        update_check(tcp, |c| {
            checksum::update32(c, old.to_be_bytes(), new.to_be_bytes())
        });
    }
}

fn update_check(tcp: &mut [u8], f: impl FnOnce(u16) -> u16) {
    if let Some(field) = tcp.get_mut(tcp::CHECKSUM_OFFSET..tcp::CHECKSUM_OFFSET + 2) {
        let old = u16::from_be_bytes([field[0], field[1]]);
        field.copy_from_slice(&f(old).to_be_bytes());
    }
}

/// The most options of 2 bytes or more (the ones [`for_each_option`] reports) a TCP header holds:
/// 40 bytes of options.
const MAX_OPTIONS: usize = 20;

/// Calls `f(offset, kind)` for every option of a TCP header (offsets within `tcp`).
pub(crate) fn for_each_option(tcp: &[u8], mut f: impl FnMut(usize, u8)) {
    let hlen = usize::from(tcp.get(12).copied().unwrap_or(0) >> 4) * 4;
    let end = hlen.min(tcp.len());
    let mut i = tcp::MIN_HEADER_LEN;
    while i < end {
        let kind = tcp[i];
        match kind {
            0 => return,
            1 => i += 1,
            _ => {
                let Some(&len) = tcp.get(i + 1) else {
                    return;
                };
                if len < 2 || i + usize::from(len) > end {
                    return;
                }
                f(i, kind);
                i += usize::from(len);
            }
        }
    }
}

/// Replaces two bytes of the TCP header, keeping a complete checksum right. `at` may be odd:
/// the checksum update then covers the aligned words around them.
fn write16(tcp: &mut [u8], at: usize, new: [u8; 2], partial: bool) {
    let base = at & !1;
    let span = if at % 2 == 0 { 2 } else { 4 };
    let mut old_words = [0u8; 4];
    let mut new_words = [0u8; 4];
    let Some(old) = tcp.get(base..base + span) else {
        return;
    };
    old_words[..span].copy_from_slice(old);
    if let Some(f) = tcp.get_mut(at..at + 2) {
        f.copy_from_slice(&new);
    }
    let Some(updated) = tcp.get(base..base + span) else {
        return;
    };
    new_words[..span].copy_from_slice(updated);
    if partial {
        return;
    }
    update_check(tcp, |mut c| {
        for (o, n) in old_words[..span]
            .chunks_exact(2)
            .zip(new_words[..span].chunks_exact(2))
        {
            c = checksum::update16(
                c,
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([n[0], n[1]]),
            );
        }
        c
    });
}

/// Client->server segment (`tcp`: the TCP header and payload). Returns true when the header
/// must be inserted in front of this segment's payload.
pub(crate) fn on_input(st: &mut ProxyState, tcp: &mut [u8], partial: bool) -> bool {
    let Ok(view) = tcp::Packet::new_checked(&tcp[..]) else {
        return false;
    };
    let flags = view.flags();
    let seq = view.seq_number();
    let payload = view.payload().len();
    if flags.syn() {
        st.first_seq = seq.wrapping_add(1);
        st.synced = true;
        // Options take 2 bytes at least: at most MAX_OPTIONS of them fit in the header.
        let mut sack_permitted = [0usize; MAX_OPTIONS];
        let mut n = 0;
        for_each_option(tcp, |at, kind| {
            if kind == 4 && n < MAX_OPTIONS {
                sack_permitted[n] = at;
                n += 1;
            }
        });
        for &at in &sack_permitted[..n] {
            write16(tcp, at, [1, 1], partial);
        }
        return false;
    }
    if !st.synced {
        return false;
    }
    if payload > 0 && seq == st.first_seq {
        st.inserted = true;
        return true;
    }
    if seq_after(seq, st.first_seq) {
        write32(tcp, 4, seq.wrapping_add(st.delta()), partial);
    }
    false
}

/// Server->client segment: acknowledgements moved back, the SYN-ACK's MSS lowered.
pub(crate) fn on_output(st: &ProxyState, tcp: &mut [u8], partial: bool) {
    let Ok(view) = tcp::Packet::new_checked(&tcp[..]) else {
        return;
    };
    let flags = view.flags();
    let ack = view.ack_number();
    if flags.syn() {
        let mut mss = None;
        for_each_option(tcp, |at, kind| {
            if kind == 2 {
                mss = Some(at);
            }
        });
        if let Some(at) = mss {
            if let Some(v) = tcp
                .get(at + 2..at + 4)
                .map(|s| u16::from_be_bytes([s[0], s[1]]))
            {
                let lowered = v.saturating_sub(st.delta() as u16).max(536);
                write16(tcp, at + 2, lowered.to_be_bytes(), partial);
            }
        }
        return;
    }
    if !st.synced || !flags.ack() || !seq_after(ack, st.first_seq) {
        return;
    }
    let past = ack.wrapping_sub(st.first_seq);
    let new = if past >= st.delta() {
        ack.wrapping_sub(st.delta())
    } else {
        st.first_seq
    };
    write32(tcp, 8, new, partial);
}

/// Grows the IP and TCP headers of the packet at `frame[lay.l3..lay.end]` for `extra` bytes
/// inserted at the start of the TCP payload (the bytes themselves are sent by the data plane):
/// IP length fields, the IPv4 header checksum, and the TCP checksum (recomputed over the
/// resulting segment, or for `CHECKSUM_PARTIAL` only its pseudo-header length).
pub(crate) fn grow(frame: &mut [u8], lay: &Layout, extra: &[u8], partial: bool) -> Option<usize> {
    let delta = u16::try_from(extra.len()).ok()?;
    // The parser checked the IP and TCP headers at these offsets: no second check.
    let l3 = frame.get_mut(lay.l3..lay.end)?;
    let tcp_len = (lay.end - lay.l4) as u32 + u32::from(delta);
    let pseudo = if lay.v6 {
        let mut p = ipv6::Packet::new_unchecked(l3);
        p.set_payload_len(p.payload_len().checked_add(delta)?);
        checksum::pseudo_header_v6(p.src_octets(), p.dst_octets(), ip::TCP, tcp_len)
    } else {
        let mut p = ipv4::Packet::new_unchecked(l3);
        let old = p.total_len();
        let new = old.checked_add(delta)?;
        p.set_total_len(new);
        p.set_checksum(checksum::update16(p.checksum(), old, new));
        checksum::pseudo_header_v4(p.src_octets(), p.dst_octets(), ip::TCP, tcp_len)
    };
    let tcp_seg = frame.get_mut(lay.l4..lay.end)?;
    let hlen = tcp::Packet::new_unchecked(&*tcp_seg).header_len();
    if partial {
        // The field holds the folded pseudo-header sum, length included.
        update_check(tcp_seg, |c| checksum::fold(u32::from(c) + u32::from(delta)));
    } else {
        tcp::Packet::new_unchecked(&mut *tcp_seg).set_checksum(0);
        let (header, payload) = tcp_seg.split_at(hlen);
        let acc = checksum::add_bytes(checksum::add_bytes(pseudo, header), extra);
        // The payload now starts `extra.len()` bytes later: at an odd offset its words are
        // byte-swapped.
        let rest = checksum::fold(checksum::sum(payload));
        let rest = if extra.len() % 2 == 1 {
            rest.swap_bytes()
        } else {
            rest
        };
        let c = !checksum::fold(acc + u32::from(rest));
        tcp::Packet::new_unchecked(tcp_seg).set_checksum(c);
    }
    Some(lay.l4 + hlen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_bytes() {
        let c: SocketAddr = "192.168.1.2:40000".parse().expect("addr");
        let s: SocketAddr = "10.0.0.100:80".parse().expect("addr");
        assert_eq!(
            header(ProxyProtocolVersion::V1, c, s),
            b"PROXY TCP4 192.168.1.2 10.0.0.100 40000 80\r\n"
        );
        let v2 = header(ProxyProtocolVersion::V2, c, s);
        assert_eq!(
            v2,
            [
                0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
                0, 12, 192, 168, 1, 2, 10, 0, 0, 100, 0x9c, 0x40, 0, 80
            ]
        );
        let c6: SocketAddr = "[2001:db8::2]:40000".parse().expect("addr");
        let s6: SocketAddr = "[2001:db8::100]:80".parse().expect("addr");
        assert_eq!(
            header(ProxyProtocolVersion::V1, c6, s6),
            b"PROXY TCP6 2001:db8::2 2001:db8::100 40000 80\r\n"
        );
        let v2 = header(ProxyProtocolVersion::V2, c6, s6);
        assert_eq!(v2.len(), 16 + 36);
        assert_eq!(&v2[12..16], &[0x21, 0x21, 0, 36]);
    }
}
