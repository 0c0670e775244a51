//! Views from rvsd to ipvsadm's exact text (printf formats of ipvsadm 1.31's ipvsadm.c).
//!
//! Without `-n` addresses and ports are printed as names where they have one (ipvsadm's
//! `addrport_to_anyname`), looked up by the [`Resolver`] given.

use crate::action::Format;
use crate::names::{PortProto, Resolver};
use crate::sched_flags;
use rvs_api::netmask::mask_prefix;
use rvs_api::{
    ConnView, CounterView, DaemonConfig, DaemonRole, DestConfig, DestView, ForwardMethod, Info,
    ServiceConfig, ServiceId, ServiceView, Timeouts, TunnelChecksum, TunnelKind,
};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `IP Virtual Server version %d.%d.%d (size=%d)\n`, printed by `list_all` unless saving.
pub fn header(info: &Info) -> String {
    format!(
        "IP Virtual Server version {} (size={})\n",
        info.version, info.conn_table_size
    )
}

/// The column titles (`print_title`).
pub fn title(format: &Format) -> String {
    const FIRST: &str = "Prot LocalAddress:Port";
    if format.stats {
        format!(
            "{FIRST:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if format.rate {
        format!(
            "{FIRST:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if format.thresholds {
        format!(
            "{FIRST:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if format.persistent_conn {
        format!(
            "{FIRST:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if format.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    }
}

/// `ipvsadm -L` (also `-Ln`, `--stats`, `--rate`, ...): header, titles and every service;
/// `names` names addresses and ports unless `format.numeric`.
pub fn list_all(
    info: &Info,
    services: &[ServiceView],
    format: &Format,
    names: &dyn Resolver,
) -> String {
    let mut out = header(info);
    out.push_str(&title(format));
    for service in ordered(services, format) {
        out.push_str(&service_entry(service, format, names));
    }
    out
}

/// `ipvsadm -L -t addr:port`: titles and one service, no header (`list_service`).
pub fn list_service(service: &ServiceView, format: &Format, names: &dyn Resolver) -> String {
    let mut out = title(format);
    out.push_str(&service_entry(service, format, names));
    out
}

/// `ipvsadm -S [-n]`: every service and real server as ipvsadm-save lines (with names unless
/// `-n`, as ipvsadm-save writes them).
pub fn save(services: &[ServiceView], format: &Format, names: &dyn Resolver) -> String {
    let mut out = String::new();
    for service in ordered(services, format) {
        out.push_str(&save_entry(service, format, names));
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `ipvsadm -L --daemon` (`list_daemon`): one line per running sync daemon, master first;
/// the optional fields appear when set (rvsd reports the effective values, as the kernel does).
pub fn daemons(list: &[DaemonConfig]) -> String {
    let mut ordered: Vec<&DaemonConfig> = list.iter().collect();
    ordered.sort_by_key(|d| d.role != DaemonRole::Master);
    let mut out = String::new();
    for d in ordered {
        let role = match d.role {
            DaemonRole::Master => "master",
            DaemonRole::Backup => "backup",
        };
        let _ = write!(
            out,
            "{role} sync daemon (mcast={}, syncid={}",
            d.mcast_interface, d.syncid
        );
        if d.maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.maxlen);
        }
        if let Some(group) = d.group {
            let _ = write!(out, ", group={group}");
        }
        if d.port != 0 {
            let _ = write!(out, ", port={}", d.port);
        }
        if d.ttl != 0 {
            let _ = write!(out, ", ttl={}", d.ttl);
        }
        out.push_str(")\n");
    }
    out
}

/// `ipvsadm -Lc`: the connection table (`list_conn` / `print_conn`).
// The titles are passed as arguments to mirror ipvsadm's printf calls one to one.
#[allow(clippy::write_literal)]
pub fn connections(conns: &[ConnView], format: &Format, names: &dyn Resolver) -> String {
    let namer = Namer::new(format, names);
    let mut out = String::from("IPVS connection entries\n");
    if format.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {}",
            "state", "source", "virtual", "destination"
        );
    }
    for c in conns {
        let proto = match c.proto.as_str() {
            "TCP" => PortProto::Tcp,
            "UDP" => PortProto::Udp,
            "SCTP" => PortProto::Sctp,
            _ => PortProto::Other,
        };
        let seconds = c.expires_ms / 1000;
        let expire = format!("{:02}:{:02}", seconds / 60, seconds % 60);
        let client = namer.addr_port(c.client.ip(), c.client.port(), proto);
        let vip = namer.addr_port(c.virtual_addr.ip(), c.virtual_addr.port(), proto);
        let dest = namer.addr_port(c.dest.ip(), c.dest.port(), proto);
        // A persistence engine's template has its name and data in the line's last two fields
        // of /proc/net/ip_vs_conn: print_conn shows them with --persistent-conn.
        match c.pe.as_ref().filter(|_| format.persistent_conn) {
            Some((name, data)) => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {:<16} {:<18} {}",
                    c.proto, expire, c.state, client, vip, dest, name, data
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
                    c.proto, expire, c.state, client, vip, dest
                );
            }
        }
    }
    out
}

/// `rvsadm --counters` (rvs extension): one `name value` line per counter, in the daemon's order,
/// names left-aligned and values right-aligned in one column each.
pub fn counters(counters: &[CounterView]) -> String {
    let name_width = counters.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let value_width = counters
        .iter()
        .map(|c| c.value.to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in counters {
        let _ = writeln!(out, "{:<name_width$}  {:>value_width$}", c.name, c.value);
    }
    out
}

/// `print_largenum`: right-aligned in 9 columns, scaled to K/M/G/T unless `exact`.
pub fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    if n < 100_000_000 {
        format!("{n:>9}")
    } else if n < 1_000_000_000 {
        format!("{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        format!("{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        format!("{:>8}G", n / 1_000_000_000)
    } else {
        format!("{:>8}T", n / 1_000_000_000_000)
    }
}

/// Services in ipvsadm's order unless `--nosort`: `ipvs_sort_services` sorts with glibc's
/// `qsort` and libipvs's `ipvs_cmp_services` (see [`cmp_services`]).
fn ordered<'a>(services: &'a [ServiceView], format: &Format) -> Vec<&'a ServiceView> {
    let mut list: Vec<&ServiceView> = services.iter().collect();
    if !format.nosort {
        qsort(&mut list, &|a, b| cmp_services(&a.config.id, &b.config.id));
    }
    list
}

/// Real servers in ipvsadm's order unless `--nosort` (`ipvs_sort_dests` with
/// [`cmp_dests`]).
fn ordered_dests<'a>(dests: &'a [DestView], format: &Format) -> Vec<&'a DestView> {
    let mut list: Vec<&DestView> = dests.iter().collect();
    if !format.nosort {
        qsort(&mut list, &|a, b| cmp_dests(&a.config, &b.config));
    }
    list
}

