//! One AF_PACKET socket bound to one interface.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::consts::*;
use super::rx_ring::{RingGeometry, RxRing, SlotInfo};
use super::{getsockopt_int, setsockopt};
use crate::error::IoError;
use crate::iface;
use crate::vnet::VnetHdr;

/// Frames skipped by [`PacketSocket::recv_batch`] since the socket was opened, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// Frames delivered to the callback.
    pub delivered: u64,
    /// Frames not addressed to this host (PACKET_OTHERHOST) or outgoing.
    pub not_for_us: u64,
    /// Frames larger than a ring slot (cut by the kernel), dropped.
    pub truncated: u64,
    /// Frames whose slot layout could not be trusted (offsets out of range), dropped.
    pub malformed: u64,
}

/// One AF_PACKET socket bound to one interface: `ETH_P_ALL`, `PACKET_VNET_HDR`,
/// `PACKET_IGNORE_OUTGOING`, a TPACKET_V2 receive ring, and membership of a `PACKET_FANOUT_HASH`
/// group so that N workers each open one socket per interface and the kernel spreads flows among
/// them.
pub struct PacketSocket {
    /// None for a send-only socket.
    ring: Option<RxRing>,
    fd: OwnedFd,
    ifindex: u32,
    stats: RecvStats,
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

/// The kernel ties a fanout group to one device, so the group id given by the caller (one per
/// worker set) is combined with the interface index.
fn kernel_fanout_id(fanout_group: u16, ifindex: u32) -> u16 {
    fanout_group ^ (ifindex as u16).rotate_left(8)
}

impl PacketSocket {
    /// Opens a socket on `ifname` (in the calling thread's network namespace) and joins fanout
    /// group `fanout_group`: sockets opened with the same group on the same interface share its
    /// frames by flow hash. The same `fanout_group` can be used on every interface (the kernel id
    /// is derived from it and the interface index).
    pub fn open(ifname: &str, fanout_group: u16) -> Result<PacketSocket, IoError> {
        let socket = PacketSocket::open_watch(ifname)?;
        let fanout: u32 =
            u32::from(kernel_fanout_id(fanout_group, socket.ifindex)) | (PACKET_FANOUT_HASH << 16);
        setsockopt(
            socket.fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_FANOUT,
            &fanout,
            "setsockopt(PACKET_FANOUT)",
        )?;
        Ok(socket)
    }

    /// Opens a receiving socket on `ifname` in no fanout group: it gets a copy of every frame,
    /// whatever other sockets there are (for probes that watch beside the data plane).
    pub fn open_watch(ifname: &str) -> Result<PacketSocket, IoError> {
        let ifindex = iface::ifindex(ifname)?;
        let fd = new_packet_fd()?;
        let s = fd.as_raw_fd();
        let one: i32 = 1;
        setsockopt(
            s,
            SOL_PACKET,
            PACKET_VNET_HDR,
            &one,
            "setsockopt(PACKET_VNET_HDR)",
        )?;
        setsockopt(
            s,
            SOL_PACKET,
            PACKET_VERSION,
            &TPACKET_V2,
            "setsockopt(PACKET_VERSION)",
        )?;
        setsockopt(
            s,
            SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &one,
            "setsockopt(PACKET_IGNORE_OUTGOING)",
        )?;
        set_sndbuf(s)?;
        let ring = RxRing::create(s, RingGeometry::DEFAULT)?;
        bind_to(s, ifindex, ETH_P_ALL)?;
        Ok(PacketSocket {
            ring: Some(ring),
            fd,
            ifindex,
            stats: RecvStats::default(),
        })
    }

    /// Opens a send-only socket on `ifname`: `PACKET_VNET_HDR`, bound with protocol 0 so it
    /// receives nothing, no ring and no fanout group. [`PacketSocket::recv_batch`] on it always
    /// returns 0 at once.
    pub fn open_tx(ifname: &str) -> Result<PacketSocket, IoError> {
        let ifindex = iface::ifindex(ifname)?;
        let fd = new_packet_fd()?;
        let s = fd.as_raw_fd();
        let one: i32 = 1;
        setsockopt(
            s,
            SOL_PACKET,
            PACKET_VNET_HDR,
            &one,
            "setsockopt(PACKET_VNET_HDR)",
        )?;
        set_sndbuf(s)?;
        bind_to(s, ifindex, 0)?;
        Ok(PacketSocket {
            ring: None,
            fd,
            ifindex,
            stats: RecvStats::default(),
        })
    }

