//! The OS boundary of the rvsd director: AF_PACKET sockets with an mmap'ed receive ring and
//! virtio-net headers ([`PacketSocket`]), a mirror of the kernel's links, addresses, routes and
//! neighbours kept current over rtnetlink ([`NetState`]), and nftables netdev-ingress rules that
//! keep the kernel away from the traffic rvsd forwards ([`KernelBypass`]), and TUN devices that
//! hand packets to the local stack ([`TunDevice`]).
//!
//! This is the only crate of the workspace with `unsafe` code; it is confined to the modules
//! that talk to the kernel, each block with a `// SAFETY:` comment.

mod bypass;
mod error;
mod netlink;
pub mod netns;
pub mod packet;
pub mod tun;
mod vnet;

pub use bypass::{BypassRule, KernelBypass, L4Proto};
pub use error::IoError;
pub use netlink::{NetState, Resolution};
pub use packet::{PacketSocket, RecvStats};
pub use tun::{TunDevice, TUN_DUMMY_V4};
pub use vnet::VnetHdr;
