//! A NETLINK_ROUTE socket.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::wire::{self, Update};
use crate::error::IoError;
use crate::packet::setsockopt;

/// Legacy multicast group bits: links, neighbours, IPv4/IPv6 addresses and routes.
pub(crate) const GROUPS_ALL: u32 = 0x1 | 0x4 | 0x10 | 0x40 | 0x100 | 0x400;

/// One rtnetlink socket (optionally subscribed to change notifications).
#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
}

impl NlSocket {
    /// Opens a socket in the calling thread's network namespace, joined to `groups`.
    pub(crate) fn open(groups: u32) -> Result<NlSocket, IoError> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(IoError::last_os("socket(AF_NETLINK)"));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let rcvbuf: i32 = 8 << 20;
        if setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &rcvbuf,
            "SO_RCVBUFFORCE",
        )
        .is_err()
        {
            setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &rcvbuf,
                "setsockopt(SO_RCVBUF)",
            )?;
        }
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel assigns one).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = groups;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `sa` is a valid sockaddr_nl of `len` bytes for the duration of the call.
        let rc = unsafe { libc::bind(raw, (&sa as *const libc::sockaddr_nl).cast(), len) };
        if rc < 0 {
            return Err(IoError::last_os("bind(AF_NETLINK)"));
        }
        Ok(NlSocket { fd })
    }

    /// Makes blocking receives return after `timeout` without data.
    pub(crate) fn set_recv_timeout(&self, timeout: Duration) -> Result<(), IoError> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "setsockopt(SO_RCVTIMEO)",
        )
    }

    /// Sends one request to the kernel.
    pub(crate) fn send(&self, msg: &[u8]) -> Result<(), IoError> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `msg` is readable for its length and `sa` is a valid address of `len` bytes.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_DONTWAIT,
                (&sa as *const libc::sockaddr_nl).cast(),
                len,
            )
        };
        if rc < 0 {
            return Err(IoError::last_os("sendto(AF_NETLINK)"));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`; `nonblocking` returns `Ok(None)` instead of waiting.
    /// A timeout or interruption also gives `Ok(None)`.
    pub(crate) fn recv(&self, buf: &mut [u8], nonblocking: bool) -> Result<Option<usize>, IoError> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `buf` is writable for its full length for the duration of the call.
        let rc = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            return match err.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(IoError::io("recv(AF_NETLINK)", err)),
            };
        }
        Ok(Some(rc as usize))
    }

    /// Sends a dump request of type `ty` (sequence number `seq`) and hands each message of the
    /// answer to `f` until the end of the dump. Fails on an error answer or when the dump takes
    /// longer than `timeout`; `buf` receives the datagrams.
    pub(crate) fn dump(
        &self,
        ty: u16,
        seq: u32,
        timeout: Duration,
        buf: &mut [u8],
        mut f: impl FnMut(Update),
    ) -> Result<(), IoError> {
        self.send(&wire::dump_request(ty, seq))?;
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() > deadline {
                return Err(IoError::Netlink(format!("dump of type {ty} timed out")));
            }
            let Some(n) = self.recv(buf, false)? else {
                continue;
            };
            for (mty, mseq, payload) in wire::messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match wire::decode(mty, mseq, payload) {
                    Update::Done(_) => return Ok(()),
                    Update::Error { errno, .. } if errno != 0 => {
                        return Err(IoError::Netlink(format!(
                            "dump of type {ty} failed: {}",
                            std::io::Error::from_raw_os_error(errno)
                        )));
                    }
                    update => f(update),
                }
            }
        }
    }
}
