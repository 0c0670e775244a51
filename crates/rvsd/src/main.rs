//! rvsd, the rvs director daemon.
//!
//! Runs the data plane (one worker thread per core, each with a packet socket per interface in a
//! fanout group), serves the ipvsadm-compatible control API on a Unix socket, and drives the
//! engine's timers. All wiring lives here; the packet logic is in `rvs-engine`, the OS calls in
//! `rvs-io`.

mod clock;
mod control;
mod dataplane;
mod keepalived;
mod sync;
mod vrrp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    #[arg(
        long = "interface",
        short = 'i',
        required_unless_present_any = ["config_test", "dump_conf"],
        value_name = "IFNAME"
    )]
    interfaces: Vec<String>,
    /// keepalived.conf to serve (services, real servers, health checkers); reloaded on SIGHUP
    /// and `rvsadm --reload`.
    #[arg(long = "use-file", short = 'f', value_name = "FILE")]
    config_file: Option<PathBuf>,
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
        ] {
            p.set(name, value)
                .with_context(|| format!("--{}", name.replace('_', "-")))?;
        }
        Ok(p)
    }
}

/// How long rvsd waits at start for a peer's connection table before it starts VRRP (the
/// backup asks at once and again after 500 ms).
const RESYNC_BEFORE_VRRP: std::time::Duration = std::time::Duration::from_millis(1200);

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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
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
    // rvsd's own loading path, so the dump is what rvsd would apply (warnings are logged); a
    // VRRP interface this host lacks is logged, not refused: the file may be for another host.
    match keepalived::load::load_for_dump(path) {
        Ok(lowered) => {
            let format = rvsadm::Format {
                numeric: true,
                ..rvsadm::Format::default()
            };
            let save = rvsadm::render::save(
                &rvs_keepalived::dump::service_views(&lowered),
                &format,
                &rvsadm::StaticResolver::EMPTY,
            );
            print!("{}", rvs_keepalived::dump::render(&lowered, &save));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Attempts [`dataplane::bypass::Bypass::reattach`] makes before giving up (one second apart).
const REATTACH_ATTEMPTS: u32 = 5;

/// Re-attaches the kernel-bypass rules after `interface` came back, off the calling (data
/// plane) thread.
fn reattach_in_background(bypass: dataplane::bypass::Bypass, interface: &str) {
    let interface = interface.to_owned();
    let spawned = std::thread::Builder::new()
        .name("rvsd-reattach".into())
        .spawn(move || {
            for attempt in 1..=REATTACH_ATTEMPTS {
                match bypass.reattach() {
                    Ok(_) => return,
                    Err(e) => tracing::warn!(
                        interface,
                        attempt,
                        "re-attaching the kernel-bypass rules failed: {e}"
                    ),
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            tracing::error!(
                interface,
                "kernel-bypass rules not re-attached: the kernel may answer forwarded traffic \
                 on it until rvsd restarts"
            );
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the thread re-attaching the kernel-bypass rules: {e}");
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let clock = clock::Clock::new();
    let engine = Arc::new(rvs_engine::Engine::new(rvs_engine::EngineConfig {
        mh_table_size: args.mh_table_size,
        ..rvs_engine::EngineConfig::default()
    }));
    engine.set_policy(args.policy()?);
    // Read the keepalived.conf first: a broken file stops rvsd before it touches anything.
    let keepalived = match &args.config_file {
        Some(path) => Some((path.clone(), keepalived::load::load(path)?)),
        None => None,
    };

    // The control socket next: a second rvsd on the same socket stops here, naming the running
    // one, before it touches that one's TUN device and nftables table.
    let listener = control::server::bind(&args.socket)?;
    let net =
        rvs_io::NetState::start().context("reading the kernel's links, routes and neighbours")?;
    if let Some(path) = &args.restore {
        let applied = control::restore::apply_file(&engine, &net.local_addrs(), path)
            .with_context(|| format!("restoring {}", path.display()))?;
        tracing::info!(rules = applied, file = %path.display(), "restored ipvsadm-save rules");
    }
    // Local real servers: their packets go to the director's own stack through this device
    // (the kernel-bypass rules keep it from taking them off the wire). Gone when rvsd exits.
    let tun_name = dataplane::bypass::tun_name(&args.socket);
    let local = Arc::new(
        rvs_io::TunDevice::create(&tun_name)
            .with_context(|| format!("creating the local-delivery TUN device {tun_name}"))?,
    );
    let bypass = dataplane::bypass::Bypass::install(&args.socket, &args.interfaces)
        .context("installing nftables kernel-bypass rules")?;
    bypass.sync(&engine);

    let stop = Arc::new(AtomicBool::new(false));
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let plane = dataplane::DataPlane::start(
        engine.clone(),
        net.clone(),
        clock,
        &args.interfaces,
        local,
        workers,
        stop.clone(),
        {
            // A re-created interface may have lost its netdev chain: put the bypass rules
            // back, on a thread of its own (nft must not run on a data-plane worker), retrying
            // a failure.
            let bypass = bypass.clone();
            Arc::new(move |name: &str| reattach_in_background(bypass.clone(), name))
        },
    )
    .context("starting the data plane")?;
    let timer_thread = dataplane::timers::start(engine.clone(), clock, stop.clone())
        .context("starting the timer thread")?;
    tracing::info!(interfaces = ?args.interfaces, workers, socket = %args.socket.display(), "rvsd running");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let lvs_sync = keepalived
        .as_ref()
        .and_then(|(_, l)| l.global.lvs_sync_daemon.clone());
    let vrrp_specs = keepalived.as_ref().map(|(_, l)| l.clone());
    let health = keepalived.map(|(path, loaded)| {
        tracing::info!(file = %path.display(), "serving keepalived configuration");
        keepalived::health::Health::start(
            path,
            loaded,
            keepalived::health::Plumbing {
                engine: engine.clone(),
                bypass: bypass.clone(),
                net: net.clone(),
                clock,
            },
            runtime.handle().clone(),
        )
    });
    let sync = Arc::new(sync::SyncDaemons::new(engine.clone(), clock));
    // Before VRRP starts, so its first transition finds the daemon to promote.
    if let Some(d) = &lvs_sync {
        match sync.start_from_keepalived(d) {
            Ok(c) => {
                tracing::info!(interface = %c.mcast_interface, "lvs_sync_daemon: backup started")
            }
            Err(e) => tracing::warn!("lvs_sync_daemon: {e}"),
        }
        // Let a peer master answer the backup's resync request before VRRP may take the
        // VIPs (after the master-down interval, or at once for an address owner):
        // established connections must be known first.
        let has_vrrp = vrrp_specs
            .as_ref()
            .is_some_and(|l| !l.vrrp.instances.is_empty());
        if has_vrrp {
            let n = sync.wait_resync(RESYNC_BEFORE_VRRP);
            tracing::info!(
                connections = n,
                "lvs_sync_daemon: connection table received before VRRP start"
            );
        }
    }
    let vrrp = match &vrrp_specs {
        Some(l) => Some(Arc::new(vrrp::VrrpRuntime::start(l, sync.clone())?)),
        None => None,
    };
    let served = runtime.block_on(control::server::serve(
        listener,
        control::server::Shared {
            engine: engine.clone(),
            bypass: bypass.clone(),
            clock,
            egress: plane.counters.clone(),
            net: net.clone(),
            health: health.clone(),
            sync: sync.clone(),
            vrrp: vrrp.clone(),
        },
    ));
    if let Some(v) = &vrrp {
        v.shutdown();
    }
    if let Some(h) = &health {
        h.shutdown();
    }

    stop.store(true, Ordering::SeqCst);
    plane.join();
    let _ = timer_thread.join();
    bypass.remove();
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("rvsd stopped");
    served
}
