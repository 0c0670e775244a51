//! The crate's error type.

use std::io;

/// Everything that can go wrong at the OS boundary.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A system call failed.
    #[error("{call}: {source}")]
    Sys {
        /// Which call (and on what) failed.
        call: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No interface of that name exists.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// A name (interface, nftables table, namespace) cannot be used safely.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A frame does not fit: larger than the interface allows or than the send buffer.
    #[error("frame of {len} bytes is too large")]
    FrameTooLarge {
        /// Length of the frame that was refused.
        len: usize,
    },
    /// The kernel answered a netlink request with an error or a malformed message.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The `nft` binary failed (or could not be run).
    #[error("nft failed: {0}")]
    Nft(String),
    /// A probe's packet could not be built.
    #[error("probe: {0}")]
    Probe(String),
}

impl IoError {
    /// Wraps the current `errno` as a failed system call.
    pub(crate) fn last_os(call: &'static str) -> IoError {
        IoError::Sys {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// Wraps an `io::Error` as a failed call.
    pub(crate) fn io(call: &'static str, source: io::Error) -> IoError {
        IoError::Sys { call, source }
    }
}
