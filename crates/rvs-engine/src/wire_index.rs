//! The data plane's service lookup by (protocol, address, port): every packet makes one, so it
//! is an open-addressed table built once per configuration snapshot and probed with one
//! multiplication, not a general-purpose map (whose hashing and probing cost about as much as
//! the rest of an established packet's lookup).
//!
//! The table is at most half full, so a probe always ends at an empty slot, whatever the key;
//! the keys are the operator's services, and a packet's address only picks where to start.

/// A service's identity in the form the data plane has at hand: protocol number, 16-byte
/// address (IPv4-mapped for IPv4) and port.
///
/// It borrows the address: copied out of a packet's parse, the 16 bytes were read back in one
/// load that waited on the parser's narrower stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireKey<'a> {
    pub(crate) addr: &'a [u8; 16],
    pub(crate) port: u16,
    pub(crate) proto: u8,
}

/// One slot: the key's address as two words, its protocol and port with an occupied bit (0 is
/// an empty slot), and the service's position in the snapshot.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    hi: u64,
    lo: u64,
    tag: u32,
    index: u32,
}

/// A key as (address, port, protocol number), for building an index.
pub(crate) type OwnedKey = ([u8; 16], u16, u8);

/// Marks an occupied slot's `tag`.
const OCCUPIED: u32 = 1 << 24;

/// The words of a key, as the table compares them.
#[inline(always)]
fn words(key: &WireKey<'_>) -> (u64, u64, u32) {
    let (a, b) = key.addr.split_at(8);
    let mut x = [0u8; 8];
    x.copy_from_slice(a);
    let hi = u64::from_ne_bytes(x);
    x.copy_from_slice(b);
    let lo = u64::from_ne_bytes(x);
    (
        hi,
        lo,
        OCCUPIED | (key.proto as u32) << 16 | key.port as u32,
    )
}

/// The two halves of `a * b`'s 128-bit product, xored: every bit of `a` reaches every bit of
/// the result.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Mixes a key's words into a bucket number's bits: the address's first word times the rest,
/// each xored with a constant, in one folded multiplication. The first word is a factor of its
/// own: xored into the rest, an IPv6 prefix's bits could cancel against the port's
/// (`[2001:db8:0:1::1]:80` and `[2001:db8::1]:16464` started in one bucket). For an
/// IPv4-mapped address that word is 0, and the factor a constant.
#[inline(always)]
fn mix(hi: u64, lo: u64, tag: u32) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    folded_multiply(lo ^ ((tag as u64) << 7) ^ K1, hi ^ K2)
}

/// Services of (protocol, address, port) by key, to their positions in a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct WireIndex {
    slots: Box<[Slot]>,
    mask: usize,
    has_port0: bool,
}

impl WireIndex {
    /// The index of `entries`: each a key and its position (a key given twice keeps its
    /// last position).
    pub(crate) fn new(entries: &[(OwnedKey, usize)]) -> WireIndex {
        let size = (entries.len() * 2).next_power_of_two().max(2);
        let mut index = WireIndex {
            slots: vec![Slot::default(); size].into_boxed_slice(),
            mask: size - 1,
            has_port0: false,
        };
        for &((addr, port, proto), i) in entries {
            index.insert(
                &WireKey {
                    addr: &addr,
                    port,
                    proto,
                },
                i,
            );
        }
        index
    }

