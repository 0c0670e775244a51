//! VRRP v2 (RFC 3768) and v3 (RFC 5798) as a sans-I/O library, interoperable with keepalived.
//!
//! - [`codec`]: advert parse/emit with checksums (v2 over the message, v3 over the
//!   pseudo-header), PASS authentication, IP header rules ([`codec::validate_ip_fields`]);
//!   [`ah`] seals and checks keepalived's IPsec AH header around whole IPv4 datagrams
//!   (HMAC-MD5-96, keepalived's SPI and sequence rules).
//! - [`Instance`]: one `vrrp_instance` state machine driven by `handle_advert` /
//!   `handle_timeout` with `poll_transmit` / `poll_event` / `poll_timeout`, no sockets, no
//!   clock of its own.
//! - [`SyncGroup`]: `vrrp_sync_group` semantics over several instances.
//! - [`track`]: `vrrp_script` rise/fall and weights, `track_interface`.
//!
//! Where the RFCs leave room, keepalived 2.2's behaviour is followed (see each item).

pub mod ah;
pub mod codec;
pub mod config;
pub mod error;
pub mod instance;
pub mod sync_group;
pub mod timing;
pub mod track;

pub use ah::{AhError, AhSession};
pub use codec::{Advert, Auth, IpContext, IpFields, Version};
pub use config::{InitialState, InstanceConfig};
pub use error::{ConfigError, EmitError, ParseError};
pub use instance::{AdvertOutcome, DropReason, Event, Instance, State, Stats, Transmit};
pub use sync_group::{GroupEvent, GroupState, SyncGroup};
pub use track::{TrackEffect, TrackInterface, TrackScript};
