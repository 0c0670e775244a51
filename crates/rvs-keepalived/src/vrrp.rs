//! VRRP specifications (`vrrp_script`, `vrrp_instance`, `vrrp_sync_group`): parsed and validated
//! here, run elsewhere.

use crate::diag::Span;
use crate::model::{Script, Setting};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// `vrrp_script NAME { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpScript {
    /// Its name.
    pub name: String,
    /// `script` (required).
    pub script: Vec<String>,
    /// `interval` (default 1 s).
    pub interval: Duration,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `weight N [reverse]` (-253..=253, default 0).
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// `rise` (default 1).
    pub rise: u32,
    /// `fall` (default 1).
    pub fall: u32,
    /// `user USER [GROUP]`.
    pub user: Option<String>,
    /// `init_fail`.
    pub init_fail: bool,
    /// Where it is.
    pub span: Span,
}

/// VRRP state requested at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    /// `MASTER`.
    Master,
    /// `BACKUP`.
    Backup,
}

/// VRRP authentication (`authentication { auth_type PASS|AH; auth_pass X }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpAuth {
    /// `PASS` or `AH`.
    pub auth_type: String,
    /// Password (first 8 bytes are used).
    pub auth_pass: String,
}

/// An address of `virtual_ipaddress`: `ADDR[/PREFIX] [brd X] [dev IF] [scope S] [label L] ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualIp {
    /// Address.
    pub addr: IpAddr,
    /// Prefix length (default 32/128).
    pub prefix: u8,
    /// `brd`.
    pub broadcast: Option<IpAddr>,
    /// `dev`.
    pub dev: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// Other options as written (`no_track`, `preferred_lft`, ...).
    pub options: Vec<String>,
    /// Where it is.
    pub span: Span,
}

/// A tracked interface or script with its optional weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// Interface or script name.
    pub name: String,
    /// `weight N`.
    pub weight: Option<i32>,
    /// `reverse`.
    pub reverse: bool,
}

/// The notify scripts of an instance or sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpNotify {
    /// `notify_master`.
    pub master: Option<Script>,
    /// `notify_backup`.
    pub backup: Option<Script>,
    /// `notify_fault`.
    pub fault: Option<Script>,
    /// `notify_stop`.
    pub stop: Option<Script>,
    /// `notify` (called with TYPE NAME STATE PRIORITY).
    pub any: Option<Script>,
}

/// `vrrp_instance NAME { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstance {
    /// Its name.
    pub name: String,
    /// `state MASTER|BACKUP`.
    pub state: Option<VrrpState>,
    /// `interface` (required).
    pub interface: String,
    /// `virtual_router_id` 1-255 (required).
    pub virtual_router_id: u8,
    /// `priority` 1-255 (default 100).
    pub priority: u8,
    /// `advert_int` (default 1 s).
    pub advert_int: Duration,
    /// `nopreempt`.
    pub nopreempt: bool,
    /// `preempt_delay`.
    pub preempt_delay: Option<Duration>,
    /// `authentication`.
    pub authentication: Option<VrrpAuth>,
    /// `virtual_ipaddress`.
    pub virtual_ipaddress: Vec<VirtualIp>,
    /// `virtual_ipaddress_excluded`.
    pub virtual_ipaddress_excluded: Vec<VirtualIp>,
    /// `unicast_src_ip`.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { }`.
    pub unicast_peer: Vec<IpAddr>,
    /// `mcast_src_ip`.
    pub mcast_src_ip: Option<IpAddr>,
    /// `track_interface { }`.
    pub track_interface: Vec<Tracked>,
    /// `track_script { }`.
    pub track_script: Vec<Tracked>,
    /// `track_bfd { }`: `bfd_instance`s whose session state the instance tracks.
    pub track_bfd: Vec<Tracked>,
    /// `garp_master_delay` (default 5 s).
    pub garp_master_delay: Option<Duration>,
    /// `garp_master_repeat`.
    pub garp_master_repeat: Option<u32>,
    /// `garp_master_refresh`.
    pub garp_master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub garp_master_refresh_repeat: Option<u32>,
    /// Notify scripts.
    pub notify: VrrpNotify,
    /// `smtp_alert`.
    pub smtp_alert: bool,
    /// `version 2|3` (default: global `vrrp_version`, else 2).
    pub version: Option<u8>,
    /// Other keepalived instance keywords, kept as written.
    pub other: Vec<Setting>,
    /// Where it is.
    pub span: Span,
}

/// `vrrp_sync_group NAME { group { ... } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpSyncGroup {
    /// Its name.
    pub name: String,
    /// Member instance names (`group { }`).
    pub group: Vec<String>,
    /// Notify scripts.
    pub notify: VrrpNotify,
    /// `smtp_alert`.
    pub smtp_alert: bool,
    /// `track_script { }`.
    pub track_script: Vec<Tracked>,
    /// `track_interface { }`.
    pub track_interface: Vec<Tracked>,
    /// `track_bfd { }`.
    pub track_bfd: Vec<Tracked>,
    /// Where it is.
    pub span: Span,
}

