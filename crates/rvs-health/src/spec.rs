//! Checker input types: plain data describing what to check and how.
//!
//! These mirror keepalived's checker blocks; the configuration layer maps its parsed
//! specs onto them. Nothing here does I/O.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// keepalived's default `connect_timeout` (5 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how a network checker connects (keepalived's common checker options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOpts {
    /// `connect_ip` (defaults to the real server's address).
    pub connect_ip: IpAddr,
    /// `connect_port` (defaults to the real server's port).
    pub connect_port: u16,
    /// `bindto`: local source address to bind before connecting.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: local source port to bind before connecting.
    pub bind_port: Option<u16>,
    /// `connect_timeout`: bound on connecting and on every later I/O step.
    pub connect_timeout: Duration,
    /// rvs's `client_path`: connect to the VIP along the client's path instead of to
    /// `connect_ip` (TCP_CHECK, HTTP_GET and SSL_GET honour it).
    pub via: Option<ClientPath>,
}

impl ConnectOpts {
    /// Options for `ip:port` with keepalived's defaults (no bind, 5 s timeout).
    pub fn new(connect_ip: IpAddr, connect_port: u16) -> Self {
        ConnectOpts {
            connect_ip,
            connect_port,
            bindto: None,
            bind_port: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            via: None,
        }
    }

    /// The destination socket address.
    pub fn target(&self) -> SocketAddr {
        SocketAddr::new(self.connect_ip, self.connect_port)
    }

    /// The local address to bind, if `bindto` or `bind_port` is set.
    pub fn local(&self) -> Option<SocketAddr> {
        if self.bindto.is_none() && self.bind_port.is_none() {
            return None;
        }
        let ip = self.bindto.unwrap_or(match self.connect_ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        Some(SocketAddr::new(ip, self.bind_port.unwrap_or(0)))
    }
}

/// One checker: connection options plus the kind-specific part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Connection options (ignored by MISC_CHECK and FILE_CHECK).
    pub conn: ConnectOpts,
    /// What to check.
    pub kind: CheckKind,
}

/// The checker kinds keepalived offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP_CHECK: the connection succeeds.
    Tcp,
    /// HTTP_GET.
    Http(HttpSpec),
    /// SSL_GET: HTTP over TLS.
    Ssl(HttpSpec),
    /// MISC_CHECK: an external program.
    Misc(MiscSpec),
    /// DNS_CHECK: a UDP DNS query.
    Dns(DnsSpec),
    /// SMTP_CHECK: greeting, HELO, QUIT.
    Smtp(SmtpSpec),
    /// UDP_CHECK: a datagram and optionally its reply.
    Udp(UdpSpec),
    /// PING_CHECK: an ICMP echo.
    Ping,
    /// FILE_CHECK: an integer read from a file.
    File(FileSpec),
}

/// Reaches a VIP the way the data plane delivers the VIP's packets to one real server (for
/// direct routing: at the server's MAC address; for tunnels: in the server's tunnel). rvsd
/// implements it over its interfaces and neighbour table.
pub trait PathProber: Send + Sync + std::fmt::Debug {
    /// Probes `vip:port` through real server `rip`, waiting up to `timeout`: `Ok(true)` for a
    /// SYN-ACK, `Ok(false)` with a reason otherwise, `Err` when the path cannot be built (no
    /// route or neighbour to `rip`).
    fn syn_probe(
        &self,
        rip: IpAddr,
        vip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<Result<(), String>, String>;

    /// Starts a TCP connection to `vip:port` through real server `rip` on the calling tokio
    /// runtime's blocking pool, and returns at once: the receiver gets the stream, which
    /// carries the connection's bytes both ways, once it is established, or why it failed
    /// within `timeout`.
    fn connect(
        &self,
        rip: IpAddr,
        vip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> tokio::sync::oneshot::Receiver<Result<tokio::io::DuplexStream, String>>;

    /// What the prober sends through (e.g. `ipip`), so that two plans compare equal when
    /// they probe the same way.
    fn describe(&self) -> String;
}

/// What a client-path TCP check probes, and with what.
#[derive(Debug, Clone)]
pub struct ClientPath {
    /// The real server the data plane would deliver to.
    pub rip: IpAddr,
    /// The virtual address clients connect to.
    pub vip: IpAddr,
    /// Sends the probe.
    pub prober: std::sync::Arc<dyn PathProber>,
}

impl ClientPath {
    /// Runs `probe` with the prober, the real server and the virtual address on tokio's
    /// blocking pool: the probers block while they wait for the server.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        probe: impl FnOnce(&dyn PathProber, IpAddr, IpAddr) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let (prober, rip, vip) = (self.prober.clone(), self.rip, self.vip);
        tokio::task::spawn_blocking(move || probe(prober.as_ref(), rip, vip)).await
    }

    /// Opens a TCP connection to the VIP's `port` along the path (see
    /// [`PathProber::connect`]), waiting up to `timeout` for it, and a second more for the
    /// prober to say why not.
    pub async fn connect(
        &self,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::io::DuplexStream, String> {
        let pending = self.prober.connect(self.rip, self.vip, port, timeout);
        match tokio::time::timeout(timeout + Duration::from_secs(1), pending).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the client-path connection ended before it was made".into()),
            Err(_) => Err(format!("no connection within {timeout:?}")),
        }
    }
}

impl PartialEq for ClientPath {
    fn eq(&self, other: &ClientPath) -> bool {
        self.rip == other.rip
            && self.vip == other.vip
            && self.prober.describe() == other.prober.describe()
    }
}

impl Eq for ClientPath {}

/// An inclusive range of accepted HTTP status codes (a single code is `lo == hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted code.
    pub lo: u16,
    /// Highest accepted code.
    pub hi: u16,
}

