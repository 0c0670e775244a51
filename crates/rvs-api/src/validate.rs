//! The checks every command's values pass before rvsd acts on them, whichever client sent it.
//!
//! rvsadm refuses bad command lines itself (ipvsadm's option table and number ranges), but the
//! control socket takes commands from any client, so rvsd runs these checks on every command it
//! receives and answers a refusal as [`crate::ErrorKind::InvalidArgument`] with the
//! [`Invalid`] message, before anything changes. rvsadm runs the same functions on what it is
//! about to send, so both refuse with one text; the texts are ipvsadm's where ipvsadm has one.
//!
//! Only what the command itself shows is checked here. What needs the daemon's state (whether
//! the service exists, the director's own addresses, the scheduler and persistence engine
//! names it knows, a port mapping the forwarding method cannot do) is checked by rvsd when it
//! executes the command.
//!
//! The bounds are the kernel's, which every IPVS client shares, where they are wider than
//! ipvsadm's command line: a weight may be up to `INT_MAX` (keepalived sends such weights;
//! ipvsadm's `-w` stops at 65535) and thresholds take any 32-bit value.

use crate::command::Command;
use crate::views::{
    DaemonConfig, DestConfig, ForwardMethod, ServiceConfig, ServiceId, Timeouts, TunnelChecksum,
    TunnelConfig, TunnelKind,
};
use crate::MAX_TIMEOUT_S;
use std::net::IpAddr;

/// The largest weight a real server may have (the kernel's `INT_MAX`: `ip_vs_add_dest` refuses
/// a negative `int`).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// The largest `--sync-maxlen` (65535 less the IPv4 and UDP headers), as ipvsadm takes it.
pub const MAX_SYNC_MAXLEN: u16 = 65_535 - 20 - 8;

/// The longest interface name, in bytes (`IFNAMSIZ` less the terminator).
pub const MAX_IFNAME: usize = 15;

