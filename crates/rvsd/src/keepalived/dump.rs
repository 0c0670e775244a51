//! keepalived's operational dumps, which its exporters and operators' scripts read: on SIGUSR1
//! the data dump `/tmp/keepalived.data`, on SIGUSR2 the statistics `/tmp/keepalived.stats`, on
//! SIGRTMIN+2 the JSON dump `/tmp/keepalived.json`, on SIGRTMAX-1 the statistics cleared; and
//! `--signum=NAME`, which prints the signal of each (as `keepalived --signum` does), so tools
//! that ask keepalived which signal to send get rvsd's.
//!
//! The statistics and JSON dumps have keepalived 2.2.7's layout and field names for the VRRP
//! instances; the data dump has its sections for the VRRP instances and scripts, with the
//! lines rvsd knows (not keepalived's process and socket internals).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rvs_api::VrrpView;

/// One of keepalived's signal functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalFunc {
    /// `STOP`: SIGTERM.
    Stop,
    /// `RELOAD`: SIGHUP.
    Reload,
    /// `DATA`: SIGUSR1, the data dump.
    Data,
    /// `STATS`: SIGUSR2, the statistics dump.
    Stats,
    /// `STATS_CLEAR`: SIGRTMAX-1, the statistics zeroed.
    StatsClear,
    /// `JSON`: SIGRTMIN+2, the JSON dump.
    Json,
}

impl SignalFunc {
    /// The function `--signum` names (keepalived's words).
    pub fn from_name(name: &str) -> Option<SignalFunc> {
        Some(match name {
            "STOP" => SignalFunc::Stop,
            "RELOAD" => SignalFunc::Reload,
            "DATA" => SignalFunc::Data,
            "STATS" => SignalFunc::Stats,
            "STATS_CLEAR" => SignalFunc::StatsClear,
            "JSON" => SignalFunc::Json,
            _ => return None,
        })
    }

    /// Its signal number on this system.
    pub fn signal(self) -> i32 {
        match self {
            SignalFunc::Stop => libc::SIGTERM,
            SignalFunc::Reload => libc::SIGHUP,
            SignalFunc::Data => libc::SIGUSR1,
            SignalFunc::Stats => libc::SIGUSR2,
            SignalFunc::StatsClear => libc::SIGRTMAX() - 1,
            SignalFunc::Json => libc::SIGRTMIN() + 2,
        }
    }
}

/// Where keepalived 2.2.7 writes each dump.
pub const DATA_FILE: &str = "/tmp/keepalived.data";
/// The statistics dump's file.
pub const STATS_FILE: &str = "/tmp/keepalived.stats";
/// The JSON dump's file.
pub const JSON_FILE: &str = "/tmp/keepalived.json";

/// The statistics dump: one block per instance.
pub fn stats_text(instances: &[VrrpView]) -> String {
    let mut out = String::new();
    for v in instances {
        let s = &v.stats;
        let _ = write!(
            out,
            "VRRP Instance: {}\n  Advertisements:\n    Received: {}\n    Sent: {}\n  \
             Became master: {}\n  Released master: {}\n  Packet Errors:\n    Length: 0\n    \
             TTL: 0\n    Invalid Type: 0\n    Advertisement Interval: 0\n    Address List: 0\n  \
             Authentication Errors:\n    Invalid Type: 0\n    Type Mismatch: 0\n    Failure: 0\n  \
             Priority Zero:\n    Received: {}\n    Sent: {}\n",
            v.name,
            s.advert_rcvd,
            s.advert_sent,
            s.become_master,
            s.release_master,
            s.pri_zero_rcvd,
            s.pri_zero_sent,
        );
    }
    out
}

/// keepalived's number of a state (`VRRP_STATE_*`).
fn state_number(state: &str) -> u8 {
    match state {
        "BACKUP" => 1,
        "MASTER" => 2,
        "FAULT" => 3,
        "STOP" => 98,
        _ => 0,
    }
}

/// The data dump: global definitions, the VRRP topology and the tracked scripts.
pub fn data_text(router_id: &str, instances: &[VrrpView]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "------< Global definitions >------\n Router ID = {router_id}\n\
         ------< VRRP Topology >------\n"
    );
    for v in instances {
        let _ = write!(
            out,
            " VRRP Instance = {}\n   VRRP Version = {}\n   State = {}\n   Wantstate = {}\n   \
             Interface = {}\n   Virtual Router ID = {}\n   Priority = {}\n   \
             Effective priority = {}\n",
            v.name, v.version, v.state, v.state, v.interface, v.vrid, v.base_priority, v.priority,
        );
        if let Some(master) = v.master {
            let _ = writeln!(out, "   Master router = {master}");
        }
        let _ = writeln!(out, "   Virtual IP ({}):", v.vip_lines.len());
        for line in &v.vip_lines {
            let _ = writeln!(out, "     {line}");
        }
        if !v.scripts.is_empty() {
            out.push_str("   Tracked scripts :\n");
            for s in &v.scripts {
                let _ = writeln!(out, "     {}", s.name);
            }
        }
    }
    out.push_str("------< VRRP Scripts >------\n");
    let mut seen = std::collections::BTreeSet::new();
    for s in instances.iter().flat_map(|v| &v.scripts) {
        if !seen.insert(&s.name) {
            continue;
        }
        let _ = write!(
            out,
            " VRRP Script = {}\n   Status = {}\n   State = {}\n",
            s.name, s.status, s.state
        );
    }
    out
}