    /// Index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The descriptor, so a worker can poll several sockets (readable when a frame waits).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`), e.g. `ENETDOWN` once its
    /// interface went down. Until it is read, `poll` reports `POLLERR` on the socket at once,
    /// every time (the receive ring never reads it). `Ok(None)` when no error was pending.
    pub fn take_error(&self) -> Result<Option<std::io::Error>, IoError> {
        let errno = getsockopt_int(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            "getsockopt(SO_ERROR)",
        )?;
        Ok((errno != 0).then(|| std::io::Error::from_raw_os_error(errno)))
    }

    /// Counters of received and skipped frames.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// Receives up to `max` frames: waits at most `timeout` for the first one, then takes whatever
    /// else is already queued without waiting. Calls `f` with each frame's virtio-net header and
    /// its bytes (Ethernet header first), both mutable and in place in the ring; header changes are
    /// kept only for the duration of the call. Only frames addressed to this host, broadcast or
    /// multicast are delivered; outgoing and other-host frames are skipped, as are frames that did
    /// not fit a ring slot (see [`PacketSocket::stats`]). Returns the number of frames delivered.
    /// A frame whose VLAN tag was stripped by the device gets the tag written back in front of
    /// its EtherType, with the header offsets adjusted.
    pub fn recv_batch(
        &mut self,
        timeout: Duration,
        max: usize,
        mut f: impl FnMut(&mut VnetHdr, &mut [u8]),
    ) -> Result<usize, IoError> {
        self.receive(timeout, max, false, |vnet, frame, _| f(vnet, frame))
    }

    /// [`PacketSocket::recv_batch`], also showing `f` the bytes of the frame queued after the
    /// one it is given (empty when none is queued yet), read-only, so that it can start that
    /// frame's cache misses early. The frame ahead is shown as the device gave it (a stripped
    /// VLAN tag is not written back) and may be one that will be skipped.
    pub fn recv_batch_ahead(
        &mut self,
        timeout: Duration,
        max: usize,
        f: impl FnMut(&mut VnetHdr, &mut [u8], &[u8]),
    ) -> Result<usize, IoError> {
        self.receive(timeout, max, true, f)
    }

    /// The receive loop of [`PacketSocket::recv_batch`] and
    /// [`PacketSocket::recv_batch_ahead`]; the frame ahead is read only with `look_ahead`.
    fn receive(
        &mut self,
        timeout: Duration,
        max: usize,
        look_ahead: bool,
        mut f: impl FnMut(&mut VnetHdr, &mut [u8], &[u8]),
    ) -> Result<usize, IoError> {
        let mut taken = 0usize;
        let mut delivered = 0usize;
        let mut waited = false;
        while taken < max {
            let Some(ring) = self.ring.as_ref() else {
                return Ok(0);
            };
            let Some(info) = ring.peek() else {
                if taken > 0 || waited || timeout.is_zero() {
                    break;
                }
                waited = true;
                self.wait_readable(timeout)?;
                continue;
            };
            taken += 1;
            if self.deliver(info, look_ahead, &mut f) {
                delivered += 1;
            }
            if let Some(ring) = self.ring.as_mut() {
                ring.release();
            }
        }
        Ok(delivered)
    }

