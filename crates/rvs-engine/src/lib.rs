//! The rvs director core, sans-I/O: virtual services, real servers, schedulers (all of
//! IPVS's: rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, fo, ovf, mh, twos), the connection table with IPVS's TCP and SCTP state machines and timeouts, NAT (`-m`) rewriting
//! with incremental checksums (SCTP's CRC32c computed again when a port changes), direct routing (`-g`: packets forwarded unchanged to the real
//! server, INPUT-ONLY TCP states), tunnelling (`-i`: IPIP, GUE, GRE outer headers in
//! [`tunnel`], software GSO segmentation in [`gso`]), FULLNAT (`--fullnat`: both addresses
//! rewritten, the source becoming a local address of the service's `--laddr` pool and a local
//! port allocated without collisions, optionally with a [`proxy`] protocol header inserted at the
//! start of TCP streams), ICMP error handling, persistence templates (`-p`/`-M`, port-0 services),
//! firewall-mark services fed by a classifier of [`MarkRule`]s, connection thresholds, IPVS's policy
//! switches ([`Policy`]), counters and IPVS's rate estimator.
//!
//! Nothing here touches a socket, a thread or the clock: frames come in as `&mut [u8]`, time as
//! [`Millis`]. [`Engine`] is `Send + Sync`; workers share it through an `Arc`.

// Modules stand in layers, bottom up; a module uses only its own layer (without cycles) and
// lower ones, which tests/layers.rs checks:
// - flow: addresses (16 bytes, IPv4-mapped), flow hashing, directions (flow);
// - vocabulary: configuration specs (spec), verdicts and drop reasons (verdict), status views
//   (view), errors (error);
// - packet work: parsing (datapath, sctp_event), NAT (nat), ICMP errors (icmp), PROXY protocol
//   (proxy), tunnels (tunnel), GSO (gso), SIP Call-ID (sip), fragmenting (fragment);
// - state: connection records (conn), connection table (conn_index, conn_table), TCP and SCTP states (tcp_state, sctp_state),
//   persistence (persist), FULLNAT ports (fullnat), configuration snapshot (config), policy,
//   schedulers (sched_core, sched, sched_hash, sched_locality), estimator, sync export state
//   (sync_state), fragment reassembly (reasm), the SYN proxy's cookies and segments (synproxy);
// - engine: the data path (engine), control (control), sync import/export (sync), spec_walk.

mod bounds;
mod config;
mod conn;
mod conn_index;
mod conn_table;
mod control;
mod datapath;
mod defense;
mod engine;
mod error;
mod estimator;
mod flow;
pub mod fragment;
mod fullnat;
pub mod gso;
mod handoff;
mod icmp;
mod nat;
mod persist;
mod policy;
mod prefetch;
pub mod proxy;
pub mod reasm;
mod retired;
mod sched;
mod sched_core;
mod sched_hash;
mod sched_locality;
#[cfg(test)]
mod sched_tests;
mod sctp_event;
mod sctp_state;
mod sip;
mod snapshot_cache;
mod spec;
pub mod spec_walk;
mod sync;
mod sync_state;
mod synproxy;
mod table_hint;
mod tcp_state;
pub mod tunnel;
mod verdict;
mod view;
mod wire_index;

pub use bounds::ConfigBounds;
pub use control::{ConnWalk, ServiceWalk};
pub use defense::DefenseStatus;
pub use engine::Engine;
pub use error::*;
pub use estimator::Estimator as RateEstimator;
pub use policy::{Policy, PolicyError, POLICY_NAMES};
pub use sched_locality::{
    locality_check, CHECK_INTERVAL_MS as LOCALITY_CHECK_INTERVAL_MS,
    DEFAULT_EXPIRATION_MS as LOCALITY_EXPIRATION_MS,
};
pub use snapshot_cache::SnapshotCache;
pub use spec::*;
pub use sync_state::{SyncCounters, SyncImportError};
pub use synproxy::SynProxyCounters;
pub use tcp_state::{state_timeouts_ms, tcp_transitions, tcp_transitions_secure};
pub use verdict::{DropCounters, DropReason, PacketMeta, Verdict};
pub use view::*;