/// glibc's `qsort` (its `msort_with_tmp` merge sort: halves of `n / 2` and the rest, the left
/// element first unless the comparison says greater). libipvs's comparators wrap around, so they
/// are not a total order; only the same algorithm puts the entries where ipvsadm does (Rust's
/// own sorts may order them otherwise, or refuse such a comparator).
pub fn qsort<T: Copy>(items: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
    if items.len() <= 1 {
        return;
    }
    let n1 = items.len() / 2;
    let (left, right) = items.split_at_mut(n1);
    qsort(left, cmp);
    qsort(right, cmp);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if cmp(&left[i], &right[j]) == Ordering::Greater {
            merged.push(right[j]);
            j += 1;
        } else {
            merged.push(left[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    items.copy_from_slice(&merged);
}

/// An address as libipvs holds it (`union nf_inet_addr`): four 32-bit words in host order
/// (`ntohl`), an IPv4 address in the first and zeros after it.
fn addr_words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [word(0), word(4), word(8), word(12)]
        }
    }
}

/// C's `int r = a - b;` for two unsigned 32-bit values: the difference wraps around and is read
/// as signed, so values 2^31 or more apart compare the "wrong" way (e.g. 10.0.0.1 after
/// 192.168.1.1), as they do in ipvsadm.
fn wrapped(a: u32, b: u32) -> Ordering {
    (a.wrapping_sub(b) as i32).cmp(&0)
}

