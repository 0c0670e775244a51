//! ipvsadm command lines to typed [`Action`]s, with ipvsadm 1.31's checks and error texts.
//!
//! The rules follow `parse_options`, `generic_opt_check` and `process_options` in ipvsadm.c:
//! the first option is the command; each other option may appear once; a table says which
//! options each command requires, allows or forbids; then command-specific checks run.

use crate::action::{Action, Format, ListRequest, ListTarget};
use crate::address::{parse_host_port, parse_ipv4, string_to_number};
use crate::args::{split, Occurrence, Opt};
use crate::names::{PortProto, Resolver, SystemResolver};
use crate::sched_flags;
use rvs_api::netmask::prefix_mask;
use rvs_api::validate::{self, Invalid};
use rvs_api::{
    Command, DaemonConfig, DaemonRole, DestConfig, ForwardMethod, ProxyProtocol, ServiceConfig,
    ServiceId, Timeouts, TunnelChecksum, TunnelConfig, TunnelKind,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// The sync daemon's interface without `--mcast-interface` (ipvsadm's `DEF_MCAST_IFN`).
pub const DEFAULT_MCAST_INTERFACE: &str = "eth0";
/// Persistence timeout used by `-p` without a value (`IPVS_SVC_PERSISTENT_TIMEOUT`, 6*60 s).
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// Longest timeout ipvsadm accepts (`MAX_TIMEOUT`, 31 days).
pub const MAX_TIMEOUT: i64 = rvs_api::MAX_TIMEOUT_S as i64;

/// A command line ipvsadm would refuse, with its message and exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No usable command: "Try `rvsadm -h' ..." (exit 255).
    TryHelp,
    /// popt could not read an option, e.g. `--foo: unknown option` (exit 255).
    BadOption {
        /// The option as written.
        option: String,
        /// popt's reason.
        reason: &'static str,
    },
    /// ipvsadm's `fail(2, ...)`: the message, exit status 2.
    Fail(String),
}

impl ParseError {
    /// The exit status ipvsadm uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ParseError::TryHelp | ParseError::BadOption { .. } => 255,
            ParseError::Fail(_) => 2,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TryHelp => {
                write!(
                    f,
                    "Try `rvsadm -h' or 'rvsadm --help' for more information."
                )
            }
            ParseError::BadOption { option, reason } => write!(f, "{option}: {reason}"),
            ParseError::Fail(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ParseError {}

/// ipvsadm's `fail(2, message)` as an error result.
pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Fail(message.into()))
}

/// A refusal of [`rvs_api::validate`] as ipvsadm's `fail(2, ...)`: rvsadm refuses what rvsd
/// would refuse, with the same text.
fn invalid(refusal: Invalid) -> ParseError {
    ParseError::Fail(refusal.to_string())
}

/// ipvsadm's commands, in the order of its `cmdnames` table, then rvs's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    Counters,
}

const CMD_NAMES: [&str; 15] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
    "counters",
];

/// Option columns of the check table (ipvsadm's `OPTC_*` and `optnames`).
const OPT_NAMES: [&str; 36] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "laddr",
    "proxy-protocol",
];

const C_NUMERIC: usize = 0;
const C_CONNECTION: usize = 1;
const C_SERVICE: usize = 2;
const C_SCHEDULER: usize = 3;
const C_PERSISTENT: usize = 4;
const C_NETMASK: usize = 5;
const C_SERVER: usize = 6;
const C_FORWARD: usize = 7;
const C_WEIGHT: usize = 8;
const C_UTHRESHOLD: usize = 9;
const C_LTHRESHOLD: usize = 10;
const C_MCAST: usize = 11;
const C_TIMEOUT: usize = 12;
const C_DAEMON: usize = 13;
const C_STATS: usize = 14;
const C_RATE: usize = 15;
const C_THRESHOLDS: usize = 16;
const C_PERSISTENTCONN: usize = 17;
const C_NOSORT: usize = 18;
const C_SYNCID: usize = 19;
const C_EXACT: usize = 20;
const C_ONEPACKET: usize = 21;
const C_PE: usize = 22;
const C_SCHED_FLAGS: usize = 23;
const C_MCAST_GROUP: usize = 24;
const C_MCAST_PORT: usize = 25;
const C_MCAST_TTL: usize = 26;
const C_SYNC_MAXLEN: usize = 27;
const C_TUN_INFO: usize = 28;
const C_TUN_TYPE: usize = 29;
const C_TUN_PORT: usize = 30;
const C_TUN_NOCSUM: usize = 31;
const C_TUN_CSUM: usize = 32;
const C_TUN_REMCSUM: usize = 33;
const C_LADDR: usize = 34;
const C_PROXY_PROTOCOL: usize = 35;

