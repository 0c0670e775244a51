//! Requests a client sends to rvsd.

use crate::views::{
    DaemonConfig, DaemonRole, DestConfig, MarkRuleView, ServiceConfig, ServiceId, Timeouts,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One control request. Each is answered by exactly one [`crate::Reply`].
///
/// JSON is adjacently tagged: `{"cmd":"clear"}`, `{"cmd":"del_service","args":{...}}`.
/// Commands that change state answer [`crate::Reply::Ok`] or [`crate::Reply::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum Command {
    /// Add a virtual service (`ipvsadm -A`). Errors: `ServiceExists`, `NoScheduler`.
    AddService(ServiceConfig),
    /// Replace the settings of an existing service (`ipvsadm -E`); its real servers are kept.
    /// Errors: `NoService`, `NoScheduler`.
    EditService(ServiceConfig),
    /// Delete a virtual service and its real servers (`ipvsadm -D`). Errors: `NoService`.
    DelService(ServiceId),
    /// Delete every virtual service (`ipvsadm -C`).
    Clear,
    /// Add a real server to a service (`ipvsadm -a`). Errors: `NoService`, `DestExists`.
    AddDest {
        /// The service.
        service: ServiceId,
        /// The real server.
        dest: DestConfig,
    },
    /// Change a real server's settings (`ipvsadm -e`). Errors: `NoService`, `NoDest`.
    EditDest {
        /// The service.
        service: ServiceId,
        /// The real server's new settings; `addr` and `port` select it.
        dest: DestConfig,
    },
    /// Remove a real server from a service (`ipvsadm -d`). Errors: `NoService`, `NoDest`.
    DelDest {
        /// The service.
        service: ServiceId,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// Zero the counters of one service, or of all when `service` is `None` (`ipvsadm -Z`).
    Zero {
        /// The service, or `None` for all.
        service: Option<ServiceId>,
    },
    /// Set connection timeouts (`ipvsadm --set`); a 0 field leaves that timeout unchanged.
    SetTimeouts(Timeouts),
    /// Read the connection timeouts; answered with [`crate::Reply::Timeouts`].
    GetTimeouts,
    /// List services with their real servers and counters; answered with
    /// [`crate::Reply::Services`]. With `Some(id)` only that service (error `NoService` if absent).
    ListServices {
        /// The service, or `None` for all.
        service: Option<ServiceId>,
    },
    /// List the connection table; answered with [`crate::Reply::Connections`].
    ListConnections,
    /// Daemon and table information; answered with [`crate::Reply::Info`].
    GetInfo,
    /// Read the daemon's packet counters (connections, drops by reason, egress outcomes); answered
    /// with [`crate::Reply::Counters`]. An rvs extension (`rvsadm --counters`), not in ipvsadm.
    GetCounters,
    /// Append a classifier rule (`rvsadm --add-mark`, an rvs extension). Errors:
    /// `InvalidArgument` (a duplicate, a bad prefix or port range, mark 0).
    AddMarkRule(MarkRuleView),
    /// Remove a classifier rule (`rvsadm --del-mark`). Errors: `InvalidArgument` (no such rule).
    DelMarkRule(MarkRuleView),
    /// List the classifier rules in evaluation order; answered with
    /// [`crate::Reply::MarkRules`].
    ListMarkRules,
    /// Set one IPVS policy switch (`rvsadm --set-policy name=value`, an rvs extension): one of
    /// `conn_reuse_mode`, `expire_nodest_conn`, `expire_quiescent_template`, `sloppy_tcp`,
    /// `schedule_icmp`. Errors: `InvalidArgument`.
    SetPolicy {
        /// The switch.
        name: String,
        /// Its new value.
        value: u32,
    },
    /// Read the policy switches; answered with [`crate::Reply::Policy`].
    GetPolicy,
    /// Re-read the daemon's keepalived.conf (`rvsadm --reload`, an rvs extension; SIGHUP does
    /// the same). The file is validated first: on an error nothing changes and the error
    /// (`InvalidArgument`, with every `file:line` problem) is returned; otherwise only the
    /// differences are applied. Errors: `Unsupported` when rvsd runs without `-f`.
    Reload,
    /// Health-checker status of every real server (`rvsadm --health`, an rvs extension);
    /// answered with [`crate::Reply::Health`].
    GetHealth,
    /// Start a connection-synchronization daemon (`ipvsadm --start-daemon`). Errors:
    /// `InvalidArgument` (unknown interface, socket failure, one of that role runs already).
    StartDaemon(DaemonConfig),
    /// Stop the daemon of a role (`ipvsadm --stop-daemon`). Errors: `InvalidArgument` when none
    /// runs.
    StopDaemon(DaemonRole),
    /// The running daemons with their effective settings (`ipvsadm -L --daemon`); answered with
    /// [`crate::Reply::Daemons`].
    ListDaemons,
    /// The VRRP instances rvsd runs from its keepalived.conf (`rvsadm --vrrp`, an rvs
    /// extension); answered with [`crate::Reply::Vrrp`] (empty without VRRP instances).
    GetVrrp,
    /// The BFD sessions rvsd runs from its keepalived.conf's `bfd_instance`s (`rvsadm --bfd`,
    /// an rvs extension); answered with [`crate::Reply::Bfd`] (empty without sessions).
    GetBfd,
    /// Look for the classic misconfigurations of an LVS setup in what rvsd sees (`rvsadm
    /// --doctor`, an rvs extension); answered with [`crate::Reply::Doctor`] (empty: none seen).
    Doctor,
    /// Hand this rvsd's state to a successor (`rvsd --takeover`, an rvs extension; a graceful
    /// restart): forwarding stops, the configuration (as the commands that rebuild it) and the
    /// connection table (as sync records) are written to `path`, the answer is
    /// [`crate::Reply::HandedOver`], and then rvsd exits leaving its kernel state (the BPF
    /// program and its pins, the kernel-bypass rules) to the successor. Errors:
    /// `InvalidArgument` (the file cannot be created), `ResourceExhausted` (a handover is
    /// under way).
    Handover {
        /// The file to write (the successor reads and removes it).
        path: std::path::PathBuf,
    },
    /// Run several commands in order as one unit of work (`rvsadm -R`, restores): the answer is
    /// [`crate::Reply::Batch`] with one reply per command, and configuration side effects (the
    /// kernel-bypass rules) are applied once, after the last command. A failing command does not
    /// stop the ones after it. Listings and nested batches are refused inside a batch.
    Batch(Vec<Command>),
}

impl Command {
    /// Whether the command changes which traffic the director takes: services, real servers
    /// or mark rules (so rvsd's kernel-bypass rules must follow). A batch does when any of its
    /// commands does.
    pub fn changes_services(&self) -> bool {
        match self {
            Command::Batch(commands) => commands.iter().any(Command::changes_services),
            _ => matches!(
                self,
                Command::AddService(_)
                    | Command::EditService(_)
                    | Command::DelService(_)
                    | Command::Clear
                    | Command::AddDest { .. }
                    | Command::EditDest { .. }
                    | Command::DelDest { .. }
                    | Command::AddMarkRule(_)
                    | Command::DelMarkRule(_)
            ),
        }
    }

    /// Whether the command may run inside a [`Command::Batch`]: changes to services, real
    /// servers and mark rules, and to timeouts, policy and counters (what `rvsadm -R` sends).
    pub fn batchable(&self) -> bool {
        (!matches!(self, Command::Batch(_)) && self.changes_services())
            || matches!(
                self,
                Command::Zero { .. } | Command::SetTimeouts(_) | Command::SetPolicy { .. }
            )
    }
}
