//! Graceful restart: a running rvsd hands its state to its successor (`rvsd --takeover`), so an
//! upgrade or a restart with other options loses no established connection.
//!
//! The successor asks the running rvsd over the control socket ([`rvs_api::Command::Handover`]).
//! The running one stops forwarding (its packet workers, or its BPF plane's thread: the program
//! itself keeps forwarding with its pinned maps), writes its state to a file and answers, then
//! exits leaving its kernel state (the BPF program and pins, the kernel-bypass rules, which
//! keep the kernel from answering for the VIPs meanwhile). The successor waits for it to be
//! gone, starts as usual, applies the configuration it was handed unless `-f` or `--restore`
//! gives one, and installs the connections before its data plane starts (with `-f`, once the
//! keepalived services exist).
//!
//! The file: the line `rvs-handover 1`, one JSON line with the sender's pid and the
//! configuration as the commands that rebuild it (services and real servers, firewall-mark
//! rules, timeouts, policy switches), then the connection table and persistence templates as
//! IPVS sync messages (version 1, the format of the sync daemons), each preceded by its
//! length as a little-endian u32.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_api::{Command, Reply};
use rvs_engine::{Engine, Millis};
use rvs_sync::SyncConn;
use serde::{Deserialize, Serialize};

use crate::control::executor;

/// The file's first line.
const MAGIC: &str = "rvs-handover 1";
/// The sync messages' size limit in the file (the protocol's largest).
const MESSAGE_MAX: usize = 65_507;
/// How long the successor waits for the running rvsd to exit after it answered.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Why a handover failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Reading or writing the file failed.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The file is not a handover file of this version, or is damaged.
    #[error("{path} is not a handover file rvsd can read: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The running rvsd refused or failed.
    #[error("the running rvsd did not hand over: {0}")]
    Refused(String),
    /// The running rvsd answered but did not exit in time.
    #[error("rvsd {pid} handed over but did not exit within {EXIT_WAIT:?}")]
    StillRunning {
        /// Its pid.
        pid: u32,
    },
}

/// The first lines of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// The rvsd that wrote it.
    pid: u32,
    /// The configuration, as the commands that rebuild it.
    commands: Vec<Command>,
}

/// What a successor was handed.
#[derive(Debug, Default)]
pub struct Handed {
    /// The configuration, as the commands that rebuild it.
    pub commands: Vec<Command>,
    /// The connections and persistence templates.
    pub conns: Vec<SyncConn>,
}

/// The configuration of `engine` as the commands that rebuild it: services with their real
/// servers, firewall-mark rules, timeouts and the policy switches.
pub fn config_commands(engine: &Engine) -> Vec<Command> {
    let ask = |cmd| executor::execute(engine, &[], Millis(0), cmd);
    let mut out = Vec::new();
    if let Reply::Services(services) = ask(Command::ListServices { service: None }) {
        for s in services {
            let id = s.config.id;
            out.push(Command::AddService(s.config));
            out.extend(s.dests.into_iter().map(|d| Command::AddDest {
                service: id,
                dest: d.config,
            }));
        }
    }
    if let Reply::MarkRules(rules) = ask(Command::ListMarkRules) {
        out.extend(rules.into_iter().map(Command::AddMarkRule));
    }
    if let Reply::Timeouts(t) = ask(Command::GetTimeouts) {
        out.push(Command::SetTimeouts(t));
    }
    if let Reply::Policy(switches) = ask(Command::GetPolicy) {
        out.extend(switches.into_iter().map(|p| Command::SetPolicy {
            name: p.name,
            value: p.value,
        }));
    }
    out
}

/// Writes a handover file to `out`.
fn encode(out: &mut impl Write, header: &Header, conns: &[SyncConn]) -> std::io::Result<()> {
    writeln!(out, "{MAGIC}")?;
    serde_json::to_writer(&mut *out, header)?;
    writeln!(out)?;
    for message in rvs_sync::pack(conns, 0, MESSAGE_MAX) {
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&message)?;
    }
    out.flush()
}

