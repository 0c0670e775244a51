//! Typed zero-copy views over packet bytes, in the style of smoltcp's `wire` module.
//!
//! Every view is a `Packet<T: AsRef<[u8]>>`-shaped wrapper built with `new_checked`, which validates
//! the lengths and fixed fields the getters rely on. The no-panic contract: `new_checked` never
//! panics on any input, and once it succeeds no getter of that view can panic. Setters exist when
//! `T: AsMut<[u8]>` and likewise never panic on a checked view. `new_unchecked` wraps bytes that
//! already passed `new_checked` once (a parser validated them; the data path must not validate
//! twice); it never panics itself, but on bytes that would not pass `new_checked` its getters
//! may. Each module names its header's fields as byte ranges in a private `field` module.
//!
//! Every header rvs writes has a `Repr` (for neighbour advertisements, [`ndisc::NeighborAdvert`]):
//! its fields as plain values, `parse` from a checked view where useful, `header_len`, and
//! `emit` into the start of a buffer, which returns `Truncated` rather than panic when the
//! buffer is too short. Checksums a header carries are filled in by `emit` (given the bytes that
//! follow it when they count), except UDP's, which covers data `emit` does not see: see
//! [`udp::checksum`].
//!
//! [`checksum`] holds the ones-complement arithmetic: full sums, IPv4/IPv6 pseudo-header sums and
//! RFC 1624 incremental updates (both for complete checksums and for the non-complemented
//! pseudo-header sum a `CHECKSUM_PARTIAL` packet carries). SCTP's CRC32c is in [`sctp`].

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod ports;
pub mod sctp;
pub mod tcp;
pub mod udp;

mod error;
mod field;

pub use error::WireError;

/// Result of building a checked view.
pub type Result<T> = core::result::Result<T, WireError>;