/// ipvsadm 1.31's `commands_v_options`: '+' required, 'x' illegal, '1' exclusive, ' ' optional.
/// Columns: -n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st -rt thr -pc srt sid -ex ops -pe -b
/// grp port ttl size tinf type tprt nocs csum remc, then rvs's laddr and proxy-protocol
/// (allowed on add-service and edit-service only). `--fullnat` is a forwarding method (the
/// `fwd` column). The last row is rvs's `--counters`, which takes no options at all.
const CHECKS: [&[u8; 36]; 15] = [
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx  ", // add-service
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx  ", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b" 11xxxxxxxxx11       xxxxxxx xxxxxxx", // list
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xx", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xx", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx", // start-daemon
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx", // stop-daemon
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // counters
];

/// `tunnel_types_v_options` for ipip, gue, gre over tun-port, tun-nocsum, tun-csum, tun-remcsum.
const TUNNEL_CHECKS: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];
const TUNNEL_COLUMNS: [usize; 4] = [C_TUN_PORT, C_TUN_NOCSUM, C_TUN_CSUM, C_TUN_REMCSUM];
const TUNNEL_NAMES: [&str; 3] = ["ipip", "gue", "gre"];

/// Persistence granularity as ipvsadm holds it while parsing.
#[derive(Debug, Clone, Copy)]
enum Mask {
    /// Any IPv4 mask (`inet_aton`'s forms, contiguous or not).
    V4(Ipv4Addr),
    /// An IPv6 prefix length.
    V6(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
}

/// Everything collected from the options, like ipvsadm's `ipvs_command_entry`.
#[derive(Debug)]
struct Entry {
    seen: u64,
    format: Format,
    proto: Option<Proto>,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    fwmark_v6: bool,
    scheduler: Option<String>,
    persistence: Option<u32>,
    mask: Mask,
    one_packet: bool,
    pe: Option<String>,
    sched_flags: Option<String>,
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    method: ForwardMethod,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_kind: TunnelKind,
    tun_port: Option<u16>,
    tun_checksum: TunnelChecksum,
    local_addrs: Vec<IpAddr>,
    proxy_protocol: Option<ProxyProtocol>,
    daemon: DaemonConfig,
}

impl Entry {
    fn new() -> Self {
        Entry {
            seen: 0,
            format: Format::default(),
            proto: None,
            addr: None,
            port: 0,
            fwmark: 0,
            fwmark_v6: false,
            scheduler: None,
            persistence: None,
            mask: Mask::V4(Ipv4Addr::BROADCAST),
            one_packet: false,
            pe: None,
            sched_flags: None,
            dest_addr: None,
            dest_port: 0,
            method: ForwardMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_kind: TunnelKind::Ipip,
            tun_port: None,
            tun_checksum: TunnelChecksum::NoCsum,
            local_addrs: Vec::new(),
            proxy_protocol: None,
            daemon: DaemonConfig {
                role: DaemonRole::Master,
                mcast_interface: String::new(),
                syncid: 0,
                maxlen: 0,
                group: None,
                port: 0,
                ttl: 0,
            },
        }
    }

    fn has(&self, column: usize) -> bool {
        self.seen & (1 << column) != 0
    }

