//! rvs-vrrp: the advert codec and AH. The first byte picks the IP context (family, unicast
//! or multicast); the rest is a VRRP message, parsed as received. A message that parses emits
//! again and parses to the same advert. The second half of the input is also taken as fields
//! of an advert to emit: whatever `emit` accepts must parse back unchanged (this reaches the
//! parser past its checksum). Finally the bytes go through `AhSession::open` as a datagram.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_vrrp::{Advert, AhSession, Auth, IpContext, Version};

/// Runs the target.
pub fn target(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let ctx = context(sel);
    if let Ok(a) = Advert::parse(msg, &ctx) {
        let out = a.emit(&ctx).expect("a parsed advert emits");
        assert_eq!(
            Advert::parse(&out, &ctx),
            Ok(a),
            "emit(parse) does not parse back"
        );
    }
    if let Some(a) = advert(msg, &ctx) {
        if let Ok(out) = a.emit(&ctx) {
            assert_eq!(out.len(), a.encoded_len(ctx.dst.is_ipv6()));
            assert_eq!(
                Advert::parse(&out, &ctx),
                Ok(a),
                "emitted advert does not parse back"
            );
        }
    }
    let _ = AhSession::new("secret").open(msg, sel & 4 != 0);
}

fn context(sel: u8) -> IpContext {
    let v4 = |d| IpContext {
        src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
        dst: IpAddr::V4(d),
    };
    let v6 = |d| IpContext {
        src: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
        dst: IpAddr::V6(d),
    };
    match sel & 3 {
        0 => v4(Ipv4Addr::new(224, 0, 0, 18)),
        1 => v4(Ipv4Addr::new(192, 168, 1, 3)),
        2 => v6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
        _ => v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3)),
    }
}

/// An advert from the fields in `b`: version, vrid, priority, interval, auth, then addresses.
fn advert(b: &[u8], ctx: &IpContext) -> Option<Advert> {
    let [flags, vrid, priority, i1, i2, rest @ ..] = b else {
        return None;
    };
    let version = if flags & 1 == 0 {
        Version::V2
    } else {
        Version::V3
    };
    let auth = match (flags >> 1) & 3 {
        0 => Auth::None,
        1 => Auth::pass(&String::from_utf8_lossy(rest.get(..8).unwrap_or(rest))),
        _ => Auth::Ah,
    };
    let v6 = ctx.dst.is_ipv6() != (flags & 8 != 0);
    let addrs = if v6 {
        let c = rest.chunks_exact(16).take(300);
        c.map(|c| IpAddr::V6(<[u8; 16]>::try_from(c).unwrap_or_default().into()))
            .collect()
    } else {
        let c = rest.chunks_exact(4).take(300);
        c.map(|c| IpAddr::V4(<[u8; 4]>::try_from(c).unwrap_or_default().into()))
            .collect()
    };
    Some(Advert {
        version,
        vrid: *vrid,
        priority: *priority,
        interval: u16::from_be_bytes([*i1, *i2]),
        auth,
        addrs,
    })
}