    /// Checks one slot and hands its frame to `f`; returns whether it was delivered.
    fn deliver(
        &mut self,
        info: SlotInfo,
        look_ahead: bool,
        f: &mut impl FnMut(&mut VnetHdr, &mut [u8], &[u8]),
    ) -> bool {
        if !matches!(
            info.pkttype,
            PACKET_HOST | PACKET_BROADCAST | PACKET_MULTICAST
        ) {
            self.stats.not_for_us += 1;
            return false;
        }
        if info.snaplen != info.len {
            self.stats.truncated += 1;
            return false;
        }
        let mac = usize::from(info.mac);
        let len = info.snaplen as usize;
        let header_end = TPACKET_ALIGN(TPACKET2_HDR_LEN) + 20;
        let vlan = info.status & TP_STATUS_VLAN_VALID != 0;
        let need_front = VnetHdr::LEN + if vlan { 4 } else { 0 };
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        let (slot, ahead) = ring.slot_and_ahead(look_ahead);
        if mac < header_end + need_front || mac + len > slot.len() || len < 14 {
            self.stats.malformed += 1;
            return false;
        }
        let mut vnet_bytes = [0u8; VnetHdr::LEN];
        vnet_bytes.copy_from_slice(&slot[mac - VnetHdr::LEN..mac]);
        let mut vnet = VnetHdr::from_bytes(&vnet_bytes);
        let (start, end) = if vlan {
            // Move the two MAC addresses 4 bytes earlier and put the tag between them and the
            // EtherType. The vnet header was copied out above, so overwriting it is fine.
            let tpid = if info.status & TP_STATUS_VLAN_TPID_VALID != 0 && info.vlan_tpid != 0 {
                info.vlan_tpid
            } else {
                ETH_P_8021Q
            };
            slot.copy_within(mac..mac + 12, mac - 4);
            slot[mac + 8..mac + 10].copy_from_slice(&tpid.to_be_bytes());
            slot[mac + 10..mac + 12].copy_from_slice(&info.vlan_tci.to_be_bytes());
            if !vnet.shift(4) {
                self.stats.malformed += 1;
                return false;
            }
            (mac - 4, mac + len)
        } else {
            (mac, mac + len)
        };
        f(&mut vnet, &mut slot[start..end], ahead);
        self.stats.delivered += 1;
        true
    }

    fn wait_readable(&self, timeout: Duration) -> Result<(), IoError> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let ms = if ms == 0 { 1 } else { ms };
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(IoError::io("poll(packet socket)", err));
        }
        Ok(())
    }

    /// Sends one frame (Ethernet header first) with its virtio-net header, so the kernel finishes
    /// a partial checksum and segments a GSO frame. Never blocks: a full send buffer is reported
    /// as an error (`WouldBlock`), a frame too large for the device as [`IoError::FrameTooLarge`].
    pub fn send(&self, vnet: &VnetHdr, frame: &[u8]) -> Result<(), IoError> {
        self.send_vectored(vnet, &[frame])
    }

    /// Sends one frame given as consecutive pieces (e.g. Ethernet header, outer tunnel header,
    /// inner packet) without joining them: one `sendmsg` with an iovec per piece (at most 7).
    pub fn send_vectored(&self, vnet: &VnetHdr, parts: &[&[u8]]) -> Result<(), IoError> {
        const MAX_PARTS: usize = 7;
        let hdr = vnet.to_bytes();
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [empty; MAX_PARTS + 1];
        iov[0] = libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        };
        if parts.len() > MAX_PARTS {
            return Err(IoError::io(
                "sendmsg(packet socket)",
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        for (slot, part) in iov[1..].iter_mut().zip(parts) {
            *slot = libc::iovec {
                iov_base: part.as_ptr() as *mut libc::c_void,
                iov_len: part.len(),
            };
        }
        let used = parts.len() + 1;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // SAFETY: an all-zero msghdr is a valid "no address, no control data" message.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = used as _;
        // SAFETY: `msg` points to `used` iovecs over live buffers that the kernel only reads; the
        // socket is bound, so no destination address is needed.
        let rc = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EMSGSIZE) {
                return Err(IoError::FrameTooLarge { len: total });
            }
            return Err(IoError::io("sendmsg(packet socket)", err));
        }
        Ok(())
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A new non-blocking AF_PACKET raw socket with protocol 0 (receives nothing until bound).
fn new_packet_fd() -> Result<OwnedFd, IoError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(IoError::last_os("socket(AF_PACKET)"));
    }
    // SAFETY: `raw` is a freshly created descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A 4 MiB send buffer (forced when privileged), so GSO frames queue without blocking.
fn set_sndbuf(fd: RawFd) -> Result<(), IoError> {
    let sndbuf: i32 = 4 << 20;
    if setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        &sndbuf,
        "SO_SNDBUFFORCE",
    )
    .is_err()
    {
        setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &sndbuf,
            "setsockopt(SO_SNDBUF)",
        )?;
    }
    Ok(())
}

fn bind_to(fd: RawFd, ifindex: u32, protocol: u16) -> Result<(), IoError> {
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is a valid sockaddr_ll of `len` bytes for the duration of the call.
    let rc = unsafe { libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), len) };
    if rc < 0 {
        return Err(IoError::last_os("bind(AF_PACKET)"));
    }
    Ok(())
}
