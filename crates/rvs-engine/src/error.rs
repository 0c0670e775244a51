//! Control-plane errors.

/// Control-plane errors, worded like ipvsadm's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `-A` on an existing service.
    #[error("Service already exists")]
    ServiceExists,
    /// The service named does not exist.
    #[error("Service not defined")]
    NoService,
    /// `-a` on an existing destination.
    #[error("Destination already exists")]
    DestExists,
    /// The destination named does not exist.
    #[error("No such destination")]
    NoDest,
    /// A feature of a later milestone.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A malformed request.
    #[error("Invalid argument: {0}")]
    InvalidArgument(String),
    /// The configuration would pass the data plane's bounds ([`crate::ConfigBounds`]).
    #[error("{0}")]
    Capacity(String),
}
