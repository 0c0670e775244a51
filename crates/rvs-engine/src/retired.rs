//! Services deleted (`-D`, `-C`) while connections still point at their real servers.
//!
//! IPVS does not take a deleted service's connections out of its table: their real servers go
//! to its trash, unavailable, and the connections stay until they time out. A client's packet
//! of one is dropped in the meantime (with `expire_nodest_conn`, the connection goes too); a
//! real server's reply is still translated; and once the same service and real server are
//! added again (an `ipvsadm -C` followed by `ipvsadm -R`, a keepalived reload), the connection
//! forwards again. The engine keeps such a service, with its id, until none of its real servers
//! is held by a connection or a persistence template, and publishes it in each configuration
//! snapshot: the data plane still finds its clients' connections (through this index of their
//! keys), and adding the service again gives it back its id.

use std::collections::HashSet;

use crate::flow::{to16, to_ip};
use crate::spec::{MarkRule, ServiceKey};
use crate::wire_index::{OwnedKey, WireIndex, WireKey};

/// The keys of one configuration snapshot's retired services, indexed as the data plane looks
/// them up.
#[derive(Debug)]
pub(crate) struct RetiredIndex {
    /// Those of (protocol, address, port).
    wire: WireIndex,
    /// Those of a firewall mark, as (mark, IPv6).
    marks: HashSet<(u32, bool)>,
    empty: bool,
}

impl RetiredIndex {
    /// The index of `keys`.
    pub(crate) fn new<'a>(keys: impl Iterator<Item = &'a ServiceKey>) -> RetiredIndex {
        let mut wire_keys = Vec::new();
        let mut marks = HashSet::new();
        for (i, k) in keys.enumerate() {
            match wire_key_of(k) {
                Some(w) => wire_keys.push((w, i)),
                None => {
                    marks.insert((k.fwmark, k.addr.is_ipv6()));
                }
            }
        }
        RetiredIndex {
            empty: wire_keys.is_empty() && marks.is_empty(),
            wire: WireIndex::new(&wire_keys),
            marks,
        }
    }

    /// Whether there are none (the data plane's only test in the usual case).
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether a packet to `key` went to a retired service, classified as a live one would be:
    /// first by `marks` (the first rule matching gives the mark), then by its address and port,
    /// then by a port-0 service of its address.
    pub(crate) fn takes(&self, key: &WireKey<'_>, v6: bool, marks: &[MarkRule]) -> bool {
        if !self.marks.is_empty() {
            let addr = to_ip(key.addr, v6);
            if let Some(r) = marks.iter().find(|r| r.matches(key.proto, addr, key.port)) {
                if self.marks.contains(&(r.mark, v6)) {
                    return true;
                }
            }
        }
        self.wire.get(key).is_some()
            || (key.port != 0
                && self.wire.has_port0()
                && self.wire.get(&WireKey { port: 0, ..*key }).is_some())
    }
}

/// A service key as the wire index holds it (none for a firewall-mark service).
pub(crate) fn wire_key_of(k: &ServiceKey) -> Option<OwnedKey> {
    (k.fwmark == 0).then(|| (to16(k.addr), k.port, k.proto.number()))
}
