//! IP reassembly of the fragments of traffic rvs handles, IPv4 (RFC 791) and IPv6 (RFC 8200
//! section 4.5), as IPVS gets it from the kernel's defragmentation before it looks at a packet.
//!
//! A [`Reassembler`] keeps the fragments of each datagram (keyed by addresses, protocol and
//! identification) until they cover it, then gives the whole datagram back as one frame, with the
//! size of its largest fragment so the sender can cut it again no larger ([`crate::fragment`]).
//! Memory is bounded (`max_bytes`, the kernel's `ipfrag_high_thresh`) and so is time (`timeout`,
//! `ipfrag_time`): a datagram not complete in time is dropped, and while the memory is full new
//! datagrams are refused. Overlapping fragments drop their whole datagram (RFC 5722, and what
//! Linux does for IPv4 since 2018); exact duplicates are ignored.

use std::collections::{HashMap, VecDeque};

use rvs_wire::{ethernet, ip, ipv4, ipv6};

use crate::spec::ReasmLimits;

/// What a [`Reassembler`] has done, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReasmStats {
    /// Fragments taken in (held, or completing a datagram).
    pub fragments: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Incomplete datagrams dropped at their timeout.
    pub timeouts: u64,
    /// Datagrams or fragments dropped as invalid: overlapping, longer than 65535 bytes, a
    /// non-last fragment not a multiple of 8 bytes, conflicting ends.
    pub invalid: u64,
    /// Fragments refused because the memory bound was reached.
    pub memory_full: u64,
}

/// Fragments held at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReasmHeld {
    /// Incomplete datagrams.
    pub datagrams: usize,
    /// Bytes charged to them.
    pub bytes: usize,
}

/// A whole datagram put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The frame: the first fragment's Ethernet header (with its VLAN tags), its IP header(s)
    /// with the lengths and fragment fields of an unfragmented packet, then all the data.
    pub frame: Vec<u8>,
    /// L3 length of the largest fragment: forwarded on, the datagram is cut into pieces no
    /// larger than this (the kernel's `frag_max_size`).
    pub max_fragment: usize,
}

/// The first fragment of a datagram whose reassembly timed out ([`crate::Engine::reassembly_timeouts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// The fragment from its IP header, its data cut short.
    pub packet: Vec<u8>,
    /// It was sent to a virtual address: the ICMP error about it comes from that address, as
    /// from one of the director's own; otherwise from the director's address toward the sender.
    pub to_virtual: bool,
}

/// What became of one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// Kept until the rest of its datagram arrives (or an exact duplicate, ignored).
    Held,
    /// It completed its datagram.
    Complete(Reassembled),
    /// Dropped, and its datagram with it when the fragment made the datagram invalid.
    Refused(Refusal),
}

/// Why a fragment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a fragment this module can read (not IP, truncated, no fragment header).
    NotFragment,
    /// The fragment is invalid or conflicts with its datagram's others (see
    /// [`ReasmStats::invalid`]).
    Invalid,
    /// The memory bound is reached.
    MemoryFull,
}

/// Data bytes of a timed-out datagram's first fragment kept for the ICMP error quoting it.
const QUOTED_DATA: usize = 512;
/// Timed-out first fragments kept for their ICMP errors at most, until taken.
const TIMED_OUT_MAX: usize = 64;

/// Bytes charged per fragment besides its data (bookkeeping), so tiny fragments cannot hold
/// much more memory than the bound says.
const PER_FRAGMENT_OVERHEAD: usize = 64;
/// The largest IP datagram: IPv4 total length, IPv6 payload length.
const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    /// IPv4's protocol (part of its fragment key); 0 for IPv6.
    proto: u8,
    ident: u32,
}

/// One fragment, as read from its frame.
struct Fragment<'a> {
    key: Key,
    /// Data offset in the datagram, bytes.
    offset: usize,
    more: bool,
    /// The fragment's data (after its IP header, or after IPv6's fragment header).
    data: &'a [u8],
    /// L3 length of the fragment.
    l3_len: usize,
    /// ECN codepoint.
    ecn: u8,
    /// IPv4's DF bit.
    dont_frag: bool,
    /// For the first fragment (offset 0): the frame up to where its data starts, less IPv6's
    /// fragment header, and where in it the next-header byte to set is (IPv6).
    head: Option<Head>,
}

