//! What one rvsadm invocation (or one restore line) asks for.

use rvs_api::{Command, ServiceId};

/// The typed result of parsing an ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-h`: print the usage text.
    Help,
    /// `-v`: print the version.
    Version,
    /// A command that changes the daemon's table (`-A -E -D -C -a -e -d -Z --set`).
    Apply(Command),
    /// `-L`/`-l` (or no arguments at all): list something.
    List(ListRequest),
    /// `-S`: print the table in ipvsadm-save format.
    Save(Format),
    /// `-R`: read ipvsadm-save lines from stdin and apply them.
    Restore,
    /// `--counters` (rvs extension): print rvsd's packet counters, one `name value` per line.
    Counters,
    /// `--list-marks` (rvs extension): the classifier rules as `--add-mark` lines.
    ListMarks,
    /// `--list-policy` (rvs extension): the IPVS policy switches, `name value` per line.
    ListPolicy,
    /// `--health` (rvs extension): the health checkers' status per real server.
    Health,
    /// `--vrrp` (rvs extension): the VRRP instances' state, priority, master and VIPs.
    Vrrp,
    /// `--bfd`: the BFD sessions (rvs extension).
    Bfd,
    /// `--doctor` (rvs extension): the classic misconfigurations rvsd sees signs of.
    Doctor,
}

/// What `-L` lists, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// What to list.
    pub target: ListTarget,
    /// Output options.
    pub format: Format,
}

/// The object of a list command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    /// The whole table, with the version header.
    All,
    /// One service (`-L -t addr:port`), without the version header.
    Service(ServiceId),
    /// The connection table (`-c`).
    Connections,
    /// The timeouts (`--timeout`).
    Timeouts,
    /// The connection-synchronization daemons (`--daemon`).
    Daemons,
}

/// ipvsadm's printing format flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    /// `-n`: numeric addresses and ports (rvsadm always prints numerically).
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact` / `-X`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
}
