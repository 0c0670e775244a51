//! The configuration maps' entries as the publisher last wrote them, so that a publication
//! writes only what changed.
//!
//! rvsd publishes the whole configuration again whenever any of it changes, and when the
//! kernel's routes or neighbours change. Each entry is one `bpf()` call, and a service with an
//! sh, dh or mh lookup table has up to [`crate::maps::HASH_STRIDE`] of them: writing them all
//! again took half a second for 1,000 services (`cargo bench -p rvs-bpf --bench publish`).
//! Only the publisher writes these maps (the program reads them), so what it last wrote is
//! what they hold; a publisher for adopted maps starts with nothing known and writes
//! everything once.

use std::collections::HashMap;
use std::hash::Hash;

use zerocopy::{Immutable, IntoBytes};

use crate::error::Error;
use crate::maps::{Dest, Settings, Svc, SvcDests, SvcKey, WrrStep, HASH_STRIDE, WRR_SEQ};
use crate::program::Datapath;

/// The last written `settings`, `services`, `svc_dests`, `dests`, `hash_tab` and `wrr_seq`
/// entries.
#[derive(Debug, Default)]
pub(crate) struct Written {
    settings: Option<Settings>,
    services: HashMap<SvcKey, Svc>,
    svc_dests: HashMap<u32, SvcDests>,
    dests: HashMap<u32, Dest>,
    /// Table index -> the lookup table there (`hash_tab` from `index * HASH_STRIDE`).
    hash_tabs: HashMap<u32, Vec<u32>>,
    /// Table index -> the wrr sequence there (`wrr_seq` from `index * WRR_SEQ`).
    wrr_seqs: HashMap<u32, Vec<WrrStep>>,
}

/// Writes `value` at `key` of map `name` unless `last` says it is there already.
fn put_changed<K, V>(
    dp: &Datapath,
    last: &mut HashMap<K, V>,
    name: &'static str,
    key: K,
    value: V,
) -> Result<(), Error>
where
    K: Hash + Eq + IntoBytes + Immutable,
    V: PartialEq + IntoBytes + Immutable,
{
    if last.get(&key) != Some(&value) {
        dp.put(name, &key, &value)?;
        last.insert(key, value);
    }
    Ok(())
}

/// Writes `table` into array map `name` as table `id` (from index `id * stride`): the entries
/// that differ from what `last` says was written there, none when it is the same.
fn put_table<V>(
    dp: &Datapath,
    last: &mut HashMap<u32, Vec<V>>,
    name: &'static str,
    stride: usize,
    id: u32,
    table: &[V],
) -> Result<(), Error>
where
    V: Clone + PartialEq + IntoBytes + Immutable,
{
    if last.get(&id).is_some_and(|l| l.as_slice() == table) {
        return Ok(());
    }
    // Unknown until written whole: a write failing part-way leaves the table mixed.
    let known = last.remove(&id);
    let base = id * stride as u32;
    for (i, value) in table.iter().enumerate() {
        if known.as_ref().and_then(|l| l.get(i)) != Some(value) {
            dp.put(name, &(base + i as u32), value)?;
        }
    }
    last.insert(id, table.to_vec());
    Ok(())
}

impl Written {
    /// The `settings` entry.
    pub(crate) fn settings(&mut self, dp: &Datapath, value: &Settings) -> Result<(), Error> {
        if self.settings.as_ref() != Some(value) {
            dp.put("settings", &0u32, value)?;
            self.settings = Some(*value);
        }
        Ok(())
    }

    /// A service's `services` entry.
    pub(crate) fn service(&mut self, dp: &Datapath, key: SvcKey, value: Svc) -> Result<(), Error> {
        put_changed(dp, &mut self.services, "services", key, value)
    }

    /// A service's `svc_dests` entry.
    pub(crate) fn svc_dests(
        &mut self,
        dp: &Datapath,
        id: u32,
        value: SvcDests,
    ) -> Result<(), Error> {
        put_changed(dp, &mut self.svc_dests, "svc_dests", id, value)
    }

    /// A real server's `dests` entry.
    pub(crate) fn dest(&mut self, dp: &Datapath, slot: u32, value: Dest) -> Result<(), Error> {
        put_changed(dp, &mut self.dests, "dests", slot, value)
    }

    /// The `dests` entry of `slot` as last written, if known.
    pub(crate) fn dest_at(&self, slot: u32) -> Option<Dest> {
        self.dests.get(&slot).copied()
    }

    /// Lookup table `index` (at most [`HASH_STRIDE`] entries).
    pub(crate) fn hash_tab(
        &mut self,
        dp: &Datapath,
        index: u32,
        table: &[u32],
    ) -> Result<(), Error> {
        put_table(
            dp,
            &mut self.hash_tabs,
            "hash_tab",
            HASH_STRIDE,
            index,
            table,
        )
    }

    /// Wrr sequence `index` (at most [`WRR_SEQ`] steps).
    pub(crate) fn wrr_seq(
        &mut self,
        dp: &Datapath,
        index: u32,
        steps: &[WrrStep],
    ) -> Result<(), Error> {
        put_table(dp, &mut self.wrr_seqs, "wrr_seq", WRR_SEQ, index, steps)
    }

    /// Forgets service `key` (id `id`), removed from the maps: if it comes back, it is
    /// written whole again. (The tables it had stay as they are, known by their index.)
    pub(crate) fn forget_service(&mut self, key: &SvcKey, id: u32) {
        self.services.remove(key);
        self.svc_dests.remove(&id);
    }
}
