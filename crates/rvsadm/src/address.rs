//! Parsing ipvsadm's address, port, number and mask arguments.

use crate::names::{PortProto, Resolver};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) use rvs_api::netmask::inet_aton;

/// An address with an optional port, as `parse_service` in ipvsadm.c reads `host[:port]`,
/// `v6addr` or `[v6addr]:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// ipvsadm's `parse_service`: `None` is its "illegal ... address[:port]".
///
/// A text of digits only is refused. `[...]` must be followed by `:port`; what is inside is
/// tried as an IPv6 address (`inet_pton`), and so is an unbracketed text. Otherwise the text
/// is split at its last `:` and the host is an IPv4 address in any `inet_aton` form
/// (`10.1`, `0x0a000001`) or a host name with an IPv4 address (`gethostbyname`; IPv6 host
/// names are not looked up, as in ipvsadm), and a bracketed port is dropped, as ipvsadm drops
/// it. The port is a number 0-65535 or a service name of `proto` (`getservbyname`).
pub(crate) fn parse_host_port(
    text: &str,
    proto: PortProto,
    names: &dyn Resolver,
) -> Option<HostPort> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (buf, bracket_port) = match text.strip_prefix('[') {
        Some(bracketed) => {
            let (inside, rest) = bracketed.split_once(']')?;
            (inside, Some(rest.strip_prefix(':')?))
        }
        None => (text, None),
    };
    let (addr, port_text) = if let Ok(v6) = buf.parse::<Ipv6Addr>() {
        (IpAddr::V6(v6), bracket_port)
    } else {
        let (host, port) = match buf.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (buf, None),
        };
        let v4 = inet_aton(host).or_else(|| names.host_v4(host))?;
        (IpAddr::V4(v4), port)
    };
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p, proto, names)?),
    };
    Some(HostPort { addr, port })
}

/// A port number 0-65535 (`string_to_number`) or a service name of `proto`.
fn parse_port(text: &str, proto: PortProto, names: &dyn Resolver) -> Option<u16> {
    match string_to_number(text, 0, 65535) {
        Some(n) => u16::try_from(n).ok(),
        None => names.service_port(text, proto),
    }
}

/// An IPv4 address or, failing that, an IPv4 host name, as ipvsadm's `parse_netmask` reads
/// `-M` (`inet_aton`, then `gethostbyname`).
pub(crate) fn parse_ipv4(text: &str, names: &dyn Resolver) -> Option<Ipv4Addr> {
    inet_aton(text).or_else(|| names.host_v4(text))
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

    use crate::names::StaticResolver;

    fn numeric(text: &str) -> Option<HostPort> {
        parse_host_port(text, PortProto::Tcp, &StaticResolver::new())
    }

    #[test]
    fn host_ports() {
        let hp = numeric("192.168.1.253:80").expect("v4");
        assert_eq!(hp.addr, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 253)));
        assert_eq!(hp.port, Some(80));
        assert_eq!(numeric("10.0.0.1").expect("v4").port, None);
        let v6 = numeric("[2001:db8::1]:443").expect("v6");
        assert_eq!(v6.port, Some(443));
        assert_eq!(numeric("2001:db8::1").expect("bare v6").port, None);
        // inet_aton's short and hex forms, as ipvsadm takes them.
        assert_eq!(
            numeric("10.1:80").map(|h| h.addr),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        // ipvsadm drops the port of a bracketed IPv4 address.
        assert_eq!(
            numeric("[1.2.3.4]:80"),
            Some(HostPort {
                addr: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
                port: None
            })
        );
        for bad in [
            "",
            "80",
            "10.0.0.1:99999",
            "10.0.0.1:",
            "10.0.0.1:http",
            "[::1]",
            "[::1]:",
            "[::1]x80",
            "host.example:80",
            "1.2.3.4.5",
            "256.1.2.3",
        ] {
            assert!(numeric(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_for_hosts_and_ports_of_the_protocol() {
        let names = StaticResolver::new()
            .host("www.example", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
            .host("v6only.example", "2001:db8::1".parse().expect("v6"))
            .service("https", 443, PortProto::Tcp)
            .service("domain", 53, PortProto::Udp);
        let www = |text, proto| parse_host_port(text, proto, &names);
        assert_eq!(
            www("www.example:https", PortProto::Tcp),
            Some(HostPort {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                port: Some(443)
            })
        );
        assert_eq!(
            www("www.example:domain", PortProto::Udp).and_then(|h| h.port),
            Some(53)
        );
        assert!(www("www.example:domain", PortProto::Tcp).is_none());
        assert!(www("www.example:https", PortProto::Other).is_none());
        assert!(www("v6only.example:80", PortProto::Tcp).is_none());
        assert!(www("[www.example]:80", PortProto::Tcp).is_some_and(|h| h.port.is_none()));
        assert_eq!(
            www("[2001:db8::2]:https", PortProto::Tcp).and_then(|h| h.port),
            Some(443)
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("+5", 0, 9), Some(5));
        assert_eq!(string_to_number("5x", 0, 9), None);
    }
}
