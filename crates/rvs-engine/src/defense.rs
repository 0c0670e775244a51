//! IPVS's defence against memory exhaustion, the `drop_entry`, `drop_packet` and `secure_tcp`
//! switches with their threshold `amemthresh` (ip_vs_ctl.c's `update_defense_level`,
//! `ip_vs_todrop` and ip_vs_conn.c's `ip_vs_random_dropentry`).
//!
//! Each switch reads 0 (never), 1 (automatic, off now), 2 (automatic, on now: memory is short)
//! or 3 (always). The data plane calls [`crate::Engine::update_defense`] once a second with
//! the memory left; as in the kernel, an automatic switch moves between 1 and 2 by itself, so
//! `rvsadm --list-policy` shows what `sysctl net.ipv4.vs.drop_entry` would. When on:
//! - `drop_packet` drops one new connection in `rate`, where `rate` is
//!   `amemthresh / (amemthresh - available)` (mode 2) or `am_droprate` (mode 3);
//! - `drop_entry` removes, each second, part of 1/32 of the connection table: half-open TCP
//!   connections, and established TCP and other connections idle for 60 s that have seen at
//!   most 8 packets from the client (more of them the more packets they have seen);
//! - `secure_tcp` moves TCP connections by IPVS's stricter state table (`tcp_states_dos`),
//!   where a connection becomes ESTABLISHED only once the real server has answered.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::policy::Policy;

/// Seconds a connection must have been idle before `drop_entry` may remove it.
pub(crate) const DROP_ENTRY_IDLE_MS: u64 = 60_000;

/// The fraction of the table `drop_entry` visits each second (IPVS: `ip_vs_conn_tab_size >> 5`).
pub(crate) const DROP_ENTRY_FRACTION: usize = 32;

/// The switches' modes as they now read (1 and 2 swap as memory comes and goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    pub(crate) drop_entry: u8,
    pub(crate) drop_packet: u8,
    pub(crate) secure_tcp: u8,
}

impl Modes {
    fn of(p: &Policy) -> Modes {
        Modes {
            drop_entry: p.drop_entry,
            drop_packet: p.drop_packet,
            secure_tcp: p.secure_tcp,
        }
    }
}

/// What the last [`crate::Engine::update_defense`] decided, and what the defence has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefenseStatus {
    /// The memory left was under `amemthresh`.
    pub short_of_memory: bool,
    /// `drop_entry` is removing connections.
    pub dropping_entries: bool,
    /// `drop_packet` drops one new connection in this many (0: none).
    pub drop_rate: u32,
    /// `secure_tcp`'s state table is in force.
    pub secure_tcp: bool,
    /// Connections `drop_entry` removed, cumulative.
    pub entries_dropped: u64,
    /// New connections `drop_packet` dropped, cumulative.
    pub packets_dropped: u64,
}

/// Per-candidate counters of `drop_entry` (IPVS's `todrop_counter`): a connection that has seen
/// `i` client packets (0 < i <= 8) is removed one time in `i`; one that has seen none never.
#[derive(Debug, Default)]
struct EntryCounters([u8; 9]);

impl EntryCounters {
    /// Whether this candidate, idle for `idle_ms` and with `in_pkts` client packets, goes.
    fn take(&mut self, idle_ms: u64, in_pkts: u16) -> bool {
        if idle_ms < DROP_ENTRY_IDLE_MS || in_pkts > 8 || in_pkts == 0 {
            return false;
        }
        let i = usize::from(in_pkts);
        let c = &mut self.0[i];
        *c = c.saturating_sub(1);
        if *c > 0 {
            return false;
        }
        *c = in_pkts as u8;
        true
    }
}

/// The slow-moving part, changed once a second under a lock.
#[derive(Debug)]
struct Level {
    modes: Modes,
    /// The memory left at the last update (pages).
    available: u64,
    entries: EntryCounters,
    /// Where the next `drop_entry` visit starts (a xorshift state).
    rng: u64,
}

