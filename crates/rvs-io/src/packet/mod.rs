//! AF_PACKET sockets: an mmap'ed receive ring with virtio-net headers, and `sendmsg` transmit,
//! one frame at a time or queued and sent in batches with `sendmmsg` ([`TxQueue`]).
#![allow(unsafe_code)]

mod rx_ring;
mod socket;
mod tx_queue;

pub use socket::{PacketSocket, RecvStats};
pub use tx_queue::{TxQueue, TxReport, TX_BATCH};

use std::os::fd::RawFd;

use crate::error::IoError;

/// Constants from `<linux/if_packet.h>` and `<linux/if_ether.h>`.
#[allow(missing_docs)]
pub(crate) mod consts {
    pub const SOL_PACKET: i32 = 263;
    pub const PACKET_RX_RING: i32 = 5;
    pub const PACKET_VERSION: i32 = 10;
    pub const PACKET_VNET_HDR: i32 = 15;
    pub const PACKET_FANOUT: i32 = 18;
    pub const PACKET_IGNORE_OUTGOING: i32 = 23;
    pub const TPACKET_V2: i32 = 1;
    pub const PACKET_FANOUT_HASH: u32 = 0;
    pub const TP_STATUS_KERNEL: u32 = 0;
    pub const TP_STATUS_USER: u32 = 1;
    pub const TP_STATUS_VLAN_VALID: u32 = 0x10;
    pub const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
    pub const TPACKET2_HDR_LEN: usize = 32;
    pub const ETH_P_ALL: u16 = 0x0003;
    pub const ETH_P_8021Q: u16 = 0x8100;
    pub const PACKET_HOST: u8 = 0;
    pub const PACKET_BROADCAST: u8 = 1;
    pub const PACKET_MULTICAST: u8 = 2;

    /// `TPACKET_ALIGN`: round up to 16 bytes.
    #[allow(non_snake_case)]
    pub const fn TPACKET_ALIGN(x: usize) -> usize {
        (x + 15) & !15
    }
}

/// `setsockopt` with a plain-old-data value.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: i32,
    name: i32,
    value: &T,
    call: &'static str,
) -> Result<(), IoError> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call; the kernel
    // copies them and keeps no reference.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc < 0 {
        return Err(IoError::last_os(call));
    }
    Ok(())
}

/// `getsockopt` of an `int`-valued option.
pub(crate) fn getsockopt_int(
    fd: RawFd,
    level: i32,
    name: i32,
    call: &'static str,
) -> Result<i32, IoError> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and writable for the duration of the call, and `len`
    // says how many bytes `value` holds, so the kernel writes at most that many.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
    if rc < 0 {
        return Err(IoError::last_os(call));
    }
    Ok(value)
}
