//! TUN devices (`IFF_TUN | IFF_NO_PI`): whatever IP packet is written to one, the kernel receives
//! as if it had arrived on that interface. With a virtio-net header (`IFF_VNET_HDR`) a write may
//! carry a GSO super-frame or a packet whose checksum is still partial; the kernel finishes both.
//!
//! The device lives as long as its file: closing the last descriptor removes it.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::error::IoError;
use crate::vnet::VnetHdr;

/// `TUNSETIFF` from `<linux/if_tun.h>`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (padded to the union size).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates (or attaches to) the TUN device `name` and returns its file. With `vnet_hdr`, every
/// packet read or written is preceded by a 10-byte virtio-net header (the kernel's default
/// `TUNSETVNETHDRSZ`), in native byte order like a packet socket's.
pub fn open(name: &str, vnet_hdr: bool) -> Result<File, IoError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/', ' ']) {
        return Err(IoError::InvalidName {
            name: name.to_string(),
            reason: "interface names have 1 to 15 bytes, without '/', spaces or NUL",
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| IoError::io("open /dev/net/tun", e))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI | if vnet_hdr { IFF_VNET_HDR } else { 0 },
        _pad: [0; 22],
    };
    for (slot, b) in req.name.iter_mut().zip(name.bytes()) {
        *slot = b as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads (and may write back the name into) a `struct ifreq`; `req` is a
    // properly sized, initialised ifreq that lives across the call, and the fd is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(IoError::last_os("ioctl TUNSETIFF"));
    }
    Ok(file)
}

/// The address a [`TunDevice`] carries: RFC 7600's IPv4 dummy address, as a /32.
pub const TUN_DUMMY_V4: &str = "192.0.0.8/32";

/// A TUN device with virtio-net headers that hands packets to the local IP stack; removed when
/// dropped.
#[derive(Debug)]
pub struct TunDevice {
    name: String,
    file: File,
}

impl TunDevice {
    /// Creates the device `name` (with virtio-net headers), brings it up and prepares it to
    /// receive packets whose replies leave through other interfaces: loose IPv4 reverse-path
    /// filtering (`rp_filter=2`; the kernel applies the larger of `all` and the device's value,
    /// so this holds whatever `all` is), and IPv6 enabled on it. The kernel rejects every
    /// source on an interface without an IPv4 address whenever reverse-path filtering is on, so
    /// the device gets RFC 7600's IPv4 dummy address, [`TUN_DUMMY_V4`], reserved for interfaces
    /// that need an address but have none of their own (no prefix route).
    pub fn create(name: &str) -> Result<TunDevice, IoError> {
        let file = open(name, true)?;
        let dev = TunDevice {
            name: name.to_string(),
            file,
        };
        let up = Command::new("ip")
            .args(["link", "set", "dev", name, "up"])
            .status()
            .map_err(|e| IoError::io("ip link set up", e))?;
        if !up.success() {
            return Err(IoError::Sys {
                call: "ip link set up",
                source: std::io::Error::other(format!("ip exited with {up}")),
            });
        }
        let addr = Command::new("ip")
            .args(["addr", "add", TUN_DUMMY_V4, "dev", name, "noprefixroute"])
            .status()
            .map_err(|e| IoError::io("ip addr add", e))?;
        if !addr.success() {
            return Err(IoError::Sys {
                call: "ip addr add",
                source: std::io::Error::other(format!("ip exited with {addr}")),
            });
        }
        sysctl(&format!("net/ipv4/conf/{name}/rp_filter"), "2")?;
        // A host whose `default` disables IPv6 would drop every IPv6 packet on the device.
        // (Absent when the kernel has no IPv6: not an error.)
        let _ = sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "0");
        Ok(dev)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands one IP packet to the kernel, with its virtio-net header (offsets counted from the
    /// start of `packet`).
    pub fn send(&self, vnet: &VnetHdr, packet: &[u8]) -> Result<(), IoError> {
        let hdr = vnet.to_bytes();
        let want = hdr.len() + packet.len();
        let written = (&self.file)
            .write_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])
            .map_err(|e| IoError::io("write to TUN device", e))?;
        if written != want {
            return Err(IoError::FrameTooLarge { len: packet.len() });
        }
        Ok(())
    }
}

fn sysctl(key: &str, value: &str) -> Result<(), IoError> {
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|e| IoError::io("write sysctl", e))
}
