//! Byte-exact layout against the kernel's structs, kernel receive rules, packing, and
//! properties (round trip, no panic).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use rvs_sync::*;

fn nat_conn() -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: F_MASQ,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        addrs: SyncAddrs::V4 {
            caddr: Ipv4Addr::new(10, 0, 0, 2),
            vaddr: Ipv4Addr::new(10, 0, 0, 100),
            daddr: Ipv4Addr::new(192, 168, 1, 11),
        },
        seq: None,
        pe_data: None,
        pe_name: None,
        fnat_local: None,
    }
}

/// `struct ip_vs_sync_mesg` + `struct ip_vs_sync_v4`, written field by field from the
/// kernel's declarations.
fn kernel_message_v4() -> Vec<u8> {
    let mut m = vec![
        0, // reserved
        7, // syncid
        0, 44, // size
        1,  // nr_conns
        1,  // version
        0, 0, // spare
    ];
    m.extend_from_slice(&[
        0, // type: IPv4
        6, // protocol
        0, 36, // ver_size: version 0, size 36
        0, 0, 0, 0, // flags
        0, 1, // state ESTABLISHED
        0x9c, 0x40, // cport 40000
        0, 80, // vport
        0x1f, 0x90, // dport 8080
        0, 0, 0, 0, // fwmark
        0, 0, 0x03, 0x84, // timeout 900 s
        10, 0, 0, 2, // caddr
        10, 0, 0, 100, // vaddr
        192, 168, 1, 11, // daddr
    ]);
    m
}

#[test]
fn emits_the_kernels_v4_layout() {
    let msgs = pack([&nat_conn()], 7, 1472);
    assert_eq!(msgs, vec![kernel_message_v4()]);
    assert_eq!(
        parse(&kernel_message_v4(), 7),
        Ok(Message::Conns {
            syncid: 7,
            conns: vec![nat_conn()],
            skipped: 0
        })
    );
}

#[test]
fn v6_entry_with_options_and_padding() {
    let mut c = nat_conn();
    c.addrs = SyncAddrs::V6 {
        caddr: "2001:db8::2".parse().unwrap_or(Ipv6Addr::LOCALHOST),
        vaddr: "2001:db8::100".parse().unwrap_or(Ipv6Addr::LOCALHOST),
        daddr: "2001:db8:1::11".parse().unwrap_or(Ipv6Addr::LOCALHOST),
    };
    c.pe_data = Some(b"abc".to_vec());
    c.pe_name = Some(b"sip".to_vec());
    let msgs = pack([&c, &nat_conn()], 0, 1472);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    // v6 entry: 72 + (2+3) + (2+3) = 82, padded to 84 before the next entry.
    assert_eq!(&m[8..12], &[STYPE_F_INET6, 6, 0, 82]);
    assert_eq!(
        &m[8 + 72..8 + 82],
        &[2, 3, b'a', b'b', b'c', 3, 3, b's', b'i', b'p']
    );
    assert_eq!(&m[8 + 82..8 + 84], &[0, 0]);
    assert_eq!(m.len(), 8 + 84 + 36);
    assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
    assert_eq!(m[4], 2);
    let Ok(Message::Conns { conns, .. }) = parse(m, 0) else {
        panic!("no parse")
    };
    assert_eq!(conns, vec![c, nat_conn()]);
}

#[test]
fn seq_option_layout() {
    let mut c = nat_conn();
    c.flags |= F_IN_SEQ;
    c.seq = Some(SeqOptions {
        in_seq: SeqData {
            init_seq: 1,
            delta: 2,
            previous_delta: 3,
        },
        out_seq: SeqData {
            init_seq: 4,
            delta: 5,
            previous_delta: 6,
        },
    });
    let m = &pack([&c], 1, 1472)[0];
    assert_eq!(&m[8 + 2..8 + 4], &[0, 36 + 26]);
    assert_eq!(&m[8 + 36..8 + 40], &[1, 24, 0, 0]);
    assert_eq!(&m[m.len() - 4..], &[0, 0, 0, 6]);
}

#[test]
fn fullnat_local_is_an_optional_parameter() {
    let mut c = nat_conn();
    c.flags = F_FULLNAT;
    c.fnat_local = Some(SocketAddr::new(
        Ipv4Addr::new(192, 168, 1, 254).into(),
        5000,
    ));
    let m = &pack([&c], 1, 1472)[0];
    let opt = &m[8 + 36..];
    assert_eq!(opt, &[0x48, 6, 192, 168, 1, 254, 0x13, 0x88]);
    assert_ne!(opt[0] & OPT_F_PARAM, 0, "a kernel skips it");
    let Ok(Message::Conns { conns, .. }) = parse(m, 1) else {
        panic!("no parse")
    };
    assert_eq!(conns[0], c);
}

#[test]
fn unknown_mandatory_option_skips_the_entry_only() {
    let mut m = pack([&nat_conn(), &nat_conn()], 1, 1472).remove(0);
    // Grow the first entry by an unknown mandatory option 9 of 2 bytes (aligned: 40 bytes).
    let mut entry = m[8..44].to_vec();
    entry.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    entry[3] = 40;
    let mut msg = m[..8].to_vec();
    msg.extend_from_slice(&entry);
    msg.extend_from_slice(&m.split_off(44));
    let n = msg.len() as u16;
    msg[2..4].copy_from_slice(&n.to_be_bytes());
    assert_eq!(
        parse(&msg, 1),
        Ok(Message::Conns {
            syncid: 1,
            conns: vec![nat_conn()],
            skipped: 1
        })
    );
    // The same with the optional bit is skipped as an option, the entry kept.
    msg[8 + 36] = 9 | OPT_F_PARAM;
    let Ok(Message::Conns { conns, skipped, .. }) = parse(&msg, 1) else {
        panic!("no parse")
    };
    assert_eq!((conns.len(), skipped), (2, 0));
}

