//! Typed zero-copy views over packet bytes.
