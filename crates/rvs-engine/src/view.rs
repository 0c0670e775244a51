//! Status views the engine hands out: counters, rates, services, real servers, connections
//! and their states.

use core::net::SocketAddr;

use crate::spec::{DestSpec, Millis, PersistenceEngine, Protocol, ServiceSpec};

/// Traffic counters (as `ipvsadm --stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client -> server.
    pub in_pkts: u64,
    /// Packets server -> client.
    pub out_pkts: u64,
    /// L3 bytes client -> server.
    pub in_bytes: u64,
    /// L3 bytes server -> client.
    pub out_bytes: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, o: &Stats) {
        self.conns += o.conns;
        self.in_pkts += o.in_pkts;
        self.out_pkts += o.out_pkts;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
    }
}

/// Estimated rates (as `ipvsadm --rate`), per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

/// A service with its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Configuration.
    pub spec: ServiceSpec,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Destinations in list order.
    pub dests: Vec<DestStatus>,
}

/// A destination with its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestStatus {
    /// Configuration.
    pub spec: DestSpec,
    /// ActiveConn (TCP and SCTP connections in ESTABLISHED).
    pub active_conns: u32,
    /// InActConn (all other connections).
    pub inactive_conns: u32,
    /// PersistConn (persistence templates).
    pub persist_conns: u32,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// Connection state as IPVS names it: TCP's states, UDP's one, and SCTP's (IPVS's
/// `IP_VS_SCTP_S_*` in the kernel's order, so `SctpNone as u8 + n` is the kernel's state `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// TCP NONE.
    None = 0,
    /// TCP ESTABLISHED.
    Established = 1,
    /// TCP SYN_SENT.
    SynSent = 2,
    /// TCP SYN_RECV.
    SynRecv = 3,
    /// TCP FIN_WAIT.
    FinWait = 4,
    /// TCP TIME_WAIT.
    TimeWait = 5,
    /// TCP CLOSE.
    Close = 6,
    /// TCP CLOSE_WAIT.
    CloseWait = 7,
    /// TCP LAST_ACK.
    LastAck = 8,
    /// TCP LISTEN.
    Listen = 9,
    /// TCP SYNACK.
    SynAck = 10,
    /// A UDP connection.
    Udp = 11,
    /// SCTP NONE: created, no packet seen yet.
    SctpNone = 12,
    /// SCTP INIT1: the client's first INIT seen, waiting for the server's INIT_ACK.
    SctpInit1 = 13,
    /// SCTP INIT: a repeated INIT.
    SctpInit = 14,
    /// SCTP COOKIE_SENT: the server's INIT_ACK seen, waiting for the client's COOKIE_ECHO.
    SctpCookieSent = 15,
    /// SCTP COOKIE_REPLIED: the client's COOKIE_ECHO seen, waiting for the server's COOKIE_ACK.
    SctpCookieReplied = 16,
    /// SCTP COOKIE_WAIT: the server sent an INIT, waiting for the client's INIT_ACK.
    SctpCookieWait = 17,
    /// SCTP COOKIE: the client's INIT_ACK seen, waiting for the server's COOKIE_ECHO.
    SctpCookie = 18,
    /// SCTP COOKIE_ECHOED: the server's COOKIE_ECHO seen, waiting for the client's COOKIE_ACK.
    SctpCookieEchoed = 19,
    /// SCTP ESTABLISHED (counted as an active connection).
    SctpEstablished = 20,
    /// SCTP SHUTDOWN_SENT: the server sent SHUTDOWN.
    SctpShutdownSent = 21,
    /// SCTP SHUTDOWN_RECEIVED: the client sent SHUTDOWN.
    SctpShutdownReceived = 22,
    /// SCTP SHUTDOWN_ACK_SENT: the server answered the client's SHUTDOWN.
    SctpShutdownAckSent = 23,
    /// SCTP REJECTED: an INIT answered with ABORT.
    SctpRejected = 24,
    /// SCTP CLOSED.
    SctpClosed = 25,
}

impl ConnState {
    /// The state name as `ipvsadm -Lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
            ConnState::SctpNone => "NONE",
            ConnState::SctpInit1 => "INIT1",
            ConnState::SctpInit => "INIT",
            ConnState::SctpCookieSent => "C-SENT",
            ConnState::SctpCookieReplied => "C-REPLIED",
            ConnState::SctpCookieWait => "C-WAIT",
            ConnState::SctpCookie => "COOKIE",
            ConnState::SctpCookieEchoed => "C-ECHOED",
            ConnState::SctpEstablished => "ESTABLISHED",
            ConnState::SctpShutdownSent => "S-SENT",
            ConnState::SctpShutdownReceived => "S-RECEIVED",
            ConnState::SctpShutdownAckSent => "S-ACK-SENT",
            ConnState::SctpRejected => "REJECTED",
            ConnState::SctpClosed => "CLOSED",
        }
    }

    /// Counted as an active connection (ActiveConn): TCP's or SCTP's ESTABLISHED.
    pub fn is_established(self) -> bool {
        matches!(self, ConnState::Established | ConnState::SctpEstablished)
    }

    /// Whether a connection in this state counts in ActiveConn (IPVS's `tcp_state_active`:
    /// ESTABLISHED and SYNACK, the latter reached only under `secure_tcp`; SCTP's ESTABLISHED).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ConnState::Established | ConnState::SynAck | ConnState::SctpEstablished
        )
    }

    /// IPVS's number of an SCTP state (`IP_VS_SCTP_S_*`), `None` for TCP and UDP states.
    pub(crate) fn sctp_index(self) -> Option<u8> {
        (self as u8).checked_sub(ConnState::SctpNone as u8)
    }

    /// The state numbered `v` (`state as u8`), as other data planes store it (rvs-bpf);
    /// unknown numbers read as NONE.
    pub fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::Established,
            2 => ConnState::SynSent,
            3 => ConnState::SynRecv,
            4 => ConnState::FinWait,
            5 => ConnState::TimeWait,
            6 => ConnState::Close,
            7 => ConnState::CloseWait,
            8 => ConnState::LastAck,
            9 => ConnState::Listen,
            10 => ConnState::SynAck,
            11 => ConnState::Udp,
            12 => ConnState::SctpNone,
            13 => ConnState::SctpInit1,
            14 => ConnState::SctpInit,
            15 => ConnState::SctpCookieSent,
            16 => ConnState::SctpCookieReplied,
            17 => ConnState::SctpCookieWait,
            18 => ConnState::SctpCookie,
            19 => ConnState::SctpCookieEchoed,
            20 => ConnState::SctpEstablished,
            21 => ConnState::SctpShutdownSent,
            22 => ConnState::SctpShutdownReceived,
            23 => ConnState::SctpShutdownAckSent,
            24 => ConnState::SctpRejected,
            25 => ConnState::SctpClosed,
            _ => ConnState::None,
        }
    }
}

/// One connection, for `ipvsadm -Lnc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStatus {
    /// Protocol.
    pub proto: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// State.
    pub state: ConnState,
    /// Time left before the connection expires.
    pub expires_in: Millis,
    /// A persistence template (client masked, port 0), not a connection.
    pub template: bool,
    /// A firewall-mark service's template: IPVS shows its protocol as `IP` and its virtual
    /// address as the mark.
    pub fwmark_template: bool,
    /// A template made by a persistence engine: its name and data (the SIP Call-ID), which
    /// IPVS appends to the template's line of `/proc/net/ip_vs_conn`.
    pub pe: Option<(PersistenceEngine, Vec<u8>)>,
}
