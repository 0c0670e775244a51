//! BFD for rvs: the control packet of RFC 5880 (section 4.1) and one asynchronous-mode session's
//! state machine and timers (sections 6.8.1 to 6.8.7), for single-hop BFD over UDP (RFC 5881),
//! as keepalived's `bfd_instance` runs it. Sans-I/O: the caller owns the sockets and the clock
//! (microseconds from any fixed origin) and asks the session what to send and when to wake up.
//!
//! Not implemented, as keepalived does not use them either: authentication (packets with the A
//! bit are refused), demand mode and the echo function.

pub mod packet;
pub mod session;

pub use packet::{ControlPacket, Diag, PacketError, State, BFD_CONTROL_PORT, BFD_TTL, PACKET_LEN};
pub use session::{Session, SessionConfig, Transition};
