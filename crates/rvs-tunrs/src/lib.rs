//! rvs-tunrs: the real-server side of rvs's tunnelling (`ipvsadm -i`), for hosts whose kernel has
//! no ipip, gre or fou driver (this lab's kernel). It receives the encapsulated packets the
//! director sends (IPIP: IPv4 protocol 4 / 41 and IPv6 next header 4 / 41 on raw sockets; GUE:
//! a UDP socket on the `--tun-port`; GRE: IPv4/IPv6 protocol 47 on raw sockets), validates and
//! strips the outer headers ([`decap`]) and writes the client's inner packet, untouched, to a
//! TUN device (`rvs_io::tun`) so the kernel delivers it to the VIP held on `lo`; the reply leaves
//! from the VIP straight to the client.
//!
//! ```text
//! rvs-tunrs --ipip | --gue PORT | --gre [--dev rvstun0]
//! ```
//! Either family may travel inside either: IPv4 or IPv6 inside an IPv4 outer header (protocol
//! 4 / 41), inside an IPv6 one (next header 4 / 41), and GUE or GRE over either family.
//!
//! The device is created, brought up, and `rp_filter` is switched off for it and `all` (the
//! client's address arrives on a device the route back does not use); IPv6 is switched on for it
//! (`disable_ipv6=0`; IPv6 has no reverse-path filter and accepts a packet for an address on
//! `lo` from any interface). Garbage is counted and
//! dropped, never a panic.

pub mod decap;
