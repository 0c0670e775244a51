//! The OS boundary of the rvsd director: AF_PACKET sockets with an mmap'ed receive ring and
//! virtio-net headers ([`PacketSocket`]) and batched sending ([`TxQueue`]), a mirror of the
//! kernel's links, addresses, routes and neighbours kept current over rtnetlink ([`NetState`]),
//! and nftables netdev-ingress rules that
//! keep the kernel away from the traffic rvsd forwards ([`KernelBypass`]), and TUN devices that
//! hand packets to the local stack ([`TunDevice`]), and VRRP's I/O: raw protocol-112 sockets
//! ([`VrrpSocket`]), address changes ([`add_address`]) and gratuitous ARP / unsolicited
//! neighbour advertisements ([`gratuitous`]), and an interface's index, MAC and MTU by name
//! ([`iface`]).
//!
//! This is the only crate of the workspace with `unsafe` code; it is confined to the modules
//! that talk to the kernel, each block with a `// SAFETY:` comment.

mod bypass;
mod error;
pub mod gratuitous;
pub mod iface;
mod netlink;
pub mod netns;
pub mod packet;
pub mod priority;
pub mod probe;
pub mod tun;
mod vnet;
pub mod vrrp_socket;

pub use bypass::{BypassRule, KernelBypass, L4Proto};
pub use error::IoError;
pub use netlink::{
    add_address, interface_addresses, remove_address, AddrScope, InterfaceAddress, NetState,
    Resolution, Segment, SegmentError,
};
pub use packet::{PacketSocket, RecvStats, TxQueue, TxReport, TX_BATCH};
pub use tun::TunDevice;
pub use vnet::VnetHdr;
pub use vrrp_socket::{ReceivedAdvert, VrrpSocket};
