//! rtnetlink: a live mirror of the kernel's links, addresses, routes and neighbours.

mod socket;
mod state;
mod tables;
mod wire;

pub use state::{NetState, Resolution};
