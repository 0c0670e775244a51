//! rtnetlink: a live mirror of the kernel's links, addresses, routes and neighbours, and the
//! address changes VRRP makes.

mod addr_ops;
mod socket;
mod state;
mod tables;
mod wire;

pub use addr_ops::{add_address, interface_addresses, remove_address, AddrScope, InterfaceAddress};
pub use state::{NetState, Resolution, Segment, SegmentError};
