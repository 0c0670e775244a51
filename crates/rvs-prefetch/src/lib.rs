//! A cache prefetch hint, safe to call with any address.
//!
//! The engine forbids `unsafe`, and stable Rust has no safe prefetch: `core::arch`'s
//! `_mm_prefetch` is an `unsafe fn` and `core::intrinsics::prefetch_read_data` is nightly-only.
//! A prefetch instruction never faults and never changes what a program computes (an address
//! outside the process's mappings is simply not loaded), so wrapping it is sound; this crate
//! holds that one `unsafe` block, away from the code that decides what to prefetch.
//!
//! The engine uses it to start the cache misses of a packet's connection-table lines (its
//! index bucket, the slot a new connection takes) while the packet before it is handled.

/// Asks the CPU to start loading the cache line holding `addr` into every cache level, and
/// returns at once. `addr` may be stale, dangling or null: the load is only a hint, dropped
/// by the CPU when the address is not mapped. Does nothing on targets without a prefetch
/// instruction this crate knows.
#[inline(always)]
#[allow(unsafe_code)] // the crate's one unsafe instruction, explained below
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is an `unsafe fn` for its raw pointer and its
    // `target_feature(enable = "sse")`. The pointer is never dereferenced: PREFETCHT0 (like
    // LLVM's prefetch intrinsic it compiles from) loads nothing into the program and cannot
    // fault; Intel's SDM and AMD's APM say a prefetch of an invalid or unmapped address is
    // ignored. SSE is part of every x86_64 target.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(core::ptr::without_provenance(addr));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint: it never faults and writes no register or memory (Arm ARM,
    // "Prefetch memory"); the asm reads one register and touches no stack or flags.
    unsafe {
        core::arch::asm!(
            "prfm pldl1keep, [{addr}]",
            addr = in(reg) addr,
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    /// A fault would kill the test process: reaching the end is the check.
    #[test]
    fn any_address_is_a_harmless_hint() {
        let data = [7u8; 256];
        prefetch(data.as_ptr() as usize);
        // Null, unmapped, kernel-half and wrapped addresses: none may fault.
        for addr in [0, 1, 0x1000, 0xdead_beef, usize::MAX - 63, 1usize << 63] {
            prefetch(addr);
        }
    }
}
