//! Netmasks and prefix lengths (`--netmask`, `persistence_granularity`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A prefix length as a netmask, IPv6 when `ipv6` (lengths beyond 32 / 128 are clamped).
pub fn prefix_mask(ipv6: bool, prefix: u8) -> IpAddr {
    if ipv6 {
        let bits = u32::from(prefix.min(128));
        IpAddr::V6(Ipv6Addr::from(
            u128::MAX.checked_shl(128 - bits).unwrap_or(0),
        ))
    } else {
        let bits = u32::from(prefix.min(32));
        IpAddr::V4(Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)))
    }
}

/// A netmask's prefix length; `None` unless its one bits are contiguous from the top.
pub fn mask_prefix(mask: IpAddr) -> Option<u8> {
    let (ones, rest_zero) = match mask {
        IpAddr::V4(m) => {
            let m = u32::from(m);
            (
                m.leading_ones(),
                m.checked_shl(m.leading_ones()).unwrap_or(0) == 0,
            )
        }
        IpAddr::V6(m) => {
            let m = u128::from(m);
            (
                m.leading_ones(),
                m.checked_shl(m.leading_ones()).unwrap_or(0) == 0,
            )
        }
    };
    rest_zero.then(|| u8::try_from(ones).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(mask_prefix(v4("255.255.255.0")), Some(24));
        assert_eq!(mask_prefix(v4("0.0.0.0")), Some(0));
        assert_eq!(mask_prefix(v4("255.255.255.255")), Some(32));
        assert_eq!(mask_prefix(v4("255.0.255.0")), None);
        assert_eq!(prefix_mask(false, 24), v4("255.255.255.0"));
        assert_eq!(prefix_mask(false, 0), v4("0.0.0.0"));
        assert_eq!(prefix_mask(false, 32), v4("255.255.255.255"));
        assert_eq!(prefix_mask(false, 40), v4("255.255.255.255"));
        assert_eq!(
            prefix_mask(true, 64),
            "ffff:ffff:ffff:ffff::".parse::<IpAddr>().unwrap()
        );
        for p in 0..=32 {
            assert_eq!(mask_prefix(prefix_mask(false, p)), Some(p));
        }
        for p in 0..=128 {
            assert_eq!(mask_prefix(prefix_mask(true, p)), Some(p));
        }
    }
}
