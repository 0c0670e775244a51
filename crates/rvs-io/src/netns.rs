//! Moving the calling thread into a named network namespace (`ip netns` style, under
//! `/var/run/netns`). Sockets and child processes created afterwards by this thread live there.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::error::IoError;

/// Moves the calling thread (only this thread) into the network namespace `name`, as created by
/// `ip netns add <name>`.
pub fn enter_thread(name: &str) -> Result<(), IoError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(IoError::InvalidName {
            name: name.to_owned(),
            reason: "not a namespace name",
        });
    }
    let file = File::open(format!("/var/run/netns/{name}"))
        .map_err(|e| IoError::io("open(/var/run/netns/<name>)", e))?;
    // SAFETY: `file` is an open namespace descriptor; setns only affects the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(IoError::last_os("setns(CLONE_NEWNET)"));
    }
    Ok(())
}
