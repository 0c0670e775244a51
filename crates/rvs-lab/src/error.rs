//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program could not be started at all (not installed, not built, no permission).
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program (path or name) that was run.
        program: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, for the reader.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote on stderr (trimmed).
        stderr: String,
    },
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {ns}: {reason}")]
    Netns {
        /// The namespace name.
        ns: String,
        /// Why.
        reason: String,
    },
    /// A binary of the workspace was not found.
    #[error(
        "binary `{name}` not found (looked in {searched:?}); build it with `cargo build -p {package}` \
         or set RVS_BIN_DIR to the directory that holds it"
    )]
    BinaryNotFound {
        /// The binary's name.
        name: String,
        /// The package that builds it.
        package: String,
        /// The directories that were searched.
        searched: Vec<PathBuf>,
    },
    /// Something did not become ready in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: Duration,
    },
    /// A daemon the lab started exited before it became ready.
    #[error("{name} exited before it became ready ({status}); its log:\n{log}")]
    DaemonExited {
        /// The daemon's name.
        name: String,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// An argument was not acceptable (bad role name, bad count, ...).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

impl LabError {
    /// Wraps an I/O error with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}