/// libipvs's address comparison: the first word only for IPv4 (`ntohl(a) - ntohl(b)`), word by
/// word until one differs for IPv6; the family is the first operand's.
fn cmp_addr(ipv6: bool, a: IpAddr, b: IpAddr) -> Ordering {
    let (a, b) = (addr_words(a), addr_words(b));
    let words = if ipv6 { 4 } else { 1 };
    (0..words)
        .map(|i| wrapped(a[i], b[i]))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A service's fields as `ipvs_get_services` returns them: fwmark, address family
/// (`AF_INET` 2, `AF_INET6` 10), protocol, address and port (the kernel sends neither protocol,
/// address nor port for a firewall-mark service, so they are zero).
fn service_fields(id: &ServiceId) -> (u32, u16, u16, IpAddr, u16) {
    let af = if id.is_ipv6() { 10 } else { 2 };
    let zero = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    match *id {
        ServiceId::Fwmark { mark, .. } => (mark, af, 0, zero, 0),
        ServiceId::Tcp { addr, port } => (0, af, 6, addr, port),
        ServiceId::Udp { addr, port } => (0, af, 17, addr, port),
        ServiceId::Sctp { addr, port } => (0, af, 132, addr, port),
    }
}

/// libipvs's `ipvs_cmp_services`: fwmark (a wrapping 32-bit difference, so a mark of 2^31 or
/// more sorts before every address service), family, protocol, address (wrapping, see
/// [`cmp_dests`]), port.
pub fn cmp_services(a: &ServiceId, b: &ServiceId) -> Ordering {
    let (fa, afa, pa, aa, porta) = service_fields(a);
    let (fb, afb, pb, ab, portb) = service_fields(b);
    wrapped(fa, fb)
        .then(afa.cmp(&afb))
        .then(pa.cmp(&pb))
        .then_with(|| cmp_addr(afa == 10, aa, ab))
        .then(porta.cmp(&portb))
}

/// libipvs's `ipvs_cmp_dests`: the address as wrapping differences of 32-bit words (the first
/// server's family decides how many words), then the port.
pub fn cmp_dests(a: &DestConfig, b: &DestConfig) -> Ordering {
    cmp_addr(a.addr.is_ipv6(), a.addr, b.addr).then(a.port.cmp(&b.port))
}

/// `addrport_to_anyname`: addresses and ports as numbers (`-n`) or names. Each address and
/// port is looked up once per listing (ipvsadm asks again for every line; the text is the same).
struct Namer<'a> {
    numeric: bool,
    names: &'a dyn Resolver,
    hosts: RefCell<HashMap<IpAddr, Option<String>>>,
    ports: RefCell<HashMap<(u16, PortProto), Option<String>>>,
}

impl<'a> Namer<'a> {
    fn new(format: &Format, names: &'a dyn Resolver) -> Self {
        Namer {
            numeric: format.numeric,
            names,
            hosts: RefCell::new(HashMap::new()),
            ports: RefCell::new(HashMap::new()),
        }
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .borrow_mut()
            .entry(addr)
            .or_insert_with(|| self.names.host_name(addr))
            .clone()
    }

    fn service_name(&self, port: u16, proto: PortProto) -> Option<String> {
        self.ports
            .borrow_mut()
            .entry((port, proto))
            .or_insert_with(|| self.names.service_name(port, proto))
            .clone()
    }

