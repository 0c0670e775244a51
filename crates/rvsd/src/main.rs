//! rvsd, the rvs director daemon.
//!
//! Runs the data plane (one worker thread per core, each with a packet socket per interface in a
//! fanout group), serves the ipvsadm-compatible control API on a Unix socket, and drives the
//! engine's timers, keepalived's services and checkers, VRRP and connection sync. This file
//! reads the command line; [`daemon::Daemon`] starts and stops the subsystems: `dataplane`,
//! `control`, `keepalived`, `vrrp`, `sync`. The packet logic is in `rvs-engine`, the OS calls
//! in `rvs-io`.

mod bfd;
mod bird;
mod clock;
mod control;
mod daemon;
mod dataplane;
mod handover;
mod keepalived;
mod snmp;
mod sync;
mod vrrp;
mod web;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Command-line options of rvsd.
#[derive(Debug, Parser)]
#[command(
    name = "rvsd",
    version,
    about = "rvs director: a userspace Linux Virtual Server"
)]
struct Args {
    /// Interface to run the data plane on (repeat for each interface, e.g. the outside and inside).
    /// Required, unless rvsd runs under the name `keepalived` (installed in keepalived's place,
    /// started by its unit or init script): then every interface that is up with an Ethernet
    /// address is used.
    #[arg(long = "interface", short = 'i', value_name = "IFNAME")]
    interfaces: Vec<String>,
    /// keepalived.conf to serve (services, real servers, health checkers); reloaded on SIGHUP
    /// and `rvsadm --reload`. Under the name `keepalived`, /etc/keepalived/keepalived.conf
    /// unless given, as keepalived.
    #[arg(long = "use-file", short = 'f', value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// keepalived's `-n`/`--dont-fork`: rvsd never forks; accepted so keepalived's unit and
    /// init scripts start it unchanged.
    #[arg(long = "dont-fork", short = 'n')]
    dont_fork: bool,
    /// keepalived's `-D`/`--log-detail`: accepted (rvsd's detail is set with RVS_LOG).
    #[arg(long = "log-detail", short = 'D')]
    log_detail: bool,
    /// keepalived's `-l`/`--log-console`: accepted (rvsd logs to standard error).
    #[arg(long = "log-console", short = 'l')]
    log_console: bool,
    /// keepalived's `-p`/`--pid`: write rvsd's pid to FILE (removed at exit), where tools
    /// that signal keepalived look for it (e.g. /run/keepalived.pid).
    #[arg(long = "pid", short = 'p', value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// keepalived's `-P`/`--vrrp`: run only the VRRP instances of the file given with -f.
    #[arg(long = "vrrp", short = 'P', conflicts_with = "check_only")]
    vrrp_only: bool,
    /// keepalived's `-C`/`--check`: run only the virtual servers and their checkers.
    #[arg(long = "check", short = 'C')]
    check_only: bool,
    /// keepalived's `-x`/`--snmp`: serve KEEPALIVED-MIB's tables through the host's snmpd
    /// (AgentX), as `enable_snmp_keepalived` in the file does.
    #[arg(long = "snmp", short = 'x')]
    snmp: bool,
    /// Check the file given with -f as `keepalived -t` does and exit 0 (valid) or 1.
    #[arg(long = "config-test", short = 't', requires = "config_file")]
    config_test: bool,
    /// Print the file given with -f as rvsd would apply it (services and real servers as
    /// `rvsadm -S -n` prints them, then policies, checkers and VRRP) and exit 0; a file rvsd
    /// would refuse prints its errors and exits 1. Nothing is started.
    #[arg(long = "dump-conf", short = 'd', requires = "config_file")]
    dump_conf: bool,
    /// keepalived's `-i`/`--config-id`: the id `@ID` and `@^ID` lines of the file with -f
    /// are matched against, and `${_INSTANCE}`; keepalived's default is the host name up to
    /// its first `.`.
    #[arg(long = "config-id", value_name = "ID")]
    config_id: Option<String>,
    /// Control socket path (several directors on one host need distinct paths).
    #[arg(long, default_value = rvs_api::DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,
    /// Apply an ipvsadm-save file (the format `rvsadm -S` prints) before serving.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Number of data-plane workers (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// The data plane: `auto` (the default: the BPF program at XDP where every interface's
    /// driver has native XDP with redirect, else at tc; the AF_PACKET workers when the program
    /// cannot start here, e.g. without a bpf filesystem for its pins; the choice is logged),
    /// `packet` (AF_PACKET workers running every packet through rvsd's engine), `tc` (the BPF
    /// program at tc ingress: any driver) or `xdp` (the BPF program at XDP). With the program
    /// rvsd is its control plane, and connections keep forwarding while rvsd restarts.
    #[arg(long, value_enum, default_value_t = dataplane::bpf::Mode::Auto)]
    dataplane: dataplane::bpf::Mode,
    /// Where the BPF data plane pins its maps: a directory on a bpf filesystem. A restarted
    /// rvsd adopts what it finds there; a clean stop removes it. Default:
    /// /sys/fs/bpf/rvs-<hash of the socket path>.
    #[arg(long, value_name = "DIR")]
    bpf_pin_dir: Option<PathBuf>,
    /// A graceful restart: take the state of the rvsd serving --socket over (its configuration,
    /// unless -f or --restore gives one, and its connections; with the BPF plane also the
    /// program and its pinned maps). That rvsd stops forwarding, hands over and exits; this one
    /// starts in its place. Without a running rvsd, starts afresh.
    #[arg(long)]
    takeover: bool,
    /// The engine's connection-table bound (0: none). Beyond it new connections are dropped
    /// (counter `table_full`), so a flood cannot grow rvsd's memory without end; a connection
    /// takes about 80 bytes of table (`cargo bench -p rvs-engine` prints the figure).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_connections: usize,
    /// How long the fragments of an incomplete datagram are kept, seconds (the kernel's
    /// net.ipv4.ipfrag_time). When the first fragment came, its sender then gets ICMP "fragment
    /// reassembly time exceeded".
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    ipfrag_time: u64,
    /// The most bytes incomplete datagrams may hold (the kernel's net.ipv4.ipfrag_high_thresh);
    /// fragments of new datagrams are refused above it (counter `reasm_memory_full`).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u64).range(65_536..=(1 << 30)))]
    ipfrag_high_thresh: u64,
    /// The BPF data plane's connection-table bound (each NAT connection takes two entries).
    /// The kernel reserves the table when rvsd starts: about 400 bytes per connection of the
    /// bound (some 400 MB for the default).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    bpf_max_connections: u32,
    /// The BPF data plane's bound on services (address services: firewall-mark and SCTP
    /// services are rvsd's own and do not count). While the program runs, an -A past it is
    /// refused; a deleted service keeps its place in the maps while connections or templates
    /// name it, and a publication that finds no room then leaves the new one out (logged).
    #[arg(long, value_name = "N", default_value_t = rvs_bpf::Limits::default().services,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    bpf_max_services: u32,
    /// The BPF data plane's bound on real servers over all services. While the program runs,
    /// an -a past it is refused; a removed server keeps its place in the maps while
    /// connections or templates name it, and a publication that finds no room then leaves
    /// the new one out (logged).
    #[arg(long, value_name = "N", default_value_t = rvs_bpf::Limits::default().dests,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    bpf_max_dests: u32,
    /// The BPF data plane's bound on services with a scheduler table: wrr (its sequence) and
    /// sh, dh, mh (their lookup tables), about 24 KB each, 24 MB for the default. While the
    /// program runs, an -A or -E past it is refused.
    #[arg(long, value_name = "N", default_value_t = rvs_bpf::Limits::default().tables,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    bpf_max_tables: u32,
    /// Size of the mh (Maglev) scheduler's lookup table, one of IPVS's primes 251, 509, 1021,
    /// 2039, 4093 (the default, as IPVS's CONFIG_IP_VS_MH_TAB_INDEX=12), 8191, 16381, 32749,
    /// 65521, 131071. Larger tables spread weights more finely (an rvs extension; IPVS fixes
    /// the size when the kernel is built).
    #[arg(long, value_name = "PRIME", default_value_t = rvs_engine::MH_DEFAULT_TABLE_SIZE,
          value_parser = parse_mh_table_size)]
    mh_table_size: u32,
    /// IPVS's conn_reuse_mode: 1 (default) reschedules a SYN that finds a TIME_WAIT/CLOSE
    /// connection, 2 also a FIN_WAIT direct-routing one, 3 both, 0 never. Settable at run time
    /// with `rvsadm --set-policy conn_reuse_mode=N`, as the switches below.
    #[arg(long, value_name = "N", default_value_t = 1)]
    conn_reuse_mode: u32,
    /// IPVS's expire_nodest_conn (0|1): a packet of a removed real server's connection expires
    /// the connection (it is dropped either way).
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    expire_nodest_conn: u32,
    /// IPVS's expire_quiescent_template (0|1): a persistence template whose real server has
    /// weight 0 is dropped at its next use, so the client is scheduled afresh.
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    expire_quiescent_template: u32,
    /// IPVS's sloppy_tcp (0|1): a TCP packet other than a SYN may create a connection.
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    sloppy_tcp: u32,
    /// IPVS's sloppy_sctp (0|1): an SCTP packet whose first chunk is not an INIT may create a
    /// connection.
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    sloppy_sctp: u32,
    /// IPVS's schedule_icmp (0|1): an ICMP error about a service's flow without a connection
    /// is scheduled like the flow's packet.
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    schedule_icmp: u32,
    /// SYN proxy (0|1, an rvs extension): new TCP connections to services whose real servers
    /// are all NAT or FULLNAT are answered by the director with SYN cookies and reach the real
    /// server only once the client has completed the handshake, so a spoofed SYN flood costs
    /// no memory and never reaches the real servers.
    #[arg(long, value_name = "0|1", default_value_t = 0)]
    syn_proxy: u32,
    /// IPVS's drop_entry (0-3): while memory is short (see --amemthresh), remove half-open
    /// and idle connections from the table, 1/32 of it each second. 0 never, 1 automatic
    /// (reads 2 while on), 3 always.
    #[arg(long, value_name = "0-3", default_value_t = 0)]
    drop_entry: u32,
    /// IPVS's drop_packet (0-3): while memory is short, drop new connections at a rate that
    /// grows as memory shrinks; 3 always drops one in --am-droprate.
    #[arg(long, value_name = "0-3", default_value_t = 0)]
    drop_packet: u32,
    /// IPVS's secure_tcp (0-3): while memory is short, a connection becomes ESTABLISHED only
    /// once its real server has answered (IPVS's stricter TCP state table).
    #[arg(long, value_name = "0-3", default_value_t = 0)]
    secure_tcp: u32,
    /// IPVS's amemthresh: the memory left, in 4 KiB pages, under which the automatic defence
    /// switches turn on. rvsd counts the smaller of the host's free memory and the room left
    /// in a bounded connection table (--max-connections, --bpf-max-connections).
    #[arg(long, value_name = "PAGES", default_value_t = 1024)]
    amemthresh: u32,
    /// IPVS's am_droprate: with --drop-packet 3, one new connection in this many is dropped.
    #[arg(long, value_name = "N", default_value_t = 10)]
    am_droprate: u32,
    /// Serve Prometheus metrics (`/metrics`, with node_exporter's IPVS names and the keepalived
    /// exporters' VRRP names) and a JSON API of rvsadm's views (`/api/v1/...`) over HTTP on
    /// ADDR, e.g. 127.0.0.1:9100. Off unless given.
    #[arg(long, value_name = "ADDR")]
    web_listen: Option<std::net::SocketAddr>,
    /// Announce the VIPs of the services that are up through BIRD, for ECMP over BGP: rvsd
    /// writes FILE (BIRD static protocols `rvs_vips4` and `rvs_vips6`, a blackhole /32 or /128
    /// route per VIP) and asks BIRD to `configure` on every change. A VIP is withdrawn when its
    /// last service loses keepalived's quorum or its last weighted real server, is removed, and
    /// when rvsd stops. BIRD's configuration includes FILE and exports those protocols.
    #[arg(long, value_name = "FILE")]
    bird_include: Option<PathBuf>,
    /// BIRD's control socket (with --bird-include).
    #[arg(long, value_name = "SOCKET", default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// Print the signal number of keepalived's function FUNC (STOP, RELOAD, DATA, STATS,
    /// STATS_CLEAR, JSON) and exit, as `keepalived --signum` does: SIGUSR1 writes
    /// /tmp/keepalived.data, SIGUSR2 /tmp/keepalived.stats, JSON's signal /tmp/keepalived.json.
    #[arg(long, value_name = "FUNC")]
    signum: Option<String>,
}