#[derive(Debug, Clone)]
struct Head {
    bytes: Vec<u8>,
    l3: usize,
    /// IPv6: the position in `bytes` of the next-header byte that named the fragment header,
    /// and the protocol the fragment header named.
    v6_next: Option<(usize, u8)>,
}

#[derive(Debug)]
struct Queue {
    head: Option<Head>,
    /// (offset, data), sorted by offset, never overlapping.
    pieces: Vec<(usize, Vec<u8>)>,
    /// The datagram's data length, once its last fragment arrived.
    end: Option<usize>,
    received: usize,
    max_fragment: usize,
    /// ECN codepoints seen, one bit each.
    ecn_seen: u8,
    dont_frag: bool,
    charged: usize,
    expires: u64,
}

/// Fragment queues with their memory and time bounds. Not thread-safe: the engine keeps one
/// behind a lock (fragments are rare).
#[derive(Debug)]
pub struct Reassembler {
    limits: ReasmLimits,
    queues: HashMap<Key, Queue>,
    /// Queues by expiry (the same timeout for all, so creation order): (expires, key).
    order: VecDeque<(u64, Key)>,
    bytes: usize,
    stats: ReasmStats,
    /// The first fragments (IP packets, cut short) of datagrams that timed out, for the ICMP
    /// "reassembly time exceeded" errors about them.
    timed_out: Vec<Vec<u8>>,
}

impl Reassembler {
    /// An empty reassembler with `limits`.
    pub fn new(limits: ReasmLimits) -> Reassembler {
        Reassembler {
            limits,
            queues: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            stats: ReasmStats::default(),
            timed_out: Vec::new(),
        }
    }

    /// Cumulative counters.
    pub fn stats(&self) -> ReasmStats {
        self.stats
    }

    /// What is held now.
    pub fn held(&self) -> ReasmHeld {
        ReasmHeld {
            datagrams: self.queues.len(),
            bytes: self.bytes,
        }
    }

    /// Drops the datagrams whose time ran out by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(expires, key)) = self.order.front() {
            if expires > now_ms {
                break;
            }
            self.order.pop_front();
            if self.queues.get(&key).is_some_and(|q| q.expires == expires) {
                if let Some(q) = self.remove(&key) {
                    if let Some(first) = first_fragment(&key, &q) {
                        if self.timed_out.len() < TIMED_OUT_MAX {
                            self.timed_out.push(first);
                        }
                    }
                }
                self.stats.timeouts += 1;
            }
        }
    }

    /// The first fragments (IP packets, from the IP header, cut short) of the datagrams that
    /// timed out since the last call with their first fragment received, as RFC 792 and RFC
    /// 8200 want an ICMP "reassembly time exceeded" sent about them; ICMPv6 datagrams left out.
    pub fn take_timed_out(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.timed_out)
    }

    /// Takes one fragment (a whole Ethernet frame) at `now_ms`.
    pub fn collect(&mut self, now_ms: u64, frame: &[u8]) -> Collected {
        self.expire(now_ms);
        let Some(frag) = read_fragment(frame) else {
            self.stats.invalid += 1;
            return Collected::Refused(Refusal::NotFragment);
        };
        let start = frag.offset;
        let stop = start + frag.data.len();
        let bad_size = (frag.more && (frag.data.is_empty() || frag.data.len() % 8 != 0))
            || stop > MAX_DATAGRAM;
        if bad_size {
            return self.invalid(&frag.key);
        }
        let cost = frag.data.len()
            + frag.head.as_ref().map_or(0, |h| h.bytes.len())
            + PER_FRAGMENT_OVERHEAD;
        if self.bytes + cost > self.limits.max_bytes {
            self.stats.memory_full += 1;
            return Collected::Refused(Refusal::MemoryFull);
        }
        let expires = now_ms.saturating_add(self.limits.timeout_ms);
        let queue = self.queues.entry(frag.key).or_insert_with(|| {
            self.order.push_back((expires, frag.key));
            Queue {
                head: None,
                pieces: Vec::new(),
                end: None,
                received: 0,
                max_fragment: 0,
                ecn_seen: 0,
                dont_frag: false,
                charged: 0,
                expires,
            }
        });
        match place(queue, &frag, start, stop) {
            Placed::Duplicate => return Collected::Held,
            Placed::Conflict => return self.invalid(&frag.key),
            Placed::At(i) => queue.pieces.insert(i, (start, frag.data.to_vec())),
        }
        if !frag.more {
            queue.end = Some(stop);
        }
        if let Some(head) = frag.head {
            queue.head = Some(head);
        }
        queue.received += frag.data.len();
        queue.max_fragment = queue.max_fragment.max(frag.l3_len);
        queue.ecn_seen |= 1 << frag.ecn;
        queue.dont_frag |= frag.dont_frag;
        queue.charged += cost;
        self.bytes += cost;
        self.stats.fragments += 1;
        let complete = queue.end == Some(queue.received) && queue.head.is_some();
        if !complete {
            return Collected::Held;
        }
        let Some(queue) = self.remove(&frag.key) else {
            return Collected::Held;
        };
        match build(queue) {
            Some(whole) => {
                self.stats.reassembled += 1;
                Collected::Complete(whole)
            }
            None => {
                self.stats.invalid += 1;
                Collected::Refused(Refusal::Invalid)
            }
        }
    }

    /// Drops `key`'s datagram (if held) for an invalid fragment.
    fn invalid(&mut self, key: &Key) -> Collected {
        self.remove(key);
        self.stats.invalid += 1;
        Collected::Refused(Refusal::Invalid)
    }

    fn remove(&mut self, key: &Key) -> Option<Queue> {
        let q = self.queues.remove(key)?;
        self.bytes -= q.charged;
        Some(q)
    }
}

