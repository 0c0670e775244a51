//! The mmap'ed TPACKET_V2 receive ring of one packet socket.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::consts::{
    PACKET_RX_RING, SOL_PACKET, TPACKET2_HDR_LEN, TPACKET_ALIGN, TP_STATUS_KERNEL, TP_STATUS_USER,
};
use super::setsockopt;
use crate::error::IoError;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// Geometry of a ring: frames large enough for a 64 KiB GSO frame plus headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingGeometry {
    /// Bytes per frame slot (multiple of 16).
    pub frame_size: u32,
    /// Bytes per block (power-of-two pages, holds a whole number of frames).
    pub block_size: u32,
    /// Number of blocks.
    pub block_nr: u32,
}

impl RingGeometry {
    /// 68 KiB frames in 1 MiB blocks (15 per block), 9 blocks: 135 frames, 9 MiB.
    pub(crate) const DEFAULT: RingGeometry = RingGeometry {
        frame_size: 68 * 1024,
        block_size: 1 << 20,
        block_nr: 9,
    };

    fn frames_per_block(&self) -> u32 {
        self.block_size / self.frame_size
    }

    fn frame_nr(&self) -> u32 {
        self.frames_per_block() * self.block_nr
    }
}

/// Header fields of one ring slot that the receive path needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotInfo {
    /// `tp_status`.
    pub status: u32,
    /// Original length of the frame.
    pub len: u32,
    /// Bytes of it present in the slot.
    pub snaplen: u32,
    /// Offset of the Ethernet header from the slot start.
    pub mac: u16,
    /// VLAN TCI stripped by the device (valid when the status says so).
    pub vlan_tci: u16,
    /// VLAN TPID stripped by the device (valid when the status says so).
    pub vlan_tpid: u16,
    /// `sll_pkttype` of the frame.
    pub pkttype: u8,
}

/// A TPACKET_V2 receive ring mapped into this process.
pub(crate) struct RxRing {
    base: NonNull<u8>,
    map_len: usize,
    geometry: RingGeometry,
    frame_nr: u32,
    next: u32,
}

// SAFETY: the ring memory is owned by this value (unmapped on Drop) and only reached through
// `&mut self`, so moving it to another thread is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Asks the kernel for a receive ring on `fd` and maps it.
    pub(crate) fn create(fd: RawFd, geometry: RingGeometry) -> Result<RxRing, IoError> {
        let frame_nr = geometry.frame_nr();
        let req = TpacketReq {
            block_size: geometry.block_size,
            block_nr: geometry.block_nr,
            frame_size: geometry.frame_size,
            frame_nr,
        };
        setsockopt(
            fd,
            SOL_PACKET,
            PACKET_RX_RING,
            &req,
            "setsockopt(PACKET_RX_RING)",
        )?;
        let map_len = geometry.block_size as usize * geometry.block_nr as usize;
        // SAFETY: mapping a fresh shared region of the socket's ring; the kernel validated the
        // geometry above and the length equals the ring's size. No existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd,
                0,
            )
        };
        let ptr = if ptr == libc::MAP_FAILED {
            // MAP_LOCKED can fail under RLIMIT_MEMLOCK; retry without it.
            // SAFETY: as above, without the locking flag.
            let retry = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if retry == libc::MAP_FAILED {
                return Err(IoError::last_os("mmap(rx ring)"));
            }
            retry
        } else {
            ptr
        };
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| IoError::io("mmap(rx ring)", std::io::Error::other("null mapping")))?;
        Ok(RxRing {
            base,
            map_len,
            geometry,
            frame_nr,
            next: 0,
        })
    }

    /// Bytes per slot.
    pub(crate) fn frame_size(&self) -> usize {
        self.geometry.frame_size as usize
    }

    fn slot_ptr(&self, index: u32) -> *mut u8 {
        let per_block = self.geometry.frames_per_block();
        let block = index / per_block;
        let within = index % per_block;
        let offset = block as usize * self.geometry.block_size as usize
            + within as usize * self.geometry.frame_size as usize;
        debug_assert!(offset + self.frame_size() <= self.map_len);
        // SAFETY: `index < frame_nr`, so the offset lies inside the mapping (checked above).
        unsafe { self.base.as_ptr().add(offset) }
    }

    fn status_word(&self, index: u32) -> &AtomicU32 {
        // SAFETY: every slot starts with the 4-byte aligned `tp_status` word (slots are 16-byte
        // aligned in a page-aligned mapping); the kernel writes it concurrently, hence atomic access.
        unsafe { &*(self.slot_ptr(index).cast::<AtomicU32>()) }
    }

    /// Returns the header of the next slot when the kernel has handed it to user space.
    pub(crate) fn peek(&self) -> Option<SlotInfo> {
        self.info_at(self.next)
    }

    /// The header of slot `index` when the kernel has handed it to user space.
    fn info_at(&self, index: u32) -> Option<SlotInfo> {
        let status = self.status_word(index).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        let p = self.slot_ptr(index);
        // SAFETY: the slot belongs to user space (status checked with Acquire), so its header is
        // fully written; the fields are read unaligned-safe at their `tpacket2_hdr` offsets, and
        // `sockaddr_ll` starts at TPACKET_ALIGN(sizeof(tpacket2_hdr)).
        unsafe {
            let rd32 = |off: usize| std::ptr::read_unaligned(p.add(off).cast::<u32>());
            let rd16 = |off: usize| std::ptr::read_unaligned(p.add(off).cast::<u16>());
            let sll = TPACKET_ALIGN(TPACKET2_HDR_LEN);
            Some(SlotInfo {
                status,
                len: rd32(4),
                snaplen: rd32(8),
                mac: rd16(12),
                vlan_tci: rd16(24),
                vlan_tpid: rd16(26),
                pkttype: *p.add(sll + 10),
            })
        }
    }

    /// The bytes of the current slot (valid only between `peek` returning it and `release`),
    /// and with `look_ahead` the frame of the slot after it when the kernel has filled that
    /// one too (empty otherwise, and without `look_ahead`).
    pub(crate) fn slot_and_ahead(&mut self, look_ahead: bool) -> (&mut [u8], &[u8]) {
        let ahead_index = (self.next + 1) % self.frame_nr;
        let info = if look_ahead && ahead_index != self.next {
            self.info_at(ahead_index)
        } else {
            None
        };
        let ahead = match info {
            Some(info) => {
                let start = usize::from(info.mac);
                let end = start.saturating_add(info.snaplen as usize);
                if end <= self.frame_size() {
                    let p = self.slot_ptr(ahead_index);
                    // SAFETY: the slot after the current one belongs to user space too (its
                    // status was read with Acquire above) and is not released before the
                    // current one is, so the kernel does not write it while this shared
                    // borrow (tied to `&mut self`) lives; `start..end` lies inside the slot,
                    // which does not overlap the current one (the indices differ).
                    unsafe { std::slice::from_raw_parts(p.add(start), end - start) }
                } else {
                    &[]
                }
            }
            _ => &[],
        };
        let p = self.slot_ptr(self.next);
        // SAFETY: the current slot is owned by user space until `release`, the borrow is tied
        // to `&mut self`, and the slice stays inside the slot.
        let current = unsafe { std::slice::from_raw_parts_mut(p, self.frame_size()) };
        (current, ahead)
    }

    /// Hands the current slot back to the kernel and moves to the next one.
    pub(crate) fn release(&mut self) {
        self.status_word(self.next)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.frame_nr;
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `create`; no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}
