//! What every scheduler shares: the destination interface [`SchedTarget`], the packet's
//! [`SchedKey`] and IPVS's overhead and weighted-least selection, below [`crate::sched`],
//! `sched_hash` and `sched_locality`, which all use them.

/// What a scheduler needs to know about a destination.
pub(crate) trait SchedTarget {
    /// Stable identity (survives configuration snapshots).
    fn id(&self) -> u32;
    /// Current weight.
    fn weight(&self) -> u32;
    /// Over its upper connection threshold.
    fn overloaded(&self) -> bool;
    /// Active connections.
    fn active(&self) -> u32;
    /// Inactive connections.
    fn inactive(&self) -> u32;
    /// The latest non-zero weight (IPVS's `last_weight`, which mh builds its table from).
    fn last_weight(&self) -> u32 {
        self.weight()
    }
    /// The destination's address folded to 32 bits (mh's permutation input).
    fn addr_fold(&self) -> u32 {
        self.id()
    }
    /// The destination's port (mh's permutation input).
    fn port(&self) -> u16 {
        0
    }
    /// The destination's place in a canonical order of a service's servers (address, then
    /// port), so a table built from it is the same whatever order they were added in.
    fn canonical_key(&self) -> ([u8; 16], u16) {
        let mut a = [0u8; 16];
        a[12..].copy_from_slice(&self.addr_fold().to_be_bytes());
        (a, self.port())
    }
}

/// What a scheduler may look at in the packet being scheduled, and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SchedKey {
    /// Source address (IPv4-mapped for IPv4).
    pub(crate) src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub(crate) dst: [u8; 16],
    /// Source port.
    pub(crate) sport: u16,
    /// IPv6 packet.
    pub(crate) v6: bool,
    /// Now, in milliseconds (lblc/lblcr ageing).
    pub(crate) now_ms: u64,
}

/// IPVS's connection overhead: `active * 256 + inactive`.
pub(crate) fn overhead<D: SchedTarget>(d: &D) -> i64 {
    ((d.active() as i64) << 8) + d.inactive() as i64
}

/// Not overloaded and of non-zero weight: may be scheduled.
pub(crate) fn usable<D: SchedTarget>(d: &D) -> bool {
    !d.overloaded() && d.weight() > 0
}

/// The wlc pattern shared by wlc, sed, lblc and lblcr: the first usable destination, then any
/// later non-overloaded one with a strictly smaller `overhead / weight` (compared as
/// `loh * dw > doh * lw`, so weight-0 ones never win).
pub(crate) fn weighted_least<'a, D: SchedTarget + 'a>(
    mut dests: impl Iterator<Item = (usize, &'a D)>,
    oh: fn(&D) -> i64,
) -> Option<usize> {
    let (mut least, mut ld) = dests.by_ref().find(|(_, d)| usable(*d))?;
    let mut loh = oh(ld);
    for (i, d) in dests {
        if d.overloaded() {
            continue;
        }
        let doh = oh(d);
        if (loh as i128) * (d.weight() as i128) > (doh as i128) * (ld.weight() as i128) {
            least = i;
            ld = d;
            loh = doh;
        }
    }
    Some(least)
}
