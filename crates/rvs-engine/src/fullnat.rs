//! FULLNAT local ports: a connection toward a real server gets a (local address, local port)
//! pair that no other live connection to the same real server address and port uses, so the
//! reply tuple (real server, port, local address, local port) names exactly one connection.
//!
//! Ports are handed out per (protocol, local address, real server address, real server port),
//! from [`PORT_MIN`] to 65535, and come back when the connection's [`LocalPort`] lease is
//! dropped (expiry, flush, removal). The caller may restrict the choice with a predicate: the
//! engine uses it to pick a port whose reply hash lands in the connection's own table shard.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Lowest local port handed out.
pub(crate) const PORT_MIN: u16 = 1024;

const WORDS: usize = 65536 / 64;

/// Which ports are taken toward one real server from one local address.
#[derive(Debug)]
struct PortSet {
    used: Box<[u64; WORDS]>,
    count: u32,
    cursor: u16,
}

impl PortSet {
    fn new() -> Self {
        PortSet {
            used: Box::new([0; WORDS]),
            count: 0,
            cursor: PORT_MIN,
        }
    }

    fn is_used(&self, port: u16) -> bool {
        self.used[port as usize / 64] & (1 << (port % 64)) != 0
    }

    fn set(&mut self, port: u16, used: bool) {
        let w = &mut self.used[port as usize / 64];
        let bit = 1u64 << (port % 64);
        if used && *w & bit == 0 {
            *w |= bit;
            self.count += 1;
        } else if !used && *w & bit != 0 {
            *w &= !bit;
            self.count -= 1;
        }
    }
}

/// The key ports are allocated under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PortKey {
    pub(crate) proto: u8,
    pub(crate) laddr: [u8; 16],
    pub(crate) raddr: [u8; 16],
    pub(crate) rport: u16,
}

/// All local ports in use.
#[derive(Debug, Default)]
pub(crate) struct PortAllocator {
    sets: Mutex<HashMap<PortKey, PortSet>>,
}

impl PortAllocator {
    /// Takes a free port under `key` for which `fits` holds, searching on from where the
    /// previous search stopped. `None` when no such port is free.
    pub(crate) fn allocate(
        self: &Arc<Self>,
        key: PortKey,
        mut fits: impl FnMut(u16) -> bool,
    ) -> Option<LocalPort> {
        let mut sets = self.sets.lock();
        let set = sets.entry(key).or_insert_with(PortSet::new);
        let span = u32::from(u16::MAX - PORT_MIN) + 1;
        if set.count >= span {
            return None;
        }
        let start = set.cursor.max(PORT_MIN);
        let mut port = start;
        for _ in 0..span {
            if !set.is_used(port) && fits(port) {
                set.set(port, true);
                set.cursor = if port == u16::MAX { PORT_MIN } else { port + 1 };
                return Some(LocalPort {
                    alloc: Arc::clone(self),
                    key,
                    port,
                });
            }
            port = if port == u16::MAX { PORT_MIN } else { port + 1 };
        }
        if set.count == 0 {
            sets.remove(&key);
        }
        None
    }

    /// Takes exactly `port` under `key` (a connection installed by sync); `None` when taken.
    pub(crate) fn reserve(self: &Arc<Self>, key: PortKey, port: u16) -> Option<LocalPort> {
        let mut sets = self.sets.lock();
        let set = sets.entry(key).or_insert_with(PortSet::new);
        if set.is_used(port) {
            return None;
        }
        set.set(port, true);
        Some(LocalPort {
            alloc: Arc::clone(self),
            key,
            port,
        })
    }

    fn release(&self, key: &PortKey, port: u16) {
        let mut sets = self.sets.lock();
        if let Some(set) = sets.get_mut(key) {
            set.set(port, false);
            if set.count == 0 {
                sets.remove(key);
            }
        }
    }

    /// Ports in use under `key`.
    #[cfg(test)]
    fn in_use(&self, key: &PortKey) -> u32 {
        self.sets.lock().get(key).map_or(0, |s| s.count)
    }

    /// Ports in use under all keys.
    pub(crate) fn total_in_use(&self) -> u64 {
        self.sets.lock().values().map(|s| u64::from(s.count)).sum()
    }
}

/// A local port held by one connection; returned to the allocator when dropped.
#[derive(Debug)]
pub(crate) struct LocalPort {
    alloc: Arc<PortAllocator>,
    key: PortKey,
    port: u16,
}

impl LocalPort {
    /// The port number.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The local address.
    pub(crate) fn addr(&self) -> &[u8; 16] {
        &self.key.laddr
    }
}

impl Drop for LocalPort {
    fn drop(&mut self) {
        self.alloc.release(&self.key, self.port);
    }
}

/// The FULLNAT part of a connection (in its side record, so plain connections stay small).
#[derive(Debug)]
pub(crate) struct FnatConn {
    /// Local address and port toward the real server.
    pub(crate) local: LocalPort,
    /// PROXY protocol state (TCP services with `--proxy-protocol`).
    pub(crate) proxy: Option<crate::proxy::ProxyState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PortKey {
        PortKey {
            proto: 6,
            laddr: [1; 16],
            raddr: [2; 16],
            rport: 80,
        }
    }

    #[test]
    fn ports_are_unique_and_come_back() {
        let a = Arc::new(PortAllocator::default());
        let mut held = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let p = a.allocate(key(), |_| true).expect("free port");
            assert!(seen.insert(p.port()), "port {} handed out twice", p.port());
            assert!(p.port() >= PORT_MIN);
            held.push(p);
        }
        assert_eq!(a.in_use(&key()), 1000);
        held.truncate(10);
        assert_eq!(a.in_use(&key()), 10);
        drop(held);
        assert_eq!(a.total_in_use(), 0);
    }

    #[test]
    fn exhaustion_is_reported_and_predicate_is_honoured() {
        let a = Arc::new(PortAllocator::default());
        let held: Vec<_> = (0..10)
            .map(|_| a.allocate(key(), |p| p % 4096 == 0).expect("port"))
            .collect();
        assert!(held.iter().all(|p| p.port() % 4096 == 0));
        // 4096, 8192, ..., 61440: 15 ports fit; 10 taken.
        let more: Vec<_> = (0..5)
            .map(|_| a.allocate(key(), |p| p % 4096 == 0).expect("port"))
            .collect();
        assert!(a.allocate(key(), |p| p % 4096 == 0).is_none());
        drop(more);
        assert!(a.allocate(key(), |p| p % 4096 == 0).is_some());
        let other = PortKey { rport: 81, ..key() };
        assert!(a.allocate(other, |p| p % 4096 == 0).is_some());
    }
}