    fn set(&mut self, column: usize) -> Result<(), ParseError> {
        if self.has(column) {
            return fail(format!(
                "multiple '{}' options specified",
                OPT_NAMES[column]
            ));
        }
        self.seen |= 1 << column;
        Ok(())
    }

    fn is_v6(&self) -> bool {
        if self.fwmark != 0 {
            self.fwmark_v6
        } else {
            matches!(self.addr, Some(IpAddr::V6(_)))
        }
    }

    fn service_id(&self) -> Option<ServiceId> {
        if self.fwmark != 0 {
            return Some(ServiceId::Fwmark {
                mark: self.fwmark,
                ipv6: self.fwmark_v6,
            });
        }
        let (addr, port) = (self.addr?, self.port);
        Some(match self.proto? {
            Proto::Tcp => ServiceId::Tcp { addr, port },
            Proto::Udp => ServiceId::Udp { addr, port },
            Proto::Sctp => ServiceId::Sctp { addr, port },
        })
    }
}

/// Parse an rvsadm command line (without the program name), as ipvsadm would; host and service
/// names are looked up as ipvsadm looks them up ([`SystemResolver`]).
///
/// An empty command line lists the table, as plain `ipvsadm` does.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Action, ParseError> {
    parse_args_with(args, &SystemResolver)
}

/// [`parse_args`] with the names of `names`.
pub fn parse_args_with<S: AsRef<str>>(
    args: &[S],
    names: &dyn Resolver,
) -> Result<Action, ParseError> {
    if args.is_empty() {
        return Ok(Action::List(ListRequest {
            target: ListTarget::All,
            format: Format::default(),
        }));
    }
    parse(args, false, names)
}

/// Parse one line of `-R` input (already split into words, `ipvsadm` words dropped).
/// A nested `-R` is refused, as ipvsadm does.
pub fn parse_restore_args<S: AsRef<str>>(args: &[S]) -> Result<Action, ParseError> {
    parse(args, true, &SystemResolver)
}

/// [`parse_restore_args`] with the names of `names`.
pub fn parse_restore_args_with<S: AsRef<str>>(
    args: &[S],
    names: &dyn Resolver,
) -> Result<Action, ParseError> {
    parse(args, true, names)
}

fn parse<S: AsRef<str>>(
    args: &[S],
    reading_stdin: bool,
    names: &dyn Resolver,
) -> Result<Action, ParseError> {
    if let Some(extension) = crate::extension::parse_extension(args) {
        return extension;
    }
    let split = split(args);
    let mut items = split.items.into_iter();
    let first = match items.next() {
        Some(Ok(first)) => first,
        _ => return Err(ParseError::TryHelp),
    };
    let mut role = DaemonRole::Master;
    let cmd = match first.opt {
        Opt::AddService => Cmd::Add,
        Opt::EditService => Cmd::Edit,
        Opt::DeleteService => Cmd::Del,
        Opt::AddServer => Cmd::AddDest,
        Opt::EditServer => Cmd::EditDest,
        Opt::DeleteServer => Cmd::DelDest,
        Opt::Clear => Cmd::Flush,
        Opt::List => Cmd::List,
        Opt::Zero => Cmd::Zero,
        Opt::Set => Cmd::Timeout,
        Opt::Restore => Cmd::Restore,
        Opt::Save => Cmd::Save,
        Opt::Counters => Cmd::Counters,
        Opt::StartDaemon => {
            role = daemon_state(&first, "illegal start-daemon parameter specified")?;
            Cmd::StartDaemon
        }
        Opt::StopDaemon => {
            role = daemon_state(&first, "illegal start_daemon specified")?;
            Cmd::StopDaemon
        }
        Opt::Help => return Ok(Action::Help),
        Opt::Version => return Ok(Action::Version),
        _ => return Err(ParseError::TryHelp),
    };
    let mut e = Entry::new();
    e.daemon.role = role;
    for item in items {
        let occurrence = item.map_err(|bad| ParseError::BadOption {
            option: bad.spelled,
            reason: bad.reason,
        })?;
        apply_option(&mut e, &occurrence, names)?;
    }
    let mut leftovers = split.args.into_iter();
    let mut timeouts = Timeouts::default();
    if cmd == Cmd::Timeout {
        let values: Vec<String> = leftovers.by_ref().take(3).collect();
        if values.len() < 3 {
            return fail("--set option requires 3 timeout values");
        }
        timeouts.tcp = parse_timeout(&values[0], 0)?;
        timeouts.tcp_fin = parse_timeout(&values[1], 0)?;
        timeouts.udp = parse_timeout(&values[2], 0)?;
    }
    if let Some(extra) = leftovers.next() {
        return fail(format!("unexpected argument {extra}"));
    }
    let sched_flags = match &e.sched_flags {
        Some(text) => parse_sched_flags(e.scheduler.as_deref(), text)?,
        None => Vec::new(),
    };
    check_options(cmd, e.seen)?;
    finish(cmd, e, sched_flags, timeouts, reading_stdin)
}