/// Why a command's values are refused. The message is what the client shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A firewall-mark service with mark 0 (`-f 0`).
    #[error("invalid fwmark value `0' specified")]
    ZeroFwmark,
    /// A service on port 0 without persistence.
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    /// One-packet scheduling (`-o`) on a TCP or SCTP service.
    #[error("One-Packet Scheduling is only for UDP virtual services")]
    OnePacketNotUdp,
    /// A persistence timeout of 0 (`-p 0`).
    #[error("persistence timeout 0 s is out of range (at least 1 s)")]
    ZeroPersistence,
    /// A timeout over [`MAX_TIMEOUT_S`]; `what` is `tcp`, `tcpfin`, `udp` or `persistence`.
    #[error("{what} timeout {value} s is out of range (at most {max} s)", max = MAX_TIMEOUT_S)]
    TimeoutTooLong {
        /// Which timeout.
        what: &'static str,
        /// The value asked for.
        value: u32,
    },
    /// A persistence netmask (`-M`) of the other address family.
    #[error("persistence netmask {0} is not of the service's address family")]
    NetmaskFamily(IpAddr),
    /// An IPv6 persistence netmask that is not a prefix of 1 to 128 bits.
    #[error("illegal ipv6 netmask {0} specified (a prefix of 1 to 128 bits)")]
    Ipv6Netmask(IpAddr),
    /// An unknown scheduler flag name, or one of another scheduler (`sh-*` without sh, `mh-*`
    /// without mh); the message is ipvsadm's.
    #[error("{0}")]
    SchedFlag(String),
    /// A FULLNAT local address (`--laddr`) of the other address family.
    #[error("Local addresses (--laddr) must be of the service's address family")]
    LocalAddressFamily,
    /// The unspecified address as a FULLNAT local address.
    #[error("illegal local address `{0}' specified (the unspecified address)")]
    UnspecifiedLocalAddress(IpAddr),
    /// A FULLNAT local address given twice.
    #[error("illegal local address `{0}' specified (given twice)")]
    DuplicateLocalAddress(IpAddr),
    /// The PROXY protocol on a UDP or SCTP service.
    #[error("The PROXY protocol (--proxy-protocol) is only for TCP virtual services")]
    ProxyProtocolNotTcp,
    /// A real server weight over [`MAX_WEIGHT`].
    #[error("weight {0} is out of range (at most {max})", max = MAX_WEIGHT)]
    WeightTooLarge(u32),
    /// A lower threshold above the upper one (the kernel's `ERANGE`, even with no upper
    /// threshold, 0, as the kernel compares them).
    #[error(
        "Numerical result out of range: the lower threshold (-y {lower}) is higher than the \
         upper threshold (-x {upper}; 0 is none)"
    )]
    Thresholds {
        /// The upper threshold.
        upper: u32,
        /// The lower threshold.
        lower: u32,
    },
    /// A real server of the other address family with a method other than tunnelling.
    #[error("Different address family is allowed only for tunneling servers")]
    MixedFamily,
    /// Tunnel settings on a real server that is not tunnelled.
    #[error("Tunnel options conflict with forward method")]
    TunnelWithoutTunnelling,
    /// A tunnel option the tunnel type does not take (`tun-port` without gue, a checksum
    /// option with ipip, `tun-remcsum` with gre).
    #[error("Illegal '{option}' option with the '{kind}' tunnel type")]
    TunnelOption {
        /// The option (`tun-port`, `tun-csum`, `tun-remcsum`).
        option: &'static str,
        /// The tunnel type (`ipip`, `gue`, `gre`).
        kind: &'static str,
    },
    /// A gue tunnel without its destination port.
    #[error("You need to supply the 'tun-port' option for the 'gue' tunnel type")]
    GueWithoutPort,
    /// A tunnel destination port of 0.
    #[error("illegal tunnel port 0 specified (1 to 65535)")]
    ZeroTunnelPort,
    /// A sync daemon interface name that does not fit the kernel's (empty, longer than
    /// [`MAX_IFNAME`] bytes, or with a NUL byte).
    #[error("illegal mcast-interface `{0}' specified (an interface name of 1 to 15 bytes)")]
    McastInterface(String),
    /// A sync daemon multicast group that is not a multicast address.
    #[error("invalid {family} mcast-group `{addr}'", family = if addr.is_ipv6() { "IPv6" } else { "IPv4" })]
    McastGroup {
        /// The address given.
        addr: IpAddr,
    },
    /// A sync daemon message size over [`MAX_SYNC_MAXLEN`].
    #[error("illegal sync-maxlen {0} specified (at most {max})", max = MAX_SYNC_MAXLEN)]
    SyncMaxlen(u16),
}

/// Checks the values of `cmd`; commands without values of their own to check pass. A
/// [`Command::Batch`] passes: its commands are checked one by one as they run, so a refused
/// one does not stop the others.
pub fn command(cmd: &Command) -> Result<(), Invalid> {
    match cmd {
        Command::AddService(cfg) | Command::EditService(cfg) => service(cfg),
        Command::AddDest { service, dest } | Command::EditDest { service, dest } => {
            self::dest(service, dest)
        }
        Command::DelService(id) | Command::DelDest { service: id, .. } => service_id(id),
        Command::Zero { service: Some(id) } | Command::ListServices { service: Some(id) } => {
            service_id(id)
        }
        Command::SetTimeouts(t) => timeouts(t),
        Command::StartDaemon(cfg) => daemon(cfg),
        _ => Ok(()),
    }
}

/// A service id: a firewall mark is not 0.
pub fn service_id(id: &ServiceId) -> Result<(), Invalid> {
    match id {
        ServiceId::Fwmark { mark: 0, .. } => Err(Invalid::ZeroFwmark),
        _ => Ok(()),
    }
}