    fn insert(&mut self, key: &WireKey<'_>, position: usize) {
        let (hi, lo, tag) = words(key);
        let mut b = mix(hi, lo, tag) as usize & self.mask;
        loop {
            let s = &mut self.slots[b];
            if s.tag == 0 {
                *s = Slot {
                    hi,
                    lo,
                    tag,
                    index: position as u32,
                };
                self.has_port0 |= key.port == 0;
                return;
            }
            if s.tag == tag && s.hi == hi && s.lo == lo {
                s.index = position as u32;
                return;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// The position of the service of `key`.
    #[inline(always)]
    pub(crate) fn get(&self, key: &WireKey<'_>) -> Option<usize> {
        let (hi, lo, tag) = words(key);
        let mut b = mix(hi, lo, tag) as usize & self.mask;
        // At most half the slots are taken: an empty one ends every probe.
        loop {
            let s = self.slots.get(b)?;
            if s.tag == tag && s.hi == hi && s.lo == lo {
                return Some(s.index as usize);
            }
            if s.tag == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Whether a service of port 0 (a catch-all of its address) is in the index.
    pub(crate) fn has_port0(&self) -> bool {
        self.has_port0
    }

    /// The longest run of taken slots: the longest probe a lookup can make.
    #[cfg(test)]
    fn longest_run(&self) -> usize {
        let n = self.slots.len();
        // Start after an empty slot so that a run across the end is counted whole.
        let Some(start) = self.slots.iter().position(|s| s.tag == 0) else {
            return n;
        };
        let (mut longest, mut run) = (0, 0);
        for i in 1..=n {
            if self.slots[(start + i) % n].tag == 0 {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: [u8; 16], port: u16, proto: u8) -> ([u8; 16], u16, u8) {
        (addr, port, proto)
    }

    fn get(index: &WireIndex, (addr, port, proto): &([u8; 16], u16, u8)) -> Option<usize> {
        index.get(&WireKey {
            addr,
            port: *port,
            proto: *proto,
        })
    }

    fn v4(a: u32) -> [u8; 16] {
        crate::flow::mapped(a.to_be_bytes())
    }

    #[test]
    fn finds_every_key_and_nothing_else() {
        // Addresses that differ in one byte, ports and protocols that differ: all distinct.
        let mut keys = Vec::new();
        for a in 0..300u32 {
            for (port, proto) in [(80, 6), (80, 17), (443, 6), (0, 6)] {
                keys.push(key(v4(0x0a00_0000 + a), port, proto));
            }
        }
        keys.push(key(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            80,
            6,
        ));
        let index = WireIndex::new(&keys.iter().copied().zip(0..).collect::<Vec<_>>());
        assert!(index.has_port0());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get(&index, k), Some(i), "{k:?}");
        }
        assert_eq!(get(&index, &key(v4(0x0a00_0000 + 300), 80, 6)), None);
        assert_eq!(get(&index, &key(v4(0x0a00_0001), 81, 6)), None);
        assert_eq!(get(&index, &key(v4(0x0a00_0001), 80, 132)), None);
        // The IPv6 address whose last word is an IPv4-mapped one's is another key.
        assert_eq!(get(&index, &key([0; 16], 80, 6)), None);
    }

    /// Keys whose prefix bits and port bits cancel when the address's first word is xored in
    /// unmixed (as a first version did: `[2001:db8:M00::1]` on port `M * 64` all started in
    /// one bucket) spread like any others.
    #[test]
    fn ipv6_prefixes_do_not_cancel_ports() {
        let keys: Vec<_> = (1..=255u8)
            .map(|m| {
                let mut addr = [0u8; 16];
                addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                addr[6] = m;
                addr[15] = 1;
                key(addr, u16::from(m) * 64, 6)
            })
            .collect();
        let index = WireIndex::new(&keys.iter().copied().zip(0..).collect::<Vec<_>>());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get(&index, k), Some(i));
        }
        // 255 keys in 512 slots: the old mix made one run of all of them.
        let longest = index.longest_run();
        assert!(longest <= 20, "a run of {longest} taken slots");
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let index = WireIndex::new(&[]);
        assert!(!index.has_port0());
        assert_eq!(get(&index, &key(v4(1), 80, 6)), None);
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_position() {
        let k = key(v4(7), 80, 6);
        let index = WireIndex::new(&[(k, 1), (k, 5)]);
        assert_eq!(get(&index, &k), Some(5));
        assert!(!index.has_port0());
    }
}
