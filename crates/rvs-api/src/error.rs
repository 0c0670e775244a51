//! Errors of the protocol helpers and the client.

use std::path::PathBuf;

/// Something went wrong encoding, decoding or transporting a protocol line.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Could not connect to the daemon's socket.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A line exceeded [`crate::MAX_LINE`] bytes.
    #[error("protocol line longer than {limit} bytes")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A line was not valid JSON for the expected message type.
    #[error("malformed protocol line: {0}")]
    Decode(#[source] serde_json::Error),
    /// A value could not be encoded as JSON.
    #[error("cannot encode message: {0}")]
    Encode(#[source] serde_json::Error),
    /// A streamed answer mixed parts of different kinds.
    #[error("a streamed reply mixed parts of different kinds")]
    UnexpectedPart,
    /// The peer closed the connection before a complete line arrived.
    #[error("connection closed by peer")]
    Closed,
}
