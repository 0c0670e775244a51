//! Property tests: emit/parse round trip and a panic-free parser.

use proptest::prelude::*;
use rvs_vrrp::codec::{Advert, Auth, IpContext, Version, MCAST_V4};
use rvs_vrrp::AhSession;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn advert_v4() -> impl Strategy<Value = (Advert, IpContext)> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        0u16..=4095,
        prop::collection::vec(any::<u32>(), 0..20),
        prop_oneof![
            Just(Auth::None),
            any::<[u8; 8]>().prop_map(Auth::Pass),
            Just(Auth::Ah)
        ],
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(v3, vrid, priority, interval, addrs, auth, src, dst)| {
            let version = if v3 { Version::V3 } else { Version::V2 };
            let a = Advert {
                version,
                vrid,
                priority,
                interval: if v3 { interval } else { interval & 0xff },
                auth: if v3 { Auth::None } else { auth },
                addrs: addrs
                    .into_iter()
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    .collect(),
            };
            let ctx = IpContext {
                src: IpAddr::V4(Ipv4Addr::from(src)),
                dst: IpAddr::V4(Ipv4Addr::from(dst)),
            };
            (a, ctx)
        })
}

fn advert_v6() -> impl Strategy<Value = (Advert, IpContext)> {
    (
        any::<u8>(),
        any::<u8>(),
        0u16..=4095,
        prop::collection::vec(any::<u128>(), 0..8),
        any::<u128>(),
        any::<u128>(),
    )
        .prop_map(|(vrid, priority, interval, addrs, src, dst)| {
            let a = Advert {
                version: Version::V3,
                vrid,
                priority,
                interval,
                auth: Auth::None,
                addrs: addrs
                    .into_iter()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .collect(),
            };
            let ctx = IpContext {
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
            };
            (a, ctx)
        })
}

proptest! {
    #[test]
    fn round_trip_v4((a, ctx) in advert_v4()) {
        let bytes = a.emit(&ctx).unwrap();
        prop_assert_eq!(bytes.len(), a.encoded_len(false));
        prop_assert_eq!(Advert::parse(&bytes, &ctx).unwrap(), a);
    }

    #[test]
    fn round_trip_v6((a, ctx) in advert_v6()) {
        let bytes = a.emit(&ctx).unwrap();
        prop_assert_eq!(Advert::parse(&bytes, &ctx).unwrap(), a);
    }

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
        let ctx = if v6 {
            IpContext { src: "fe80::1".parse().unwrap(), dst: "ff02::12".parse().unwrap() }
        } else {
            IpContext { src: "10.0.0.1".parse().unwrap(), dst: "224.0.0.18".parse().unwrap() }
        };
        let _ = Advert::parse(&bytes, &ctx);
        let _ = AhSession::new("pw").open(&bytes, false);
        let _ = AhSession::new("pw").open(&bytes, true);
    }

    #[test]
    fn single_bit_flip_is_detected((a, mut ctx) in advert_v4(), bit in any::<usize>()) {
        // Sent to the group, a v3 advert has no second (unicast) checksum that could match.
        ctx.dst = MCAST_V4.into();
        let mut bytes = a.emit(&ctx).unwrap();
        let i = bit % (bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        let parsed = Advert::parse(&bytes, &ctx);
        prop_assert!(parsed.is_err(), "bit {} flipped, parsed as {:?}", i, parsed);
    }
}