/// The defence's state: the switches read by packets, and the level behind them.
#[derive(Debug)]
pub(crate) struct Defense {
    /// `secure_tcp`'s table is in force; read by every TCP state transition.
    secure_tcp: AtomicBool,
    /// One new connection in this many is dropped (0: none); read by every new connection.
    drop_rate: AtomicU32,
    /// Counts down to the next dropped connection; written only while dropping.
    drop_counter: AtomicI64,
    dropping_entries: AtomicBool,
    short_of_memory: AtomicBool,
    entries_dropped: AtomicU64,
    packets_dropped: AtomicU64,
    level: Mutex<Level>,
}

impl Defense {
    /// A defence with the switches of `p`, all off until the first update.
    pub(crate) fn new(p: &Policy, seed: u64) -> Defense {
        Defense {
            secure_tcp: AtomicBool::new(false),
            drop_rate: AtomicU32::new(0),
            drop_counter: AtomicI64::new(0),
            dropping_entries: AtomicBool::new(false),
            short_of_memory: AtomicBool::new(false),
            entries_dropped: AtomicU64::new(0),
            packets_dropped: AtomicU64::new(0),
            level: Mutex::new(Level {
                modes: Modes::of(p),
                available: u64::MAX,
                entries: EntryCounters::default(),
                rng: seed | 1,
            }),
        }
    }

    /// The operator set the switches: as a write to their sysctls, they take effect at once,
    /// judged on the memory left at the last update.
    pub(crate) fn set_modes(&self, p: &Policy) {
        let available = {
            let mut level = self.level.lock();
            level.modes = Modes::of(p);
            level.available
        };
        self.update(p, available);
    }

    /// The switches as they now read.
    pub(crate) fn modes(&self) -> Modes {
        self.level.lock().modes
    }

    /// Whether `secure_tcp`'s state table is in force.
    #[inline]
    pub(crate) fn secure_tcp(&self) -> bool {
        self.secure_tcp.load(Ordering::Relaxed)
    }

