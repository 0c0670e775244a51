//! What can go wrong loading and driving the BPF data plane.

/// An error of the BPF data plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This build has no BPF object (clang was missing at build time).
    #[error("the BPF data plane was not built (clang missing at build time; scripts/install-deps installs it)")]
    NotBuilt,
    /// libbpf refused the object, or the kernel's verifier refused the program (libbpf logs
    /// the verifier's report on stderr).
    #[error("loading the BPF program failed: {0}")]
    Load(#[source] libbpf_rs::Error),
    /// A map pinned by an earlier load does not fit this build's program (its type, key or
    /// value differs: another rvs build's layout), so the pins cannot be adopted.
    #[error(
        "the BPF map {map} pinned in {dir} does not fit this build ({why}); maps pinned by \
         another rvs build cannot be adopted, and removing them loses the connections they hold"
    )]
    PinsIncompatible {
        /// The pin directory.
        dir: std::path::PathBuf,
        /// The map.
        map: String,
        /// What differs.
        why: String,
    },
    /// The object lacks a program or map this crate expects.
    #[error("the BPF object has no {0}")]
    Missing(&'static str),
    /// A map operation failed.
    #[error("BPF map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What libbpf said.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Attaching or detaching the program failed.
    #[error("attaching the BPF program to interface {ifindex}: {source}")]
    Attach {
        /// The interface.
        ifindex: u32,
        /// What libbpf said.
        #[source]
        source: libbpf_rs::Error,
    },
    /// BPF_PROG_TEST_RUN failed.
    #[error("test run of the BPF program: {0}")]
    TestRun(#[source] libbpf_rs::Error),
    /// More services or real servers than the maps were sized for, or than one service may
    /// have in the program.
    #[error("{0}")]
    Capacity(String),
}