/// Reads a handover file from `input`; `path` names it in errors.
fn decode(input: impl Read, path: &Path) -> Result<Handed, HandoverError> {
    let format = |why: String| HandoverError::Format {
        path: path.to_owned(),
        why,
    };
    let io = |error| HandoverError::Io {
        what: "reading",
        path: path.to_owned(),
        error,
    };
    let mut input = BufReader::new(input);
    let mut line = String::new();
    input.read_line(&mut line).map_err(io)?;
    if line.trim_end() != MAGIC {
        return Err(format(format!("first line {:?}", line.trim_end())));
    }
    line.clear();
    input.read_line(&mut line).map_err(io)?;
    let header: Header = serde_json::from_str(&line).map_err(|e| format(format!("header: {e}")))?;
    let mut conns = Vec::new();
    let mut len = [0u8; 4];
    loop {
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io(e)),
        }
        let n = u32::from_le_bytes(len) as usize;
        if n > MESSAGE_MAX {
            return Err(format(format!("a sync message of {n} bytes")));
        }
        let mut message = vec![0u8; n];
        input.read_exact(&mut message).map_err(io)?;
        match rvs_sync::parse(&message, 0) {
            Ok(rvs_sync::Message::Conns { conns: c, .. }) => conns.extend(c),
            Ok(_) => return Err(format("a sync message without connections".into())),
            Err(e) => return Err(format(format!("a sync message: {e}"))),
        }
    }
    Ok(Handed {
        commands: header.commands,
        conns,
    })
}

/// The running side's part: what it needs to stop forwarding and to exit afterwards.
pub struct Point {
    /// Stops forwarding and waits until it has stopped (packet workers joined, or the BPF
    /// plane's thread ended with the program left attached).
    stop_forwarding: Box<dyn Fn() + Send + Sync>,
    /// Set once a handover began: the stop that follows keeps the kernel state.
    begun: AtomicBool,
    /// Wakes the control loop, which then returns and rvsd exits.
    pub ended: tokio::sync::Notify,
}

impl std::fmt::Debug for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Point").field("begun", &self.begun).finish()
    }
}