/// `bfd_instance NAME { }`: a BFD session (RFC 5880/5881) to one neighbour, as keepalived's BFD
/// process runs it; VRRP instances track it with `track_bfd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdInstance {
    /// Its name.
    pub name: String,
    /// `neighbor_ip` (required).
    pub neighbor: IpAddr,
    /// `source_ip`.
    pub source: Option<IpAddr>,
    /// `min_rx` (default 10 ms).
    pub min_rx: Duration,
    /// `min_tx` (default 10 ms).
    pub min_tx: Duration,
    /// `idle_tx` (default 1 s): the transmit interval while the session is not up.
    pub idle_tx: Duration,
    /// `multiplier` (default 5).
    pub multiplier: u8,
    /// `passive`: send nothing until the neighbour is heard.
    pub passive: bool,
    /// `ttl`/`hoplimit` sent (default 255).
    pub ttl: u8,
    /// `max_hops`: how much lower than 255 a received TTL may be (default 0).
    pub max_hops: u8,
    /// `weight` tracking VRRP instances apply by default (default 0: down means FAULT).
    pub weight: i32,
    /// Where it is.
    pub span: Span,
}

impl BfdInstance {
    /// This with its span blanked, to compare two loads of a file.
    pub fn placeless(&self) -> BfdInstance {
        BfdInstance {
            span: nowhere(),
            ..self.clone()
        }
    }

    /// A session to `neighbor` with keepalived's defaults.
    pub fn new(name: &str, neighbor: IpAddr, span: Span) -> BfdInstance {
        BfdInstance {
            name: name.to_string(),
            neighbor,
            source: None,
            min_rx: Duration::from_millis(10),
            min_tx: Duration::from_millis(10),
            idle_tx: Duration::from_secs(1),
            multiplier: 5,
            passive: false,
            ttl: 255,
            max_hops: 0,
            weight: 0,
            span,
        }
    }
}

/// The span every item gets in a placeless copy.
fn nowhere() -> Span {
    Span::new("", 0)
}

fn placeless_script(s: &Option<Script>) -> Option<Script> {
    s.as_ref().map(|s| Script {
        span: nowhere(),
        ..s.clone()
    })
}

fn placeless_vips(vips: &[VirtualIp]) -> Vec<VirtualIp> {
    vips.iter()
        .map(|v| VirtualIp {
            span: nowhere(),
            ..v.clone()
        })
        .collect()
}

impl VrrpNotify {
    /// This with every span blanked (see [`VrrpInstance::placeless`]).
    pub fn placeless(&self) -> VrrpNotify {
        VrrpNotify {
            master: placeless_script(&self.master),
            backup: placeless_script(&self.backup),
            fault: placeless_script(&self.fault),
            stop: placeless_script(&self.stop),
            any: placeless_script(&self.any),
        }
    }
}

impl VrrpScript {
    /// This with its span blanked (see [`VrrpInstance::placeless`]).
    pub fn placeless(&self) -> VrrpScript {
        VrrpScript {
            span: nowhere(),
            ..self.clone()
        }
    }
}

impl VrrpInstance {
    /// This with every span (its own, its addresses', scripts' and settings') blanked: two
    /// instances that configure the same thing compare equal however a reload moved them
    /// through the files.
    pub fn placeless(&self) -> VrrpInstance {
        VrrpInstance {
            virtual_ipaddress: placeless_vips(&self.virtual_ipaddress),
            virtual_ipaddress_excluded: placeless_vips(&self.virtual_ipaddress_excluded),
            notify: self.notify.placeless(),
            other: self
                .other
                .iter()
                .map(|s| Setting {
                    span: nowhere(),
                    ..s.clone()
                })
                .collect(),
            span: nowhere(),
            ..self.clone()
        }
    }
}

impl VrrpSyncGroup {
    /// This with every span blanked (see [`VrrpInstance::placeless`]).
    pub fn placeless(&self) -> VrrpSyncGroup {
        VrrpSyncGroup {
            notify: self.notify.placeless(),
            span: nowhere(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const VI: &str = "vrrp_script chk {\n  script \"/bin/true\"\n}\n\
                      vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
                      notify_master \"/bin/true master\"\n  track_script {\n    chk\n  }\n  \
                      virtual_ipaddress {\n    10.0.0.100/24 dev eth0\n  }\n}\n\
                      vrrp_sync_group G {\n  group {\n    VI_1\n  }\n  notify \"/bin/n\"\n}\n";

    fn parse(text: &str) -> crate::Config {
        let (config, report) = crate::parse_str(text, Path::new("k.conf"));
        assert!(!report.is_fatal(), "{report:?}");
        config
    }

    /// Placeless copies compare by what the items configure, not by where they stand.
    #[test]
    fn placeless_copies_ignore_lines_but_not_settings() {
        let before = parse(VI);
        let moved = parse(&format!("# moved\n\n{VI}"));
        assert_ne!(before.vrrp_instances, moved.vrrp_instances);
        let same = |a: &crate::Config, b: &crate::Config| {
            a.vrrp_instances[0].placeless() == b.vrrp_instances[0].placeless()
                && a.vrrp_sync_groups[0].placeless() == b.vrrp_sync_groups[0].placeless()
                && a.vrrp_scripts[0].placeless() == b.vrrp_scripts[0].placeless()
        };
        assert!(same(&before, &moved));
        let changed = parse(&VI.replace("10.0.0.100/24", "10.0.0.101/24"));
        assert!(!same(&before, &changed));
        let changed = parse(&VI.replace("/bin/n", "/bin/m"));
        assert!(!same(&before, &changed));
    }
}