/// A service's settings (`-A`, `-E`), in ipvsadm's order: the id; port 0 only with
/// persistence; one-packet scheduling only for UDP; a persistence timeout of 1 s to 31 days;
/// a netmask of the service's family (an IPv6 one a prefix of 1 to 128 bits); scheduler flags
/// of the scheduler; FULLNAT local addresses of the service's family, specified and each once;
/// the PROXY protocol only for TCP. A firewall-mark service carries any protocol, so the
/// protocol checks do not apply to it.
///
/// A netmask without persistence passes, as ipvsadm sends it (it has no effect then).
pub fn service(cfg: &ServiceConfig) -> Result<(), Invalid> {
    let id = &cfg.id;
    service_id(id)?;
    if id.socket_addr().is_some_and(|a| a.port() == 0) && cfg.persistence.is_none() {
        return Err(Invalid::ZeroPort);
    }
    if cfg.one_packet && matches!(id, ServiceId::Tcp { .. } | ServiceId::Sctp { .. }) {
        return Err(Invalid::OnePacketNotUdp);
    }
    match cfg.persistence {
        Some(0) => return Err(Invalid::ZeroPersistence),
        Some(t) => timeout("persistence", t)?,
        None => {}
    }
    if let Some(mask) = cfg.netmask {
        if mask.is_ipv6() != id.is_ipv6() {
            return Err(Invalid::NetmaskFamily(mask));
        }
        if mask.is_ipv6() && crate::netmask::mask_prefix(mask).is_none_or(|p| p == 0) {
            return Err(Invalid::Ipv6Netmask(mask));
        }
    }
    crate::sched_flags::check(&cfg.scheduler, &cfg.sched_flags).map_err(Invalid::SchedFlag)?;
    if cfg.local_addrs.iter().any(|a| a.is_ipv6() != id.is_ipv6()) {
        return Err(Invalid::LocalAddressFamily);
    }
    for (i, &a) in cfg.local_addrs.iter().enumerate() {
        if a.is_unspecified() {
            return Err(Invalid::UnspecifiedLocalAddress(a));
        }
        if cfg.local_addrs[..i].contains(&a) {
            return Err(Invalid::DuplicateLocalAddress(a));
        }
    }
    if cfg.proxy_protocol.is_some() && matches!(id, ServiceId::Udp { .. } | ServiceId::Sctp { .. })
    {
        return Err(Invalid::ProxyProtocolNotTcp);
    }
    Ok(())
}

/// A real server's settings (`-a`, `-e`) for `service`: the service id, the weight, the
/// thresholds, the address family ([`dest_family`]) and the tunnel settings ([`tunnel`]).
pub fn dest(service: &ServiceId, dest: &DestConfig) -> Result<(), Invalid> {
    service_id(service)?;
    if dest.weight > MAX_WEIGHT {
        return Err(Invalid::WeightTooLarge(dest.weight));
    }
    if dest.l_threshold > dest.u_threshold {
        return Err(Invalid::Thresholds {
            upper: dest.u_threshold,
            lower: dest.l_threshold,
        });
    }
    dest_family(service, dest)?;
    tunnel(dest.method, dest.tunnel.as_ref())
}

/// Only a tunnel carries one address family inside the other: any other method needs the real
/// server in the service's family.
pub fn dest_family(service: &ServiceId, dest: &DestConfig) -> Result<(), Invalid> {
    if dest.addr.is_ipv6() != service.is_ipv6() && dest.method != ForwardMethod::Tunnel {
        return Err(Invalid::MixedFamily);
    }
    Ok(())
}

/// Tunnel settings only with tunnelling, and as the tunnel type takes them (ipvsadm's
/// `tunnel_types_v_options`): ipip no port and no checksum; gue a port of 1 to 65535; gre no
/// port and no remote checksum offload.
pub fn tunnel(method: ForwardMethod, tunnel: Option<&TunnelConfig>) -> Result<(), Invalid> {
    let Some(t) = tunnel else {
        return Ok(());
    };
    if method != ForwardMethod::Tunnel {
        return Err(Invalid::TunnelWithoutTunnelling);
    }
    let kind = match t.kind {
        TunnelKind::Ipip => "ipip",
        TunnelKind::Gue => "gue",
        TunnelKind::Gre => "gre",
    };
    let illegal = |option| Err(Invalid::TunnelOption { option, kind });
    match (t.kind, t.port, t.checksum) {
        (TunnelKind::Gue, None, _) => Err(Invalid::GueWithoutPort),
        (TunnelKind::Gue, Some(0), _) => Err(Invalid::ZeroTunnelPort),
        (TunnelKind::Ipip | TunnelKind::Gre, Some(_), _) => illegal("tun-port"),
        (TunnelKind::Ipip, None, TunnelChecksum::Csum) => illegal("tun-csum"),
        (TunnelKind::Ipip | TunnelKind::Gre, None, TunnelChecksum::RemCsum) => {
            illegal("tun-remcsum")
        }
        _ => Ok(()),
    }
}

