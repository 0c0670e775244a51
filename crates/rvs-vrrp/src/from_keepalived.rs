//! Building an [`InstanceConfig`] from rvs-keepalived's parsed `vrrp_instance`.

use crate::codec::{Auth, Version};
use crate::config::{InitialState, InstanceConfig};
use crate::error::ConfigError;
use rvs_keepalived::vrrp::{VrrpInstance, VrrpState};
use std::net::IpAddr;
use std::time::Duration;

impl InstanceConfig {
    /// Converts a parsed `vrrp_instance`. `interface_addr` is the primary address of the
    /// instance's interface of the VIPs' family, used when neither `unicast_src_ip` nor
    /// `mcast_src_ip` is set. The version defaults to 3 for IPv6 VIPs and 2 otherwise
    /// (keepalived's default with no global `vrrp_version`). `nopreempt` and `preempt_delay`
    /// are kept as written; keepalived's start-up corrections to them are applied when the
    /// instance is created ([`crate::Instance::new`]).
    pub fn from_keepalived(
        vi: &VrrpInstance,
        interface_addr: Option<IpAddr>,
    ) -> Result<InstanceConfig, ConfigError> {
        let src_ip = vi
            .unicast_src_ip
            .or(vi.mcast_src_ip)
            .or(interface_addr)
            .ok_or(ConfigError::NoSource)?;
        let ipv6 = vi
            .virtual_ipaddress
            .first()
            .map(|v| v.addr.is_ipv6())
            .unwrap_or(src_ip.is_ipv6());
        let version = match vi.version {
            Some(3) => Version::V3,
            Some(_) if ipv6 => Version::V3,
            Some(_) => Version::V2,
            None if ipv6 => Version::V3,
            None => Version::V2,
        };
        let auth = match (&vi.authentication, version) {
            (None, _) | (Some(_), Version::V3) => Auth::None,
            (Some(a), Version::V2) => match a.auth_type.to_ascii_uppercase().as_str() {
                "PASS" if a.auth_pass.is_empty() => Auth::None,
                "PASS" => Auth::pass(&a.auth_pass),
                "AH" => Auth::Ah,
                other => return Err(ConfigError::AuthType(other.to_string())),
            },
        };
        let initial_state = vi.state.map(|s| match s {
            VrrpState::Master => InitialState::Master,
            VrrpState::Backup => InitialState::Backup,
        });
        let mut cfg = InstanceConfig::new(
            &vi.name,
            version,
            vi.virtual_router_id,
            src_ip,
            vi.virtual_ipaddress.iter().map(|v| v.addr).collect(),
        );
        cfg.priority = vi.priority;
        cfg.initial_state = initial_state;
        cfg.advert_interval = vi.advert_int;
        cfg.nopreempt = vi.nopreempt;
        cfg.preempt_delay = vi.preempt_delay.unwrap_or(Duration::ZERO);
        cfg.auth = auth;
        cfg.excluded_vips = vi
            .virtual_ipaddress_excluded
            .iter()
            .map(|v| v.addr)
            .collect();
        cfg.unicast_peers = vi.unicast_peer.clone();
        if let Some(d) = vi.garp_master_delay {
            cfg.garp_master_delay = d;
        }
        if let Some(r) = vi.garp_master_repeat {
            cfg.garp_master_repeat = r;
        }
        cfg.garp_master_refresh = vi.garp_master_refresh.filter(|d| !d.is_zero());
        if let Some(r) = vi.garp_master_refresh_repeat {
            cfg.garp_master_refresh_repeat = r;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}
