//! Answers rvsd sends back.

use crate::views::{
    ConnView, CounterView, HealthView, MarkRuleView, PolicyView, ServiceView, Timeouts,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The answer to one [`crate::Command`].
///
/// JSON is adjacently tagged: `{"reply":"ok"}`, `{"reply":"error","data":{"kind":"no_service",...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data", rename_all = "snake_case")]
pub enum Reply {
    /// The command succeeded and has nothing to return.
    Ok,
    /// The command failed.
    Error(ErrorReply),
    /// Answer to `ListServices`.
    Services(Vec<ServiceView>),
    /// Answer to `ListConnections`.
    Connections(Vec<ConnView>),
    /// Answer to `GetTimeouts`.
    Timeouts(Timeouts),
    /// Answer to `GetInfo`.
    Info(Info),
    /// Answer to `GetCounters`: every counter, in the daemon's order.
    Counters(Vec<CounterView>),
    /// Answer to `ListMarkRules`: the classifier rules in evaluation order.
    MarkRules(Vec<MarkRuleView>),
    /// Answer to `GetPolicy`: every switch with its value.
    Policy(Vec<PolicyView>),
    /// Answer to `GetHealth`: every checked real server, in configuration order.
    Health(Vec<HealthView>),
    /// Answer to `ListDaemons`: master first, then backup.
    Daemons(Vec<crate::views::DaemonConfig>),
    /// Answer to `GetVrrp`: every VRRP instance in configuration order.
    Vrrp(Vec<crate::views::VrrpView>),
    /// Answer to `GetBfd`: every BFD session in configuration order.
    Bfd(Vec<crate::views::BfdView>),
    /// Answer to `Doctor`: what looks misconfigured, most serious first.
    Doctor(Vec<crate::views::FindingView>),
    /// Answer to `Handover`: the state is in the file; rvsd `pid` exits now.
    HandedOver {
        /// The process that handed over (it exits after this answer).
        pid: u32,
        /// Connections written (with persistence templates).
        connections: u64,
    },
    /// Answer to `Batch`: one reply per command, in order.
    Batch(Vec<Reply>),
    /// One part of a long answer: more lines for the same request follow, the last of them an
    /// ordinary reply of the same variant. Listings are streamed this way, so no line grows with
    /// the table; [`Reply::append`] joins the parts.
    More(Box<Reply>),
}

impl Reply {
    /// Appends the items of a later part of the same streamed answer (see [`Reply::More`]).
    ///
    /// Fails with the unexpected part when the two are not lists of the same kind.
    pub fn append(&mut self, part: Reply) -> Result<(), Reply> {
        match (self, part) {
            (Reply::Services(a), Reply::Services(b)) => a.extend(b),
            (Reply::Connections(a), Reply::Connections(b)) => a.extend(b),
            (Reply::Counters(a), Reply::Counters(b)) => a.extend(b),
            (Reply::MarkRules(a), Reply::MarkRules(b)) => a.extend(b),
            (Reply::Health(a), Reply::Health(b)) => a.extend(b),
            (Reply::Batch(a), Reply::Batch(b)) => a.extend(b),
            (_, other) => return Err(other),
        }
        Ok(())
    }

    /// Shorthand for `Reply::Error(ErrorReply::new(kind, message))`.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Reply::Error(ErrorReply::new(kind, message))
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The category; clients map it to their own wording (rvsadm uses ipvsadm's).
    pub kind: ErrorKind,
    /// A human-readable detail from the daemon (may be empty).
    pub message: String,
}

impl ErrorReply {
    /// Build an error reply.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorReply {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.message)
        }
    }
}

/// Failure categories, mirroring the errno values IPVS returns to ipvsadm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The virtual service already exists (IPVS: EEXIST on add service).
    ServiceExists,
    /// No such virtual service (IPVS: ESRCH).
    NoService,
    /// The real server already exists in the service (IPVS: EEXIST on add dest).
    DestExists,
    /// No such real server in the service (IPVS: ENOENT on edit/del dest).
    NoDest,
    /// Unknown scheduler name (IPVS: ENOENT on add/edit service).
    NoScheduler,
    /// Unknown persistence engine name.
    NoPersistenceEngine,
    /// A valid request the daemon does not implement (yet).
    Unsupported,
    /// A malformed or out-of-range request (IPVS: EINVAL), including undecodable request lines.
    InvalidArgument,
    /// Memory or table limits reached (IPVS: ENOMEM).
    ResourceExhausted,
    /// Anything else going wrong inside the daemon.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::ServiceExists => "service already exists",
            ErrorKind::NoService => "no such service",
            ErrorKind::DestExists => "destination already exists",
            ErrorKind::NoDest => "no such destination",
            ErrorKind::NoScheduler => "scheduler not found",
            ErrorKind::NoPersistenceEngine => "persistence engine not found",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(text)
    }
}

/// Daemon and table information (`ipvsadm`'s header line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The IPVS version the daemon emulates, as printed in the header, e.g. `1.2.1`.
    pub version: String,
    /// Connection hash table size, printed as `(size=4096)`.
    pub conn_table_size: u32,
    /// The daemon's own name and version, e.g. `rvsd 0.1.0`.
    #[serde(default)]
    pub daemon: String,
}
