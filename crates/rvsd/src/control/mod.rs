//! The control side of rvsd: the Unix-socket server (and its signals), the executor that turns
//! `rvs-api` commands into engine calls, and the ipvsadm-save restore at start.

pub mod doctor;
pub mod executor;
pub mod restore;
pub mod server;
