//! The forwarding side of rvsd: the worker threads that run packets through the engine, the
//! engine's timer thread, and the kernel-bypass rules that keep the kernel off the traffic rvsd
//! forwards.

pub mod bypass;
pub mod timers;
mod worker;

pub use worker::{DataPlane, EgressCounters};