impl Point {
    /// A handover point whose `stop_forwarding` stops the data plane.
    pub fn new(stop_forwarding: Box<dyn Fn() + Send + Sync>) -> Arc<Point> {
        Arc::new(Point {
            stop_forwarding,
            begun: AtomicBool::new(false),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// Whether this rvsd handed its state over (its stop then keeps the kernel state).
    pub fn handed_over(&self) -> bool {
        self.begun.load(Ordering::SeqCst)
    }

    /// [`Command::Handover`]: creates `path` (an error leaves everything running), stops
    /// forwarding, writes the configuration and the connection table, and answers. The
    /// caller wakes [`Point::ended`] once the answer is sent.
    pub fn hand_over(&self, engine: &Engine, now: Millis, path: &Path) -> Reply {
        let file = match std::fs::File::create(path) {
            Ok(f) => f,
            Err(e) => {
                return Reply::error(
                    rvs_api::ErrorKind::InvalidArgument,
                    format!("creating {}: {e}", path.display()),
                )
            }
        };
        if self.begun.swap(true, Ordering::SeqCst) {
            return Reply::error(
                rvs_api::ErrorKind::ResourceExhausted,
                "a handover is under way",
            );
        }
        (self.stop_forwarding)();
        let conns = engine.sync_snapshot(now);
        let header = Header {
            pid: std::process::id(),
            commands: config_commands(engine),
        };
        let mut out = std::io::BufWriter::new(file);
        if let Err(e) = encode(&mut out, &header, &conns) {
            // Forwarding is stopped already: exit anyway, leaving the kernel state, so the
            // successor starts (afresh, as it cannot read the file).
            tracing::error!("writing the handover file {}: {e}", path.display());
            return Reply::error(
                rvs_api::ErrorKind::Internal,
                format!("writing {}: {e}", path.display()),
            );
        }
        tracing::info!(file = %path.display(), connections = conns.len(),
            "state handed over: exiting for the successor");
        Reply::HandedOver {
            pid: header.pid,
            connections: conns.len() as u64,
        }
    }
}

/// Where the successor asks the running rvsd of `socket` to write.
pub fn file_for(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".handover");
    PathBuf::from(name)
}

/// Whether `pid` is gone (or a zombie its parent has not reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// The successor's part: asks the rvsd serving `socket` to hand over, waits until it has
/// exited, and reads what it wrote. `None` when no rvsd answers there (nothing to take over).
pub fn take(socket: &Path) -> Result<Option<Handed>, HandoverError> {
    let mut client = match rvs_api::Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(
                "--takeover: no rvsd at {} ({e}); starting afresh",
                socket.display()
            );
            return Ok(None);
        }
    };
    let path = file_for(socket);
    let reply = client
        .call(&Command::Handover { path: path.clone() })
        .map_err(|e| HandoverError::Refused(e.to_string()))?;
    let pid = match reply {
        Reply::HandedOver { pid, connections } => {
            tracing::info!(pid, connections, "--takeover: the running rvsd handed over");
            pid
        }
        Reply::Error(e) => return Err(HandoverError::Refused(e.message)),
        other => {
            return Err(HandoverError::Refused(format!(
                "unexpected answer {other:?}"
            )))
        }
    };
    drop(client);
    let deadline = Instant::now() + EXIT_WAIT;
    while !exited(pid) {
        if Instant::now() >= deadline {
            return Err(HandoverError::StillRunning { pid });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let file = std::fs::File::open(&path).map_err(|error| HandoverError::Io {
        what: "opening",
        path: path.clone(),
        error,
    })?;
    let handed = decode(file, &path)?;
    let _ = std::fs::remove_file(&path);
    Ok(Some(handed))
}

/// Applies the handed-over configuration to `engine` (the successor without `-f` or
/// `--restore`); returns how many commands failed (logged).
pub fn apply_config(
    engine: &Engine,
    local_addrs: &[std::net::IpAddr],
    commands: Vec<Command>,
) -> usize {
    let mut failed = 0;
    for cmd in commands {
        if let Reply::Error(e) = executor::execute(engine, local_addrs, Millis(0), cmd) {
            tracing::warn!(
                "--takeover: a handed-over setting was refused: {}",
                e.message
            );
            failed += 1;
        }
    }
    failed
}

/// Installs the handed-over connections and templates in `engine`; returns how many it took.
pub fn install_conns(engine: &Engine, now: Millis, conns: &[SyncConn]) -> usize {
    let taken = conns
        .iter()
        .filter(|rec| engine.sync_import(now, rec).is_ok())
        .count();
    if taken < conns.len() {
        tracing::warn!(
            "--takeover: {} handed-over connections had no service or real server here",
            conns.len() - taken
        );
    }
    tracing::info!(connections = taken, "--takeover: connections installed");
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cport: u16) -> SyncConn {
        SyncConn {
            protocol: 6,
            flags: rvs_sync::F_MASQ,
            state: 1,
            cport,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            addrs: rvs_sync::SyncAddrs::new(
                "192.168.1.2".parse().expect("ip"),
                "192.168.1.253".parse().expect("ip"),
                "10.10.10.2".parse().expect("ip"),
            )
            .expect("addresses"),
            seq: None,
            pe_data: None,
            pe_name: None,
            fnat_local: None,
        }
    }

    /// A file round-trips: the commands and every record (many messages' worth).
    #[test]
    fn file_round_trips() {
        let header = Header {
            pid: 42,
            commands: vec![Command::Clear, Command::GetTimeouts],
        };
        let conns: Vec<SyncConn> = (0..5000).map(|i| record(10_000 + i)).collect();
        let mut bytes = Vec::new();
        encode(&mut bytes, &header, &conns).expect("encode");
        let back = decode(&bytes[..], Path::new("test")).expect("decode");
        assert_eq!(back.commands, header.commands);
        assert_eq!(back.conns, conns);
    }

    /// A damaged file is an error naming what is wrong, never a panic.
    #[test]
    fn damaged_files_are_refused() {
        let mut bytes = Vec::new();
        encode(
            &mut bytes,
            &Header {
                pid: 1,
                commands: vec![],
            },
            &[record(1)],
        )
        .expect("encode");
        for cut in [0, 5, 20, bytes.len() - 3] {
            let r = decode(&bytes[..cut], Path::new("cut"));
            assert!(r.is_err(), "cut at {cut}");
        }
        let err = decode(&b"something else\n"[..], Path::new("x")).expect_err("magic");
        assert!(err.to_string().contains("first line"), "{err}");
    }
}
