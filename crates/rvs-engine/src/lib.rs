//! The rvs director core, sans-I/O.
