//! SNMP as keepalived offers it: an AgentX subagent (RFC 2741) of the host's snmpd (net-snmp,
//! `master agentx`) serving KEEPALIVED-MIB's VRRP and checker tables ([`mib`]), turned on by
//! keepalived.conf's `enable_snmp_vrrp`, `enable_snmp_checker` or `enable_snmp_keepalived`
//! (or `-x`/`--snmp`), at `snmp_socket` (default `/var/agentx/master`). A lost master is
//! reconnected every 5 s; each request is answered from the control socket's answers of that
//! moment.

pub mod agentx;
pub mod mib;

use std::path::PathBuf;
use std::time::Duration;

use rvs_api::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::control::server::{query, Shared};
use agentx::{pdu, Value};

/// Which tables to serve, and where the master listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpConfig {
    /// `enable_snmp_vrrp`: the VRRP tables.
    pub vrrp: bool,
    /// `enable_snmp_checker`: the virtual and real server tables.
    pub checker: bool,
    /// The master agent's AgentX socket.
    pub socket: PathBuf,
}

/// The master's default AgentX socket (net-snmp's).
pub const DEFAULT_SOCKET: &str = "/var/agentx/master";

impl SnmpConfig {
    /// What keepalived.conf's `global_defs` ask for (`None`: SNMP off), `all` with `-x`.
    pub fn from_globals(
        global: &rvs_keepalived::model::GlobalDefs,
        all: bool,
    ) -> Option<SnmpConfig> {
        let has = |k: &str| global.other.iter().any(|s| s.keyword == k);
        let both = all || has("enable_snmp_keepalived");
        let vrrp = both || has("enable_snmp_vrrp");
        let checker = both || has("enable_snmp_checker");
        if !vrrp && !checker {
            return None;
        }
        // `snmp_socket unix:PATH` or a bare path; other transports are not offered.
        let socket = global
            .other
            .iter()
            .find(|s| s.keyword == "snmp_socket")
            .and_then(|s| s.args.first())
            .map(|a| PathBuf::from(a.strip_prefix("unix:").unwrap_or(a)))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        Some(SnmpConfig {
            vrrp,
            checker,
            socket,
        })
    }
}

/// Serves the subagent until the runtime stops, reconnecting to a master that goes away.
pub async fn run(config: SnmpConfig, shared: Shared) {
    loop {
        match session(&config, &shared).await {
            Ok(()) => tracing::info!("SNMP: the master closed the AgentX session"),
            Err(e) => tracing::debug!(socket = %config.socket.display(), "SNMP: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn read_pdu(s: &mut UnixStream) -> std::io::Result<agentx::Pdu> {
    let mut header = [0u8; agentx::HEADER_LEN];
    s.read_exact(&mut header).await?;
    let len = agentx::payload_len(&header);
    if len > 1 << 20 {
        return Err(std::io::Error::other("AgentX PDU over 1 MiB"));
    }
    let mut bytes = header.to_vec();
    bytes.resize(agentx::HEADER_LEN + len, 0);
    s.read_exact(&mut bytes[agentx::HEADER_LEN..]).await?;
    agentx::decode(&bytes).map_err(std::io::Error::other)
}

/// One session with the master: open, register, answer.
async fn session(config: &SnmpConfig, shared: &Shared) -> std::io::Result<()> {
    let mut s = UnixStream::connect(&config.socket).await?;
    let mut packet = 1u32;
    let open = agentx::open_payload(5, "rvsd (KEEPALIVED-MIB)");
    s.write_all(&agentx::encode(pdu::OPEN, 0, 0, packet, &open))
        .await?;
    let opened = read_pdu(&mut s).await?;
    if agentx::response_error(&opened).map_err(std::io::Error::other)? != agentx::error::NONE {
        return Err(std::io::Error::other(
            "the master refused the AgentX session",
        ));
    }
    let sid = opened.session;
    let mut subtrees = Vec::new();
    if config.vrrp {
        subtrees.push(mib::vrrp_subtree());
    }
    if config.checker {
        subtrees.push(mib::check_subtree());
    }
    for subtree in &subtrees {
        packet += 1;
        let reg = agentx::register_payload(subtree);
        s.write_all(&agentx::encode(pdu::REGISTER, sid, 0, packet, &reg))
            .await?;
        let answer = read_pdu(&mut s).await?;
        if agentx::response_error(&answer).map_err(std::io::Error::other)? != agentx::error::NONE {
            return Err(std::io::Error::other("the master refused a registration"));
        }
    }
    tracing::info!(socket = %config.socket.display(), vrrp = config.vrrp, checker = config.checker,
        "SNMP: serving KEEPALIVED-MIB through the AgentX master");
    loop {
        let request = read_pdu(&mut s).await?;
        let payload = match request.kind {
            pdu::GET | pdu::GET_NEXT | pdu::GET_BULK => {
                let view = snapshot(config, shared).await;
                answer(&view, &request)
            }
            pdu::TEST_SET => agentx::response_payload(agentx::error::NOT_WRITABLE, 1, &[]),
            pdu::CLOSE => return Ok(()),
            _ => agentx::response_payload(agentx::error::NONE, 0, &[]),
        };
        let reply = agentx::encode(
            pdu::RESPONSE,
            request.session,
            request.transaction,
            request.packet,
            &payload,
        );
        s.write_all(&reply).await?;
    }
}

/// The tables now.
async fn snapshot(config: &SnmpConfig, shared: &Shared) -> mib::View {
    let vrrp = match query(shared, Command::GetVrrp).await {
        Reply::Vrrp(v) => v,
        _ => Vec::new(),
    };
    let services = match query(shared, Command::ListServices { service: None }).await {
        Reply::Services(v) => v,
        _ => Vec::new(),
    };
    let health = match query(shared, Command::GetHealth).await {
        Reply::Health(v) => v,
        _ => Vec::new(),
    };
    mib::view(config.vrrp, config.checker, &vrrp, &services, &health)
}

/// The Response payload to a Get, GetNext or GetBulk request over `view`.
fn answer(view: &mib::View, request: &agentx::Pdu) -> Vec<u8> {
    let Ok((non_repeaters, max_repetitions, ranges)) = agentx::read_ranges(request) else {
        return agentx::response_payload(agentx::error::NONE, 0, &[]);
    };
    let mut out: Vec<(Vec<u32>, Value)> = Vec::new();
    match request.kind {
        pdu::GET => {
            for r in &ranges {
                out.push((r.start.clone(), mib::get(view, &r.start)));
            }
        }
        pdu::GET_NEXT => {
            for r in &ranges {
                out.push(mib::next(view, &r.start, r.include, &r.end));
            }
        }
        _ => {
            let (single, repeating) = ranges.split_at((non_repeaters as usize).min(ranges.len()));
            for r in single {
                out.push(mib::next(view, &r.start, r.include, &r.end));
            }
            let mut cursors: Vec<(Vec<u32>, bool)> = repeating
                .iter()
                .map(|r| (r.start.clone(), r.include))
                .collect();
            for _ in 0..max_repetitions.max(1) {
                for (r, cursor) in repeating.iter().zip(cursors.iter_mut()) {
                    let (oid, value) = mib::next(view, &cursor.0, cursor.1, &r.end);
                    *cursor = (oid.clone(), false);
                    out.push((oid, value));
                }
            }
        }
    }
    agentx::response_payload(agentx::error::NONE, 0, &out)
}
