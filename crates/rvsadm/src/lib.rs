//! rvsadm, ipvsadm for rvsd.
//!
//! rvsadm accepts ipvsadm 1.31's command lines and prints its output formats, but talks to the
//! rvsd daemon over its control socket (see `rvs-api`) instead of to the kernel.
//!
//! * [`parse`]: argv to a typed [`Action`], with ipvsadm's checks, error texts and exit codes.
//! * [`render`]: daemon views to ipvsadm's text, byte for byte.
//! * [`run`]: executes an action against a [`run::Control`] (the daemon or a fake).
//! * [`cli`]: the programs: `rvsadm`, `ipvsadm`, `ipvsadm-save`, `ipvsadm-restore`.
//!
//! Differences from ipvsadm: rvsadm connects to the daemon only when a command needs it, and the
//! sync daemons (`--start-daemon`) take IPv4 multicast groups only. Host and service names are
//! resolved as ipvsadm resolves them ([`names`]).

pub mod action;
mod address;
mod args;
pub mod cli;
pub mod dist;
pub mod errors;
pub mod extension;
pub mod help;
pub mod names;
pub mod parse;
pub mod render;
pub mod restore;
pub mod run;

/// Scheduler flags, as `rvs_api` defines them.
pub use rvs_api::sched_flags;

pub use action::{Action, Format, ListRequest, ListTarget};
pub use names::{PortProto, Resolver, StaticResolver, SystemResolver};
pub use parse::{
    parse_args, parse_args_with, parse_restore_args, parse_restore_args_with, ParseError,
};
pub use run::{execute, execute_with, Control, LazyClient, Outcome};

use std::path::PathBuf;

/// Take rvsadm's own `--socket PATH` / `--socket=PATH` out of the arguments.
///
/// Returns the socket path (from the option, else `env_socket` (`$RVS_SOCKET`), else
/// [`rvs_api::DEFAULT_SOCKET`]) and the remaining ipvsadm arguments, or an error message when
/// `--socket` lacks its value.
pub fn take_socket_option(
    args: Vec<String>,
    env_socket: Option<String>,
) -> Result<(PathBuf, Vec<String>), String> {
    let mut socket = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut words = args.into_iter();
    while let Some(word) = words.next() {
        if word == "--" {
            rest.push(word);
            rest.extend(words.by_ref());
            break;
        }
        if word == "--socket" {
            match words.next() {
                Some(path) => socket = Some(path),
                None => return Err("--socket: missing argument".to_string()),
            }
        } else if let Some(path) = word.strip_prefix("--socket=") {
            socket = Some(path.to_string());
        } else {
            rest.push(word);
        }
    }
    let path = socket
        .or(env_socket.filter(|s| !s.is_empty()))
        .unwrap_or_else(|| rvs_api::DEFAULT_SOCKET.to_string());
    Ok((PathBuf::from(path), rest))
}
