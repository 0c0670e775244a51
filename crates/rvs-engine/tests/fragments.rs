//! Fragmenting and reassembly: packets cut by `fragment::split` and fed to a `Reassembler` in
//! any order come back as they were; every fragment is a valid IP packet to etherparse; the
//! reassembler's bounds (memory, time, overlaps, sizes) hold and are counted.

use proptest::prelude::*;
use rvs_engine::fragment::{split, FragmentError};
use rvs_engine::reasm::{Collected, Reassembler, Refusal};
use rvs_engine::ReasmLimits;
use rvs_wire::checksum;

const ETH_V4: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
const ETH_V6: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];

/// An IPv4 UDP packet of `len` payload bytes with `options` (a multiple of 4 bytes), DF clear.
fn v4_packet(len: usize, options: &[u8], ident: u16, tos: u8) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = hlen + 8 + len;
    let mut p = vec![0u8; total];
    p[0] = 0x40 | (hlen / 4) as u8;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 100]);
    p[20..hlen].copy_from_slice(options);
    let c = checksum::checksum(&p[..hlen]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let u = hlen;
    p[u..u + 2].copy_from_slice(&5353u16.to_be_bytes());
    p[u + 2..u + 4].copy_from_slice(&53u16.to_be_bytes());
    p[u + 4..u + 6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    for (i, b) in p[u + 8..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    p
}

/// An IPv6 UDP packet of `len` payload bytes, after a hop-by-hop header when `hbh` and a
/// destination-options header when `dopt`.
fn v6_packet(len: usize, hbh: bool, dopt: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut first_next = 17u8;
    // Built back to front: each header names the one after it.
    if dopt {
        ext.splice(0..0, [first_next, 0, 1, 4, 0, 0, 0, 0]);
        first_next = 60;
    }
    if hbh {
        ext.splice(0..0, [first_next, 0, 1, 4, 0, 0, 0, 0]);
        first_next = 0;
    }
    let payload = ext.len() + 8 + len;
    let mut p = vec![0u8; 40 + payload];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    p[6] = first_next;
    p[7] = 64;
    p[8] = 0x20;
    p[9] = 0x01;
    p[23] = 1;
    p[24] = 0x20;
    p[25] = 0x01;
    p[39] = 0x64;
    p[40..40 + ext.len()].copy_from_slice(&ext);
    let u = 40 + ext.len();
    p[u..u + 2].copy_from_slice(&5353u16.to_be_bytes());
    p[u + 2..u + 4].copy_from_slice(&53u16.to_be_bytes());
    p[u + 4..u + 6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    for (i, b) in p[u + 8..].iter_mut().enumerate() {
        *b = (i * 5 + 1) as u8;
    }
    p
}

/// The fragments of `packet` (at most `max` bytes each) as Ethernet frames.
fn fragments(eth: &[u8; 14], packet: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    split(packet, max, 0xabcd_0001, |h, d| {
        let mut f = eth.to_vec();
        f.extend_from_slice(h);
        f.extend_from_slice(d);
        out.push(f);
    })
    .expect("split");
    out
}

fn with_eth(eth: &[u8; 14], packet: &[u8]) -> Vec<u8> {
    let mut f = eth.to_vec();
    f.extend_from_slice(packet);
    f
}

/// Feeds `frames` in the order `order` (indexes) and returns what the last one gave.
fn feed(r: &mut Reassembler, frames: &[Vec<u8>], order: &[usize]) -> Vec<Collected> {
    order.iter().map(|&i| r.collect(1000, &frames[i])).collect()
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

fn complete(results: &[Collected]) -> Option<&rvs_engine::reasm::Reassembled> {
    let (last, before) = results.split_last()?;
    assert!(
        before.iter().all(|c| *c == Collected::Held),
        "only the last fragment completes: {before:?}"
    );
    match last {
        Collected::Complete(r) => Some(r),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn v4_round_trip(len in 0usize..5000, max in 68usize..1500, seed in any::<u64>(), opts in any::<bool>()) {
        // A record-route option (not copied) and a security option (copied) when `opts`.
        let options: &[u8] = if opts { &[7, 7, 4, 0, 0, 0, 0, 0x82, 3, 0, 1, 0] } else { &[] };
        let packet = v4_packet(len, options, 0x1234, 0);
        let frames = fragments(&ETH_V4, &packet, max);
        for f in &frames {
            prop_assert!(f.len() - 14 <= max);
            let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..]).expect("etherparse reads the header");
            prop_assert_eq!(usize::from(ip.total_len()), f.len() - 14);
            prop_assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
        }
        let mut r = Reassembler::new(ReasmLimits::default());
        let order = shuffled(frames.len(), seed);
        if frames.len() == 1 {
            // Fits whole: not a fragment, the reassembler refuses it.
            prop_assert_eq!(&frames[0], &with_eth(&ETH_V4, &packet));
            prop_assert_eq!(r.collect(0, &frames[0]), Collected::Refused(Refusal::NotFragment));
            return Ok(());
        }
        let results = feed(&mut r, &frames, &order);
        let whole = complete(&results).expect("complete");
        prop_assert_eq!(&whole.frame, &with_eth(&ETH_V4, &packet));
        prop_assert_eq!(whole.max_fragment, frames.iter().map(|f| f.len() - 14).max().unwrap());
        prop_assert_eq!(r.held().datagrams, 0);
        prop_assert_eq!(r.held().bytes, 0);
    }

    #[test]
    fn v6_round_trip(len in 0usize..5000, max in 1280usize..1500, seed in any::<u64>(), hbh in any::<bool>(), dopt in any::<bool>()) {
        let packet = v6_packet(len, hbh, dopt);
        let frames = fragments(&ETH_V6, &packet, max);
        for (i, f) in frames.iter().enumerate() {
            prop_assert!(f.len() - 14 <= max);
            if dopt && i > 0 {
                // etherparse reads a later fragment's data as the destination options header
                // its fragment header names.
                continue;
            }
            let sliced = etherparse::SlicedPacket::from_ethernet(f).expect("etherparse reads the fragment");
            let Some(etherparse::NetSlice::Ipv6(v6)) = sliced.net else { panic!("not IPv6") };
            // One piece is an atomic fragment (offset 0, no more), which is not "fragmented".
            prop_assert_eq!(v6.is_payload_fragmented(), frames.len() > 1);
        }
        let mut r = Reassembler::new(ReasmLimits::default());
        let order = shuffled(frames.len(), seed);
        let results = feed(&mut r, &frames, &order);
        let whole = complete(&results).expect("complete");
        prop_assert_eq!(&whole.frame, &with_eth(&ETH_V6, &packet));
        prop_assert_eq!(r.stats().reassembled, 1);
    }
}

#[test]
fn later_fragments_carry_only_copied_options() {
    let options = [7, 7, 4, 0, 0, 0, 0, 0x82, 3, 0, 1, 0];
    let packet = v4_packet(3000, &options, 7, 0);
    let frames = fragments(&ETH_V4, &packet, 1500);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0][14] & 0x0f, 8, "the first keeps every option");
    for f in &frames[1..] {
        assert_eq!(f[14] & 0x0f, 6, "the others keep the security option");
        assert_eq!(&f[34..38], &[0x82, 3, 0, 0]);
    }
}

#[test]
fn ipv6_router_alert_stays_in_every_fragment() {
    let packet = v6_packet(3000, true, false);
    let frames = fragments(&ETH_V6, &packet, 1280);
    for f in &frames {
        assert_eq!(f[14 + 6], 0, "hop-by-hop first");
        assert_eq!(f[14 + 40], 44, "then the fragment header");
    }
}

#[test]
fn too_small_a_link_is_an_error() {
    let packet = v4_packet(100, &[], 1, 0);
    assert_eq!(
        split(&packet, 27, 0, |_, _| {}),
        Err(FragmentError::MtuTooSmall)
    );
    assert_eq!(
        split(&[0x50; 30], 1500, 0, |_, _| {}),
        Err(FragmentError::NotIp)
    );
}

#[test]
fn overlapping_fragments_drop_the_datagram() {
    let packet = v4_packet(3000, &[], 9, 0);
    let frames = fragments(&ETH_V4, &packet, 1500);
    let mut r = Reassembler::new(ReasmLimits::default());
    assert_eq!(r.collect(0, &frames[0]), Collected::Held);
    // The second fragment moved 8 bytes back, into the first.
    let mut bad = frames[1].clone();
    let off = u16::from_be_bytes([bad[20], bad[21]]);
    bad[20..22].copy_from_slice(&(off - 1).to_be_bytes());
    assert_eq!(r.collect(0, &bad), Collected::Refused(Refusal::Invalid));
    assert_eq!(r.held().datagrams, 0);
    assert_eq!(r.stats().invalid, 1);
    // What comes after starts a new datagram, which the first fragment no longer completes.
    assert_eq!(r.collect(0, &frames[1]), Collected::Held);
    assert_eq!(r.collect(0, &frames[2]), Collected::Held);
}

#[test]
fn duplicates_are_ignored() {
    let packet = v4_packet(3000, &[], 9, 0);
    let frames = fragments(&ETH_V4, &packet, 1500);
    let mut r = Reassembler::new(ReasmLimits::default());
    let results = feed(&mut r, &frames, &[0, 0, 1, 1]);
    assert!(results.iter().all(|c| *c == Collected::Held));
    match r.collect(0, &frames[2]) {
        Collected::Complete(w) => assert_eq!(w.frame, with_eth(&ETH_V4, &packet)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn incomplete_datagrams_time_out() {
    let packet = v6_packet(3000, false, false);
    let frames = fragments(&ETH_V6, &packet, 1280);
    let mut r = Reassembler::new(ReasmLimits {
        max_bytes: 1 << 20,
        timeout_ms: 30_000,
    });
    assert_eq!(r.collect(1_000, &frames[0]), Collected::Held);
    assert_eq!(r.collect(30_999, &frames[1]), Collected::Held);
    r.expire(31_000);
    assert_eq!(r.stats().timeouts, 1);
    assert_eq!(r.held().datagrams, 0);
    assert_eq!(r.held().bytes, 0);
    // The last fragment alone now starts a datagram of its own.
    assert_eq!(r.collect(31_000, &frames[2]), Collected::Held);
}

#[test]
fn memory_bound_refuses_new_fragments() {
    let mut r = Reassembler::new(ReasmLimits {
        max_bytes: 10_000,
        timeout_ms: 30_000,
    });
    let mut held = 0;
    for ident in 0..20u16 {
        let packet = v4_packet(3000, &[], ident, 0);
        let frames = fragments(&ETH_V4, &packet, 1500);
        match r.collect(0, &frames[0]) {
            Collected::Held => held += 1,
            Collected::Refused(Refusal::MemoryFull) => {}
            other => panic!("{other:?}"),
        }
        assert!(r.held().bytes <= 10_000);
    }
    assert_eq!(held, 6);
    assert_eq!(r.stats().memory_full, 14);
    // Time frees the memory.
    r.expire(30_000);
    assert_eq!(r.held().bytes, 0);
}

#[test]
fn bad_sizes_are_invalid() {
    let packet = v4_packet(3000, &[], 3, 0);
    let frames = fragments(&ETH_V4, &packet, 1500);
    let mut r = Reassembler::new(ReasmLimits::default());
    // A first fragment 4 bytes short: not a multiple of 8.
    let mut short = frames[0].clone();
    short.truncate(short.len() - 4);
    let total = (short.len() - 14) as u16;
    short[16..18].copy_from_slice(&total.to_be_bytes());
    short[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&short[14..34]);
    short[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(r.collect(0, &short), Collected::Refused(Refusal::Invalid));
    // A last fragment ending past 65535.
    let mut far = frames[2].clone();
    far[20..22].copy_from_slice(&0x1fffu16.to_be_bytes());
    far[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&far[14..34]);
    far[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(r.collect(0, &far), Collected::Refused(Refusal::Invalid));
    // Not a fragment at all.
    let whole = with_eth(&ETH_V4, &v4_packet(10, &[], 4, 0));
    assert_eq!(
        r.collect(0, &whole),
        Collected::Refused(Refusal::NotFragment)
    );
}

#[test]
fn congestion_experienced_in_one_fragment_marks_the_datagram() {
    let packet = v4_packet(3000, &[], 5, 0x02);
    let mut frames = fragments(&ETH_V4, &packet, 1500);
    frames[1][15] = 0x03;
    let c = {
        frames[1][24..26].copy_from_slice(&[0, 0]);
        checksum::checksum(&frames[1][14..34])
    };
    frames[1][24..26].copy_from_slice(&c.to_be_bytes());
    let mut r = Reassembler::new(ReasmLimits::default());
    let results = feed(&mut r, &frames, &[0, 1, 2]);
    let whole = complete(&results).expect("complete");
    assert_eq!(whole.frame[15] & 3, 3);
    // Not-ECT mixed with ECT is invalid.
    frames[1][15] = 0x00;
    frames[1][24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&frames[1][14..34]);
    frames[1][24..26].copy_from_slice(&c.to_be_bytes());
    let results = feed(&mut r, &frames, &[0, 1, 2]);
    assert_eq!(results[2], Collected::Refused(Refusal::Invalid));
}

#[test]
fn an_atomic_fragment_is_not_cut_again() {
    // Found by the engine fuzz target: an IPv6 packet with a fragment header at offset 0 and no
    // more fragments (RFC 6946) is not a fragment to the parser, and was cut with a second
    // fragment header after the first.
    let mut packet = v6_packet(600, false, false);
    let udp = packet.split_off(40);
    packet[6] = 44;
    packet.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 9]);
    packet.extend_from_slice(&udp);
    let payload = (packet.len() - 40) as u16;
    packet[4..6].copy_from_slice(&payload.to_be_bytes());
    assert_eq!(
        split(&packet, 576, 1, |_, _| {}),
        Err(FragmentError::AlreadyFragmented)
    );
}