impl StatusRange {
    /// A single status code.
    pub fn single(code: u16) -> Self {
        StatusRange { lo: code, hi: code }
    }

    /// Whether `code` is inside the range.
    pub fn contains(&self, code: u16) -> bool {
        (self.lo..=self.hi).contains(&code)
    }
}

/// One `url { }` block of HTTP_GET / SSL_GET.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlSpec {
    /// `path`: the request target, e.g. `/index.html`.
    pub path: String,
    /// `digest`: expected MD5 of the body, lowercase or uppercase hex.
    pub digest: Option<String>,
    /// `status_code`: accepted codes; empty means keepalived's default 200-299.
    pub status: Vec<StatusRange>,
    /// `virtualhost` for this URL (overrides the checker's).
    pub virtualhost: Option<String>,
}

/// HTTP protocol version keepalived's `http_protocol` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    /// `HTTP/1.0` (keepalived's default).
    #[default]
    Http10,
    /// `HTTP/1.0` with `Connection: close` (`1.0C`).
    Http10Close,
    /// `HTTP/1.1` with `Connection: close`.
    Http11,
}

/// Client TLS material (keepalived's `SSL { certificate, key, ca }` in global scope).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsClientSpec {
    /// PEM certificate chain presented to the server.
    pub certificate: Option<PathBuf>,
    /// PEM private key for `certificate`.
    pub key: Option<PathBuf>,
    /// PEM CA bundle (accepted for compatibility; keepalived does not verify peers).
    pub ca: Option<PathBuf>,
}

/// HTTP_GET / SSL_GET options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpSpec {
    /// The `url` blocks; every one must pass.
    pub urls: Vec<UrlSpec>,
    /// Checker-level `virtualhost` (the Host header; also SNI when enabled).
    pub virtualhost: Option<String>,
    /// `enable_sni` (SSL_GET): send the virtual host as SNI.
    pub enable_sni: bool,
    /// `http_protocol`.
    pub protocol: HttpProtocol,
    /// Client certificate options (SSL_GET).
    pub tls: TlsClientSpec,
}

/// MISC_CHECK options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscSpec {
    /// `misc_path`: the program and its arguments, already split and unquoted; executed
    /// directly (no shell), as keepalived does.
    pub misc_path: Vec<String>,
    /// `misc_timeout`: the program is killed and the check fails after this long.
    pub misc_timeout: Duration,
    /// `misc_dynamic`: exit codes 2..=255 mean success with weight `code - 2`.
    pub misc_dynamic: bool,
}

/// DNS record types DNS_CHECK can query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsType {
    /// IPv4 address (keepalived's default).
    #[default]
    A,
    /// Name server.
    Ns,
    /// Canonical name.
    Cname,
    /// Start of authority.
    Soa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// IPv6 address.
    Aaaa,
}

impl DnsType {
    /// The wire QTYPE value.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

/// DNS_CHECK options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSpec {
    /// `name` to query (keepalived's default is the root, `.`).
    pub name: String,
    /// `type` to query.
    pub qtype: DnsType,
}

/// SMTP_CHECK options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSpec {
    /// `helo_name` sent with HELO.
    pub helo_name: String,
}

/// UDP_CHECK options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpSpec {
    /// `payload` bytes sent (empty sends an empty datagram).
    pub payload: Vec<u8>,
    /// `require_reply`: a reply must arrive.
    pub require_reply: bool,
    /// The reply must start with these bytes (the hex argument of `require_reply`).
    pub reply_prefix: Option<Vec<u8>>,
    /// `min_reply_length`.
    pub min_reply_length: Option<usize>,
    /// `max_reply_length`.
    pub max_reply_length: Option<usize>,
}

/// FILE_CHECK options (keepalived's `track_file` applied to a real server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The tracked file; its content is one integer.
    pub path: PathBuf,
    /// `weight`: 0 means "non-zero value = down"; otherwise value x weight is added
    /// to `base_weight`.
    pub weight: i32,
    /// `reverse`: negate the multiplier (and, with weight 0, zero means down).
    pub reverse: bool,
    /// The real server's configured weight the offset applies to.
    pub base_weight: u32,
}
