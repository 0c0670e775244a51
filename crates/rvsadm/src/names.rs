//! Host and service names, resolved as ipvsadm resolves them through the C library.
//!
//! On input ipvsadm's `parse_service` takes a host name where `inet_aton` finds no address
//! (`gethostbyname`, IPv4 only) and a service name where the port is not a number
//! (`getservbyname` for the service's protocol). Without `-n` its listings and saves print names
//! (`gethostbyaddr`, `getservbyport`), each part falling back to the number when it has no name.
//! [`SystemResolver`] asks the C library the same questions (`getaddrinfo`, `getnameinfo`: the
//! same `/etc/hosts`, `/etc/services` and DNS through NSS); [`StaticResolver`] answers from fixed
//! tables, for tests and for callers that want no lookups.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The protocol a port belongs to, which chooses the `/etc/services` entries that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProto {
    /// TCP services (`-t`) and firewall-mark services' `-r` (ipvsadm sets TCP for `-f`).
    Tcp,
    /// UDP services (`-u`).
    Udp,
    /// SCTP services (`--sctp-service`).
    Sctp,
    /// No protocol (IPVS reports none for firewall-mark services and their templates): ports
    /// have no names.
    Other,
}

impl PortProto {
    /// The protocol's name in `/etc/services`, if it has entries there.
    pub fn services_name(self) -> Option<&'static str> {
        match self {
            PortProto::Tcp => Some("tcp"),
            PortProto::Udp => Some("udp"),
            PortProto::Sctp => Some("sctp"),
            PortProto::Other => None,
        }
    }
}

/// The four name lookups ipvsadm makes. `None` means "no such name": ipvsadm then refuses the
/// input, or prints the number.
pub trait Resolver {
    /// `gethostbyname(name)` for IPv4: the host's first IPv4 address.
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr>;
    /// `getservbyname(name, proto)`: the port of a service name.
    fn service_port(&self, name: &str, proto: PortProto) -> Option<u16>;
    /// `gethostbyaddr(addr)`: the address's host name.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// `getservbyport(port, proto)`: the port's service name.
    fn service_name(&self, port: u16, proto: PortProto) -> Option<String>;
}

/// The C library's resolver (NSS: `/etc/hosts`, DNS, `/etc/services`), as ipvsadm uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

/// Whether C's `strtoul(text, &end, 10)` reads all of `text`: `getaddrinfo` then takes the
/// service as a port number (wrapping it to 16 bits), where `getservbyname` would look for a
/// service of that name and find none.
fn strtoul_reads_all(text: &str) -> bool {
    let t = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// `getaddrinfo` hints selecting `proto`'s sockets, so the service lookup reads its entries.
fn service_hints(proto: PortProto) -> Option<dns_lookup::AddrInfoHints> {
    let (socktype, protocol) = match proto {
        PortProto::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        PortProto::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        PortProto::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        PortProto::Other => return None,
    };
    Some(dns_lookup::AddrInfoHints {
        flags: libc::AI_PASSIVE,
        address: libc::AF_INET,
        socktype,
        protocol,
    })
}

/// The first name of `port`/`proto` in `/etc/services` text (the `files` source of
/// `getservbyport`), for SCTP, which `getnameinfo` cannot ask for.
fn services_file_name(text: &str, port: u16, proto: &str) -> Option<String> {
    let wanted = format!("{port}/{proto}");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            (words.next()? == wanted).then(|| name.to_string())
        })
}

impl Resolver for SystemResolver {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        let hints = dns_lookup::AddrInfoHints {
            flags: 0,
            address: libc::AF_INET,
            socktype: libc::SOCK_STREAM,
            protocol: 0,
        };
        dns_lookup::getaddrinfo(Some(name), None, Some(hints))
            .ok()?
            .flatten()
            .find_map(|info| match info.sockaddr {
                SocketAddr::V4(a) => Some(*a.ip()),
                SocketAddr::V6(_) => None,
            })
    }

    fn service_port(&self, name: &str, proto: PortProto) -> Option<u16> {
        if strtoul_reads_all(name) {
            return None;
        }
        let hints = service_hints(proto)?;
        dns_lookup::getaddrinfo(None, Some(name), Some(hints))
            .ok()?
            .flatten()
            .map(|info| info.sockaddr.port())
            .next()
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        let flags = libc::NI_NAMEREQD | libc::NI_NUMERICSERV;
        dns_lookup::getnameinfo(&SocketAddr::new(addr, 0), flags)
            .ok()
            .map(|(host, _)| host)
    }

    fn service_name(&self, port: u16, proto: PortProto) -> Option<String> {
        let dgram = match proto {
            PortProto::Tcp => 0,
            PortProto::Udp => libc::NI_DGRAM,
            PortProto::Sctp => {
                let text = std::fs::read_to_string("/etc/services").ok()?;
                return services_file_name(&text, port, "sctp");
            }
            PortProto::Other => return None,
        };
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let (_, service) = dns_lookup::getnameinfo(&any, libc::NI_NUMERICHOST | dgram).ok()?;
        // getnameinfo answers the number when the port has no name.
        (service != port.to_string()).then_some(service)
    }
}

