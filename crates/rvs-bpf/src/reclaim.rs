//! Taking back the dest slots and service ids that removed servers and services hold, once
//! nothing in the maps refers to them, when the publisher has handed out as many as the maps
//! have room for.
//!
//! A removed real server keeps its slot and a removed service its id (IPVS's trash): the
//! connections and templates that name them must not reach another server or count for
//! another service, and the same server or service added again takes them back. Without
//! taking them back, a director whose real servers come and go (an autoscaled pool) runs out
//! of slots after `--bpf-max-dests` distinct servers, however few are configured at a time.
//!
//! The program counts each slot's connections (`dest_conns`, as IPVS's ActiveConn and
//! InActConn); templates name their slot and service; connections name their service. The
//! reads walk the templates (and, for service ids, the connections), so they run only when
//! the publisher is out of room.

use std::collections::HashSet;

use crate::error::Error;
use crate::maps::{DestConns, Hop, Traffic};
use crate::program::Datapath;

/// The slots among `candidates` that no connection or template refers to.
pub(crate) fn free_slots(
    dp: &Datapath,
    candidates: impl Iterator<Item = u32>,
) -> Result<Vec<u32>, Error> {
    let named: HashSet<u32> = dp.templates()?.iter().map(|(_, t)| t.dest).collect();
    let mut free = Vec::new();
    for slot in candidates.filter(|s| !named.contains(s)) {
        // The two counts can drift apart (a state change racing on two CPUs moves one
        // connection between them twice); their sum, bound and unbound once, cannot.
        let held = dp.dest_conns(slot)?;
        if held.active.wrapping_add(held.inactive) == 0 {
            free.push(slot);
        }
    }
    Ok(free)
}

/// The service ids among `candidates` that no connection or template refers to.
pub(crate) fn free_service_ids(
    dp: &Datapath,
    candidates: impl Iterator<Item = u32>,
) -> Result<Vec<u32>, Error> {
    let mut named: HashSet<u32> = dp.templates()?.iter().map(|(k, _)| k.svc).collect();
    named.extend(dp.connections()?.iter().map(|(_, c)| c.svc));
    Ok(candidates.filter(|id| !named.contains(id)).collect())
}

/// Clears what slot `slot`'s earlier server left: its counters, connection counts, cached
/// next hop and tunnel source. (Its `dests` entry is written by the publication that reuses
/// it.)
pub(crate) fn reset_slot(dp: &Datapath, slot: u32) -> Result<(), Error> {
    dp.zero_per_cpu::<Traffic>("dest_stats", slot)?;
    dp.put("dest_conns", &slot, &DestConns::default())?;
    dp.put("dest_hops", &slot, &Hop::default())?;
    dp.put("tun_src", &slot, &crate::maps::Addr::default())
}

/// Clears what service id `id`'s earlier service left: its counters.
pub(crate) fn reset_service(dp: &Datapath, id: u32) -> Result<(), Error> {
    dp.zero_per_cpu::<Traffic>("svc_stats", id)?;
    dp.zero_per_cpu::<u64>("svc_stray", id)
}