/// The protocol whose service names a port may use.
fn port_proto(proto: Option<Proto>) -> PortProto {
    match proto {
        Some(Proto::Tcp) => PortProto::Tcp,
        Some(Proto::Udp) => PortProto::Udp,
        Some(Proto::Sctp) => PortProto::Sctp,
        None => PortProto::Other,
    }
}

fn daemon_state(first: &Occurrence, message: &str) -> Result<DaemonRole, ParseError> {
    match first.value.as_deref() {
        Some("master") => Ok(DaemonRole::Master),
        Some("backup") => Ok(DaemonRole::Backup),
        _ => fail(message),
    }
}

fn parse_timeout(text: &str, min: i64) -> Result<u32, ParseError> {
    match string_to_number(text, min, MAX_TIMEOUT) {
        Some(n) => Ok(n as u32),
        None => fail(format!("invalid timeout value `{text}' specified")),
    }
}

fn number(text: &str, min: i64, max: i64, message: &str) -> Result<i64, ParseError> {
    string_to_number(text, min, max).map_or_else(|| fail(message), Ok)
}

fn value(o: &Occurrence) -> &str {
    o.value.as_deref().unwrap_or("")
}

fn apply_option(e: &mut Entry, o: &Occurrence, names: &dyn Resolver) -> Result<(), ParseError> {
    let v = value(o);
    match o.opt {
        Opt::TcpService | Opt::UdpService | Opt::SctpService => {
            e.set(C_SERVICE)?;
            e.proto = Some(match o.opt {
                Opt::TcpService => Proto::Tcp,
                Opt::UdpService => Proto::Udp,
                _ => Proto::Sctp,
            });
            let Some(hp) = parse_host_port(v, port_proto(e.proto), names) else {
                return fail("illegal virtual server address[:port] specified");
            };
            e.addr = Some(hp.addr);
            e.port = hp.port.unwrap_or(0);
            if hp.addr.is_ipv6() {
                e.mask = Mask::V6(128);
            }
        }
        Opt::FwmarkService => {
            e.set(C_SERVICE)?;
            e.proto = Some(Proto::Tcp);
            let mark = string_to_number(v, 1, i64::from(u32::MAX));
            let Some(mark) = mark else {
                return fail(format!("invalid fwmark value `{v}' specified"));
            };
            e.fwmark = mark as u32;
        }
        Opt::Scheduler => {
            e.set(C_SCHEDULER)?;
            // IP_VS_SCHEDNAME_MAXLEN is 16 including the terminator.
            e.scheduler = Some(v.chars().take(15).collect());
        }
        Opt::Persistent => {
            e.set(C_PERSISTENT)?;
            e.persistence = Some(match &o.value {
                Some(text) => parse_timeout(text, 1)?,
                None => DEFAULT_PERSISTENCE,
            });
        }
        Opt::Netmask => {
            e.set(C_NETMASK)?;
            if e.is_v6() {
                match string_to_number(v, 1, 128) {
                    Some(n) => e.mask = Mask::V6(n as u8),
                    None => return fail("illegal ipv6 netmask specified"),
                }
            } else {
                match parse_ipv4(v, names) {
                    Some(mask) => e.mask = Mask::V4(mask),
                    None => return fail("illegal virtual server persistent mask specified"),
                }
            }
        }
        Opt::RealServer => {
            e.set(C_SERVER)?;
            // ipvsadm reads -r with the service's protocol as known so far (none before -t/-u).
            let Some(hp) = parse_host_port(v, port_proto(e.proto), names) else {
                return fail("illegal real server address[:port] specified");
            };
            e.dest_addr = Some(hp.addr);
            e.dest_port = hp.port.unwrap_or(e.port);
        }
        Opt::Masquerading | Opt::Ipip | Opt::Gatewaying | Opt::FullNat => {
            e.set(C_FORWARD)?;
            e.method = match o.opt {
                Opt::Masquerading => ForwardMethod::Masq,
                Opt::Ipip => ForwardMethod::Tunnel,
                Opt::FullNat => ForwardMethod::FullNat,
                _ => ForwardMethod::Route,
            };
        }
        Opt::Laddr => {
            e.set(C_LADDR)?;
            for word in v.split(',') {
                let word = word.trim();
                let bare = word
                    .strip_prefix('[')
                    .and_then(|w| w.strip_suffix(']'))
                    .unwrap_or(word);
                match bare.parse::<IpAddr>() {
                    Ok(a) if !a.is_unspecified() && !e.local_addrs.contains(&a) => {
                        e.local_addrs.push(a)
                    }
                    Ok(_) => return fail(format!("illegal local address `{word}' specified")),
                    Err(_) => return fail(format!("illegal local address `{word}' specified")),
                }
            }
        }
        Opt::ProxyProtocol => {
            e.set(C_PROXY_PROTOCOL)?;
            e.proxy_protocol = Some(match v {
                "v1" | "1" => ProxyProtocol::V1,
                "v2" | "2" => ProxyProtocol::V2,
                _ => return fail(format!("illegal PROXY protocol version `{v}' (v1 or v2)")),
            });
        }
        Opt::Weight => {
            e.set(C_WEIGHT)?;
            e.weight = number(v, 0, 65535, "illegal weight specified")? as u32;
        }
        Opt::UThreshold => {
            e.set(C_UTHRESHOLD)?;
            e.u_threshold =
                number(v, 0, i64::from(i32::MAX), "illegal u_threshold specified")? as u32;
        }
        Opt::LThreshold => {
            e.set(C_LTHRESHOLD)?;
            e.l_threshold =
                number(v, 0, i64::from(i32::MAX), "illegal l_threshold specified")? as u32;
        }
        Opt::Connection => e.set(C_CONNECTION)?,
        Opt::Numeric => {
            e.set(C_NUMERIC)?;
            e.format.numeric = true;
        }
        Opt::McastInterface => {
            e.set(C_MCAST)?;
            // IP_VS_IFNAME_MAXLEN is 16 including the terminator.
            e.daemon.mcast_interface = v.chars().take(15).collect();
        }
        Opt::SyncId => {
            e.set(C_SYNCID)?;
            e.daemon.syncid = number(v, 0, 255, "illegal syncid specified")? as u8;
        }
        Opt::Timeout => e.set(C_TIMEOUT)?,
        Opt::Daemon => e.set(C_DAEMON)?,
        Opt::Stats => {
            e.set(C_STATS)?;
            e.format.stats = true;
        }
        Opt::Rate => {
            e.set(C_RATE)?;
            e.format.rate = true;
        }
        Opt::Thresholds => {
            e.set(C_THRESHOLDS)?;
            e.format.thresholds = true;
        }
        Opt::PersistentConn => {
            e.set(C_PERSISTENTCONN)?;
            e.format.persistent_conn = true;
        }
        Opt::NoSort => {
            e.set(C_NOSORT)?;
            e.format.nosort = true;
        }
        Opt::Sort => {}
        Opt::Exact => {
            e.set(C_EXACT)?;
            e.format.exact = true;
        }
        Opt::Ipv6 => {
            if e.fwmark == 0 {
                return fail("-6 used before -f\n");
            }
            e.fwmark_v6 = true;
            e.mask = Mask::V6(128);
        }
        Opt::Ops => {
            e.set(C_ONEPACKET)?;
            e.one_packet = true;
        }
        Opt::Pe => {
            e.set(C_PE)?;
            e.pe = Some(v.chars().take(32).collect());
        }
        Opt::SchedFlags => {
            e.set(C_SCHED_FLAGS)?;
            e.sched_flags = Some(v.chars().take(127).collect());
        }
        Opt::McastGroup => {
            e.set(C_MCAST_GROUP)?;
            if v.contains(':') {
                match v.parse::<std::net::Ipv6Addr>() {
                    Ok(a) if a.is_multicast() => e.daemon.group = Some(IpAddr::V6(a)),
                    _ => return fail(format!("invalid IPv6 mcast-group `{v}'")),
                }
            } else {
                match v.parse::<std::net::Ipv4Addr>() {
                    Ok(a) if a.is_multicast() => e.daemon.group = Some(IpAddr::V4(a)),
                    _ => return fail(format!("invalid IPv4 mcast-group `{v}'")),
                }
            }
        }
        Opt::McastPort => {
            e.set(C_MCAST_PORT)?;
            e.daemon.port = number(v, 1, 65535, "illegal mcast-port specified")? as u16;
        }
        Opt::McastTtl => {
            e.set(C_MCAST_TTL)?;
            e.daemon.ttl = number(v, 1, 255, "illegal mcast-ttl specified")? as u8;
        }
        Opt::SyncMaxlen => {
            e.set(C_SYNC_MAXLEN)?;
            e.daemon.maxlen = number(v, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")? as u16;
        }
        Opt::TunInfo => {
            e.set(C_TUN_INFO)?;
            e.format.tun_info = true;
        }
        Opt::TunType => {
            e.set(C_TUN_TYPE)?;
            e.tun_kind = match v {
                "ipip" => TunnelKind::Ipip,
                "gue" => TunnelKind::Gue,
                "gre" => TunnelKind::Gre,
                _ => return fail("illegal tunnel type specified"),
            };
        }
        Opt::TunPort => {
            e.set(C_TUN_PORT)?;
            e.tun_port = Some(number(v, 1, 65535, "illegal tunnel port specified")? as u16);
        }
        Opt::TunNocsum => {
            e.set(C_TUN_NOCSUM)?;
            e.tun_checksum = TunnelChecksum::NoCsum;
        }
        Opt::TunCsum => {
            e.set(C_TUN_CSUM)?;
            e.tun_checksum = TunnelChecksum::Csum;
        }
        Opt::TunRemcsum => {
            e.set(C_TUN_REMCSUM)?;
            e.tun_checksum = TunnelChecksum::RemCsum;
        }
        Opt::AddService
        | Opt::EditService
        | Opt::DeleteService
        | Opt::Clear
        | Opt::List
        | Opt::Zero
        | Opt::AddServer
        | Opt::EditServer
        | Opt::DeleteServer
        | Opt::Set
        | Opt::Help
        | Opt::Version
        | Opt::Restore
        | Opt::Save
        | Opt::StartDaemon
        | Opt::StopDaemon
        | Opt::Counters => return fail(format!("invalid option `{}'", o.word)),
    }
    Ok(())
}

/// Scheduler flags (`-b`) as canonical names for the scheduler, checked as ipvsadm does.
fn parse_sched_flags(scheduler: Option<&str>, text: &str) -> Result<Vec<String>, ParseError> {
    let scheduler = scheduler
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER);
    let flags: Vec<&str> = text.split(',').filter(|f| !f.is_empty()).collect();
    if flags.is_empty() {
        return fail(format!("invalid scheduler flag `{text}'"));
    }
    let bits = sched_flags::check(scheduler, flags).map_err(ParseError::Fail)?;
    Ok(sched_flags::names(scheduler, bits))
}

