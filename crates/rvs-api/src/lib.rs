//! The rvsd control protocol.
//!
//! `rvsadm` (and any other client) talks to the daemon `rvsd` over a Unix stream socket, by default
//! [`DEFAULT_SOCKET`]. The protocol is newline-delimited JSON:
//!
//! * the client writes one [`Command`] as a single line of JSON followed by `\n`;
//! * the server answers with one [`Reply`], also one line of JSON followed by `\n`; a long
//!   answer (a listing of any size) is streamed as any number of [`Reply::More`] lines, each a
//!   bounded part, followed by one ordinary reply line with the last part, so neither side
//!   holds more than a part per line whatever the table size;
//! * a connection may carry any number of such request/reply exchanges, strictly in order;
//! * [`Command::Batch`] carries many commands in one line (`rvsadm -R` sends them in chunks)
//!   and is answered with [`Reply::Batch`], one reply per command.
//!
//! No line may be longer than [`MAX_LINE`] bytes (the newline excluded); a server reading with
//! [`read_frame`] or [`FrameBuffer`] gets a typed [`ApiError::LineTooLong`] for an oversized line and
//! [`ApiError::Decode`] for a line that is not a valid command, and can answer with
//! [`Reply::Error`] of kind [`ErrorKind::InvalidArgument`] instead of dropping the connection.
//! rvsd does so: it frames requests with [`FrameBuffer`], decodes them with [`decode_command`]
//! and answers a garbled or oversized line with such an error, keeping the connection open.
//!
//! Example lines (see the tests for the exact encodings):
//!
//! ```text
//! {"cmd":"add_service","args":{"id":{"proto":"tcp","addr":"192.168.2.130","port":80},"scheduler":"rr"}}
//! {"reply":"ok"}
//! {"cmd":"list_services","args":{"service":null}}
//! {"reply":"services","data":[ ... ]}
//! ```
//!
//! rvsd checks the values of every command it receives with [`validate::command`] before it
//! acts on it, whichever client sent it, and answers a refusal with [`Reply::Error`] of kind
//! [`ErrorKind::InvalidArgument`] and the check's message; nothing changes then. rvsadm runs
//! the same checks before it sends, so both refuse with one text.
//!
//! Blocking clients use [`Client`]; servers use [`decode_command`] / [`encode_reply`] (or the
//! generic [`encode_line`] / [`decode_line`]) together with [`read_frame`] or [`FrameBuffer`].

mod client;
mod command;
mod error;
mod frame;
pub mod netmask;
mod reply;
pub mod sched_flags;
pub mod validate;
mod views;

pub use client::Client;
pub use command::Command;
pub use error::ApiError;
pub use frame::{
    decode_command, decode_line, decode_reply, encode_command, encode_line, encode_reply,
    read_frame, FrameBuffer,
};
pub use reply::{ErrorKind, ErrorReply, Info, Reply};
pub use views::{
    BfdView, CheckerView, ConnView, CounterView, DaemonConfig, DaemonRole, DestConfig, DestView,
    FindingView, ForwardMethod, HealthView, MarkProto, MarkRuleView, PolicyView, ProxyProtocol,
    RatesView, ServiceConfig, ServiceId, ServiceView, StatsView, Timeouts, TunnelChecksum,
    TunnelConfig, TunnelKind, VrrpScriptView, VrrpStatsView, VrrpView,
};

/// Default path of rvsd's control socket.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// The longest timeout, in seconds, a connection or persistence timeout may have: ipvsadm's
/// `MAX_TIMEOUT` (31 days). rvsd refuses longer ones whichever client sends them.
pub const MAX_TIMEOUT_S: u32 = 86_400 * 31;

/// Maximum length in bytes of one protocol line, not counting the terminating newline (1 MiB).
pub const MAX_LINE: usize = 1 << 20;