impl Args {
    /// The policy switches given on the command line.
    fn policy(&self) -> anyhow::Result<rvs_engine::Policy> {
        let mut p = rvs_engine::Policy::default();
        for (name, value) in [
            ("conn_reuse_mode", self.conn_reuse_mode),
            ("expire_nodest_conn", self.expire_nodest_conn),
            ("expire_quiescent_template", self.expire_quiescent_template),
            ("sloppy_tcp", self.sloppy_tcp),
            ("sloppy_sctp", self.sloppy_sctp),
            ("schedule_icmp", self.schedule_icmp),
            ("syn_proxy", self.syn_proxy),
            ("drop_entry", self.drop_entry),
            ("drop_packet", self.drop_packet),
            ("secure_tcp", self.secure_tcp),
            ("amemthresh", self.amemthresh),
            ("am_droprate", self.am_droprate),
        ] {
            p.set(name, value)
                .with_context(|| format!("--{}", name.replace('_', "-")))?;
        }
        Ok(p)
    }
}

/// A `--mh-table-size` that is not one of IPVS's primes.
#[derive(Debug, thiserror::Error)]
enum MhTableSizeError {
    /// Not a number.
    #[error("{0}")]
    NotANumber(#[from] std::num::ParseIntError),
    /// A number that is not one of [`rvs_engine::MH_TABLE_SIZES`].
    #[error("{0} is not an mh table size; use one of {sizes:?}", sizes = rvs_engine::MH_TABLE_SIZES)]
    NotATableSize(u32),
}

fn parse_mh_table_size(s: &str) -> Result<u32, MhTableSizeError> {
    let n: u32 = s.parse()?;
    if rvs_engine::MH_TABLE_SIZES.contains(&n) {
        Ok(n)
    } else {
        Err(MhTableSizeError::NotATableSize(n))
    }
}

/// `--signum=FUNC` (or `--signum FUNC`) as keepalived answers it: the signal number of one of
/// its functions (`STOP`, `RELOAD`, `DATA`, `STATS`, `STATS_CLEAR`, `JSON`), before anything
/// else is looked at. `None` when the option is absent.
fn signum(args: &[String]) -> Option<std::process::ExitCode> {
    let at = args
        .iter()
        .position(|a| a == "--signum" || a.starts_with("--signum="))?;
    let name = match args[at].strip_prefix("--signum=") {
        Some(name) => name.to_owned(),
        None => args.get(at + 1).cloned().unwrap_or_default(),
    };
    Some(match keepalived::dump::SignalFunc::from_name(&name) {
        Some(f) => {
            println!("{}", f.signal());
            std::process::ExitCode::SUCCESS
        }
        None => {
            eprintln!("Unknown sigfunc {name}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// `rvsd --generate-dist-files DIR` (hidden, for packaging): writes the man page `rvsd.8` and
/// the bash, zsh and fish completions, all generated from the command-line definition.
fn generate_dist_files(args: &[String]) -> Option<std::process::ExitCode> {
    let at = args.iter().position(|a| a == "--generate-dist-files")?;
    let dir = PathBuf::from(args.get(at + 1).cloned().unwrap_or_else(|| ".".into()));
    let written = (|| -> std::io::Result<()> {
        use clap::CommandFactory;
        std::fs::create_dir_all(&dir)?;
        let cmd = Args::command();
        let mut man = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .section("8")
            .render(&mut man)?;
        std::fs::write(dir.join("rvsd.8"), man)?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            clap_complete::generate_to(shell, &mut cmd.clone(), "rvsd", &dir)?;
        }
        Ok(())
    })();
    Some(match written {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: writing to {}: {e}", dir.display());
            std::process::ExitCode::FAILURE
        }
    })
}

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(code) = signum(&argv).or_else(|| generate_dist_files(&argv)) {
        return code;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    if let Err(e) = keepalived_defaults(&mut args) {
        eprintln!("rvsd: {e}");
        return std::process::ExitCode::from(2);
    }
    keepalived::load::set_subsystems(keepalived::load::Subsystems {
        vrrp: !args.check_only,
        lvs: !args.vrrp_only,
    });
    keepalived::load::set_options(rvs_keepalived::LoadOptions {
        instance: args.config_id.clone(),
        ..rvs_keepalived::LoadOptions::default()
    });
    if args.config_test {
        let ok = args
            .config_file
            .as_deref()
            .is_some_and(keepalived::load::check);
        return if ok {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        };
    }
    if args.dump_conf {
        return dump_conf(args.config_file.as_deref());
    }
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `rvsd --dump-conf -f FILE`: the lowered file on stdout (warnings on stderr), or its errors.
fn dump_conf(path: Option<&std::path::Path>) -> std::process::ExitCode {
    let Some(path) = path else {
        return std::process::ExitCode::FAILURE;
    };
    match keepalived::load::dump(path) {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// keepalived's configuration file when rvsd runs as keepalived without -f.
const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// Whether rvsd was started under the name `keepalived`.
fn invoked_as_keepalived() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == "keepalived"))
        .unwrap_or(false)
}

/// Fills in what keepalived assumes when rvsd runs in its place (the configuration file and,
/// with no -i, every Ethernet interface that is up), and checks that a daemon has interfaces.
fn keepalived_defaults(args: &mut Args) -> Result<(), String> {
    let as_keepalived = invoked_as_keepalived();
    if as_keepalived && args.config_file.is_none() {
        args.config_file = Some(PathBuf::from(KEEPALIVED_CONF));
    }
    if !args.interfaces.is_empty() || args.config_test || args.dump_conf {
        return Ok(());
    }
    if !as_keepalived {
        return Err("--interface is required (give each interface the data plane runs on)".into());
    }
    args.interfaces = ethernet_interfaces_up();
    if args.interfaces.is_empty() {
        return Err("no Ethernet interface is up (give them with --interface)".into());
    }
    tracing::info!(interfaces = ?args.interfaces, "running as keepalived: the data plane runs on every Ethernet interface that is up");
    Ok(())
}

/// The interfaces that are up and have an Ethernet link (sysfs `type` 1), by name.
fn ethernet_interfaces_up() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            read("type").trim() == "1" && read("operstate").trim() == "up"
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Writes rvsd's pid to `path` for the life of the value (keepalived's `-p`).
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: PathBuf) -> anyhow::Result<PidFile> {
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing the pid file {}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts the daemon, serves until SIGTERM or SIGINT, and stops it.
fn run(args: Args) -> anyhow::Result<()> {
    let _pid = args.pid_file.clone().map(PidFile::write).transpose()?;
    let options = daemon::Options {
        policy: args.policy()?,
        engine: rvs_engine::EngineConfig {
            mh_table_size: args.mh_table_size,
            max_connections: args.max_connections,
            reassembly: rvs_engine::ReasmLimits {
                max_bytes: args.ipfrag_high_thresh as usize,
                timeout_ms: args.ipfrag_time * 1000,
            },
            ..rvs_engine::EngineConfig::default()
        },
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        interfaces: args.interfaces,
        config_file: args.config_file,
        bpf_pin_dir: args.bpf_pin_dir.unwrap_or_else(|| {
            PathBuf::from(format!(
                "/sys/fs/bpf/{}",
                dataplane::bypass::tun_name(&args.socket)
            ))
        }),
        socket: args.socket,
        restore: args.restore,
        dataplane: args.dataplane,
        bpf_limits: rvs_bpf::Limits {
            connections: args.bpf_max_connections,
            services: args.bpf_max_services,
            dests: args.bpf_max_dests,
            tables: args.bpf_max_tables,
        },
        takeover: args.takeover,
        web_listen: args.web_listen,
        snmp: args.snmp,
        bird: args.bird_include.map(|include| bird::BirdSettings {
            include,
            socket: args.bird_socket,
        }),
    };
    let mut daemon = daemon::Daemon::start(options)?;
    // systemd's Type=notify (as keepalived's unit): started. Nothing to do outside systemd.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let served = daemon.serve();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    daemon.stop();
    Ok(served?)
}
