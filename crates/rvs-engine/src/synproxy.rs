//! SYN proxy, an rvs extension (DPVS has one; IPVS has none), on with the `syn_proxy` policy
//! switch for TCP services whose real servers are all NAT or FULLNAT:
//! - a client's SYN that finds no connection is answered by the director with a SYN-ACK whose
//!   sequence number is a SYN cookie (RFC 4987 section 3.6), and nothing is kept;
//! - the client's ACK, when it carries a valid cookie, creates the connection and goes on to the
//!   real server turned into the SYN the server would have had (the client's ISN, the MSS the
//!   cookie holds);
//! - the real server's SYN-ACK is answered by the director (turned into that ACK), and from then
//!   on every segment's sequence number (server to client) or acknowledgement number (client to
//!   server) is shifted by the difference between the cookie and the server's ISN.
//!
//! A spoofed SYN flood so costs one answer per SYN and no memory, and the real servers see none
//! of it. Client segments that come before the real server has answered are deferred
//! ([`crate::Verdict::Defer`]) for the data plane to offer again.
//!
//! The director's SYN-ACK offers an MSS only: window scaling, SACK and timestamps are not
//! offered (what the real server will choose of them is not known when the client is answered),
//! so neither end uses them on a proxied connection.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::hash::BuildHasher;

use rvs_wire::checksum;
use rvs_wire::tcp::{self, Flags};

use crate::conn::{Conn, F_EXT, F_NO_OUTPUT, F_V6};
use crate::datapath::Layout;
use crate::flow::{Direction, Tuple};
use crate::proxy::write32;

/// The MSS values a cookie can carry (3 bits): the largest not above the client's is used.
const MSS_TABLE: [u16; 8] = [536, 1220, 1300, 1360, 1400, 1440, 1452, 1460];
/// The MSS offered to the real server for a connection whose cookie the BPF program made (the
/// kernel's cookie holds the client's MSS, but its check does not say it): Ethernet's.
pub(crate) const DEFAULT_MSS_V4: u16 = 1460;
/// As [`DEFAULT_MSS_V4`], for IPv6.
pub(crate) const DEFAULT_MSS_V6: u16 = 1440;
/// The cookie's clock step: its top 5 bits count these.
const STEP_MS: u64 = 64_000;
/// How many steps old a cookie may be (besides the current one).
const MAX_AGE_STEPS: u64 = 1;
/// The director's window in its SYN-ACK (no window scaling).
const WINDOW: u16 = 65_535;
/// The hop limit of the segments the director makes.
const TTL: u8 = 64;
/// The MSS option: kind 2, length 4.
const MSS_KIND: u8 = 2;
/// TCP's no-operation option, to fill option space.
const NOP: u8 = 1;

/// What the SYN proxy did (`syn_proxy` policy), cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynProxyCounters {
    /// SYNs answered with a cookie.
    pub answered: u64,
    /// ACKs whose cookie held: connections opened to a real server.
    pub opened: u64,
    /// ACKs without a connection whose cookie did not hold (dropped, also counted as
    /// `no_connection_non_syn`).
    pub bad_cookies: u64,
    /// Connections handed over to another data plane once their real server answered
    /// (rvsd's BPF program; see [`crate::Engine::set_proxy_handoff`]).
    pub handed_over: u64,
}

/// The engine's [`SynProxyCounters`], counted by the workers.
#[derive(Debug, Default)]
pub(crate) struct SynProxyStats {
    pub(crate) answered: AtomicU64,
    pub(crate) opened: AtomicU64,
    pub(crate) bad_cookies: AtomicU64,
    pub(crate) handed_over: AtomicU64,
}

impl SynProxyStats {
    pub(crate) fn read(&self) -> SynProxyCounters {
        SynProxyCounters {
            answered: self.answered.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            bad_cookies: self.bad_cookies.load(Ordering::Relaxed),
            handed_over: self.handed_over.load(Ordering::Relaxed),
        }
    }
}

/// The secret SYN cookies are keyed with (SipHash with random keys, made once per engine).
#[derive(Debug)]
pub(crate) struct CookieKey(std::hash::RandomState);

impl CookieKey {
    pub(crate) fn new() -> CookieKey {
        CookieKey(std::hash::RandomState::new())
    }

    fn hash(&self, t: &Tuple, isn: u32, step: u64, mss_index: u32) -> u32 {
        let h = self
            .0
            .hash_one((t.src, t.dst, t.sport, t.dport, isn, step, mss_index));
        (h & 0x00ff_ffff) as u32
    }

