//! Wiring between the two libraries: an rvs-vrrp [`InstanceConfig`] from rvs-keepalived's
//! parsed `vrrp_instance` (neither library knows the other).

use rvs_keepalived::vrrp::{VrrpInstance, VrrpState};
use rvs_vrrp::codec::{Auth, Version};
use rvs_vrrp::config::{InitialState, InstanceConfig};
use rvs_vrrp::ConfigError;
use std::net::IpAddr;
use std::time::Duration;

/// Converts a parsed `vrrp_instance`. `interface_addr` is the primary address of the
/// instance's interface of the VIPs' family, used when neither `unicast_src_ip` nor
/// `mcast_src_ip` is set. The version defaults to 3 for IPv6 VIPs and 2 otherwise
/// (keepalived's default with no global `vrrp_version`). `nopreempt` and `preempt_delay`
/// are kept as written; keepalived's start-up corrections to them are applied when the
/// instance is created ([`rvs_vrrp::Instance::new`]).
pub fn instance_config(
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

/// keepalived.conf `vrrp_instance` blocks as instance configurations (seed 002's pair).
#[cfg(test)]
mod tests {
    use super::*;
    use rvs_vrrp::Instance;
    use std::path::Path;
    use std::time::Instant;

    const CONF: &str = r#"
    vrrp_sync_group HK_GRP1 {
        group {
            LVS_WAN
            LVS_LAN
        }
    }
    vrrp_instance LVS_WAN {
        state MASTER
        interface eth0
        virtual_router_id 100
        priority 100
        advert_int 1
        nopreempt
        authentication {
            auth_type PASS
            auth_pass 1c7f545a
        }
        virtual_ipaddress {
            113.226.77.88
        }
    }
    vrrp_instance LVS_LAN {
        state BACKUP
        interface eth1
        virtual_router_id 100
        priority 99
        advert_int 1
        preempt_delay 5
        unicast_src_ip 192.168.168.1
        unicast_peer {
            192.168.168.2
        }
        authentication {
            auth_type PASS
            auth_pass 9aa614f7
        }
        virtual_ipaddress {
            192.168.168.11
        }
    }
    vrrp_instance V6 {
        interface eth1
        virtual_router_id 7
        priority 255
        advert_int 0.5
        virtual_ipaddress {
            fe80::7
        }
    }
    "#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn seed_002_instances_convert() {
        let (config, report) = rvs_keepalived::parse_str(CONF, Path::new("keepalived.conf"));
        // keepalived 2.2.7 reports seed 002's `nopreempt` with `state MASTER` (and runs): the one
        // error of this file, and not one that stops it.
        assert!(!report.is_fatal(), "{report:?}");
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].ends_with("nopreempt will not work with initial state MASTER - clearing"),
            "{errors:?}"
        );
        let wan = instance_config(&config.vrrp_instances[0], Some(ip("113.226.77.1"))).unwrap();
        assert_eq!(wan.version, Version::V2);
        assert_eq!(wan.vrid, 100);
        assert_eq!(wan.initial_state, Some(InitialState::Master));
        assert_eq!(wan.auth, Auth::pass("1c7f545a"));
        assert_eq!(wan.vips, vec![ip("113.226.77.88")]);
        assert_eq!(wan.src_ip, ip("113.226.77.1"));
        // keepalived clears nopreempt for state MASTER: rvs-keepalived's fix-up already did, and
        // the instance would clear it again if a configuration still had it.
        assert!(!wan.nopreempt);
        let now = Instant::now();
        let created = Instance::new(wan.clone(), now).unwrap();
        assert!(!created.config().nopreempt);
        assert_eq!(created.config().preempt_delay, Duration::ZERO);

        let lan = instance_config(&config.vrrp_instances[1], None).unwrap();
        assert_eq!(lan.src_ip, ip("192.168.168.1"));
        assert_eq!(lan.unicast_peers, vec![ip("192.168.168.2")]);
        assert_eq!(lan.preempt_delay, Duration::from_secs(5));
        let created = Instance::new(lan.clone(), now).unwrap();
        assert_eq!(created.config().preempt_delay, Duration::from_secs(5));
        // nopreempt makes preempt_delay moot: keepalived clears it.
        let mut lan_nopreempt = lan.clone();
        lan_nopreempt.nopreempt = true;
        let created = Instance::new(lan_nopreempt, now).unwrap();
        assert!(created.config().nopreempt);
        assert_eq!(created.config().preempt_delay, Duration::ZERO);
        assert_eq!(lan.priority, 99);

        let v6 = instance_config(&config.vrrp_instances[2], Some(ip("fe80::1"))).unwrap();
        assert_eq!(v6.version, Version::V3);
        assert_eq!(v6.interval_field(), 50);
        assert!(v6.is_owner());

        assert_eq!(
            instance_config(&config.vrrp_instances[0], None),
            Err(ConfigError::NoSource)
        );
    }
}
