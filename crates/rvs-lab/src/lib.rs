//! Network-namespace topologies for the demo and the end-to-end tests of rvs.
//!
//! * [`Lab`]: namespaces with a unique prefix and the processes started in them, torn down on
//!   drop (also when a test panics); `rvs-lab sweep` removes labs of processes that died.
//! * [`NatTopology`]: seed 004's LVS-NAT network (client, director, switch, real servers), IPv4
//!   and IPv6, with helpers to start real servers, rvsd, and to run rvsadm and curl.
//! * [`DrTopology`]: seed 003's LVS-DR networks (one subnet, or the VIP in a second one) behind
//!   a router, IPv4 and IPv6, with the same helpers and the director's link counters.
//! * [`TunTopology`]: LVS-TUN with the real servers behind a router on another network,
//!   each decapsulating with `rvs-tunrs`.
//! * [`FullNatTopology`]: the NAT network with local (FULLNAT) addresses on the director and
//!   real servers without a route back to the client.
//! * [`VrrpSegment`]: two VRRP nodes and a mail host on one bridge, for rvsd against a
//!   real keepalived.
//! * [`HaTopology`]: seed 002's two directors on shared outside and inside segments, VIPs
//!   moved by hand (with gratuitous ARP) until VRRP moves them.
//! * [`EcmpTopology`]: N directors announcing one VIP over BGP (BIRD) to a router that spreads
//!   it by ECMP, DR real servers running nginx.
//! * [`server`]: the built-in real server behind `rvs-lab serve`.
//! * [`demo`]: `rvs-lab demo`.
//!
//! Everything shells out to `ip` (iproute2) and needs root. Environment: `RVS_BIN_DIR` says where
//! rvsd, rvsadm and rvs-lab are (see [`find_bin`]); `RVS_LAB_KEEP_LOGS` keeps the logs of spawned
//! processes (under `$TMPDIR/rvs-lab/<prefix>/`) after teardown.

mod bins;
mod bird;
mod cleanup;
mod cmd;
pub mod demo;
mod director;
mod dr;
mod ecmp;
mod error;
mod fullnat;
mod ha;
mod harness;
mod lab;
mod nat;
pub mod netns;
mod nginx;
pub mod server;
mod smtp_sink;
mod tun;
mod vrrp_lab;

pub use bins::{bin_path, find_bin, search_dirs};
pub use bird::Bird;
pub use cleanup::{down, role_socket_path_for, socket_path_for, sweep};
pub use director::Director;
pub use dr::{DrLayout, DrTopology, MAX_DR_REAL_SERVERS, ROUTER};
pub use ecmp::{
    ecmp_director_role, EcmpTopology, DIRECTOR_AS, ECMP_HTTP_PORT, ECMP_ROUTER, MAX_ECMP_DIRECTORS,
    MAX_ECMP_REAL_SERVERS, ROUTER_AS,
};
pub use error::LabError;
pub use fullnat::{FullNatTopology, NGINX_BIG_LEN, NGINX_PORT};
pub use ha::{HaTopology, HA_DIRECTORS, MAX_HA_REAL_SERVERS};
pub use harness::{
    rs_role, LinkCounters, Rvsd, CLIENT, DIRECTOR, RS_HTTP_PORTS, RS_UDP_PORT, SWITCH,
};
pub use lab::{parse_mac, parse_prefix, wait_for, Lab};
pub use nat::{NatTopology, MAX_REAL_SERVERS};
pub use nginx::{spawn_nginx, NGINX_PAGE, RS_NGINX_PORT};
pub use server::http::{pattern_byte, pattern_sha256, sha256_hex};
pub use smtp_sink::smtp_sink;
pub use tun::{TunTopology, MAX_TUN_REAL_SERVERS};
pub use vrrp_lab::{Capture, VrrpSegment, MAIL_ADDR, MAIL_HOST, VRRP_NODES};