    /// The cookie for a SYN of tuple `t` (client to virtual) with ISN `isn` and MSS `mss` at
    /// `now_ms`: 5 bits of clock, 3 of MSS, 24 of keyed hash. Returns it with the MSS it holds.
    pub(crate) fn make(&self, t: &Tuple, isn: u32, now_ms: u64, mss: u16) -> (u32, u16) {
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        let step = now_ms / STEP_MS;
        let cookie = ((step as u32 & 0x1f) << 27)
            | ((index as u32) << 24)
            | self.hash(t, isn, step, index as u32);
        (cookie, MSS_TABLE[index])
    }

    /// The MSS a valid `cookie` holds, for the ACK of tuple `t` whose SYN had ISN `isn`; `None`
    /// when the cookie was not made here within its age.
    pub(crate) fn check(&self, t: &Tuple, isn: u32, now_ms: u64, cookie: u32) -> Option<u16> {
        let index = (cookie >> 24) & 7;
        let now_step = now_ms / STEP_MS;
        (0..=MAX_AGE_STEPS)
            .filter_map(|age| now_step.checked_sub(age))
            .find(|&step| {
                (step as u32 & 0x1f) == cookie >> 27
                    && self.hash(t, isn, step, index) == cookie & 0x00ff_ffff
            })
            .map(|_| MSS_TABLE[index as usize])
    }
}

/// A connection the proxy opened: what its segments' numbers are shifted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SynProxied {
    /// The ISN the client got from the director (the cookie).
    pub(crate) cookie: u32,
    /// The client's ISN.
    pub(crate) client_isn: u32,
    /// The client's window, for the ACK the director sends the real server.
    pub(crate) window: u16,
    /// The MSS the cookie held, offered to the real server.
    pub(crate) mss: u16,
    /// When the SYN last went to the real server.
    pub(crate) syn_sent_ms: u64,
    /// The cookie less the real server's ISN, once its SYN-ACK came.
    pub(crate) delta: Option<u32>,
}

impl SynProxied {
    /// The sync protocol's sequence option for this connection once its shift is known (IPVS's
    /// `ip_vs_sync_conn_options`, which its FTP helper fills with its own shifts): `out_seq`
    /// holds the cookie as `init_seq` and the shift as `delta`, so a backup shifts the
    /// connection's numbers as this director does.
    pub(crate) fn seq_option(&self) -> Option<rvs_sync::SeqOptions> {
        let delta = self.delta?;
        Some(rvs_sync::SeqOptions {
            in_seq: rvs_sync::SeqData::default(),
            out_seq: rvs_sync::SeqData {
                init_seq: self.cookie,
                delta,
                previous_delta: delta,
            },
        })
    }

    /// The record of a synced connection whose sequence option carries a shift.
    pub(crate) fn from_seq_option(seq: &rvs_sync::SeqOptions) -> Option<SynProxied> {
        (seq.out_seq != rvs_sync::SeqData::default()).then_some(SynProxied {
            cookie: seq.out_seq.init_seq,
            client_isn: 0,
            window: 0,
            mss: 0,
            syn_sent_ms: 0,
            delta: Some(seq.out_seq.delta),
        })
    }
}

/// Connections waiting to be taken at most; more stay with the engine.
const QUEUE_MAX: usize = 65_536;

/// The queue of proxied connections ready to be handed over to another data plane (see the
/// engine's `handoff` module).
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    pub(crate) wanted: AtomicBool,
    pub(crate) ready: parking_lot::Mutex<Vec<Tuple>>,
}

impl Handoff {
    /// Queues connection `c` when a plane takes connections and `c` is one it can take.
    pub(crate) fn offer(&self, c: &Conn) {
        if !self.wanted.load(Ordering::Relaxed) || c.flags & (F_EXT | F_NO_OUTPUT) != 0 {
            return;
        }
        let mut q = self.ready.lock();
        if q.len() < QUEUE_MAX {
            q.push(client_tuple(c));
        }
    }
}

/// The tuple of `c`'s client-side packets.
fn client_tuple(c: &Conn) -> Tuple {
    Tuple {
        proto: c.proto,
        v6: c.flags & F_V6 != 0,
        src: c.client,
        dst: c.vaddr,
        sport: c.cport,
        dport: c.vport,
    }
}

/// How long a connection waits for its real server's SYN-ACK before a client segment goes as
/// the SYN again.
pub(crate) const SYN_RESEND_MS: u64 = 1_000;

/// The TCP segment of a parsed frame: its offset, header length, sequence and acknowledgement
/// numbers, flags and window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    l4: usize,
    hlen: usize,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
}

