//! Parsing ipvsadm's address, port, number and mask arguments.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Well-known port names accepted in `host:port` (ipvsadm asks getservbyname; rvsadm knows these).
const SERVICE_NAMES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("http-alt", 8080),
];

/// An address with an optional port, as `parse_service` in ipvsadm.c reads `host[:port]`,
/// `v6addr` or `[v6addr]:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// Parse `host[:port]`. Host names are not resolved (numeric addresses only); ports may be numbers
/// or a few well-known service names. `None` means ipvsadm's "illegal ... address[:port]".
pub(crate) fn parse_host_port(text: &str) -> Option<HostPort> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']')?;
        let port = rest.strip_prefix(':')?;
        let addr: Ipv6Addr = host.parse().ok()?;
        return Some(HostPort {
            addr: IpAddr::V6(addr),
            port: Some(parse_port(port)?),
        });
    }
    if let Ok(addr) = text.parse::<Ipv6Addr>() {
        return Some(HostPort {
            addr: IpAddr::V6(addr),
            port: None,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (text, None),
    };
    let addr: Ipv4Addr = host.parse().ok()?;
    Some(HostPort {
        addr: IpAddr::V4(addr),
        port,
    })
}

fn parse_port(text: &str) -> Option<u16> {
    if let Some(n) = string_to_number(text, 0, 65535) {
        return u16::try_from(n).ok();
    }
    SERVICE_NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|&(_, port)| port)
}

/// ipvsadm's `string_to_number`: a whole base-10 number (strtol syntax) within `min..=max`.
pub(crate) fn string_to_number(text: &str, min: i64, max: i64) -> Option<i64> {
    let trimmed = text.trim_start();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    let value = if negative { -magnitude } else { magnitude };
    (min..=max).contains(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        let hp = parse_host_port("192.168.1.253:80").expect("v4");
        assert_eq!(hp.addr, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 253)));
        assert_eq!(hp.port, Some(80));
        assert_eq!(parse_host_port("10.0.0.1").expect("v4").port, None);
        assert_eq!(
            parse_host_port("10.0.0.1:http").expect("name").port,
            Some(80)
        );
        let v6 = parse_host_port("[2001:db8::1]:443").expect("v6");
        assert_eq!(v6.port, Some(443));
        assert_eq!(parse_host_port("2001:db8::1").expect("bare v6").port, None);
        for bad in [
            "",
            "80",
            "10.0.0.1:99999",
            "10.0.0.1:",
            "[::1]",
            "host.example:80",
            "1.2.3:4",
        ] {
            assert!(parse_host_port(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("+5", 0, 9), Some(5));
        assert_eq!(string_to_number("5x", 0, 9), None);
    }
}
