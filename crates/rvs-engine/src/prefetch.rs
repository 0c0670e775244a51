//! [`Engine::prefetch`]: starting the next frame's connection-table cache misses early.
//!
//! A packet's cost in a table of a million connections is mostly two cache misses: its index
//! bucket and, for a new connection, the slab slot it takes. Neither can be hidden within the
//! packet's own handling, since the lookup needs the shard's lock and the lock's atomic
//! instruction waits for earlier loads. A worker with more than one frame in hand can start
//! them for the next frame while it handles the current one: this module reads just enough of
//! the frame to find the lines and issues prefetches, which no lock orders.

use rvs_wire::ip;

use crate::engine::Engine;
use crate::flow::{flow_hash, mapped};

/// What a prefetch needs of a frame: its protocol, both endpoints, and whether it opens a TCP
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peek {
    proto: u8,
    src: [u8; 16],
    sport: u16,
    dst: [u8; 16],
    dport: u16,
    syn: bool,
}

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88a8];

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn array<const N: usize>(frame: &[u8], at: usize) -> Option<[u8; N]> {
    frame.get(at..at + N)?.try_into().ok()
}

/// Reads the endpoints of an Ethernet frame (at most one VLAN tag) carrying TCP, UDP or SCTP
/// over IPv4 (not a fragment) or IPv6 (no extension header). Anything else is `None`: the
/// handling parses every frame fully, and a prefetch is only a hint.
fn peek(frame: &[u8]) -> Option<Peek> {
    let mut l3 = ETH_HEADER;
    let mut ethertype = be16(frame, 12)?;
    if ETHERTYPE_VLAN.contains(&ethertype) {
        ethertype = be16(frame, 16)?;
        l3 += 4;
    }
    let (proto, src, dst, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
            // Fragment offset or more-fragments set: the ports may not be there.
            if ihl < 20 || be16(frame, l3 + 6)? & 0x3fff != 0 {
                return None;
            }
            let src = mapped(array(frame, l3 + 12)?);
            let dst = mapped(array(frame, l3 + 16)?);
            (*frame.get(l3 + 9)?, src, dst, l3 + ihl)
        }
        ETHERTYPE_IPV6 => {
            let src = array(frame, l3 + 8)?;
            let dst = array(frame, l3 + 24)?;
            (*frame.get(l3 + 6)?, src, dst, l3 + 40)
        }
        _ => return None,
    };
    if !matches!(proto, ip::TCP | ip::UDP | ip::SCTP) {
        return None;
    }
    let flags = if proto == ip::TCP {
        *frame.get(l4 + 13)?
    } else {
        0
    };
    Some(Peek {
        proto,
        src,
        sport: be16(frame, l4)?,
        dst,
        dport: be16(frame, l4 + 2)?,
        // SYN without ACK.
        syn: flags & 0x12 == 0x02,
    })
}

