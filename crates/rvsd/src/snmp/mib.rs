//! KEEPALIVED-MIB's tables (enterprises.9586.100.5) from what rvsd's control socket answers:
//! `vrrpInstanceTable` (keepalived.2.3), `virtualServerTable` (keepalived.3.3) and
//! `realServerTable` (keepalived.3.4), with the columns rvsd knows, as one ordered map from
//! object identifier to value (an SNMP view of a moment).

use std::collections::BTreeMap;
use std::net::IpAddr;

use rvs_api::{ForwardMethod, HealthView, ServiceId, ServiceView, VrrpView};

use super::agentx::Value;

/// KEEPALIVED-MIB's root: enterprises.debian(9586).project(100).keepalived(5).
pub const KEEPALIVED: [u32; 9] = [1, 3, 6, 1, 4, 1, 9586, 100, 5];

/// The subtree of the VRRP tables (`vrrp`).
pub fn vrrp_subtree() -> Vec<u32> {
    oid(&[2])
}

/// The subtree of the checker tables (`check`).
pub fn check_subtree() -> Vec<u32> {
    oid(&[3])
}

fn oid(tail: &[u32]) -> Vec<u32> {
    KEEPALIVED.iter().chain(tail).copied().collect()
}

/// One view of the tables.
pub type View = BTreeMap<Vec<u32>, Value>;

/// keepalived's `VrrpState` number.
fn vrrp_state(state: &str) -> i32 {
    match state {
        "INIT" => 0,
        "BACKUP" => 1,
        "MASTER" => 2,
        "FAULT" => 3,
        "STOP" => 5,
        _ => 4,
    }
}

/// `virtualServerLoadBalancingAlgo`.
fn algo(scheduler: &str) -> i32 {
    match scheduler {
        "rr" => 1,
        "wrr" => 2,
        "lc" => 3,
        "wlc" => 4,
        "lblc" => 5,
        "lblcr" => 6,
        "dh" => 7,
        "sh" => 8,
        "sed" => 9,
        "nq" => 10,
        "fo" => 11,
        "ovf" => 12,
        "mh" => 13,
        "twos" => 14,
        _ => 99,
    }
}

/// `InetAddressType` and `InetAddress` of `addr`.
fn inet(addr: IpAddr) -> (i32, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (1, a.octets().to_vec()),
        IpAddr::V6(a) => (2, a.octets().to_vec()),
    }
}

fn gauge(v: u64) -> Value {
    Value::Gauge32(u32::try_from(v).unwrap_or(u32::MAX))
}

fn counter32(v: u64) -> Value {
    Value::Counter32(v as u32)
}

/// Builds the view the enabled subsystems show (`vrrp`: VRRP tables, `check`: checker tables).
pub fn view(
    vrrp_on: bool,
    check_on: bool,
    vrrp: &[VrrpView],
    services: &[ServiceView],
    health: &[HealthView],
) -> View {
    let mut v = View::new();
    if vrrp_on {
        for (i, inst) in vrrp.iter().enumerate() {
            let idx = i as u32 + 1;
            let mut put = |col: u32, value: Value| {
                v.insert(oid(&[2, 3, 1, col, idx]), value);
            };
            put(1, Value::Integer(idx as i32));
            put(2, Value::Octets(inst.name.clone().into_bytes()));
            put(3, Value::Gauge32(u32::from(inst.vrid)));
            put(4, Value::Integer(vrrp_state(&inst.state)));
            put(6, Value::Integer(vrrp_state(&inst.state)));
            put(7, Value::Integer(i32::from(inst.base_priority)));
            put(8, Value::Integer(i32::from(inst.priority)));
            let all_set = inst.state == "MASTER";
            put(9, Value::Integer(if all_set { 1 } else { 2 }));
            put(10, Value::Octets(inst.interface.clone().into_bytes()));
        }
    }
    if check_on {
        for (i, s) in services.iter().enumerate() {
            let vs = i as u32 + 1;
            service_rows(&mut v, vs, s, health);
        }
    }
    v
}