/// The JSON dump: an array of `{"data": {...}, "stats": {...}}`, keepalived's field names.
pub fn json_text(instances: &[VrrpView]) -> String {
    let all: Vec<serde_json::Value> = instances
        .iter()
        .map(|v| {
            serde_json::json!({
                "data": {
                    "iname": v.name,
                    "ifp_ifname": v.interface,
                    "vrid": v.vrid,
                    "base_priority": v.base_priority,
                    "effective_priority": v.priority,
                    "state": state_number(&v.state),
                    "wantstate": state_number(&v.state),
                    "version": v.version,
                    "vipset": v.vip_lines.iter().any(|l| l.ends_with(" set")),
                    "vips": v.vip_lines,
                },
                "stats": {
                    "advert_rcvd": v.stats.advert_rcvd,
                    "advert_sent": v.stats.advert_sent,
                    "become_master": v.stats.become_master,
                    "release_master": v.stats.release_master,
                    "packet_len_err": 0,
                    "advert_interval_err": 0,
                    "ip_ttl_err": 0,
                    "invalid_type_rcvd": 0,
                    "addr_list_err": 0,
                    "invalid_authtype": 0,
                    "authtype_mismatch": 0,
                    "auth_failure": 0,
                    "pri_zero_rcvd": v.stats.pri_zero_rcvd,
                    "pri_zero_sent": v.stats.pri_zero_sent,
                },
            })
        })
        .collect();
    let mut text = serde_json::Value::Array(all).to_string();
    text.push('\n');
    text
}

/// Writes `text` to `path` readable by root only, as keepalived does (a file of someone else's
/// is replaced, not followed).
pub fn write_dump(path: &Path, text: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{VrrpScriptView, VrrpStatsView};

    fn instance() -> VrrpView {
        VrrpView {
            name: "VI_1".into(),
            group: None,
            interface: "eth0".into(),
            vrid: 51,
            version: 2,
            state: "MASTER".into(),
            priority: 100,
            base_priority: 100,
            master: None,
            vips: vec!["10.0.0.100".parse().expect("vip")],
            stats: VrrpStatsView {
                advert_rcvd: 4,
                advert_sent: 3,
                become_master: 1,
                release_master: 0,
                pri_zero_rcvd: 0,
                pri_zero_sent: 0,
            },
            vip_lines: vec!["10.0.0.100/24 dev eth0 scope global set".into()],
            scripts: vec![VrrpScriptView {
                name: "chk".into(),
                status: "GOOD".into(),
                state: "idle".into(),
            }],
        }
    }

    /// The statistics dump of keepalived 2.2.7 for one instance, as it wrote it.
    #[test]
    fn stats_have_keepalived_s_layout() {
        let want = "VRRP Instance: VI_1\n  Advertisements:\n    Received: 4\n    Sent: 3\n  \
                    Became master: 1\n  Released master: 0\n  Packet Errors:\n    Length: 0\n    \
                    TTL: 0\n    Invalid Type: 0\n    Advertisement Interval: 0\n    Address List: 0\n  \
                    Authentication Errors:\n    Invalid Type: 0\n    Type Mismatch: 0\n    Failure: 0\n  \
                    Priority Zero:\n    Received: 0\n    Sent: 0\n";
        assert_eq!(stats_text(&[instance()]), want);
    }

    #[test]
    fn data_and_json_carry_what_exporters_read() {
        let data = data_text("lb1", &[instance()]);
        for line in [
            " VRRP Instance = VI_1",
            "   State = MASTER",
            "   Interface = eth0",
            "   Virtual Router ID = 51",
            "   Virtual IP (1):",
            "     10.0.0.100/24 dev eth0 scope global set",
            " VRRP Script = chk",
            "   Status = GOOD",
            "   State = idle",
        ] {
            assert!(data.lines().any(|l| l == line), "{line:?} in\n{data}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&json_text(&[instance()])).expect("JSON");
        assert_eq!(json[0]["data"]["state"], 2);
        assert_eq!(
            json[0]["data"]["vips"][0],
            "10.0.0.100/24 dev eth0 scope global set"
        );
        assert_eq!(json[0]["stats"]["advert_rcvd"], 4);
    }

    #[test]
    fn signal_numbers_are_keepalived_s() {
        assert_eq!(
            SignalFunc::from_name("DATA").map(SignalFunc::signal),
            Some(10)
        );
        assert_eq!(
            SignalFunc::from_name("STATS").map(SignalFunc::signal),
            Some(12)
        );
        assert_eq!(
            SignalFunc::from_name("RELOAD").map(SignalFunc::signal),
            Some(1)
        );
        assert_eq!(SignalFunc::from_name("TDATA"), None);
    }
}
