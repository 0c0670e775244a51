//! Fuzz targets for rvs: each module's `target(data: &[u8])` feeds arbitrary bytes to one
//! parser or to the data path and asserts its invariants (no panic on any input, plus what the
//! module says). The same functions run three ways:
//!
//! - under AFL++ through the thin binaries in `src/bin/` (feature `afl`, `scripts/fuzz`);
//! - in `cargo test --workspace` (tests/smoke.rs): each target's seed corpus in
//!   `fuzz/corpus/<target>/`, then a short deterministic mutation loop ([`mutate`]);
//! - by hand on one file: `cargo test -p rvs-fuzz --test smoke replay -- --ignored --nocapture` with
//!   `RVS_FUZZ_REPLAY=<target>:<file>`.

pub mod api;
pub mod engine;
pub mod keepalived;
pub mod mutate;
pub mod rvsadm_args;
pub mod rvsadm_restore;
pub mod sync;
pub mod vrrp;
pub mod wire;

/// A fuzz target: its name (the corpus folder and the AFL binary `fuzz_<name>`) and function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the target.
    pub name: &'static str,
    /// The target: panics only when an invariant fails.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "wire",
        run: wire::target,
    },
    Target {
        name: "engine",
        run: engine::target,
    },
    Target {
        name: "keepalived",
        run: keepalived::target,
    },
    Target {
        name: "rvsadm_args",
        run: rvsadm_args::target,
    },
    Target {
        name: "rvsadm_restore",
        run: rvsadm_restore::target,
    },
    Target {
        name: "api",
        run: api::target,
    },
    Target {
        name: "vrrp",
        run: vrrp::target,
    },
    Target {
        name: "sync",
        run: sync::target,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
