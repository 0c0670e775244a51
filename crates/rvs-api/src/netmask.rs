//! Netmasks and prefix lengths (`--netmask`, `persistence_granularity`), and C's `inet_aton`,
//! which both ipvsadm's `-M` and keepalived's IPv4 `persistence_granularity` read (so `24` is
//! the mask 0.0.0.24, not a /24).

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

/// C's `isspace` in the C locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtoul(text, &end, 0)` on a text that starts with a digit: the value (`None` when it does
/// not fit 32 bits, which `inet_aton` refuses anyway) and the bytes read. `0x` starts hex, `0`
/// octal; a prefix without digits after it reads as `0`.
fn strtoul_base0(text: &[u8]) -> (Option<u32>, usize) {
    let (radix, start) = match text {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 1),
        _ => (10, 0),
    };
    let mut value: Option<u32> = Some(0);
    let mut end = start;
    while let Some(digit) = text.get(end).and_then(|&b| char::from(b).to_digit(radix)) {
        value = value
            .and_then(|v| v.checked_mul(radix))
            .and_then(|v| v.checked_add(digit));
        end += 1;
    }
    (value, end)
}

/// glibc's `inet_aton`: one to four numbers separated by dots, each decimal, octal (`0`) or hex
/// (`0x`); the last fills the remaining bytes (`10.1` is 10.0.0.1). A whitespace character may
/// follow, and anything after it is ignored.
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let bytes = text.as_bytes();
    let mut parts: Vec<u32> = Vec::with_capacity(3);
    let mut at = 0;
    let last = loop {
        if !bytes.get(at).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (value, read) = strtoul_base0(&bytes[at..]);
        let value = value?;
        at += read;
        if bytes.get(at) == Some(&b'.') {
            if parts.len() > 2 || value > 0xff {
                return None;
            }
            parts.push(value);
            at += 1;
        } else {
            break value;
        }
    };
    if bytes.get(at).is_some_and(|&b| !c_isspace(b)) {
        return None;
    }
    let max: u32 = [0xffff_ffff, 0xff_ffff, 0xffff, 0xff][parts.len()];
    if last > max {
        return None;
    }
    let high = parts
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, &p)| acc | (p << (24 - 8 * i)));
    Some(Ipv4Addr::from(high | last))
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

    #[test]
    fn inet_aton_forms() {
        let a = |t| inet_aton(t).map(u32::from);
        assert_eq!(a("1.2.3.4"), Some(0x0102_0304));
        assert_eq!(a("10.1"), Some(0x0a00_0001));
        assert_eq!(a("10.1.2"), Some(0x0a01_0002));
        assert_eq!(a("167772161"), Some(0x0a00_0001));
        assert_eq!(a("0x0a.010.0.1"), Some(0x0a08_0001));
        assert_eq!(a("1.2.3.4 trailing"), Some(0x0102_0304));
        assert_eq!(a("1.2.65535"), Some(0x0102_ffff));
        for bad in [
            "",
            ".1",
            "1.",
            "1..2",
            "08",
            "0x",
            "1.2.3.256",
            "1.2.65536",
            "4294967296",
            "a",
        ] {
            assert_eq!(a(bad), None, "{bad}");
        }
    }
}
