//! Persistence templates (IPVS's `ip_vs_sched_persist`): one template per (service, client
//! address masked by `-M`, virtual port) records the real server the client's connections go to.
//! While it lives, every new connection of that client (group) reuses its destination.
//!
//! A template's timer is re-armed to the full persistence timeout each time a new connection
//! uses it (IPVS's `ip_vs_conn_put`); when it runs out while connections it controls are still
//! alive (`n_control`), it is re-armed again instead of expiring. Templates count on their
//! destination as PersistConn, not as active or inactive connections.

use core::hash::BuildHasher;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::DestRt;

/// What a template is looked up by. `client` is masked; `vport` is 0 for port-0 and
/// firewall-mark services; `vaddr` is the mark (IPv4-mapped) for firewall-mark services;
/// `pe_data` is the persistence engine's key (the SIP Call-ID of a `--pe sip` service's
/// template, IPVS's `pe_data`, which its `ct_match` compares besides the rest).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TemplateKey {
    pub(crate) svc_id: u32,
    /// Protocol number (0, IPVS's `IPPROTO_IP`, for firewall-mark templates).
    pub(crate) proto: u8,
    pub(crate) v6: bool,
    pub(crate) client: [u8; 16],
    pub(crate) vaddr: [u8; 16],
    pub(crate) vport: u16,
    pub(crate) pe_data: Option<Arc<[u8]>>,
}

/// One persistence template.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) key: TemplateKey,
    pub(crate) dest: Arc<DestRt>,
    /// The destination port the template records (the real server's port, or 0 when the
    /// client's port is kept: port-0 and firewall-mark services).
    pub(crate) dport: u16,
    expires: AtomicU64,
    timeout_ms: u64,
    /// Connections this template controls (IPVS's `n_control`).
    n_control: AtomicU32,
}

impl Template {
    /// A template of `key` to `dest` (port `dport`) whose timer of `timeout_ms` starts at `now`.
    fn new(key: TemplateKey, dest: Arc<DestRt>, dport: u16, now: u64, timeout_ms: u64) -> Self {
        Template {
            key,
            dest,
            dport,
            expires: AtomicU64::new(now.saturating_add(timeout_ms)),
            timeout_ms,
            n_control: AtomicU32::new(0),
        }
    }

    /// When the template's timer runs out, in engine milliseconds.
    pub(crate) fn expires(&self) -> u64 {
        self.expires.load(Ordering::Relaxed)
    }

    /// Number of live connections controlled by this template.
    pub(crate) fn controlled(&self) -> u32 {
        self.n_control.load(Ordering::Relaxed)
    }

    /// A connection is now controlled by this template.
    pub(crate) fn control_add(&self) {
        self.n_control.fetch_add(1, Ordering::Relaxed);
    }

    /// A controlled connection went away (IPVS's `ip_vs_control_del`).
    pub(crate) fn control_del(&self) {
        let _ = self
            .n_control
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    fn rearm(&self, now: u64) {
        self.expires
            .store(now.saturating_add(self.timeout_ms), Ordering::Relaxed);
    }
}

/// One shard of the template table.
type TemplateShard = Mutex<HashMap<TemplateKey, Arc<Template>>>;

/// The template table, sharded by key hash.
#[derive(Debug)]
pub(crate) struct Templates {
    shards: Box<[TemplateShard]>,
    hasher: foldhash::fast::RandomState,
}

/// Applies a netmask given as 16 bytes (IPv4 masks IPv4-mapped) to a 16-byte address.
pub(crate) fn mask(addr: &[u8; 16], netmask: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, (a, m)) in out.iter_mut().zip(addr.iter().zip(netmask.iter())) {
        *o = a & m;
    }
    out
}

impl Templates {
    pub(crate) fn new(shards: usize) -> Self {
        Templates {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &TemplateKey) -> &TemplateShard {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// The live template of `key` whose destination passes `valid`, re-armed, or a new one to
    /// the destination `schedule` picks (`None` when it picks none). An invalid template is
    /// taken out of the table (IPVS's `ip_vs_check_template` unhashes it).
    pub(crate) fn get_or_schedule(
        &self,
        key: TemplateKey,
        now: u64,
        timeout_ms: u64,
        valid: impl Fn(&DestRt) -> bool,
        schedule: impl FnOnce() -> Option<(Arc<DestRt>, u16)>,
    ) -> Option<Arc<Template>> {
        let mut map = self.shard(&key).lock();
        if let Some(t) = map.get(&key) {
            let live = t.expires() > now || t.controlled() > 0;
            if live && valid(&t.dest) {
                t.rearm(now);
                return Some(t.clone());
            }
            if let Some(gone) = map.remove(&key) {
                gone.dest.unbind_template();
            }
        }
        let (dest, dport) = schedule()?;
        dest.bind_template();
        let t = Arc::new(Template::new(key.clone(), dest, dport, now, timeout_ms));
        map.insert(key, t.clone());
        Some(t)
    }

    /// Installs or refreshes a template received by connection synchronization.
    pub(crate) fn install(
        &self,
        key: TemplateKey,
        dest: Arc<DestRt>,
        dport: u16,
        now: u64,
        timeout_ms: u64,
    ) {
        let mut map = self.shard(&key).lock();
        if let Some(t) = map.get(&key) {
            if Arc::ptr_eq(&t.dest, &dest) && t.dport == dport {
                t.expires
                    .store(now.saturating_add(timeout_ms), Ordering::Relaxed);
                return;
            }
            if let Some(gone) = map.remove(&key) {
                gone.dest.unbind_template();
            }
        }
        dest.bind_template();
        let t = Arc::new(Template::new(key.clone(), dest, dport, now, timeout_ms));
        map.insert(key, t);
    }

    /// Template timeout in milliseconds.
    pub(crate) fn timeout_of(t: &Template) -> u64 {
        t.timeout_ms
    }

    /// Removes templates whose timer ran out and that control no connection; re-arms those
    /// that still control some (IPVS's `ip_vs_conn_expire` "expire_later").
    pub(crate) fn expire(&self, now: u64) {
        for s in self.shards.iter() {
            s.lock().retain(|_, t| {
                if t.expires() > now {
                    return true;
                }
                if t.controlled() > 0 {
                    t.rearm(now);
                    return true;
                }
                t.dest.unbind_template();
                false
            });
        }
    }

    /// Removes `t` if it still is its key's template and controls no connection (IPVS's
    /// `ip_vs_conn_del` of a template: one still in use is only re-armed).
    pub(crate) fn remove_if_idle(&self, t: &Arc<Template>, now: u64) {
        let mut map = self.shard(&t.key).lock();
        if !map.get(&t.key).is_some_and(|held| Arc::ptr_eq(held, t)) {
            return;
        }
        if t.controlled() > 0 {
            t.rearm(now);
        } else if let Some(gone) = map.remove(&t.key) {
            gone.dest.unbind_template();
        }
    }

    /// Number of template shards (listings walk them one at a time).
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The templates of one shard (none past the last), for listings in bounded steps.
    pub(crate) fn in_shard(&self, index: usize) -> Vec<Arc<Template>> {
        self.shards
            .get(index)
            .map(|s| s.lock().values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every template, for listings.
    pub(crate) fn all(&self) -> Vec<Arc<Template>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Number of templates.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
