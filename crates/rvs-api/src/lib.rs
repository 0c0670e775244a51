//! The rvsd control protocol.
