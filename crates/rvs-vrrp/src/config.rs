//! What one VRRP instance runs with (the protocol part of a `vrrp_instance` block).

use crate::codec::{Auth, Version, MAX_ADDRS, MAX_INTERVAL_V2_SECS, MAX_INTERVAL_V3_CENTIS};
use crate::error::ConfigError;
use std::net::IpAddr;
use std::time::Duration;

/// Priority of the address owner.
pub const PRIORITY_OWNER: u8 = 255;
/// Priority of a stopping master (release).
pub const PRIORITY_STOP: u8 = 0;
/// keepalived's default `priority`.
pub const DEFAULT_PRIORITY: u8 = 100;
/// keepalived's default `garp_master_delay`.
pub const DEFAULT_GARP_MASTER_DELAY: Duration = Duration::from_secs(5);
/// keepalived's default `garp_master_repeat`.
pub const DEFAULT_GARP_MASTER_REPEAT: u32 = 5;
/// keepalived's default `garp_master_refresh_repeat`.
pub const DEFAULT_GARP_REFRESH_REPEAT: u32 = 1;

/// State requested at start (`state MASTER|BACKUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER`: keepalived clears nopreempt/preempt_delay for it; it still starts as
    /// backup (full master-down interval) unless it owns the addresses (priority 255).
    Master,
    /// Start as backup and wait for the master-down interval (an owner too, as keepalived
    /// does outside `vrrp_strict`).
    Backup,
}

/// One VRRP instance's protocol settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Instance name (for events and notify scripts).
    pub name: String,
    /// Protocol version.
    pub version: Version,
    /// Virtual router id, 1-255.
    pub vrid: u8,
    /// Base priority, 1-255 (255 = address owner).
    pub priority: u8,
    /// `state`; `None` means MASTER for an owner and BACKUP otherwise (keepalived).
    pub initial_state: Option<InitialState>,
    /// `advert_int`: whole seconds in v2, multiples of 10 ms in v3.
    pub advert_interval: Duration,
    /// `nopreempt`.
    pub nopreempt: bool,
    /// `preempt_delay` (zero = none).
    pub preempt_delay: Duration,
    /// v2 authentication (PASS, AH, or none).
    pub auth: Auth,
    /// The instance's own primary address: the advert source, the v3 checksum input and the
    /// equal-priority tie breaker.
    pub src_ip: IpAddr,
    /// `virtual_ipaddress` (advertised).
    pub vips: Vec<IpAddr>,
    /// `virtual_ipaddress_excluded` (set on master, not advertised).
    pub excluded_vips: Vec<IpAddr>,
    /// `unicast_peer`: adverts go to each, and are accepted only from them. Empty = multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// `garp_master_delay`: the second gratuitous burst after becoming master.
    pub garp_master_delay: Duration,
    /// `garp_master_repeat`: gratuitous messages per burst.
    pub garp_master_repeat: u32,
    /// `garp_master_refresh`: periodic bursts while master (`None` = off).
    pub garp_master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval`: spacing of the messages within a burst.
    pub garp_interval: Duration,
    /// Gratuitous messages a master sends when it hears a lower-priority advert
    /// (keepalived's `garp_lower_prio_repeat`, default `garp_master_repeat`).
    pub garp_lower_prio_repeat: Option<u32>,
    /// keepalived's `lower_prio_no_advert`: when false (its default), a master answers a
    /// lower-priority advert with an immediate advert of its own.
    pub lower_prio_no_advert: bool,
}

impl InstanceConfig {
    /// A configuration with keepalived's defaults for the given identity.
    pub fn new(name: &str, version: Version, vrid: u8, src_ip: IpAddr, vips: Vec<IpAddr>) -> Self {
        InstanceConfig {
            name: name.to_string(),
            version,
            vrid,
            priority: DEFAULT_PRIORITY,
            initial_state: None,
            advert_interval: Duration::from_secs(1),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            auth: Auth::None,
            src_ip,
            vips,
            excluded_vips: Vec::new(),
            unicast_peers: Vec::new(),
            garp_master_delay: DEFAULT_GARP_MASTER_DELAY,
            garp_master_repeat: DEFAULT_GARP_MASTER_REPEAT,
            garp_master_refresh: None,
            garp_master_refresh_repeat: DEFAULT_GARP_REFRESH_REPEAT,
            garp_interval: Duration::ZERO,
            garp_lower_prio_repeat: None,
            lower_prio_no_advert: false,
        }
    }

    /// Whether the instance is the address owner (priority 255).
    pub fn is_owner(&self) -> bool {
        self.priority == PRIORITY_OWNER
    }

    /// The advert interval in wire units (seconds for v2, centiseconds for v3).
    pub fn interval_field(&self) -> u16 {
        match self.version {
            Version::V2 => self.advert_interval.as_secs().min(u64::from(u16::MAX)) as u16,
            Version::V3 => (self.advert_interval.as_millis() / 10).min(u128::from(u16::MAX)) as u16,
        }
    }

    /// The state the instance starts towards, after keepalived's rules.
    pub fn wanted_initial_state(&self) -> InitialState {
        match self.initial_state {
            Some(s) => s,
            None if self.is_owner() => InitialState::Master,
            None => InitialState::Backup,
        }
    }

    /// Checks the settings: ranges, families, and that the VIPs fit one advert.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority);
        }
        let ipv6 = self.src_ip.is_ipv6();
        if self.version == Version::V2 && ipv6 {
            return Err(ConfigError::V2OverIpv6);
        }
        let field = self.interval_field();
        let exact = match self.version {
            Version::V2 => {
                self.advert_interval.subsec_nanos() == 0 && field <= MAX_INTERVAL_V2_SECS
            }
            Version::V3 => {
                self.advert_interval.as_nanos() % 10_000_000 == 0 && field <= MAX_INTERVAL_V3_CENTIS
            }
        };
        if field == 0 || !exact {
            return Err(ConfigError::Interval(self.advert_interval));
        }
        if self.vips.len() > MAX_ADDRS {
            return Err(ConfigError::TooManyAddresses(self.vips.len()));
        }
        if self.version == Version::V3 && self.vips.is_empty() {
            return Err(ConfigError::NoVip);
        }
        if let Some(a) = self
            .vips
            .iter()
            .chain(&self.unicast_peers)
            .find(|a| a.is_ipv6() != ipv6)
        {
            return Err(ConfigError::Family(*a));
        }
        match self.auth {
            Auth::None => Ok(()),
            Auth::Pass(_) | Auth::Ah if self.version == Version::V3 => Err(ConfigError::AuthInV3),
            Auth::Pass(_) | Auth::Ah => Ok(()),
        }
    }
}
