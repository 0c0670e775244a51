//! The hashing schedulers' lookup tables: sh (ip_vs_sh.c), dh (ip_vs_dh.c) and mh (Maglev,
//! ip_vs_mh.c). Tables are built on the control path when destinations change and only read
//! when scheduling.
//!
//! A table belongs to one published destination list (it lives in the same configuration
//! snapshot), so its entries are plain positions in that list: nothing is re-checked when
//! scheduling.
//!
//! Hash functions are IPVS's: `hash_32` with the 32-bit golden ratio for sh and dh, and the
//! kernel's 64-bit `hsiphash` (SipHash-1-3) with IPVS's fixed keys for mh, over the address
//! folded to 32 bits (IPv6: the XOR of its four words).

use crate::sched_core::{SchedKey, SchedTarget};

/// Buckets of the sh and dh tables (`IP_VS_SH_TAB_BITS` = `IP_VS_DH_TAB_BITS` = 8).
pub(crate) const HASH_TAB_BITS: u32 = 8;
const HASH_TAB_SIZE: usize = 1 << HASH_TAB_BITS;
const HASH_TAB_MASK: u32 = (HASH_TAB_SIZE as u32) - 1;

/// The kernel's `hash_32`.
fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The negation of IPVS's `is_unavailable` of sh, dh and mh (weight 0 or overloaded) for the
/// destination at `pos`; `None` when `dests` has no such position (never for the list a table
/// was built for).
fn available<D: SchedTarget>(dests: &[D], pos: usize) -> Option<bool> {
    let d = dests.get(pos)?;
    Some(d.weight() != 0 && !d.overloaded())
}

/// An address folded to 32 bits as IPVS does (`ntohl` of the IPv4 address, or of the XOR of an
/// IPv6 address's four words).
pub(crate) fn fold(addr: &[u8; 16], v6: bool) -> u32 {
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    if v6 {
        w(0) ^ w(4) ^ w(8) ^ w(12)
    } else {
        w(12)
    }
}

/// A hashing scheduler's lookup table as another data plane reads it (rvs-bpf): the
/// destination position of every entry, for sh and dh 256 buckets, for mh the Maglev table;
/// empty when IPVS leaves the table empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTable {
    /// Destination positions, by entry.
    pub entries: Vec<u32>,
}

/// A 256-bucket table of sh or dh: each bucket holds a destination's position in the list the
/// table was built for (no bucket at all when that list is empty, as IPVS's NULL buckets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BucketTable {
    buckets: Box<[u32]>,
}