/// The first fragment of queue `q` (of datagram `key`) as it came, from its IP header, with
/// at most [`QUOTED_DATA`] bytes of its data; `None` without it, or for ICMPv6.
fn first_fragment(key: &Key, q: &Queue) -> Option<Vec<u8>> {
    let head = q.head.as_ref()?;
    let (start, data) = q.pieces.first()?;
    if *start != 0 {
        return None;
    }
    let mut out = head.bytes.get(head.l3..)?.to_vec();
    if let Some((_, upper)) = head.v6_next {
        if upper == ip::ICMPV6 {
            return None;
        }
        // The fragment header the head was stored without: offset 0, more fragments.
        out.extend_from_slice(&[upper, 0, 0, 1]);
        out.extend_from_slice(&key.ident.to_be_bytes());
    }
    out.extend_from_slice(&data[..data.len().min(QUOTED_DATA)]);
    Some(out)
}

/// Where a fragment goes among its datagram's pieces.
enum Placed {
    /// Before piece `i`.
    At(usize),
    /// The same bytes range as a piece held: ignored.
    Duplicate,
    /// Overlaps a piece, or contradicts the datagram's end.
    Conflict,
}

fn place(queue: &Queue, frag: &Fragment<'_>, start: usize, stop: usize) -> Placed {
    let i = queue.pieces.partition_point(|(s, _)| *s < start);
    if let Some((s, d)) = queue.pieces.get(i) {
        if *s == start && s + d.len() == stop {
            return Placed::Duplicate;
        }
    }
    if let Some((s, d)) = i.checked_sub(1).and_then(|j| queue.pieces.get(j)) {
        if s + d.len() > start {
            return Placed::Conflict;
        }
    }
    if queue.pieces.get(i).is_some_and(|(s, _)| *s < stop) {
        return Placed::Conflict;
    }
    let end_conflict = match (queue.end, frag.more) {
        // A second last fragment must end where the first did; data past the end is wrong.
        (Some(end), false) => end != stop,
        (Some(end), true) => stop > end,
        (None, false) => queue.pieces.last().is_some_and(|(s, d)| s + d.len() > stop),
        (None, true) => false,
    };
    if end_conflict {
        Placed::Conflict
    } else {
        Placed::At(i)
    }
}

/// The ECN codepoints (RFC 3168 section 5.3): Not-ECT mixed with ECT is invalid; CE in any
/// fragment marks the datagram CE.
const NOT_ECT: u8 = 1 << 0;
const CE: u8 = 1 << 3;