#[test]
fn syncid_filtering() {
    let m = kernel_message_v4();
    assert_eq!(parse(&m, 8), Err(ParseError::OtherSyncId(7)));
    assert!(parse(&m, 0).is_ok(), "syncid 0 takes any");
    assert!(parse(&m, 7).is_ok());
}

#[test]
fn bad_messages() {
    let m = kernel_message_v4();
    assert_eq!(parse(&m[..3], 0), Err(ParseError::TooShort));
    assert_eq!(parse(&m[..40], 0), Err(ParseError::BadSize));
    let mut v0 = m.clone();
    v0[5] = 0;
    assert_eq!(parse(&v0, 0), Err(ParseError::Version(0)));
    let mut big = m.clone();
    big[11] = 40;
    assert_eq!(parse(&big, 0), Err(ParseError::Truncated));
    let mut ty = m.clone();
    ty[8] = 2;
    assert_eq!(parse(&ty, 0), Err(ParseError::EntryType(2)));
}

#[test]
fn resync_request_is_a_kernel_noop() {
    let r = resync_request(3);
    assert_eq!(parse(&r, 3), Ok(Message::ResyncRequest { syncid: 3 }));
    assert_eq!(parse(&r, 4), Err(ParseError::OtherSyncId(3)));
    // A kernel sees reserved 0 and version != 1: a version-0 message whose connection count
    // (its first byte) is 0, so it does nothing.
    assert_eq!(r[0], 0);
    assert_ne!(r[5], SYNC_PROTO_VER);
}

#[test]
fn maxlen_is_honoured() {
    let conns: Vec<SyncConn> = (0..100).map(|_| nat_conn()).collect();
    let msgs = pack(&conns, 1, 200);
    // (200 - 8) / 36 = 5 entries per datagram.
    assert_eq!(msgs.len(), 20);
    let mut n = 0;
    for m in &msgs {
        assert!(m.len() <= 200);
        let Ok(Message::Conns { conns, .. }) = parse(m, 1) else {
            panic!("no parse")
        };
        n += conns.len();
    }
    assert_eq!(n, 100);
    // Never more than 255 entries in a datagram (nr_conns is one byte).
    let many: Vec<SyncConn> = (0..300).map(|_| nat_conn()).collect();
    let msgs = pack(&many, 1, 65000);
    assert_eq!(
        msgs.iter().map(|m| m[4] as usize).collect::<Vec<_>>(),
        vec![255, 45]
    );
}

fn arb_conn() -> impl Strategy<Value = SyncConn> {
    let addrs = prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(c, v, d)| SyncAddrs::V4 {
            caddr: c.into(),
            vaddr: v.into(),
            daddr: d.into()
        }),
        (any::<u128>(), any::<u128>(), any::<u128>()).prop_map(|(c, v, d)| SyncAddrs::V6 {
            caddr: c.into(),
            vaddr: v.into(),
            daddr: d.into()
        }),
    ];
    let seq = proptest::option::of(any::<[u32; 6]>().prop_map(|s| SeqOptions {
        in_seq: SeqData {
            init_seq: s[0],
            delta: s[1],
            previous_delta: s[2],
        },
        out_seq: SeqData {
            init_seq: s[3],
            delta: s[4],
            previous_delta: s[5],
        },
    }));
    let local = proptest::option::of(prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(a, p)| SocketAddr::new(Ipv4Addr::from(a).into(), p)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(a, p)| SocketAddr::new(Ipv6Addr::from(a).into(), p)),
    ]);
    (
        (
            any::<u8>(),
            any::<u32>(),
            any::<u16>(),
            any::<[u16; 3]>(),
            any::<u32>(),
            any::<u32>(),
        ),
        addrs,
        seq,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=255)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=16)),
        local,
    )
        .prop_map(
            |(
                (protocol, flags, state, ports, fwmark, timeout),
                addrs,
                seq,
                pe_data,
                pe_name,
                fnat_local,
            )| SyncConn {
                protocol,
                flags: flags & !F_HASHED,
                state,
                cport: ports[0],
                vport: ports[1],
                dport: ports[2],
                fwmark,
                timeout,
                addrs,
                seq,
                pe_data,
                pe_name,
                fnat_local,
            },
        )
}

proptest! {
    #[test]
    fn parse_of_pack_is_identity(conns in proptest::collection::vec(arb_conn(), 1..40), syncid in any::<u8>(), maxlen in 120usize..2000) {
        let msgs = pack(&conns, syncid, maxlen);
        let mut back = Vec::new();
        for m in &msgs {
            match parse(m, syncid) {
                Ok(Message::Conns { conns, skipped: 0, .. }) => back.extend(conns),
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert_eq!(back, conns);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), syncid in 0u8..3) {
        let _ = parse(&bytes, syncid);
    }

    #[test]
    fn parse_never_panics_on_mutated_messages(conns in proptest::collection::vec(arb_conn(), 1..4), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        for mut m in pack(&conns, 0, 1472) {
            for (i, b) in &flips {
                let n = m.len();
                m[i % n] = *b;
            }
            let _ = parse(&m, 0);
        }
    }
}
