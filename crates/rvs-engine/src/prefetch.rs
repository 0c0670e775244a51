//! [`Engine::prefetch`]: starting the next frame's connection-table cache misses early.
//!
//! A packet's cost in a table of a million connections is mostly two cache misses: its index
//! bucket and, for a new connection, the slab slot it takes. Within the packet's own handling
//! little can overlap the bucket's miss: the probe needs the bucket before anything else
//! (the slot's miss, started just before the probe, is the one thing that overlaps it). A
//! worker with more than one frame in hand can start both misses for the next frame while it
//! handles the current one: this module reads just enough of the frame to find the lines and
//! issues prefetches, which no lock orders.

use rvs_wire::{ethernet, ip, ipv4, ipv6};

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

/// Reads the endpoints of a TCP, UDP or SCTP packet that is not a fragment, through the same
/// Ethernet and IP views the parser uses (so VLAN tags and IPv6 extension headers are
/// skipped alike), but without checking the transport header: the handling parses every
/// frame fully, and a prefetch is only a hint. Anything else is `None`.
fn peek(frame: &[u8]) -> Option<Peek> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let body = frame.get(eth.l3_offset()..)?;
    let (proto, src, dst, l4) = match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let p = ipv4::Packet::new_checked(body)
                .ok()
                .filter(|p| !p.is_fragment())?;
            let (src, dst) = (mapped(p.src_octets()), mapped(p.dst_octets()));
            (p.protocol(), src, dst, p.header_len())
        }
        ethernet::ETHERTYPE_IPV6 => {
            let p = ipv6::Packet::new_checked(body)
                .ok()
                .filter(|p| !p.is_fragment())?;
            (
                p.upper_protocol(),
                p.src_octets(),
                p.dst_octets(),
                p.upper_offset(),
            )
        }
        _ => return None,
    };
    if !matches!(proto, ip::TCP | ip::UDP | ip::SCTP) {
        return None;
    }
    let l4 = body.get(l4..)?;
    let port = |at: usize| Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]));
    let flags = if proto == ip::TCP { *l4.get(13)? } else { 0 };
    Some(Peek {
        proto,
        src,
        sport: port(0)?,
        dst,
        dport: port(2)?,
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
        let hint = &self.shards[self.shard_index(client)].hint;
        hint.prefetch_bucket(client);
        if p.syn {
            hint.prefetch_free_slot();
        }
        let reply = flow_hash(&self.hasher, p.proto, &p.dst, p.dport);
        self.shards[self.shard_index(reply)]
            .hint
            .prefetch_bucket(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_index::home;
    use proptest::prelude::*;
    use rvs_wire::ethernet::{ETHERTYPE_QINQ, ETHERTYPE_VLAN, HEADER_LEN, MAX_VLAN_TAGS};

    /// Bytes of one VLAN tag.
    const VLAN_TAG: usize = 4;

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
            let shard = padded.shard.lock();
            let (base, count) = shard.index_layout();
            let h = 0x1234_5678_9abc_def0;
            let want = base + home(h, count) * crate::conn_index::BUCKET_BYTES;
            assert_eq!(padded.hint.bucket_of(h), want, "bucket, {when}");
            let slot = padded.hint.free_slot().unwrap_or(0);
            assert_eq!(slot, shard.next_slot_addr(), "slot, {when}");
        };
        check("empty");
        let first = e.shards[0].hint.bucket_of(0);
        for i in 0..600 {
            let mut f = syn(i);
            e.prefetch(&f);
            e.handle(Millis(0), &mut PacketMeta::default(), &mut f);
        }
        assert_eq!(e.connection_count(), 600);
        check("after growth");
        assert_ne!(
            e.shards[0].hint.bucket_of(0),
            first,
            "the index was rebuilt elsewhere"
        );
        // SYN_RECV expires after 60 s: the slots go back to the free list.
        e.expire(Millis(61_000));
        assert_eq!(e.connection_count(), 0);
        check("after expiry");
    }

    /// A frame of `proto` (TCP or UDP) between two endpoints, IPv4 or IPv6, behind `tags`
    /// VLAN tags, and where its transport header starts.
    fn built(
        v6: bool,
        tags: usize,
        proto: u8,
        (src, sport): ([u8; 16], u16),
        (dst, dport): ([u8; 16], u16),
        syn: bool,
    ) -> (Vec<u8>, usize) {
        let eth = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let l3 = if v6 {
            eth.ipv6(src, dst, 64)
        } else {
            let v4 = |a: [u8; 16]| [a[12], a[13], a[14], a[15]];
            eth.ipv4(v4(src), v4(dst), 64)
        };
        let mut out = Vec::new();
        if proto == ip::TCP {
            let t = l3.tcp(sport, dport, 1, 65535);
            let t = if syn { t.syn() } else { t.ack(1) };
            t.write(&mut out, &[0; 8]).expect("build");
        } else {
            l3.udp(sport, dport)
                .write(&mut out, &[0; 8])
                .expect("build");
        }
        // Tags go between the MAC addresses and the EtherType, outer (802.1ad) first.
        for t in 0..tags {
            let tpid = if t + 1 < tags {
                ETHERTYPE_QINQ
            } else {
                ETHERTYPE_VLAN
            };
            let [a, b] = tpid.to_be_bytes();
            out.splice(12 + VLAN_TAG * t..12 + VLAN_TAG * t, [a, b, 0, 7]);
        }
        let l4 = HEADER_LEN + VLAN_TAG * tags + if v6 { 40 } else { 20 };
        (out, l4)
    }

    fn addr(v6: bool, bytes: [u8; 16]) -> [u8; 16] {
        if v6 {
            bytes
        } else {
            mapped([bytes[0], bytes[1], bytes[2], bytes[3]])
        }
    }

    #[test]
    fn fragments_and_other_protocols_are_skipped() {
        let (a, b) = (addr(false, [10; 16]), addr(false, [20; 16]));
        let (whole, _) = built(false, 0, ip::TCP, (a, 40000), (b, 80), true);
        assert!(peek(&whole).is_some());
        let mut fragment = whole.clone();
        fragment[HEADER_LEN + 6] |= 0x20; // more fragments
        assert_eq!(peek(&fragment), None);
        let mut icmp = whole;
        icmp[HEADER_LEN + 9] = ip::ICMP;
        assert_eq!(peek(&icmp), None);
    }

    /// Where the peek and the engine's parser both read a frame, they read the same
    /// endpoints: the prefetched buckets are the ones the handling probes.
    fn agrees_with_the_parser(frame: &[u8]) -> Result<(), TestCaseError> {
        let parsed = crate::datapath::parse(frame, &crate::PacketMeta::default());
        if let (Some(p), Ok(Some(full))) = (peek(frame), parsed) {
            let t = full.flow;
            prop_assert!(!full.fragment);
            prop_assert_eq!(
                (p.proto, p.src, p.sport, p.dst, p.dport),
                (t.proto, t.src, t.sport, t.dst, t.dport)
            );
        }
        Ok(())
    }

    proptest! {
        /// Built frames with one byte changed anywhere (an address, a length, a tag, the
        /// protocol, an extension of the header...).
        #[test]
        fn peek_and_parser_agree_on_changed_frames(
            v6 in any::<bool>(),
            tags in 0usize..=MAX_VLAN_TAGS,
            tcp in any::<bool>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let proto = if tcp { ip::TCP } else { ip::UDP };
            let ends = ((addr(v6, [1; 16]), 1000), (addr(v6, [2; 16]), 80));
            let (mut frame, _) = built(v6, tags, proto, ends.0, ends.1, true);
            let i = at.index(frame.len());
            frame[i] = byte;
            agrees_with_the_parser(&frame)?;
        }

        /// Built frames of every shape are read exactly; cut anywhere before what the peek
        /// needs, they are skipped.
        #[test]
        fn frames_are_read_as_built_and_cut_ones_skipped(
            v6 in any::<bool>(),
            tags in 0usize..=MAX_VLAN_TAGS,
            tcp in any::<bool>(),
            syn in any::<bool>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let proto = if tcp { ip::TCP } else { ip::UDP };
            let (src, dst) = (addr(v6, src), addr(v6, dst));
            let (frame, l4) = built(v6, tags, proto, (src, sport), (dst, dport), syn);
            let want = Peek { proto, src, sport, dst, dport, syn: tcp && syn };
            prop_assert_eq!(peek(&frame), Some(want));
            let needed = l4 + if tcp { 14 } else { 4 };
            prop_assert_eq!(peek(&frame[..cut.index(needed)]), None);
        }
    }

    /// Arbitrary bytes through one engine's prefetch: no panic, and nothing changes.
    #[test]
    fn any_bytes_are_prefetched_without_effect() {
        let e = Engine::new(crate::EngineConfig::default());
        let mut runner = proptest::test_runner::TestRunner::default();
        let frames = proptest::collection::vec(any::<u8>(), 0..120);
        runner
            .run(&frames, |frame| {
                e.prefetch(&frame);
                Ok(())
            })
            .expect("prefetch");
        assert_eq!(e.connection_count(), 0);
    }
}