    /// Whether this new connection is dropped (`ip_vs_todrop`).
    #[inline]
    pub(crate) fn drops_new_connection(&self) -> bool {
        let rate = self.drop_rate.load(Ordering::Relaxed);
        if rate == 0 {
            return false;
        }
        if self.drop_counter.fetch_sub(1, Ordering::Relaxed) > 1 {
            return false;
        }
        self.drop_counter.store(i64::from(rate), Ordering::Relaxed);
        self.packets_dropped.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// One step of `update_defense_level`: `available` and `p.amemthresh` in 4 KiB pages.
    /// Returns whether `drop_entry` should now visit the table.
    pub(crate) fn update(&self, p: &Policy, available: u64) -> bool {
        let threshold = u64::from(p.amemthresh);
        let short = available < threshold;
        let mut level = self.level.lock();
        let modes = &mut level.modes;
        let dropping_entries = match modes.drop_entry {
            0 => false,
            1 | 2 => {
                modes.drop_entry = if short { 2 } else { 1 };
                short
            }
            _ => true,
        };
        let rate = match modes.drop_packet {
            0 => 0,
            1 | 2 => {
                modes.drop_packet = if short { 2 } else { 1 };
                if short {
                    // amemthresh / (amemthresh - available), at least 1.
                    u32::try_from(threshold / (threshold - available))
                        .unwrap_or(u32::MAX)
                        .max(1)
                } else {
                    0
                }
            }
            _ => p.am_droprate,
        };
        // While memory is short the count restarts each second; `am_droprate` keeps counting.
        if matches!(modes.drop_packet, 1 | 2) {
            self.drop_counter.store(i64::from(rate), Ordering::Relaxed);
        }
        self.drop_rate.store(rate, Ordering::Relaxed);
        if matches!(modes.secure_tcp, 1 | 2) {
            modes.secure_tcp = if short { 2 } else { 1 };
        }
        self.secure_tcp
            .store(modes.secure_tcp >= 2, Ordering::Relaxed);
        level.available = available;
        self.dropping_entries
            .store(dropping_entries, Ordering::Relaxed);
        self.short_of_memory.store(short, Ordering::Relaxed);
        dropping_entries
    }

    /// Where this second's `drop_entry` visit starts, as a fraction of the table in [0, 1).
    pub(crate) fn visit_start(&self) -> f64 {
        let mut level = self.level.lock();
        let mut x = level.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        level.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `todrop_entry` for one established TCP or non-TCP connection.
    pub(crate) fn takes_entry(&self, idle_ms: u64, in_pkts: u16) -> bool {
        self.level.lock().entries.take(idle_ms, in_pkts)
    }

    /// Counts connections `drop_entry` removed.
    pub(crate) fn count_entries(&self, n: usize) {
        self.entries_dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// What the defence decided last and has done so far.
    pub(crate) fn status(&self) -> DefenseStatus {
        DefenseStatus {
            short_of_memory: self.short_of_memory.load(Ordering::Relaxed),
            dropping_entries: self.dropping_entries.load(Ordering::Relaxed),
            drop_rate: self.drop_rate.load(Ordering::Relaxed),
            secure_tcp: self.secure_tcp(),
            entries_dropped: self.entries_dropped.load(Ordering::Relaxed),
            packets_dropped: self.packets_dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(drop_entry: u8, drop_packet: u8, secure_tcp: u8) -> Policy {
        Policy {
            drop_entry,
            drop_packet,
            secure_tcp,
            ..Policy::default()
        }
    }

    #[test]
    fn automatic_switches_turn_on_and_off_with_memory() {
        let p = policy(1, 1, 1);
        let d = Defense::new(&p, 7);
        assert!(!d.update(&p, 5000));
        assert_eq!(d.modes(), Modes::of(&p));
        assert_eq!(d.status().drop_rate, 0);
        assert!(!d.secure_tcp());
        // 1024 pages wanted, 768 left: one in 1024 / 256 = 4.
        assert!(d.update(&p, 768));
        assert_eq!(
            d.modes(),
            Modes {
                drop_entry: 2,
                drop_packet: 2,
                secure_tcp: 2
            }
        );
        assert_eq!(d.status().drop_rate, 4);
        assert!(d.secure_tcp());
        let dropped: Vec<bool> = (0..8).map(|_| d.drops_new_connection()).collect();
        assert_eq!(
            dropped,
            [false, false, false, true, false, false, false, true]
        );
        assert_eq!(d.status().packets_dropped, 2);
        // Memory back: everything off, the switches read 1 again.
        assert!(!d.update(&p, 2000));
        assert_eq!(d.modes(), Modes::of(&p));
        assert!(!d.drops_new_connection());
        assert!(!d.secure_tcp());
    }

    #[test]
    fn fixed_modes_ignore_memory() {
        let p = Policy {
            am_droprate: 3,
            ..policy(3, 3, 3)
        };
        let d = Defense::new(&p, 7);
        assert!(d.update(&p, u64::MAX));
        assert_eq!(d.status().drop_rate, 3);
        assert!(d.secure_tcp());
        let off = policy(0, 0, 0);
        d.set_modes(&off);
        assert!(!d.update(&off, 0));
        assert_eq!(d.status().drop_rate, 0);
        assert!(!d.secure_tcp());
        assert!(d.status().short_of_memory);
    }

    #[test]
    fn entries_go_by_packets_seen_and_idle_time() {
        let mut c = EntryCounters::default();
        // Recently used, too many packets, or none: never.
        assert!(!c.take(59_999, 1));
        assert!(!c.take(60_000, 9));
        assert!(!c.take(60_000, 0));
        // One packet: every candidate; three packets: one in three.
        assert!((0..4).all(|_| c.take(60_000, 1)));
        let three: Vec<bool> = (0..6).map(|_| c.take(60_000, 3)).collect();
        assert_eq!(three, [true, false, false, true, false, false]);
    }
}