impl BucketTable {
    /// `ip_vs_sh_reassign`: destinations in list order, each filling `weight` consecutive
    /// buckets (one at least, even at weight 0), cycling until all 256 are assigned.
    pub(crate) fn build_sh<D: SchedTarget>(dests: &[D]) -> Self {
        if dests.is_empty() {
            return BucketTable::default();
        }
        let mut buckets = vec![0u32; HASH_TAB_SIZE].into_boxed_slice();
        let (mut p, mut count) = (0usize, 0u32);
        for b in buckets.iter_mut() {
            *b = p as u32;
            count += 1;
            if count >= dests[p].weight() {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
        BucketTable { buckets }
    }

    /// `ip_vs_dh_reassign`: one bucket per destination in turn, whatever the weights.
    pub(crate) fn build_dh<D: SchedTarget>(dests: &[D]) -> Self {
        if dests.is_empty() {
            return BucketTable::default();
        }
        let buckets = (0..HASH_TAB_SIZE)
            .map(|i| (i % dests.len()) as u32)
            .collect();
        BucketTable { buckets }
    }

    /// Its buckets as [`HashTable`] entries.
    pub(crate) fn entries(&self) -> Vec<u32> {
        self.buckets.to_vec()
    }

    /// The destination position of bucket `hash` (`None`: an empty table).
    fn at(&self, hash: u32) -> Option<usize> {
        self.buckets.get(hash as usize).map(|&p| p as usize)
    }

    /// `ip_vs_sh_schedule`: the source address (and source port with `port`) picks a bucket; with
    /// `fallback` an unavailable server is skipped by rehashing with growing offsets.
    pub(crate) fn schedule_sh<D: SchedTarget>(
        &self,
        dests: &[D],
        key: &SchedKey,
        port: bool,
        fallback: bool,
    ) -> Option<usize> {
        let p = if port { key.sport } else { 0 };
        let base = hash_32(
            u32::from(p).wrapping_add(fold(&key.src, key.v6)),
            HASH_TAB_BITS,
        );
        let hashkey = |offset: u32| offset.wrapping_add(base) & HASH_TAB_MASK;
        let ihash = hashkey(0);
        let first = self.at(ihash)?;
        if available(dests, first)? {
            return Some(first);
        }
        if !fallback {
            return None;
        }
        for offset in 0..HASH_TAB_SIZE as u32 {
            let roffset = (offset + ihash) % HASH_TAB_SIZE as u32;
            let i = self.at(hashkey(roffset))?;
            if available(dests, i)? {
                return Some(i);
            }
        }
        None
    }

    /// `ip_vs_dh_schedule`: the destination address picks a bucket; its server must be usable.
    pub(crate) fn schedule_dh<D: SchedTarget>(&self, dests: &[D], key: &SchedKey) -> Option<usize> {
        let hash = hash_32(fold(&key.dst, key.v6), HASH_TAB_BITS);
        let i = self.at(hash)?;
        available(dests, i)?.then_some(i)
    }
}

/// The kernel's `hsiphash` of one 32-bit word on 64-bit machines (SipHash-1-3, 64-bit key
/// halves, the result truncated to 32 bits).
fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575u64 ^ key[0],
        0x646f_7261_6e64_6f6du64 ^ key[1],
        0x6c79_6765_6e65_7261u64 ^ key[0],
        0x7465_6462_7974_6573u64 ^ key[1],
    ];
    fn round(s: &mut [u64; 4]) {
        s[0] = s[0].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(13) ^ s[0];
        s[0] = s[0].rotate_left(32);
        s[2] = s[2].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(16) ^ s[2];
        s[0] = s[0].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(21) ^ s[0];
        s[2] = s[2].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(17) ^ s[2];
        s[2] = s[2].rotate_left(32);
    }
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    round(&mut s);
    round(&mut s);
    round(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

/// IPVS's fixed mh hash keys (`generate_hash_secret`).
const MH_KEY1: [u64; 2] = [2_654_435_761, 2_654_435_761];
const MH_KEY2: [u64; 2] = [2_654_446_892, 2_654_446_892];

fn mh_hashkey(addr_fold: u32, port: u16, key: [u64; 2], offset: u32) -> u32 {
    hsiphash_u32(
        offset.wrapping_add(u32::from(port)).wrapping_add(addr_fold),
        key,
    )
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `fls`: position of the highest set bit (1-based), 0 for 0.
fn fls(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// The Maglev lookup table of mh: destination positions, every entry filled, or no entry at
/// all when IPVS leaves the table empty (no destination of non-zero `last_weight`, or more
/// destinations than entries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MhTable {
    lookup: Box<[u32]>,
}

impl MhTable {
    /// `ip_vs_mh_reassign` for a table of `size` entries (a prime of [`crate::MH_TABLE_SIZES`]):
    /// each destination walks its permutation (offset and skip from its address and port),
    /// taking `last_weight / gcd >> rshift` entries per turn, until the table is full. The
    /// destinations take their turns in a canonical order (address, then port) rather than
    /// IPVS's order of addition, so directors given the same servers in any order build the
    /// same table, and a flow ECMP moves between them finds the same server (Maglev).
    pub(crate) fn build<D: SchedTarget>(dests: &[D], size: u32) -> Self {
        let m = size.max(2);
        let g = dests
            .iter()
            .map(|d| d.last_weight())
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        if g < 1 || dests.len() > m as usize {
            return MhTable::default();
        }
        let mut lookup = vec![0u32; m as usize].into_boxed_slice();
        // IP_VS_MH_TAB_BITS: half the table index (12 for 4093, so 6).
        let index = crate::MH_TABLE_SIZES
            .iter()
            .position(|&p| p == m)
            .unwrap_or(4) as u32
            + 8;
        let tab_bits = index / 2;
        let mw = dests.iter().map(|d| d.last_weight()).max().unwrap_or(0) / g;
        let rshift = fls(mw).saturating_sub(tab_bits);
        struct Setup {
            perm: u32,
            skip: u32,
            turns: u32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let (a, p) = (d.addr_fold(), d.port());
                let offset = mh_hashkey(a, p, MH_KEY1, 0) % m;
                let skip = mh_hashkey(a, p, MH_KEY2, 0) % (m - 1) + 1;
                let lw = d.last_weight();
                let turns = match (lw / g) >> rshift {
                    0 => u32::from(lw != 0),
                    t => t,
                };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..dests.len()).collect();
        order.sort_by_key(|&i| dests[i].canonical_key());
        let mut taken = vec![false; m as usize];
        let mut n = 0u32;
        'fill: loop {
            for &i in &order {
                let ds = &mut setup[i];
                for _ in 0..ds.turns {
                    while taken[ds.perm as usize] {
                        ds.perm += ds.skip;
                        if ds.perm >= m {
                            ds.perm -= m;
                        }
                    }
                    taken[ds.perm as usize] = true;
                    lookup[ds.perm as usize] = i as u32;
                    n += 1;
                    if n == m {
                        break 'fill;
                    }
                }
            }
        }
        MhTable { lookup }
    }

    /// Its lookup table as [`HashTable`] entries.
    pub(crate) fn entries(&self) -> Vec<u32> {
        self.lookup.to_vec()
    }

    /// `ip_vs_mh_schedule`: the source address (and port with `port`) picks an entry; with
    /// `fallback` an unavailable server is skipped by rehashing with growing offsets.
    pub(crate) fn schedule<D: SchedTarget>(
        &self,
        dests: &[D],
        key: &SchedKey,
        port: bool,
        fallback: bool,
    ) -> Option<usize> {
        let m = self.lookup.len() as u32;
        if m == 0 {
            return None;
        }
        let a = fold(&key.src, key.v6);
        let p = if port { key.sport } else { 0 };
        let at =
            |offset: u32| self.lookup[(mh_hashkey(a, p, MH_KEY1, offset) % m) as usize] as usize;
        let ihash = mh_hashkey(a, p, MH_KEY1, 0) % m;
        let first = at(0);
        if available(dests, first)? {
            return Some(first);
        }
        if !fallback {
            return None;
        }
        for offset in 0..m {
            let roffset = (offset + ihash) % m;
            let i = at(roffset);
            if available(dests, i)? {
                return Some(i);
            }
        }
        None
    }

    /// How many entries each destination position holds (for tests).
    #[cfg(test)]
    pub(crate) fn shares(&self, n: usize) -> Vec<usize> {
        let mut v = vec![0; n];
        for &p in self.lookup.iter() {
            if let Some(c) = v.get_mut(p as usize) {
                *c += 1;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_matches_kernel() {
        // hash_32(1, 8) = (0x61C88647 >> 24)
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
    }

    #[test]
    fn siphash13_reference() {
        // Deterministic and key-dependent.
        assert_eq!(hsiphash_u32(7, MH_KEY1), hsiphash_u32(7, MH_KEY1));
        assert_ne!(hsiphash_u32(7, MH_KEY1), hsiphash_u32(7, MH_KEY2));
        assert_ne!(hsiphash_u32(7, MH_KEY1), hsiphash_u32(8, MH_KEY1));
    }

    #[test]
    fn fold_v4_and_v6() {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(fold(&a, false), 0x0a00_0001);
        let b = [1u8; 16];
        assert_eq!(fold(&b, true), 0);
    }
}