/// A virtual server's row and its real servers' rows.
fn service_rows(v: &mut View, vs: u32, s: &ServiceView, health: &[HealthView]) {
    let mut put = |col: u32, value: Value| {
        v.insert(oid(&[3, 3, 1, col, vs]), value);
    };
    put(1, Value::Integer(vs as i32));
    let (kind, mark, addr, port, proto) = match s.config.id {
        ServiceId::Fwmark { mark, .. } => (1, mark, None, 0, 4),
        ServiceId::Tcp { addr, port } => (2, 0, Some(addr), port, 1),
        ServiceId::Udp { addr, port } => (2, 0, Some(addr), port, 2),
        ServiceId::Sctp { addr, port } => (2, 0, Some(addr), port, 3),
    };
    put(2, Value::Integer(kind));
    if kind == 1 {
        put(4, Value::Gauge32(mark));
    }
    if let Some(addr) = addr {
        let (t, bytes) = inet(addr);
        put(5, Value::Integer(t));
        put(6, Value::Octets(bytes));
        put(7, Value::Gauge32(u32::from(port)));
    }
    put(8, Value::Integer(proto));
    put(9, Value::Integer(algo(&s.config.scheduler)));
    let lb_kind = match s.dests.first().map(|d| d.config.method) {
        Some(ForwardMethod::Route) | Some(ForwardMethod::Local) => 2,
        Some(ForwardMethod::Tunnel) => 3,
        _ => 1,
    };
    put(10, Value::Integer(lb_kind));
    let alive = |d: &rvs_api::DestView| {
        let at = std::net::SocketAddr::new(d.config.addr, d.config.port);
        health
            .iter()
            .find(|h| h.service == s.config.id && h.dest == at)
            .map_or(d.config.weight > 0, |h| h.alive)
    };
    let up = s.dests.iter().filter(|d| alive(d)).count() as u32;
    put(11, Value::Integer(if up > 0 { 1 } else { 2 }));
    put(
        13,
        Value::Integer(if s.config.persistence.is_some() { 1 } else { 2 }),
    );
    if let Some(t) = s.config.persistence {
        put(14, Value::Gauge32(t));
    }
    put(20, Value::Gauge32(s.dests.len() as u32));
    put(21, Value::Gauge32(up));
    let st = &s.stats;
    put(27, gauge(st.conns));
    put(28, counter32(st.in_pkts));
    put(29, counter32(st.out_pkts));
    put(30, Value::Counter64(st.in_bytes));
    put(31, Value::Counter64(st.out_bytes));
    put(32, gauge(s.rates.cps));
    put(33, gauge(s.rates.in_pps));
    put(34, gauge(s.rates.out_pps));
    put(35, gauge(s.rates.in_bps));
    put(36, gauge(s.rates.out_bps));
    put(38, Value::Counter64(st.conns));
    put(39, Value::Counter64(st.in_pkts));
    put(40, Value::Counter64(st.out_pkts));
    for (j, d) in s.dests.iter().enumerate() {
        let rs = j as u32 + 1;
        let mut put = |col: u32, value: Value| {
            v.insert(oid(&[3, 4, 1, col, vs, rs]), value);
        };
        put(1, Value::Integer(rs as i32));
        put(2, Value::Integer(1));
        let (t, bytes) = inet(d.config.addr);
        put(3, Value::Integer(t));
        put(4, Value::Octets(bytes));
        put(5, Value::Gauge32(u32::from(d.config.port)));
        put(6, Value::Integer(if alive(d) { 1 } else { 2 }));
        put(
            7,
            Value::Integer(i32::try_from(d.config.weight).unwrap_or(i32::MAX)),
        );
        put(8, Value::Gauge32(d.config.u_threshold));
        put(9, Value::Gauge32(d.config.l_threshold));
        let st = &d.stats;
        put(14, gauge(st.conns));
        put(15, Value::Gauge32(d.active_conns));
        put(16, Value::Gauge32(d.inactive_conns));
        put(17, Value::Gauge32(d.persist_conns));
        put(18, counter32(st.in_pkts));
        put(19, counter32(st.out_pkts));
        put(20, Value::Counter64(st.in_bytes));
        put(21, Value::Counter64(st.out_bytes));
        put(22, gauge(d.rates.cps));
    }
}

/// The value at `oid`, or `NoSuchObject` (Get).
pub fn get(view: &View, oid: &[u32]) -> Value {
    view.get(oid).cloned().unwrap_or(Value::NoSuchObject)
}

/// The first object after `start` (or at it, with `include`) and before `end` (no end when
/// empty), or `start` with `EndOfMibView` (GetNext).
pub fn next(view: &View, start: &[u32], include: bool, end: &[u32]) -> (Vec<u32>, Value) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let from = if include {
        Included(start.to_vec())
    } else {
        Excluded(start.to_vec())
    };
    view.range((from, Unbounded))
        .next()
        .filter(|(k, _)| end.is_empty() || k.as_slice() < end)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap_or_else(|| (start.to_vec(), Value::EndOfMibView))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> View {
        let vrrp = vec![VrrpView {
            name: "VI_1".into(),
            group: None,
            interface: "eth0".into(),
            vrid: 51,
            version: 2,
            state: "MASTER".into(),
            priority: 150,
            base_priority: 100,
            master: None,
            vips: Vec::new(),
            stats: Default::default(),
            vip_lines: Vec::new(),
            scripts: Vec::new(),
        }];
        view(true, true, &vrrp, &[], &[])
    }

    #[test]
    fn rows_are_ordered_by_column_then_index_and_walk_in_order() {
        let v = table();
        assert_eq!(
            get(&v, &oid(&[2, 3, 1, 2, 1])),
            Value::Octets(b"VI_1".to_vec())
        );
        assert_eq!(get(&v, &oid(&[2, 3, 1, 4, 1])), Value::Integer(2));
        assert_eq!(get(&v, &oid(&[2, 3, 1, 4, 2])), Value::NoSuchObject);
        // GetNext from the table's root gives the first column's first row.
        let (first, _) = next(&v, &oid(&[2, 3]), false, &[]);
        assert_eq!(first, oid(&[2, 3, 1, 1, 1]));
        let (after, value) = next(&v, &first, false, &[]);
        assert_eq!(
            (after, value),
            (oid(&[2, 3, 1, 2, 1]), Value::Octets(b"VI_1".to_vec()))
        );
        // Past the end, and before a range's end.
        assert_eq!(next(&v, &oid(&[9]), false, &[]).1, Value::EndOfMibView);
        assert_eq!(
            next(&v, &oid(&[2, 3]), false, &oid(&[2, 3, 1, 1])).1,
            Value::EndOfMibView
        );
    }
}