impl Engine {
    /// Starts loading the connection-table lines `frame` will need and returns at once: the
    /// index buckets of both its endpoints (a packet to a service is looked up by its source,
    /// a reply by its destination, and which one this is is not known before the service
    /// lookup) and, for a TCP SYN, the slot a new connection would take.
    ///
    /// A worker holding several frames calls it for the next frame before handling the
    /// current one, so that the next frame's cache misses overlap this one's work. It reads
    /// the frame only, takes no lock and changes nothing; a frame it does not understand
    /// costs a few nanoseconds and is handled as usual.
    pub fn prefetch(&self, frame: &[u8]) {
        let Some(p) = peek(frame) else {
            return;
        };
        let client = flow_hash(&self.hasher, p.proto, &p.src, p.sport);
        let hint = &self.shards[self.shard_index(client)].1;
        rvs_prefetch::prefetch(hint.bucket_of(client));
        if p.syn {
            rvs_prefetch::prefetch(hint.free_slot());
        }
        let reply = flow_hash(&self.hasher, p.proto, &p.dst, p.dport);
        rvs_prefetch::prefetch(self.shards[self.shard_index(reply)].1.bucket_of(reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_index::home;
    use proptest::prelude::*;

    fn tcp4(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[23] = ip::TCP;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[47] = flags;
        f
    }

    #[test]
    fn reads_ipv4_ipv6_and_a_vlan_tag() {
        let p = peek(&tcp4(0x02)).expect("tcp4");
        assert_eq!(p.proto, ip::TCP);
        assert_eq!(p.src, mapped([10, 0, 0, 1]));
        assert_eq!(p.dst, mapped([10, 0, 0, 2]));
        assert_eq!((p.sport, p.dport, p.syn), (40000, 80, true));
        assert!(!peek(&tcp4(0x12)).expect("syn-ack").syn);

        let mut tagged = tcp4(0x10);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        let t = peek(&tagged).expect("tagged");
        assert_eq!((t.sport, t.dport, t.syn), (40000, 80, false));

        let mut v6 = vec![0u8; 14 + 40 + 8];
        v6[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        v6[20] = ip::UDP;
        v6[22 + 15] = 1;
        v6[38 + 15] = 2;
        v6[54..56].copy_from_slice(&53u16.to_be_bytes());
        v6[56..58].copy_from_slice(&5353u16.to_be_bytes());
        let p = peek(&v6).expect("udp6");
        assert_eq!(
            (p.proto, p.src[15], p.dst[15], p.sport, p.dport),
            (ip::UDP, 1, 2, 53, 5353)
        );
    }

    #[test]
    fn fragments_truncations_and_other_protocols_are_skipped() {
        let mut frag = tcp4(0x02);
        frag[20] = 0x20; // more fragments
        assert_eq!(peek(&frag), None);
        let mut icmp = tcp4(0);
        icmp[23] = ip::ICMP;
        assert_eq!(peek(&icmp), None);
        let whole = tcp4(0x02);
        for cut in 0..whole.len() - 6 {
            // Up to the flags byte everything is needed.
            assert_eq!(peek(&whole[..cut]), None, "cut at {cut}");
        }
    }

    /// The published addresses are where the shard's lookup and insert really read, as
    /// connections come and go and the index and slab grow.
    #[test]
    fn the_hint_follows_the_shard() {
        use crate::{DestSpec, EngineConfig, ForwardMethod, Millis, PacketMeta, Protocol};
        use crate::{SchedulerKind, ServiceKey, ServiceSpec};

        let e = Engine::new(EngineConfig {
            expected_connections: 16,
            shards: 1,
            ..EngineConfig::default()
        });
        let key = ServiceKey::new(Protocol::Tcp, [10, 0, 0, 2].into(), 80);
        e.add_service(ServiceSpec::new(key, SchedulerKind::Rr))
            .expect("service");
        let rip = [192, 168, 0, 1].into();
        e.add_dest(&key, DestSpec::new(rip, 8080, 1, ForwardMethod::Masq))
            .expect("dest");
        let syn = |i: u16| {
            let mut out = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([10, 0, 1, (i >> 8) as u8], [10, 0, 0, 2], 64)
                .tcp(1024 + (i & 0xff), 80, 1, 65535)
                .syn()
                .write(&mut out, &[])
                .expect("build");
            out
        };
        let check = |when: &str| {
            let padded = &e.shards[0];
            let shard = padded.0.lock();
            let (base, count) = shard.index_layout();
            let h = 0x1234_5678_9abc_def0;
            let want = base + home(h, count) * crate::conn_index::BUCKET_BYTES;
            assert_eq!(padded.1.bucket_of(h), want, "bucket, {when}");
            assert_eq!(padded.1.free_slot(), shard.next_slot_addr(), "slot, {when}");
        };
        check("empty");
        let first = e.shards[0].1.bucket_of(0);
        for i in 0..600 {
            let mut f = syn(i);
            e.prefetch(&f);
            e.handle(Millis(0), &mut PacketMeta::default(), &mut f);
        }
        assert_eq!(e.connection_count(), 600);
        check("after growth");
        assert_ne!(
            e.shards[0].1.bucket_of(0),
            first,
            "the index was rebuilt elsewhere"
        );
        // SYN_RECV expires after 60 s: the slots go back to the free list.
        e.expire(Millis(61_000));
        assert_eq!(e.connection_count(), 0);
        check("after expiry");
    }

    proptest! {
        /// Any bytes: no panic, and an engine's prefetch of them changes nothing.
        #[test]
        fn any_frame_is_peeked_without_panic(frame in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = peek(&frame);
            let e = Engine::new(crate::EngineConfig::default());
            e.prefetch(&frame);
            prop_assert_eq!(e.connection_count(), 0);
        }
    }
}