    /// `a.b.c.d:port` or `[v6]:port`; without `-n` the host's name (`gethostbyaddr`) and the
    /// port's service name for `proto` (`getservbyport`) where they have one, each falling back
    /// to the number. At most 59 bytes, as ipvsadm's 60-byte buffer holds.
    fn addr_port(&self, addr: IpAddr, port: u16, proto: PortProto) -> String {
        let mut text = if self.numeric {
            SocketAddr::new(addr, port).to_string()
        } else {
            let host = self.host_name(addr).unwrap_or_else(|| addr.to_string());
            let port = self
                .service_name(port, proto)
                .unwrap_or_else(|| port.to_string());
            if addr.is_ipv6() {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        };
        truncate_bytes(&mut text, 59);
        text
    }

    /// The service column of a listing: `TCP  1.2.3.4:80`, `FWM  7`, `FWM  7 IPv6`.
    fn list_name(&self, id: &ServiceId) -> String {
        match service_addr(id) {
            None => rule_or_list_fwmark(id, false),
            Some((addr, port, proto)) => {
                let mut name = format!(
                    "{:<4} {}",
                    id.proto_name(),
                    self.addr_port(addr, port, proto)
                );
                if !id.is_ipv6() {
                    truncate_bytes(&mut name, 33);
                }
                name
            }
        }
    }

    /// The service part of a rule: `-t 1.2.3.4:80`, `--sctp-service ...`, `-f 7`, `-f 7 -6`.
    fn rule_name(&self, id: &ServiceId) -> String {
        let option = match id {
            ServiceId::Tcp { .. } => "-t",
            ServiceId::Udp { .. } => "-u",
            ServiceId::Sctp { .. } => "--sctp-service",
            ServiceId::Fwmark { .. } => return rule_or_list_fwmark(id, true),
        };
        match service_addr(id) {
            Some((addr, port, proto)) => format!("{option} {}", self.addr_port(addr, port, proto)),
            None => String::new(),
        }
    }

    /// A real server's column (28 bytes at most for IPv4): its port is named for the service's
    /// protocol (none for firewall-mark services, whose protocol IPVS does not report).
    fn dest_name(&self, id: &ServiceId, dest: &DestConfig) -> String {
        let mut name = self.addr_port(dest.addr, dest.port, service_proto(id));
        if !dest.addr.is_ipv6() {
            truncate_bytes(&mut name, 28);
        }
        name
    }
}

/// Cuts `text` to at most `max` bytes (C's `buf[max] = '\0'`), at a character boundary.
fn truncate_bytes(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The protocol of a service's ports, for their names.
fn service_proto(id: &ServiceId) -> PortProto {
    match id {
        ServiceId::Tcp { .. } => PortProto::Tcp,
        ServiceId::Udp { .. } => PortProto::Udp,
        ServiceId::Sctp { .. } => PortProto::Sctp,
        ServiceId::Fwmark { .. } => PortProto::Other,
    }
}

/// A service's address, port and protocol (`None` for firewall-mark services).
fn service_addr(id: &ServiceId) -> Option<(IpAddr, u16, PortProto)> {
    match *id {
        ServiceId::Tcp { addr, port }
        | ServiceId::Udp { addr, port }
        | ServiceId::Sctp { addr, port } => Some((addr, port, service_proto(id))),
        ServiceId::Fwmark { .. } => None,
    }
}

/// `-f 7`, `-f 7 -6` (rules) or `FWM  7`, `FWM  7 IPv6` (listings).
fn rule_or_list_fwmark(id: &ServiceId, rule: bool) -> String {
    let (mark, ipv6) = match *id {
        ServiceId::Fwmark { mark, ipv6 } => (mark, ipv6),
        _ => return String::new(),
    };
    match (rule, ipv6) {
        (true, false) => format!("-f {mark}"),
        (true, true) => format!("-f {mark} -6"),
        (false, false) => format!("FWM  {mark}"),
        (false, true) => format!("FWM  {mark} IPv6"),
    }
}

/// ` mask 255.255.255.0` / ` -M 64`: the netmask text when it is not a single host (any IPv4
/// mask as an address, an IPv6 mask as its prefix length).
fn mask_text(config: &ServiceConfig) -> Option<String> {
    match config.netmask? {
        IpAddr::V4(m) => (m != Ipv4Addr::BROADCAST).then(|| m.to_string()),
        mask @ IpAddr::V6(_) => {
            let prefix = mask_prefix(mask).unwrap_or(128);
            (prefix < 128).then(|| prefix.to_string())
        }
    }
}

/// `fwd_tun_info`: `ipip`, `gue:PORT:-c`, `gre:+c`, or `n/a` for other methods.
fn tunnel_info(dest: &DestConfig) -> String {
    if dest.method != ForwardMethod::Tunnel {
        return "n/a".to_string();
    }
    let t = dest.tunnel.unwrap_or_default();
    let flag = match t.checksum {
        TunnelChecksum::NoCsum => "-c",
        TunnelChecksum::Csum => "+c",
        TunnelChecksum::RemCsum => "r+c",
    };
    match t.kind {
        TunnelKind::Ipip => "ipip".to_string(),
        TunnelKind::Gue => format!("gue:{}:{flag}", t.port.unwrap_or(0)),
        TunnelKind::Gre => format!("gre:{flag}"),
    }
}

/// One service and its real servers (`print_service_entry` without FMT_RULE).
pub fn service_entry(service: &ServiceView, format: &Format, names: &dyn Resolver) -> String {
    let namer = Namer::new(format, names);
    let config = &service.config;
    let name = namer.list_name(&config.id);
    let exact = format.exact;
    let mut out = String::new();
    if format.stats {
        let s = &service.stats;
        out.push_str(&format!("{name:<33}"));
        for n in [s.conns, s.in_pkts, s.out_pkts, s.in_bytes, s.out_bytes] {
            out.push_str(&largenum(n, exact));
        }
    } else if format.rate {
        let r = &service.rates;
        out.push_str(&format!("{name:<33}"));
        for n in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
            out.push_str(&largenum(n, exact));
        }
    } else {
        let _ = write!(out, "{name} {}", config.scheduler);
        let bits = sched_flags::bits(&config.sched_flags);
        if bits != 0 {
            let _ = write!(out, " ({})", sched_flags::display(&config.scheduler, bits));
        }
        if let Some(timeout) = config.persistence {
            let _ = write!(out, " persistent {timeout}");
            if let Some(mask) = mask_text(config) {
                let _ = write!(out, " mask {mask}");
            }
            if let Some(pe) = config.pe.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " pe {pe}");
            }
        }
        if config.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');
    for d in ordered_dests(&service.dests, format) {
        let c = &d.config;
        let name = namer.dest_name(&config.id, c);
        if format.stats {
            let s = &d.stats;
            let _ = write!(out, "  -> {name:<28}");
            for n in [s.conns, s.in_pkts, s.out_pkts, s.in_bytes, s.out_bytes] {
                out.push_str(&largenum(n, exact));
            }
            out.push('\n');
        } else if format.rate {
            let r = &d.rates;
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                r.cps, r.in_pps, r.out_pps
            );
            out.push_str(&largenum(r.in_bps, exact));
            out.push_str(&largenum(r.out_bps, exact));
            out.push('\n');
        } else if format.thresholds {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
                c.u_threshold, c.l_threshold, d.active_conns, d.inactive_conns
            );
        } else if format.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
                c.weight, d.persist_conns, d.active_conns, d.inactive_conns
            );
        } else if format.tun_info {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                c.method.ipvsadm_name(),
                tunnel_info(c),
                c.weight,
                d.active_conns,
                d.inactive_conns
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
                c.method.ipvsadm_name(),
                c.weight,
                d.active_conns,
                d.inactive_conns
            );
        }
    }
    out
}