fn build(queue: Queue) -> Option<Reassembled> {
    let head = queue.head?;
    let end = queue.end?;
    if queue.ecn_seen & NOT_ECT != 0 && queue.ecn_seen != NOT_ECT {
        return None;
    }
    let mut frame = head.bytes;
    let l3 = head.l3;
    let header_len = frame.len() - l3;
    let l3_len = header_len + end;
    let fits = match head.v6_next {
        None => l3_len <= MAX_DATAGRAM,
        Some(_) => l3_len - ipv6::HEADER_LEN <= MAX_DATAGRAM,
    };
    if !fits {
        return None;
    }
    frame.reserve(end);
    for (_, data) in &queue.pieces {
        frame.extend_from_slice(data);
    }
    let ce = queue.ecn_seen & CE != 0;
    let hdr = frame.get_mut(l3..)?;
    match head.v6_next {
        None => {
            let mut p = ipv4::Packet::new_unchecked(&mut *hdr);
            p.set_total_len(l3_len as u16);
            p.set_frag_fields(queue.dont_frag, false, 0);
            if ce {
                let tos = p.dscp_ecn() | 0b11;
                p.set_dscp_ecn(tos);
            }
            p.fill_checksum();
        }
        Some((at, upper)) => {
            let mut p = ipv6::Packet::new_unchecked(&mut *hdr);
            p.set_payload_len((l3_len - ipv6::HEADER_LEN) as u16);
            if ce {
                let tc = p.traffic_class() | 0b11;
                p.set_traffic_class(tc);
            }
            *frame.get_mut(at)? = upper;
        }
    }
    Some(Reassembled {
        frame,
        max_fragment: queue.max_fragment,
    })
}

fn read_fragment(frame: &[u8]) -> Option<Fragment<'_>> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let l3 = eth.l3_offset();
    let body = frame.get(l3..)?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => read_v4(frame, l3, body),
        ethernet::ETHERTYPE_IPV6 => read_v6(frame, l3, body),
        _ => None,
    }
}

fn read_v4<'a>(frame: &'a [u8], l3: usize, body: &'a [u8]) -> Option<Fragment<'a>> {
    let p = ipv4::Packet::new_checked(body).ok()?;
    if !p.is_fragment() {
        return None;
    }
    let hlen = p.header_len();
    let total = usize::from(p.total_len());
    let offset = usize::from(p.frag_offset());
    let head = (offset == 0).then(|| Head {
        bytes: frame[..l3 + hlen].to_vec(),
        l3,
        v6_next: None,
    });
    Some(Fragment {
        key: Key {
            v6: false,
            src: crate::flow::mapped(p.src_octets()),
            dst: crate::flow::mapped(p.dst_octets()),
            proto: p.protocol(),
            ident: u32::from(p.ident()),
        },
        offset,
        more: p.more_frags(),
        data: body.get(hlen..total)?,
        l3_len: total,
        ecn: p.dscp_ecn() & 0b11,
        dont_frag: p.dont_frag(),
        head,
    })
}

fn read_v6<'a>(frame: &'a [u8], l3: usize, body: &'a [u8]) -> Option<Fragment<'a>> {
    let p = ipv6::Packet::new_checked(body).ok()?;
    let info = p.fragment()?;
    let total = p.total_len();
    // The headers before the fragment header (the unfragmentable part) and the byte that
    // names the fragment header.
    let (mut at, mut next_at) = (ipv6::HEADER_LEN, 6usize);
    loop {
        let next = *body.get(next_at)?;
        match next {
            ip::IPV6_FRAGMENT => break,
            ip::HOP_BY_HOP | ip::IPV6_ROUTING | ip::IPV6_DEST_OPTS => {
                let len = (usize::from(*body.get(at + 1)?) + 1) * 8;
                next_at = at;
                at += len;
            }
            _ => return None,
        }
        if at >= total {
            return None;
        }
    }
    let upper = *body.get(at)?;
    let data = body.get(at + 8..total)?;
    let offset = usize::from(info.offset);
    let head = (offset == 0).then(|| Head {
        bytes: frame[..l3 + at].to_vec(),
        l3,
        v6_next: Some((l3 + next_at, upper)),
    });
    Some(Fragment {
        key: Key {
            v6: true,
            src: p.src_octets(),
            dst: p.dst_octets(),
            proto: 0,
            ident: info.ident,
        },
        offset,
        more: info.more,
        data,
        l3_len: total,
        ecn: p.traffic_class() & 0b11,
        dont_frag: false,
        head,
    })
}