/// A timeout of `value` seconds is at most [`MAX_TIMEOUT_S`].
fn timeout(what: &'static str, value: u32) -> Result<(), Invalid> {
    if value > MAX_TIMEOUT_S {
        return Err(Invalid::TimeoutTooLong { what, value });
    }
    Ok(())
}

/// Connection timeouts (`--set`): each at most [`MAX_TIMEOUT_S`] (0 leaves one unchanged).
pub fn timeouts(t: &Timeouts) -> Result<(), Invalid> {
    timeout("tcp", t.tcp)?;
    timeout("tcpfin", t.tcp_fin)?;
    timeout("udp", t.udp)
}

/// Whether an interface name fits the kernel's `IFNAMSIZ` (a name that fits but that no
/// interface has is the kernel's `ENODEV`, "No such device", when the daemon starts).
fn valid_ifname(name: &str) -> bool {
    (1..=MAX_IFNAME).contains(&name.len()) && !name.contains('\0')
}

/// A sync daemon's settings (`--start-daemon`): an interface name of 1 to 15 bytes, a
/// multicast group, a message size of at most [`MAX_SYNC_MAXLEN`]. The sync id, port and TTL
/// take any value of their types (0 picks the default).
pub fn daemon(cfg: &DaemonConfig) -> Result<(), Invalid> {
    if !valid_ifname(&cfg.mcast_interface) {
        return Err(Invalid::McastInterface(cfg.mcast_interface.clone()));
    }
    if let Some(addr) = cfg.group.filter(|g| !g.is_multicast()) {
        return Err(Invalid::McastGroup { addr });
    }
    if cfg.maxlen > MAX_SYNC_MAXLEN {
        return Err(Invalid::SyncMaxlen(cfg.maxlen));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{DaemonRole, ProxyProtocol};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn tcp(port: u16) -> ServiceId {
        ServiceId::Tcp {
            addr: ip("192.0.2.1"),
            port,
        }
    }

    fn udp() -> ServiceId {
        ServiceId::Udp {
            addr: ip("192.0.2.1"),
            port: 53,
        }
    }

    fn v6() -> ServiceId {
        ServiceId::Tcp {
            addr: ip("2001:db8::1"),
            port: 80,
        }
    }

    fn with(id: ServiceId, change: impl FnOnce(&mut ServiceConfig)) -> Result<(), Invalid> {
        let mut cfg = ServiceConfig::new(id, "rr");
        change(&mut cfg);
        service(&cfg)
    }

    const FWM0: ServiceId = ServiceId::Fwmark {
        mark: 0,
        ipv6: false,
    };
    const FWM1: ServiceId = ServiceId::Fwmark {
        mark: 1,
        ipv6: false,
    };

    #[test]
    fn fwmark_zero_is_refused_wherever_a_service_is_named() {
        assert_eq!(service_id(&FWM0), Err(Invalid::ZeroFwmark));
        assert_eq!(service_id(&FWM1), Ok(()));
        let dest = DestConfig::new(ip("10.0.0.2"), 0, 1, ForwardMethod::Masq);
        for cmd in [
            Command::AddService(ServiceConfig::new(FWM0, "rr")),
            Command::DelService(FWM0),
            Command::AddDest {
                service: FWM0,
                dest: dest.clone(),
            },
            Command::EditDest {
                service: FWM0,
                dest,
            },
            Command::DelDest {
                service: FWM0,
                addr: ip("10.0.0.2"),
                port: 0,
            },
            Command::Zero {
                service: Some(FWM0),
            },
            Command::ListServices {
                service: Some(FWM0),
            },
        ] {
            assert_eq!(command(&cmd), Err(Invalid::ZeroFwmark), "{cmd:?}");
        }
        assert_eq!(
            Invalid::ZeroFwmark.to_string(),
            "invalid fwmark value `0' specified"
        );
    }

    #[test]
    fn service_ports_protocols_and_persistence() {
        assert_eq!(with(tcp(0), |_| {}), Err(Invalid::ZeroPort));
        assert_eq!(with(tcp(0), |c| c.persistence = Some(60)), Ok(()));
        assert_eq!(with(FWM1, |_| {}), Ok(()));
        assert_eq!(
            with(tcp(80), |c| c.one_packet = true),
            Err(Invalid::OnePacketNotUdp)
        );
        assert_eq!(with(udp(), |c| c.one_packet = true), Ok(()));
        assert_eq!(with(FWM1, |c| c.one_packet = true), Ok(()));
        let v2 = Some(ProxyProtocol::V2);
        assert_eq!(
            with(udp(), |c| c.proxy_protocol = v2),
            Err(Invalid::ProxyProtocolNotTcp)
        );
        assert_eq!(with(tcp(80), |c| c.proxy_protocol = v2), Ok(()));
        assert_eq!(with(FWM1, |c| c.proxy_protocol = v2), Ok(()));
        assert_eq!(
            with(tcp(80), |c| c.persistence = Some(0)),
            Err(Invalid::ZeroPersistence)
        );
        assert_eq!(
            with(tcp(80), |c| c.persistence = Some(MAX_TIMEOUT_S + 1)),
            Err(Invalid::TimeoutTooLong {
                what: "persistence",
                value: MAX_TIMEOUT_S + 1
            })
        );
        assert_eq!(
            with(tcp(80), |c| c.persistence = Some(MAX_TIMEOUT_S)),
            Ok(())
        );
    }

    #[test]
    fn netmasks_are_of_the_service_family_and_ipv6_ones_prefixes() {
        let mask = |id, m: &str| with(id, |c| (c.persistence, c.netmask) = (Some(60), Some(ip(m))));
        assert_eq!(mask(tcp(80), "255.0.255.0"), Ok(()), "any IPv4 mask");
        assert_eq!(mask(tcp(80), "0.0.0.0"), Ok(()));
        assert_eq!(mask(v6(), "ffff:ffff::"), Ok(()));
        assert_eq!(
            mask(v6(), "ffff::ffff"),
            Err(Invalid::Ipv6Netmask(ip("ffff::ffff")))
        );
        assert_eq!(mask(v6(), "::"), Err(Invalid::Ipv6Netmask(ip("::"))));
        assert_eq!(
            mask(v6(), "255.255.255.0"),
            Err(Invalid::NetmaskFamily(ip("255.255.255.0")))
        );
        assert_eq!(
            mask(tcp(80), "ffff::"),
            Err(Invalid::NetmaskFamily(ip("ffff::")))
        );
        // ipvsadm sends -M without -p; it has no effect.
        assert_eq!(
            with(tcp(80), |c| c.netmask = Some(ip("255.255.255.0"))),
            Ok(())
        );
    }

    #[test]
    fn scheduler_flags_and_local_addresses() {
        let flags = |s: &str, f: &str| {
            with(tcp(80), |c| {
                c.scheduler = s.into();
                c.sched_flags = vec![f.into()];
            })
        };
        assert_eq!(flags("sh", "sh-port"), Ok(()));
        assert_eq!(flags("mh", "mh-fallback"), Ok(()));
        assert_eq!(flags("rr", "flag-3"), Ok(()));
        assert_eq!(
            flags("rr", "sh-fallback"),
            Err(Invalid::SchedFlag(
                "incompatible scheduler flag `sh-fallback'".into()
            ))
        );
        assert_eq!(
            flags("sh", "mh-port"),
            Err(Invalid::SchedFlag(
                "incompatible scheduler flag `mh-port'".into()
            ))
        );
        assert_eq!(
            flags("sh", "bogus"),
            Err(Invalid::SchedFlag("invalid scheduler flag `bogus'".into()))
        );
        let laddr = |id, addrs: &[&str]| {
            with(id, |c| {
                c.local_addrs = addrs.iter().map(|a| ip(a)).collect()
            })
        };
        assert_eq!(laddr(tcp(80), &["10.0.0.1", "10.0.0.2"]), Ok(()));
        assert_eq!(
            laddr(tcp(80), &["2001:db8::9"]),
            Err(Invalid::LocalAddressFamily)
        );
        assert_eq!(laddr(v6(), &["10.0.0.1"]), Err(Invalid::LocalAddressFamily));
        assert_eq!(
            laddr(tcp(80), &["0.0.0.0"]),
            Err(Invalid::UnspecifiedLocalAddress(ip("0.0.0.0")))
        );
        assert_eq!(
            laddr(tcp(80), &["10.0.0.1", "10.0.0.2", "10.0.0.1"]),
            Err(Invalid::DuplicateLocalAddress(ip("10.0.0.1")))
        );
    }

    fn real(addr: &str, method: ForwardMethod, change: impl FnOnce(&mut DestConfig)) -> DestConfig {
        let mut d = DestConfig::new(ip(addr), 80, 1, method);
        change(&mut d);
        d
    }

    #[test]
    fn weights_thresholds_and_families_of_real_servers() {
        let m = ForwardMethod::Masq;
        assert_eq!(
            dest(&tcp(80), &real("10.0.0.2", m, |d| d.weight = MAX_WEIGHT)),
            Ok(())
        );
        assert_eq!(
            dest(
                &tcp(80),
                &real("10.0.0.2", m, |d| d.weight = MAX_WEIGHT + 1)
            ),
            Err(Invalid::WeightTooLarge(MAX_WEIGHT + 1))
        );
        let thresholds = |u, l| real("10.0.0.2", m, |d| (d.u_threshold, d.l_threshold) = (u, l));
        assert_eq!(dest(&tcp(80), &thresholds(10, 10)), Ok(()));
        assert_eq!(dest(&tcp(80), &thresholds(u32::MAX, 0)), Ok(()));
        assert_eq!(
            dest(&tcp(80), &thresholds(0, 1)),
            Err(Invalid::Thresholds { upper: 0, lower: 1 })
        );
        assert!(Invalid::Thresholds {
            upper: 5,
            lower: 10
        }
        .to_string()
        .starts_with("Numerical result out of range"));
        assert_eq!(
            dest(&tcp(80), &real("2001:db8::2", m, |_| {})),
            Err(Invalid::MixedFamily)
        );
        assert_eq!(
            dest(&v6(), &real("10.0.0.2", ForwardMethod::Route, |_| {})),
            Err(Invalid::MixedFamily)
        );
        let fwm6 = ServiceId::Fwmark {
            mark: 1,
            ipv6: true,
        };
        assert_eq!(
            dest(&fwm6, &real("10.0.0.2", m, |_| {})),
            Err(Invalid::MixedFamily)
        );
        let tun = real("2001:db8::2", ForwardMethod::Tunnel, |d| {
            d.tunnel = Some(TunnelConfig::default())
        });
        assert_eq!(dest(&tcp(80), &tun), Ok(()));
    }

    #[test]
    fn tunnel_options_as_ipvsadm_takes_them() {
        let t = |kind, port, checksum| TunnelConfig {
            kind,
            port,
            checksum,
        };
        use TunnelChecksum::{Csum, NoCsum, RemCsum};
        use TunnelKind::{Gre, Gue, Ipip};
        let on = ForwardMethod::Tunnel;
        for ok in [
            t(Ipip, None, NoCsum),
            t(Gue, Some(6080), NoCsum),
            t(Gue, Some(1), Csum),
            t(Gue, Some(65535), RemCsum),
            t(Gre, None, NoCsum),
            t(Gre, None, Csum),
        ] {
            assert_eq!(tunnel(on, Some(&ok)), Ok(()), "{ok:?}");
        }
        assert_eq!(tunnel(on, None), Ok(()));
        assert_eq!(tunnel(ForwardMethod::Masq, None), Ok(()));
        let illegal = |option, kind| Err(Invalid::TunnelOption { option, kind });
        for (bad, refusal) in [
            (t(Ipip, Some(5), NoCsum), illegal("tun-port", "ipip")),
            (t(Ipip, None, Csum), illegal("tun-csum", "ipip")),
            (t(Ipip, None, RemCsum), illegal("tun-remcsum", "ipip")),
            (t(Gre, Some(5), Csum), illegal("tun-port", "gre")),
            (t(Gre, None, RemCsum), illegal("tun-remcsum", "gre")),
            (t(Gue, None, NoCsum), Err(Invalid::GueWithoutPort)),
            (t(Gue, Some(0), NoCsum), Err(Invalid::ZeroTunnelPort)),
        ] {
            assert_eq!(tunnel(on, Some(&bad)), refusal, "{bad:?}");
        }
        for method in [
            ForwardMethod::Masq,
            ForwardMethod::Route,
            ForwardMethod::FullNat,
        ] {
            assert_eq!(
                tunnel(method, Some(&TunnelConfig::default())),
                Err(Invalid::TunnelWithoutTunnelling)
            );
        }
        assert_eq!(
            illegal("tun-port", "ipip").unwrap_err().to_string(),
            "Illegal 'tun-port' option with the 'ipip' tunnel type"
        );
    }

    #[test]
    fn timeouts_and_sync_daemons() {
        let set = |tcp, tcp_fin, udp| timeouts(&Timeouts { tcp, tcp_fin, udp });
        assert_eq!(set(0, 0, 0), Ok(()));
        assert_eq!(set(MAX_TIMEOUT_S, MAX_TIMEOUT_S, MAX_TIMEOUT_S), Ok(()));
        assert_eq!(
            set(0, MAX_TIMEOUT_S + 1, 0),
            Err(Invalid::TimeoutTooLong {
                what: "tcpfin",
                value: MAX_TIMEOUT_S + 1
            })
        );
        assert_eq!(
            set(u32::MAX, 0, 0).unwrap_err().to_string(),
            "tcp timeout 4294967295 s is out of range (at most 2678400 s)"
        );
        let sync = |change: fn(&mut DaemonConfig)| {
            let mut cfg = DaemonConfig {
                role: DaemonRole::Master,
                mcast_interface: "eth0".into(),
                syncid: 0,
                maxlen: 0,
                group: None,
                port: 0,
                ttl: 0,
            };
            change(&mut cfg);
            daemon(&cfg)
        };
        assert_eq!(sync(|_| {}), Ok(()));
        assert_eq!(
            sync(|c| c.group = Some("239.1.2.3".parse().unwrap())),
            Ok(())
        );
        assert_eq!(
            sync(|c| c.group = Some("ff02::81".parse().unwrap())),
            Ok(())
        );
        assert_eq!(sync(|c| c.maxlen = MAX_SYNC_MAXLEN), Ok(()));
        assert_eq!(
            sync(|c| c.mcast_interface = "a23456789012345".into()),
            Ok(())
        );
        for name in ["", "a234567890123456", "eth\0", "ethé0123456789ab"] {
            let mut cfg = DaemonConfig {
                role: DaemonRole::Backup,
                mcast_interface: name.into(),
                syncid: 1,
                maxlen: 0,
                group: None,
                port: 0,
                ttl: 0,
            };
            assert_eq!(
                daemon(&cfg),
                Err(Invalid::McastInterface(name.into())),
                "{name}"
            );
            cfg.mcast_interface = "eth0".into();
            assert_eq!(command(&Command::StartDaemon(cfg)), Ok(()));
        }
        assert_eq!(
            sync(|c| c.group = Some("10.0.0.1".parse().unwrap()))
                .unwrap_err()
                .to_string(),
            "invalid IPv4 mcast-group `10.0.0.1'"
        );
        assert_eq!(
            sync(|c| c.group = Some("2001:db8::1".parse().unwrap()))
                .unwrap_err()
                .to_string(),
            "invalid IPv6 mcast-group `2001:db8::1'"
        );
        assert_eq!(
            sync(|c| c.maxlen = MAX_SYNC_MAXLEN + 1),
            Err(Invalid::SyncMaxlen(MAX_SYNC_MAXLEN + 1))
        );
    }
}