/// `fwd_switch`: the option that selects a forwarding method (Local saves as `-g`; rvs's
/// FULLNAT as its long option `--fullnat`).
fn method_switch(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::FullNat => "--fullnat",
        ForwardMethod::Masq => "-m",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Route | ForwardMethod::Local => "-g",
    }
}

/// One service and its real servers as rules (`print_service_entry` with FMT_RULE).
/// Like ipvsadm, thresholds are not saved.
fn save_entry(service: &ServiceView, format: &Format, names: &dyn Resolver) -> String {
    let namer = Namer::new(format, names);
    let config = &service.config;
    let svc = namer.rule_name(&config.id);
    let mut out = format!("-A {svc} -s {}", config.scheduler);
    if let Some(timeout) = config.persistence {
        let _ = write!(out, " -p {timeout}");
        if let Some(mask) = mask_text(config) {
            let _ = write!(out, " -M {mask}");
        }
    }
    if let Some(pe) = config.pe.as_deref().filter(|p| !p.is_empty()) {
        let _ = write!(out, " --pe {pe}");
    }
    if config.one_packet {
        out.push_str(" -o");
    }
    let bits = sched_flags::bits(&config.sched_flags);
    if bits != 0 {
        let _ = write!(out, " -b {}", sched_flags::display(&config.scheduler, bits));
    }
    // rvs extensions, only present on FULLNAT services (so ipvsadm's lines stay as they are).
    if !config.local_addrs.is_empty() {
        let list: Vec<String> = config.local_addrs.iter().map(|a| a.to_string()).collect();
        let _ = write!(out, " --laddr {}", list.join(","));
    }
    if let Some(pp) = config.proxy_protocol {
        let _ = write!(out, " --proxy-protocol {}", pp.name());
    }
    out.push('\n');
    for d in ordered_dests(&service.dests, format) {
        let c = &d.config;
        let dname = namer.addr_port(c.addr, c.port, service_proto(&config.id));
        let _ = write!(
            out,
            "-a {svc} -r {dname} {} -w {}",
            method_switch(c.method),
            c.weight
        );
        if c.method == ForwardMethod::Tunnel {
            let t = c.tunnel.unwrap_or_default();
            let csum = match t.checksum {
                TunnelChecksum::NoCsum => "--tun-nocsum",
                TunnelChecksum::Csum => "--tun-csum",
                TunnelChecksum::RemCsum => "--tun-remcsum",
            };
            match t.kind {
                TunnelKind::Ipip => out.push_str(" --tun-type ipip"),
                TunnelKind::Gue => {
                    let _ = write!(
                        out,
                        " --tun-type gue --tun-port {} {csum}",
                        t.port.unwrap_or(0)
                    );
                }
                TunnelKind::Gre => {
                    let _ = write!(out, " --tun-type gre {csum}");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `rvsadm --health` (rvs extension): one line per real server (service, server, state, applied
/// and configured weight), then one indented line per checker: kind, target, last result,
/// seconds since it, failures in a row and the detail.
pub fn health(servers: &[rvs_api::HealthView]) -> String {
    let mut out = String::from(
        "Prot LocalAddress:Port RemoteAddress:Port State Weight(applied/configured)\n  -> Checker Target Result Age Failures Detail\n",
    );
    for s in servers {
        let applied = s
            .applied_weight
            .map_or_else(|| "-".to_owned(), |w| w.to_string());
        out.push_str(&format!(
            "{} {} {} {}/{}\n",
            s.service, s.dest, s.state, applied, s.configured_weight
        ));
        for c in &s.checkers {
            let result = match c.last_ok {
                Some(true) => "ok",
                Some(false) => "fail",
                None => "pending",
            };
            let age = c.since_ms.map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.1}s", ms as f64 / 1000.0),
            );
            out.push_str(&format!(
                "  -> {} {} {} {} {} {}\n",
                c.kind, c.target, result, age, c.consecutive_failures, c.detail
            ));
        }
    }
    out
}

/// `rvsadm --doctor` (rvs extension): each finding as `check: subject`, then its detail
/// indented; a line saying so when there is none.
pub fn doctor(findings: &[rvs_api::FindingView]) -> String {
    if findings.is_empty() {
        return "No misconfiguration seen.\n".to_string();
    }
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("{}: {}\n    {}\n", f.check, f.subject, f.detail));
    }
    out
}

/// `rvsadm --bfd` (rvs extension): one line per BFD session, as keepalived names its states
/// and diagnostics; intervals in milliseconds.
pub fn bfd(list: &[rvs_api::BfdView]) -> String {
    let mut out = String::from(
        "Instance Neighbor Source State Remote Diagnostic Discriminators(local/remote) TxInterval(ms) DetectTime(ms)\n",
    );
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    for b in list {
        out.push_str(&format!(
            "{} {} {} {} {} \"{}\" {}/{} {} {}\n",
            b.name,
            b.neighbor,
            b.source.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            b.state,
            b.remote_state,
            b.diag,
            b.local_discriminator,
            b.remote_discriminator,
            ms(u64::from(b.tx_interval_us)),
            ms(b.detect_time_us),
        ));
    }
    out
}

/// `rvsadm --vrrp` (rvs extension): one line per VRRP instance.
pub fn vrrp(list: &[rvs_api::VrrpView]) -> String {
    let mut out = String::from(
        "Instance Group Interface VRID Version State Priority(effective/configured) Master VIPs\n",
    );
    for v in list {
        let vips: Vec<String> = v.vips.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "{} {} {} {} v{} {} {}/{} {} {}\n",
            v.name,
            v.group.as_deref().unwrap_or("-"),
            v.interface,
            v.vrid,
            v.version,
            v.state,
            v.priority,
            v.base_priority,
            v.master.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            if vips.is_empty() {
                "-".to_owned()
            } else {
                vips.join(",")
            },
        ));
    }
    out
}
