use core::fmt;

/// Why a buffer was rejected by a view's `new_checked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header (or a length field) says it must be.
    Truncated,
    /// A fixed field has an impossible value (wrong version, header length too small, ...).
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("packet truncated"),
            WireError::Malformed => f.write_str("packet malformed"),
        }
    }
}

impl std::error::Error for WireError {}