/// Reads the TCP segment of a frame the parser checked.
pub(crate) fn segment(frame: &[u8], lay: &Layout) -> Option<Segment> {
    let tcp = tcp::Packet::new_checked(frame.get(lay.l4..lay.end)?).ok()?;
    Some(Segment {
        l4: lay.l4,
        hlen: tcp.header_len(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags().0,
        window: tcp.window(),
    })
}

/// The MSS option of a SYN, or TCP's default of 536 without one.
pub(crate) fn client_mss(frame: &[u8], seg: &Segment) -> u16 {
    let mut mss = 536;
    if let Some(tcp) = frame.get(seg.l4..seg.l4 + seg.hlen) {
        crate::proxy::for_each_option(tcp, |at, kind| {
            if kind == MSS_KIND {
                if let Some(v) = tcp.get(at + 2..at + 4) {
                    mss = u16::from_be_bytes([v[0], v[1]]);
                }
            }
        });
    }
    mss
}

/// Turns the client's SYN into the director's SYN-ACK back to the client, in place: addresses
/// and ports swapped, the cookie as ISN, an MSS option (when the SYN had option space), no
/// payload, checksums complete.
pub(crate) fn answer_syn(frame: &mut [u8], lay: &Layout, seg: &Segment, cookie: u32, mss: u16) {
    swap_ends(frame, lay);
    option_space(frame, seg, mss);
    write_header(
        frame,
        seg,
        Header {
            seq: cookie,
            ack: seg.seq.wrapping_add(1),
            flags: Flags::SYN | Flags::ACK,
            window: WINDOW,
            hlen: seg.hlen,
        },
    );
    finish(frame, lay, seg.hlen, &[]);
}

/// The end of the segment [`ack_to_syn`] made in the frame (its header, without what is
/// inserted after it).
pub(crate) fn syn_end(seg: &Segment, inserted: bool) -> usize {
    seg.l4
        + if inserted {
            tcp::MIN_HEADER_LEN
        } else {
            seg.hlen
        }
}

/// Turns the client's ACK (its cookie checked), or a later segment when the real server has not
/// answered for [`SYN_RESEND_MS`], into the SYN the real server must see, in place,
/// still addressed as the client sent it (the NAT rewrite follows): the client's ISN, the
/// cookie's MSS, no payload, checksums complete. When the ACK's header has no room for the MSS
/// option, the header grows by 4 bytes that are not in the frame: they are returned, to be sent
/// after the header (`Verdict::ForwardInsert`).
pub(crate) fn ack_to_syn(
    frame: &mut [u8],
    lay: &Layout,
    seg: &Segment,
    sp: &SynProxied,
) -> Option<[u8; 4]> {
    let mss = sp.mss;
    let option = mss_option(mss);
    // The header as it will be sent, and the part of it in the frame.
    let (hlen, in_frame, inserted) = if seg.hlen >= tcp::MIN_HEADER_LEN + 4 {
        option_space(frame, seg, mss);
        (seg.hlen, seg.hlen, None)
    } else {
        let grown = tcp::MIN_HEADER_LEN + option.len();
        (grown, tcp::MIN_HEADER_LEN, Some(option))
    };
    write_header(
        frame,
        seg,
        Header {
            seq: sp.client_isn,
            ack: 0,
            flags: Flags::SYN,
            window: sp.window,
            hlen,
        },
    );
    let extra = inserted.as_ref().map_or(&[][..], |o| &o[..]);
    finish(frame, lay, in_frame, extra);
    inserted
}

/// Turns the real server's SYN-ACK into the ACK the client would have sent it, in place: back
/// to the real server, the client's next sequence number, the server's ISN acknowledged, no
/// options or payload, checksums complete.
pub(crate) fn synack_to_ack(frame: &mut [u8], lay: &Layout, seg: &Segment, sp: &SynProxied) {
    swap_ends(frame, lay);
    write_header(
        frame,
        seg,
        Header {
            seq: sp.client_isn.wrapping_add(1),
            ack: seg.seq.wrapping_add(1),
            flags: Flags::ACK,
            window: sp.window,
            hlen: tcp::MIN_HEADER_LEN,
        },
    );
    finish(frame, lay, tcp::MIN_HEADER_LEN, &[]);
}

/// Shifts a proxied connection's segment: the acknowledgement number of a client's segment
/// back by `delta`, the sequence number of a server's forward by it. `partial`: the checksum
/// field holds the pseudo-header sum (which the numbers are not part of).
pub(crate) fn shift(frame: &mut [u8], seg: &Segment, dir: Direction, delta: u32, partial: bool) {
    let Some(tcp) = frame.get_mut(seg.l4..) else {
        return;
    };
    match dir {
        Direction::Input if seg.flags & Flags::ACK != 0 => {
            write32(tcp, 8, seg.ack.wrapping_sub(delta), partial)
        }
        Direction::Input => {}
        Direction::Output => write32(tcp, 4, seg.seq.wrapping_add(delta), partial),
    }
}

/// Whether a segment is a SYN-ACK.
pub(crate) fn is_syn_ack(flags: u8) -> bool {
    flags & (Flags::SYN | Flags::ACK | Flags::RST) == Flags::SYN | Flags::ACK
}

fn mss_option(mss: u16) -> [u8; 4] {
    let [hi, lo] = mss.to_be_bytes();
    [MSS_KIND, 4, hi, lo]
}

/// Writes the MSS option at the start of the segment's option space and fills the rest with
/// no-operations (nothing when there is no option space).
fn option_space(frame: &mut [u8], seg: &Segment, mss: u16) {
    let start = seg.l4 + tcp::MIN_HEADER_LEN;
    let Some(space) = frame.get_mut(start..seg.l4 + seg.hlen) else {
        return;
    };
    if space.len() >= 4 {
        space[..4].copy_from_slice(&mss_option(mss));
        space[4..].fill(NOP);
    } else {
        space.fill(NOP);
    }
}

/// The fixed TCP header fields the proxy writes.
struct Header {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    hlen: usize,
}

fn write_header(frame: &mut [u8], seg: &Segment, h: Header) {
    let Some(b) = frame.get_mut(seg.l4..seg.l4 + tcp::MIN_HEADER_LEN) else {
        return;
    };
    b[4..8].copy_from_slice(&h.seq.to_be_bytes());
    b[8..12].copy_from_slice(&h.ack.to_be_bytes());
    b[12] = ((h.hlen / 4) as u8) << 4;
    b[13] = h.flags;
    b[14..16].copy_from_slice(&h.window.to_be_bytes());
    // Urgent pointer.
    b[18..20].fill(0);
}

/// Swaps the IP addresses and the TCP ports.
fn swap_ends(frame: &mut [u8], lay: &Layout) {
    let (src, dst, len) = if lay.v6 {
        (lay.l3 + 8, lay.l3 + 24, 16)
    } else {
        (lay.l3 + 12, lay.l3 + 16, 4)
    };
    if let Some(addrs) = frame.get_mut(src..dst + len) {
        let (a, b) = addrs.split_at_mut(len);
        a.swap_with_slice(&mut b[dst - src - len..]);
    }
    if let Some(ports) = frame.get_mut(lay.l4..lay.l4 + 4) {
        let (a, b) = ports.split_at_mut(2);
        a.swap_with_slice(b);
    }
}

/// Sets the IP lengths for a segment of `hlen` header bytes in the frame (plus `extra`, sent
/// after them) without payload, a fresh TTL, and complete IP and TCP checksums.
fn finish(frame: &mut [u8], lay: &Layout, hlen: usize, extra: &[u8]) {
    let tcp_len = hlen + extra.len();
    let head = lay.l4 - lay.l3;
    if lay.v6 {
        let payload = (head - rvs_wire::ipv6::HEADER_LEN + tcp_len) as u16;
        if let Some(ip) = frame.get_mut(lay.l3..lay.l3 + rvs_wire::ipv6::HEADER_LEN) {
            ip[4..6].copy_from_slice(&payload.to_be_bytes());
            ip[7] = TTL;
        }
    } else if let Some(ip) = frame.get_mut(lay.l3..lay.l4) {
        ip[2..4].copy_from_slice(&((head + tcp_len) as u16).to_be_bytes());
        ip[8] = TTL;
        let mut p = rvs_wire::ipv4::Packet::new_unchecked(&mut *ip);
        p.fill_checksum();
    }
    let pseudo = match (lay.v6, frame.get(lay.l3..lay.l4)) {
        (true, Some(ip)) => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            checksum::pseudo_header_v6(s, d, 6, tcp_len as u32)
        }
        (false, Some(ip)) => checksum::pseudo_header_v4(
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
            6,
            tcp_len as u32,
        ),
        _ => return,
    };
    let Some(tcp) = frame.get_mut(lay.l4..lay.l4 + hlen) else {
        return;
    };
    tcp[16..18].fill(0);
    let sum = checksum::add_bytes(checksum::add_bytes(pseudo, tcp), extra);
    tcp[16..18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
}