/// `generic_opt_check`: the first violation of the command/option table, in column order.
fn check_options(cmd: Cmd, seen: u64) -> Result<(), ParseError> {
    let rules = CHECKS[cmd as usize].iter().copied().enumerate();
    check_rules(
        rules,
        seen,
        &format!("'{}' command", CMD_NAMES[cmd as usize]),
    )
}

/// `tunnel_opt_check` for the chosen tunnel type.
fn check_tunnel_options(kind: TunnelKind, seen: u64) -> Result<(), ParseError> {
    let index = match kind {
        TunnelKind::Ipip => 0,
        TunnelKind::Gue => 1,
        TunnelKind::Gre => 2,
    };
    let rules = TUNNEL_COLUMNS
        .iter()
        .copied()
        .zip(TUNNEL_CHECKS[index].iter().copied());
    check_rules(
        rules,
        seen,
        &format!("'{}' tunnel type", TUNNEL_NAMES[index]),
    )
}

/// The first violation of one table row: `(option column, rule)` pairs in column order, where
/// `+` requires the option, `x` forbids it and `1` allows one of the `1` options only; `what`
/// ends the message (`'add-service' command`, `'gue' tunnel type`).
fn check_rules(
    rules: impl Iterator<Item = (usize, u8)>,
    seen: u64,
    what: &str,
) -> Result<(), ParseError> {
    let mut exclusive: Option<usize> = None;
    for (column, rule) in rules {
        if seen & (1 << column) == 0 {
            if rule == b'+' {
                return fail(format!(
                    "You need to supply the '{}' option for the {what}",
                    OPT_NAMES[column]
                ));
            }
            continue;
        }
        if rule == b'x' {
            return fail(format!(
                "Illegal '{}' option with the {what}",
                OPT_NAMES[column]
            ));
        }
        if rule == b'1' {
            if let Some(last) = exclusive {
                return fail(format!(
                    "The option '{}' conflicts with the '{}' option in the {what}",
                    OPT_NAMES[column], OPT_NAMES[last]
                ));
            }
            exclusive = Some(column);
        }
    }
    Ok(())
}

