//! What IPVS's defence (`drop_entry`, `drop_packet`, `secure_tcp`, `amemthresh`) measures on
//! an rvs director: the memory left, in 4 KiB pages.
//!
//! The kernel compares its free and buffer memory with `amemthresh`. rvsd takes the smaller of
//! that and the room left in the connection tables, so the defence also turns on before a
//! bounded table (`--max-connections`, `--bpf-max-connections`) fills:
//! - the host: `MemFree + Buffers` of /proc/meminfo, as `si_meminfo` counts;
//! - the engine's table, with `--max-connections`: its room at [`ENGINE_CONN_BYTES`] a
//!   connection;
//! - the BPF plane's `conns` map: its room at [`BPF_CONN_BYTES`] a connection, from the
//!   connection counts the plane reads each second ([`TableRoom`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes a connection is reckoned to take in the engine's table (its measured size is about
/// 80; `cargo bench -p rvs-engine` prints it).
pub const ENGINE_CONN_BYTES: u64 = 128;

/// Bytes a connection is reckoned to take in the BPF maps (a `conns` and a `conns_out` entry
/// with their keys and the hash table's overhead).
pub const BPF_CONN_BYTES: u64 = 256;

const PAGE: u64 = 4096;

/// The room left in the BPF plane's connection table, in connections (`u64::MAX`: no BPF
/// plane, or not measured yet), and the connections it holds. The plane writes them; the timer
/// thread reads the room, `rvsadm --counters` the connections.
#[derive(Debug)]
pub struct TableRoom {
    room: AtomicU64,
    held: AtomicU64,
}

impl Default for TableRoom {
    fn default() -> Self {
        TableRoom {
            room: AtomicU64::new(u64::MAX),
            held: AtomicU64::new(0),
        }
    }
}

impl TableRoom {
    /// Records the connections held and the room left.
    pub fn set(&self, held: u64, room: u64) {
        self.held.store(held, Ordering::Relaxed);
        self.room.store(room, Ordering::Relaxed);
    }

    /// The room left, in connections.
    pub fn get(&self) -> u64 {
        self.room.load(Ordering::Relaxed)
    }

    /// The connections the table held when last measured.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// `MemFree + Buffers` from the text of /proc/meminfo, in 4 KiB pages.
pub fn host_pages(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let kib = field("MemFree")? + field("Buffers").unwrap_or(0);
    Some(kib * 1024 / PAGE)
}

/// The memory left for the defence, in pages: the smallest of the host's, the engine table's
/// room (`None`: unbounded) and the BPF table's room.
pub fn available_pages(host: Option<u64>, engine_room: Option<usize>, bpf_room: u64) -> u64 {
    let engine = engine_room.map_or(u64::MAX, |n| {
        (n as u64).saturating_mul(ENGINE_CONN_BYTES) / PAGE
    });
    let bpf = if bpf_room == u64::MAX {
        u64::MAX
    } else {
        bpf_room.saturating_mul(BPF_CONN_BYTES) / PAGE
    };
    host.unwrap_or(u64::MAX).min(engine).min(bpf)
}

/// The host's memory left now (`None` when /proc/meminfo cannot be read).
pub fn host_pages_now() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(host_pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_free_and_buffers_in_pages() {
        let text = "MemTotal:       24000000 kB\nMemFree:          40000 kB\nMemAvailable:   \
                    9000000 kB\nBuffers:            960 kB\nCached:  100 kB\n";
        assert_eq!(host_pages(text), Some(10_240));
        assert_eq!(host_pages("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_smallest_room_counts() {
        // 8192 connections of room in a bounded engine table: 256 pages.
        assert_eq!(available_pages(Some(1 << 20), Some(8192), u64::MAX), 256);
        // The BPF table: 1024 connections of room, 64 pages.
        assert_eq!(available_pages(Some(1 << 20), None, 1024), 64);
        // Unbounded tables: the host's.
        assert_eq!(available_pages(Some(5000), None, u64::MAX), 5000);
        assert_eq!(available_pages(None, None, u64::MAX), u64::MAX);
    }
}
