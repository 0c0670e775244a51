//! Batched sending on one packet socket: frames are queued and leave together with one
//! `sendmmsg`.
//!
//! Why `sendmmsg` and not a `PACKET_TX_RING`: the frames rvsd sends are gathered from pieces
//! (Ethernet header, rewritten packet still in the receive ring, maybe a tunnel or PROXY header),
//! the kernel reports each message's failure (`EMSGSIZE` for one frame does not hide the others),
//! and GSO frames of up to 64 KiB would need ring slots of that size for every queued frame. The
//! cost saved, one system call per frame, is the same with both.
//!
//! A queued frame is copied, with its virtio-net header, into a slot of the queue's own buffer,
//! so the receive ring's slot it came from can be handed back at once. Frames too large for a
//! slot (GSO super-frames) are not copied: the queue is flushed and the frame sent on its own,
//! so frames still leave in the order they were given.
#![allow(unsafe_code)]

use super::socket::PacketSocket;
use crate::error::IoError;
use crate::vnet::VnetHdr;

/// Frames a queue holds before it sends them.
pub const TX_BATCH: usize = 64;
/// Bytes per slot: the virtio-net header and a frame of up to 2038 bytes (an MTU-sized frame
/// with VLAN tags to spare).
const SLOT_LEN: usize = 2048;

/// What a [`TxQueue`] did since the last [`TxQueue::take_report`].
#[derive(Debug, Default)]
pub struct TxReport {
    /// Frames the kernel accepted.
    pub sent: u64,
    /// Frames the kernel refused (each dropped).
    pub failed: u64,
    /// The last refusal, for a log line.
    pub last_error: Option<IoError>,
}

/// A send socket with a queue of frames that leave together (see the module's documentation).
/// Queued frames are sent when the queue is full, before a frame that does not fit a slot, and
/// on [`TxQueue::flush`], which the owner calls before it blocks.
pub struct TxQueue {
    sock: PacketSocket,
    /// `TX_BATCH` slots of `SLOT_LEN` bytes; never reallocated (`iov` points into it).
    buf: Box<[u8]>,
    /// One iovec per slot, its base fixed at the slot's start; the length set when queued.
    iov: Box<[libc::iovec]>,
    /// One message per slot, each pointing at its iovec; built once.
    msgs: Box<[libc::mmsghdr]>,
    /// Slots in use.
    len: usize,
    report: TxReport,
}

// SAFETY: the raw pointers in `iov` and `msgs` point into this value's own heap buffers
// (`buf`, `iov`), which move with it and are only reached through `&mut self`.
unsafe impl Send for TxQueue {}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("sock", &self.sock)
            .field("queued", &self.len)
            .finish()
    }
}

impl TxQueue {
    /// A queue of [`TX_BATCH`] frames in front of the send socket `sock`.
    pub fn new(sock: PacketSocket) -> TxQueue {
        let mut buf = vec![0u8; TX_BATCH * SLOT_LEN].into_boxed_slice();
        let mut iov: Box<[libc::iovec]> = buf
            .chunks_exact_mut(SLOT_LEN)
            .map(|slot| libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: 0,
            })
            .collect();
        let msgs = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: an all-zero mmsghdr is a valid "no address, no control data" message.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        TxQueue {
            sock,
            buf,
            iov,
            msgs,
            len: 0,
            report: TxReport::default(),
        }
    }

    /// The socket the frames leave through.
    pub fn socket(&self) -> &PacketSocket {
        &self.sock
    }

    /// Index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.sock.ifindex()
    }

    /// Frames queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.len
    }

    /// Queues one frame given as consecutive pieces (Ethernet header first) with its virtio-net
    /// header; the outcome shows in the next [`TxQueue::take_report`]. A frame larger than a
    /// slot is sent at once, after the frames queued before it.
    pub fn send(&mut self, vnet: &VnetHdr, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if VnetHdr::LEN + total > SLOT_LEN {
            self.flush();
            let result = self.sock.send_vectored(vnet, parts);
            self.count(result);
            return;
        }
        if self.len == TX_BATCH {
            self.flush();
        }
        let slot = &mut self.buf[self.len * SLOT_LEN..(self.len + 1) * SLOT_LEN];
        slot[..VnetHdr::LEN].copy_from_slice(&vnet.to_bytes());
        let mut at = VnetHdr::LEN;
        for part in parts {
            slot[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.iov[self.len].iov_len = at;
        self.len += 1;
    }

    /// Sends one frame at once, after the queued ones, and returns the kernel's answer instead
    /// of counting it (for frames the director generates, such as ICMP errors).
    pub fn send_now(&mut self, vnet: &VnetHdr, parts: &[&[u8]]) -> Result<(), IoError> {
        self.flush();
        self.sock.send_vectored(vnet, parts)
    }

    /// Sends every queued frame (one `sendmmsg` when the kernel takes them all; a refused frame
    /// is counted, dropped, and the rest sent after it).
    pub fn flush(&mut self) {
        let mut start = 0;
        while start < self.len {
            let rest = &mut self.msgs[start..self.len];
            // SAFETY: `rest` holds `rest.len()` messages, each pointing at one iovec over a slot
            // of `buf` filled with `iov_len` bytes; the kernel reads them and writes only the
            // messages' `msg_len`. The socket is bound, so no address is needed.
            let rc = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message was refused: drop it and go on with the next.
                let len = self.iov[start].iov_len.saturating_sub(VnetHdr::LEN);
                self.count(Err(send_error(err, len)));
                start += 1;
            } else {
                let sent = (rc as usize).max(1).min(rest.len());
                self.report.sent += sent as u64;
                start += sent;
            }
        }
        self.len = 0;
    }

    /// What happened since the last call (frames sent and refused), and starts over.
    pub fn take_report(&mut self) -> TxReport {
        std::mem::take(&mut self.report)
    }

    fn count(&mut self, result: Result<(), IoError>) {
        match result {
            Ok(()) => self.report.sent += 1,
            Err(e) => {
                self.report.failed += 1;
                self.report.last_error = Some(e);
            }
        }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The error of a refused frame of `len` bytes.
fn send_error(err: std::io::Error, len: usize) -> IoError {
    if err.raw_os_error() == Some(libc::EMSGSIZE) {
        IoError::FrameTooLarge { len }
    } else {
        IoError::io("sendmmsg(packet socket)", err)
    }
}