fn service_config(e: &Entry, id: ServiceId, sched_flags: Vec<String>) -> ServiceConfig {
    let netmask = match (e.mask, id.is_ipv6()) {
        (Mask::V4(m), false) if m != Ipv4Addr::BROADCAST => Some(IpAddr::V4(m)),
        (Mask::V6(p), true) if p < 128 => Some(prefix_mask(true, p)),
        _ => None,
    };
    ServiceConfig {
        id,
        scheduler: e
            .scheduler
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SCHEDULER.to_string()),
        persistence: e.persistence,
        netmask,
        one_packet: e.one_packet,
        sched_flags,
        pe: e.pe.clone(),
        local_addrs: e.local_addrs.clone(),
        proxy_protocol: e.proxy_protocol,
    }
}

fn finish(
    cmd: Cmd,
    e: Entry,
    sched_flags: Vec<String>,
    timeouts: Timeouts,
    reading_stdin: bool,
) -> Result<Action, ParseError> {
    let id = e.service_id();
    let need_id = || id.ok_or_else(|| ParseError::Fail("no service specified".into()));
    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let id = need_id()?;
            // ipvsadm's process_options checks (zero port, one-packet scheduling), then rvs's
            // (local addresses, PROXY protocol): the checks rvsd makes for any client.
            let config = service_config(&e, id, sched_flags);
            validate::service(&config).map_err(invalid)?;
            Action::Apply(if cmd == Cmd::Add {
                Command::AddService(config)
            } else {
                Command::EditService(config)
            })
        }
        Cmd::Del => Action::Apply(Command::DelService(need_id()?)),
        Cmd::Flush => Action::Apply(Command::Clear),
        Cmd::Zero => Action::Apply(Command::Zero { service: id }),
        Cmd::Timeout => Action::Apply(Command::SetTimeouts(timeouts)),
        Cmd::AddDest | Cmd::EditDest => {
            let id = need_id()?;
            let addr = e
                .dest_addr
                .ok_or_else(|| ParseError::Fail("no real server specified".into()))?;
            let mut port = e.dest_port;
            let tunnel = e.method == ForwardMethod::Tunnel;
            // ipvsadm.c's process_options: "The destination port must be equal to the service
            // port if the IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set", so a -g/-i server's
            // port is replaced with the service's, silently, before the kernel sees it (not for
            // fwmark services). rvsd refuses such a port mapping with its reason for other
            // clients; rvsadm sends what ipvsadm sends.
            if e.fwmark == 0 && (tunnel || e.method == ForwardMethod::Route) {
                port = e.port;
            }
            let dest = DestConfig {
                addr,
                port,
                weight: e.weight,
                method: e.method,
                u_threshold: e.u_threshold,
                l_threshold: e.l_threshold,
                tunnel: tunnel.then_some(TunnelConfig {
                    kind: e.tun_kind,
                    port: e.tun_port,
                    checksum: e.tun_checksum,
                }),
            };
            validate::dest_family(&id, &dest).map_err(invalid)?;
            // Which tunnel options were given, as ipvsadm's tables check them: stricter than
            // rvsd's check of the values sent (`validate::tunnel`), which cannot tell a
            // default from an option given (`--tun-nocsum` with ipip).
            let tunnel_options = (1 << C_TUN_TYPE)
                | (1 << C_TUN_PORT)
                | (1 << C_TUN_NOCSUM)
                | (1 << C_TUN_CSUM)
                | (1 << C_TUN_REMCSUM);
            if e.seen & tunnel_options != 0 && !tunnel {
                return fail("Tunnel options conflict with forward method");
            }
            check_tunnel_options(e.tun_kind, e.seen)?;
            Action::Apply(if cmd == Cmd::AddDest {
                Command::AddDest { service: id, dest }
            } else {
                Command::EditDest { service: id, dest }
            })
        }
        Cmd::DelDest => {
            let id = need_id()?;
            let addr = e
                .dest_addr
                .ok_or_else(|| ParseError::Fail("no real server specified".into()))?;
            Action::Apply(Command::DelDest {
                service: id,
                addr,
                port: e.dest_port,
            })
        }
        Cmd::List => {
            let details = (1 << C_STATS) | (1 << C_RATE) | (1 << C_THRESHOLDS);
            let special = (1 << C_CONNECTION) | (1 << C_TIMEOUT) | (1 << C_DAEMON);
            let timeout_or_daemon = (1 << C_TIMEOUT) | (1 << C_DAEMON);
            if (e.seen & special != 0 && e.seen & details != 0)
                || (e.seen & timeout_or_daemon != 0 && e.has(C_PERSISTENTCONN))
            {
                return fail("options conflicts in the list command");
            }
            let target = if e.has(C_CONNECTION) {
                ListTarget::Connections
            } else if let (true, Some(id)) = (e.has(C_SERVICE), id) {
                ListTarget::Service(id)
            } else if e.has(C_TIMEOUT) {
                ListTarget::Timeouts
            } else if e.has(C_DAEMON) {
                ListTarget::Daemons
            } else {
                ListTarget::All
            };
            Action::List(ListRequest {
                target,
                format: e.format,
            })
        }
        Cmd::Save => Action::Save(e.format),
        Cmd::Restore => {
            if reading_stdin {
                return Err(ParseError::TryHelp);
            }
            Action::Restore
        }
        Cmd::Counters => Action::Counters,
        Cmd::StartDaemon => {
            let mut daemon = e.daemon;
            if daemon.mcast_interface.is_empty() {
                daemon.mcast_interface = DEFAULT_MCAST_INTERFACE.to_string();
            }
            validate::daemon(&daemon).map_err(invalid)?;
            Action::Apply(Command::StartDaemon(daemon))
        }
        Cmd::StopDaemon => Action::Apply(Command::StopDaemon(e.daemon.role)),
    })
}