/// Names from fixed tables: hosts (name, address) and services (name, port, protocol). The
/// first entry of a name answers forward lookups, the first of an address or port the reverse
/// ones. Empty, it resolves nothing, so everything stays numeric.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    hosts: Vec<(String, IpAddr)>,
    services: Vec<(String, u16, PortProto)>,
}

impl StaticResolver {
    /// A resolver that knows no names (for statics; [`StaticResolver::new`] is the same).
    pub const EMPTY: StaticResolver = StaticResolver {
        hosts: Vec::new(),
        services: Vec::new(),
    };

    /// A resolver that knows no names.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host entry, as a line of `/etc/hosts`.
    pub fn host(mut self, name: &str, addr: IpAddr) -> Self {
        self.hosts.push((name.to_string(), addr));
        self
    }

    /// Adds a service entry, as a line of `/etc/services`.
    pub fn service(mut self, name: &str, port: u16, proto: PortProto) -> Self {
        self.services.push((name.to_string(), port, proto));
        self
    }
}

impl Resolver for StaticResolver {
    fn host_v4(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|(n, a)| match a {
            IpAddr::V4(v4) if n == name => Some(*v4),
            _ => None,
        })
    }

    fn service_port(&self, name: &str, proto: PortProto) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, _, p)| n == name && *p == proto && proto != PortProto::Other)
            .map(|&(_, port, _)| port)
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.clone())
    }

    fn service_name(&self, port: u16, proto: PortProto) -> Option<String> {
        self.services
            .iter()
            .find(|&&(_, p, pr)| p == port && pr == proto && proto != PortProto::Other)
            .map(|(n, _, _)| n.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_not_service_names() {
        for numeric in ["80", "99999", "+5", "-1", " 7"] {
            assert!(strtoul_reads_all(numeric), "{numeric}");
        }
        for name in ["http", "80x", "", "-", "x80"] {
            assert!(!strtoul_reads_all(name), "{name}");
        }
    }

    #[test]
    fn services_file_reverse_lookup() {
        let text = "# comment\nfoo 9/tcp\nbar\t9/sctp alias # x\nbaz 9/sctp\n";
        assert_eq!(services_file_name(text, 9, "sctp"), Some("bar".into()));
        assert_eq!(services_file_name(text, 9, "tcp"), Some("foo".into()));
        assert_eq!(services_file_name(text, 10, "sctp"), None);
    }

    #[test]
    fn static_tables() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let names = StaticResolver::new()
            .host("www.example", v4)
            .host("alias.example", v4)
            .service("domain", 53, PortProto::Udp);
        assert_eq!(
            names.host_v4("alias.example"),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(names.host_name(v4).as_deref(), Some("www.example"));
        assert_eq!(names.service_port("domain", PortProto::Udp), Some(53));
        assert_eq!(names.service_port("domain", PortProto::Tcp), None);
        assert_eq!(names.service_name(53, PortProto::Other), None);
    }

    /// The system's files: `localhost` in /etc/hosts, https, domain and amqp (SCTP) in
    /// /etc/services (Debian's netbase), looked up without DNS.
    #[test]
    fn system_resolver_reads_hosts_and_services() {
        let sys = SystemResolver;
        assert_eq!(sys.host_v4("localhost"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(sys.service_port("https", PortProto::Tcp), Some(443));
        assert_eq!(sys.service_port("domain", PortProto::Udp), Some(53));
        assert_eq!(sys.service_port("99999", PortProto::Tcp), None);
        assert_eq!(sys.service_port("http", PortProto::Other), None);
        assert_eq!(
            sys.service_name(443, PortProto::Tcp).as_deref(),
            Some("https")
        );
        assert_eq!(
            sys.service_name(53, PortProto::Udp).as_deref(),
            Some("domain")
        );
        assert_eq!(sys.service_name(80, PortProto::Other), None);
        // Debian's only SCTP entry.
        assert_eq!(sys.service_port("amqp", PortProto::Sctp), Some(5672));
        assert_eq!(sys.service_port("http", PortProto::Sctp), None);
        assert_eq!(
            sys.service_name(5672, PortProto::Sctp).as_deref(),
            Some("amqp")
        );
        assert_eq!(sys.service_name(80, PortProto::Sctp), None);
        assert_eq!(
            sys.host_name(IpAddr::V4(Ipv4Addr::LOCALHOST)).as_deref(),
            Some("localhost")
        );
    }
}
