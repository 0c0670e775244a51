//! rvs-health: keepalived's real-server health checkers on tokio.
//!
//! - [`spec`]: plain input types (what to check),
//! - [`check`]: run one check (TCP, HTTP/SSL with status and MD5 digest, MISC, DNS,
//!   SMTP, UDP, PING, FILE),
//! - [`risefall`]: keepalived's up/down logic as a sans-I/O state machine,
//! - [`supervisor`]: many checkers on one runtime with bounded concurrency,
//! - [`http`]: the HTTP/1.x GET client also used by rvs-genhash.

pub mod checkers;
pub mod http;
pub mod net;
pub mod result;
pub mod risefall;
pub mod spec;
pub mod supervisor;
pub mod tls;

pub use checkers::check;
pub use result::CheckResult;
pub use risefall::{HealthEvent, RiseFall, Schedule};
pub use spec::*;
pub use supervisor::{CheckId, CheckJob, CheckStatus, Supervisor, SupervisorEvent};
