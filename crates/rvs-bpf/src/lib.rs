//! rvs's kernel-speed data plane: IPVS's per-packet work as a BPF program at tc ingress
//! (`bpf/rvs_lb.c`, built by clang at build time), and the Rust side that loads it, sizes and
//! fills its maps from rvsd's configuration, and runs it on test frames.
//!
//! The program forwards the packets of NAT services itself: service lookup, connection lookup
//! both ways, IPVS's TCP state table and timeouts (written from rvs-engine's tables), new
//! connections scheduled by rr, wrr, lc, wlc, sed, nq, fo or ovf with per-server connection
//! counts in maps, thresholds, rewrites with checksums, FIB lookup and redirect. What it does
//! not do goes to rvsd through the `punt` ring buffer ([`maps::PUNT_REASONS`]).
//!
//! The loader is libbpf-rs: libbpf is the kernel project's own loader (the one bpftool uses),
//! and libbpf-rs exposes BPF_PROG_TEST_RUN, which the differential tests run the program with,
//! besides tc and XDP attachment and pinning.

mod error;
pub mod maps;
mod program;
mod reclaim;
mod sync;
pub mod tables;
mod view;
mod written;

pub use error::Error;
pub use program::{tc_action, Action, Datapath, Hook, Limits, Sweep, TestRun};
pub use sync::{conn_record, sync_in, Installed, Located};
pub use tables::Publisher;
pub use view::{DestState, MapsView, TemplateView};
