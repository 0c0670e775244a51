//! Health checker specifications: plain data parsed from the checker blocks of a `real_server`.
//! No behaviour lives here; the checker crate and rvsd run them.

use crate::diag::Span;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// One checker block of a real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerSpec {
    /// What to check and its kind-specific options.
    pub kind: CheckerKind,
    /// Options every checker accepts; `None` means inherited (real server, virtual server,
    /// then keepalived's default).
    pub common: CommonCheck,
    /// Where the block starts.
    pub span: Span,
}

/// Options shared by every checker (keepalived's `checker_common` keywords).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommonCheck {
    /// Address to check instead of the real server's (`connect_ip`).
    pub connect_ip: Option<IpAddr>,
    /// Port to check instead of the real server's (`connect_port`).
    pub connect_port: Option<u16>,
    /// Source address (`bindto`).
    pub bindto: Option<IpAddr>,
    /// Source port (`bind_port`).
    pub bind_port: Option<u16>,
    /// Source interface (`bind_if`), for IPv6 link-local addresses.
    pub bind_if: Option<String>,
    /// Firewall mark set on check packets (`fwmark`).
    pub fwmark: Option<u32>,
    /// Connect/response timeout (`connect_timeout`).
    pub connect_timeout: Option<Duration>,
    /// Failed attempts retried before the server is declared down (`retry`, `nb_get_retry`).
    pub retry: Option<u32>,
    /// Pause between retries (`delay_before_retry`).
    pub delay_before_retry: Option<Duration>,
    /// Interval between checks (`delay_loop`).
    pub delay_loop: Option<Duration>,
    /// Upper bound of a random delay before the first check (`warmup`).
    pub warmup: Option<Duration>,
    /// Start the checker in the failed state (`alpha`).
    pub alpha: Option<bool>,
    /// rvs's `client_path`: a TCP_CHECK of a direct-routing real server connects to the VIP as
    /// clients' packets reach the server (to its MAC address), not to its own address.
    pub client_path: Option<bool>,
}

/// The checker type and its own options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckerKind {
    /// `TCP_CHECK`: a TCP connect succeeds.
    Tcp,
    /// `HTTP_GET`.
    Http(HttpCheck),
    /// `SSL_GET`: as HTTP_GET over TLS.
    Ssl(HttpCheck),
    /// `MISC_CHECK`: a script's exit code.
    Misc(MiscCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `SMTP_CHECK`.
    Smtp(SmtpCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `PING_CHECK`: an ICMP echo reply.
    Ping,
    /// `FILE_CHECK`: the value in a tracked file.
    File(FileCheck),
}

impl CheckerKind {
    /// keepalived's block name (`TCP_CHECK`, `HTTP_GET`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http(_) => "HTTP_GET",
            CheckerKind::Ssl(_) => "SSL_GET",
            CheckerKind::Misc(_) => "MISC_CHECK",
            CheckerKind::Dns(_) => "DNS_CHECK",
            CheckerKind::Smtp(_) => "SMTP_CHECK",
            CheckerKind::Udp(_) => "UDP_CHECK",
            CheckerKind::Ping => "PING_CHECK",
            CheckerKind::File(_) => "FILE_CHECK",
        }
    }
}

/// HTTP_GET / SSL_GET options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// The URLs to fetch; all must pass.
    pub urls: Vec<UrlCheck>,
    /// `Host:` header for every URL without its own (`virtualhost`); falls back to the real
    /// server's, then the virtual server's.
    pub virtualhost: Option<String>,
    /// `http_protocol`: `1.0`, `1.0C` (1.0 with `Connection: close`), `1.1` or `0.9`.
    pub http_protocol: Option<String>,
    /// Send the virtual host as TLS SNI (`enable_sni`, SSL_GET).
    pub enable_sni: bool,
    /// Close TLS with a proper shutdown (`tls_compliant`, SSL_GET).
    pub tls_compliant: bool,
    /// Declare the server up on the first success instead of after `retry` (`fast_recovery`).
    pub fast_recovery: bool,
}

/// One `url { }` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlCheck {
    /// Request path (`path`), required.
    pub path: String,
    /// Expected MD5 of the body, 32 lowercase hex digits (`digest`).
    pub digest: Option<String>,
    /// Accepted status codes as inclusive ranges (`status_code 200 301-302`); empty means
    /// keepalived's default 200-299.
    pub status_codes: Vec<(u16, u16)>,
    /// `Host:` header for this URL (`virtualhost`).
    pub virtualhost: Option<String>,
    /// A regular expression the body must match (`regex`).
    pub regex: Option<String>,
    /// The check passes when the regex does NOT match (`regex_no_match`).
    pub regex_no_match: bool,
    /// PCRE2 option names (`regex_options`).
    pub regex_options: Vec<String>,
    /// Body offset where matching starts (`regex_min_offset`).
    pub regex_min_offset: Option<u32>,
    /// Body offset where matching stops (`regex_max_offset`).
    pub regex_max_offset: Option<u32>,
}

/// MISC_CHECK options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiscCheck {
    /// The command and its arguments (`misc_path`, split as keepalived splits scripts).
    pub command: Vec<String>,
    /// Kill the script after this long (`misc_timeout`; default delay_loop).
    pub timeout: Option<Duration>,
    /// Exit code 2..=255 sets the weight to code - 2 (`misc_dynamic`).
    pub dynamic: bool,
    /// Run as this user (`user USER [GROUP]`).
    pub user: Option<String>,
    /// ... and this group.
    pub group: Option<String>,
}

/// DNS_CHECK options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCheck {
    /// Query type (`type`): A, NS, CNAME, SOA, MX, TXT or AAAA; default SOA.
    pub query_type: String,
    /// Query name (`name`); default `.`.
    pub name: String,
}

impl Default for DnsCheck {
    fn default() -> Self {
        DnsCheck {
            query_type: "SOA".into(),
            name: ".".into(),
        }
    }
}

/// SMTP_CHECK options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpCheck {
    /// `HELO` argument (`helo_name`); default keepalived's `smtp_helo_name` / host name.
    pub helo_name: Option<String>,
    /// Extra hosts checked (`host { connect_ip ... }`, a keepalived 1.x form still accepted).
    pub hosts: Vec<CommonCheck>,
}

/// UDP_CHECK options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpCheck {
    /// Datagram payload sent (`payload HEX`).
    pub payload: Vec<u8>,
    /// A reply is required (`require_reply [HEX]`).
    pub require_reply: bool,
    /// The reply must start with these bytes.
    pub reply_prefix: Vec<u8>,
    /// Minimum reply length (`min_reply_length`).
    pub min_reply_length: Option<u32>,
    /// Maximum reply length (`max_reply_length`).
    pub max_reply_length: Option<u32>,
}

/// FILE_CHECK options (the file itself is a top-level `track_file` block).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Name of the `track_file` block (`track_file NAME`).
    pub track_file: String,
    /// Multiplier of the file's value (`weight N [reverse]`).
    pub weight: Option<i32>,
    /// Negate the weight (`reverse`).
    pub reverse: bool,
}
