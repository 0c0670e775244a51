//! [`Lab`]: a set of network namespaces sharing one unique prefix, with the processes started in
//! them, torn down on [`Lab::teardown`] or on drop (so also when a test panics).

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::{cmd, netns, LabError};

/// Distinguishes the labs of one process.
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long [`Lab::probe_tcp`] waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A process the lab started.
#[derive(Debug)]
struct Tracked {
    child: Child,
    log: PathBuf,
}

/// What the lab created and must undo.
#[derive(Debug, Default)]
struct State {
    namespaces: Vec<String>,
    children: Vec<Tracked>,
    extra_files: Vec<PathBuf>,
    spawned: u32,
    finished: bool,
}

/// A group of network namespaces named `<prefix>-<role>` and the processes started in them.
///
/// The prefix is `rvs<tag>-<pid>-<n>` (tag: up to 8 lowercase letters/digits), unique per process
/// and lab, so tests can run in parallel, and `rvs-lab sweep` can tell whether its owner is dead.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    log_dir: PathBuf,
    state: Mutex<State>,
}

/// Splits a lab prefix `rvs<tag>-<pid>-<n>` (or a namespace name `<prefix>-<role>`) into the
/// prefix and the pid of the process that created it.
pub fn parse_prefix(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("rvs")?;
    let mut parts = rest.splitn(4, '-');
    let tag = parts.next()?;
    let pid = parts.next()?;
    let counter = parts.next()?;
    let tag_ok = tag.len() <= 8
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let counter_ok = !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit());
    if !tag_ok || !counter_ok {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    Some((format!("rvs{tag}-{pid}-{counter}"), pid))
}

/// Whether `role` is usable in a namespace name: 1 to 16 lowercase letters or digits.
fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 16
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Lab {
    /// A new, empty lab. `tag` (letters and digits are kept, at most 8) names it for humans.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .take(8)
            .collect();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rvs{tag}-{}-{n}", std::process::id());
        let log_dir = log_dir_for(&prefix);
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| LabError::io(format!("creating {}", log_dir.display()), e))?;
        Ok(Lab {
            prefix,
            log_dir,
            state: Mutex::new(State::default()),
        })
    }

    /// The unique prefix of this lab's namespaces (what `rvs-lab down` takes).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full namespace name for `role`, e.g. `rvsdemo-4242-0-client`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The namespaces created so far, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        self.state().namespaces.clone()
    }

    /// The directory holding the logs (stdout and stderr) of spawned processes.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates the namespace for `role` (with `lo` up and IPv6 DAD off) and returns its name.
    pub fn add_ns(&self, role: &str) -> Result<String, LabError> {
        if !valid_role(role) {
            return Err(LabError::Invalid {
                what: "role",
                detail: format!("{role:?}: use 1 to 16 lowercase letters or digits"),
            });
        }
        let name = self.ns(role);
        // Record first: a half-created namespace must be torn down too.
        self.state().namespaces.push(name.clone());
        netns::create(&name)?;
        Ok(name)
    }

    /// Registers a file (socket, pid file) to delete at teardown.
    pub fn remove_at_teardown(&self, path: impl Into<PathBuf>) {
        self.state().extra_files.push(path.into());
    }

    /// Runs `ip -n <ns> -batch -` with these lines (e.g. `addr add 10.0.0.1/24 dev eth0`).
    pub fn ip(&self, role: &str, lines: &[String]) -> Result<(), LabError> {
        cmd::ip_batch(Some(&self.ns(role)), lines)
    }

    /// Writes a sysctl (dotted key, e.g. `net.ipv4.ip_forward`) inside the namespace of `role`.
    pub fn sysctl(&self, role: &str, key: &str, value: &str) -> Result<(), LabError> {
        netns::set_sysctl(&self.ns(role), key, value)
    }

    /// Runs `args` inside the namespace of `role` (`ip netns exec`) and returns its output,
    /// whatever the exit status.
    pub fn exec(&self, role: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut command = self.command(role, args);
        cmd::output(&mut command)
    }

    /// Like [`Lab::exec`], but fails unless the command exits successfully.
    pub fn exec_ok(&self, role: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut command = self.command(role, args);
        cmd::run(&mut command)
    }

    /// Runs `sh -c script` inside the namespace of `role`; output whatever the exit status.
    pub fn sh(&self, role: &str, script: &str) -> Result<Output, LabError> {
        self.exec(role, &["sh", "-c", script])
    }

    /// The `ip netns exec <ns> args...` command, for callers that need to adjust it.
    pub fn command(&self, role: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(role)]).args(args);
        command
    }

    /// Starts `args` in the namespace of `role` in the background; stdout and stderr go to a log
    /// file in [`Lab::log_dir`]. The process is stopped at teardown. Returns its pid (`ip netns
    /// exec` execs the program, so this is the program's own pid).
    pub fn spawn(&self, role: &str, args: &[&str]) -> Result<u32, LabError> {
        let Some(program) = args.first() else {
            return Err(LabError::Invalid {
                what: "command",
                detail: "spawn needs at least a program".into(),
            });
        };
        let mut state = self.state();
        if state.finished {
            return Err(LabError::Invalid {
                what: "lab",
                detail: format!("{} is already torn down", self.prefix),
            });
        }
        state.spawned += 1;
        let base = Path::new(program)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = self
            .log_dir
            .join(format!("{role}-{}-{base}.log", state.spawned));
        let file = File::create(&log)
            .map_err(|e| LabError::io(format!("creating {}", log.display()), e))?;
        let err_file = file
            .try_clone()
            .map_err(|e| LabError::io("duplicating a log file", e))?;
        let mut command = self.command(role, args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file));
        let mut child = command.spawn().map_err(|source| LabError::Spawn {
            program: cmd::describe(&command),
            source,
        })?;
        let pid = child.id();
        // `ip netns exec` enters the namespace after the fork: wait until it has, so a teardown
        // (or `rvs-lab down`) that lists the namespace's processes right away finds this one.
        let ns = self.ns(role);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !netns::pid_in(&ns, pid)
            && matches!(child.try_wait(), Ok(None))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        state.children.push(Tracked { child, log });
        Ok(pid)
    }

    /// If the spawned process `pid` has exited, its exit status as text.
    pub fn exit_status(&self, pid: u32) -> Option<String> {
        let mut state = self.state();
        let tracked = state.children.iter_mut().find(|t| t.child.id() == pid)?;
        match tracked.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// The log (stdout and stderr) of the spawned process `pid`, empty if unknown.
    pub fn log_of(&self, pid: u32) -> String {
        let path = self
            .state()
            .children
            .iter()
            .find(|t| t.child.id() == pid)
            .map(|t| t.log.clone());
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Stops the spawned process `pid` (SIGTERM, then SIGKILL after a grace period) and forgets it.
    /// A pid the lab did not spawn is left alone.
    pub fn kill(&self, pid: u32) {
        let tracked = {
            let mut state = self.state();
            let index = state.children.iter().position(|t| t.child.id() == pid);
            index.map(|i| state.children.remove(i))
        };
        if let Some(tracked) = tracked {
            stop_all(vec![tracked.child]);
        }
    }

    /// Waits (polling every 50 ms, at most `limit`) until the spawned process `pid` exits;
    /// returns its exit status as text ([`Lab::exit_status`]), or `None` if it still runs.
    pub fn wait_exit(&self, pid: u32, limit: Duration) -> Option<String> {
        let mut status = None;
        wait_for(limit, || {
            status = self.exit_status(pid);
            status.is_some()
        });
        status
    }

    /// Writes `text` as the file `name` in [`Lab::log_dir`] and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, LabError> {
        let path = self.log_dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| LabError::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    /// Writes an executable shell script `name` in [`Lab::log_dir`] that appends its arguments
    /// (`"$@"`, one line per call) to `log`, as keepalived's notify scripts are tested; returns
    /// its path.
    pub fn write_notify_script(&self, name: &str, log: &Path) -> Result<PathBuf, LabError> {
        let path = self.write_file(
            name,
            &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(format!("making {} executable", path.display()), e))?;
        Ok(path)
    }

    /// Whether `ip` is configured on any interface in the namespace of `role`
    /// (`ip -j addr show`); `false` also when that cannot be read.
    pub fn has_addr(&self, role: &str, ip: IpAddr) -> bool {
        self.exec(role, &["ip", "-j", "addr", "show"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("\"local\":\"{ip}\"")))
            .unwrap_or(false)
    }

    /// The MAC address of interface `dev` in the namespace of `role`, as `ip` prints it
    /// (lowercase, colon-separated, e.g. `02:11:22:33:44:55`).
    pub fn mac_of(&self, role: &str, dev: &str) -> Result<String, LabError> {
        let out = self.exec_ok(role, &["cat", &format!("/sys/class/net/{dev}/address")])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// [`Lab::mac_of`] as bytes.
    pub fn mac_bytes(&self, role: &str, dev: &str) -> Result<[u8; 6], LabError> {
        let text = self.mac_of(role, dev)?;
        parse_mac(&text).ok_or_else(|| LabError::Invalid {
            what: "MAC address",
            detail: format!("{dev} in {}: {text:?}", self.ns(role)),
        })
    }

    /// Writes `conf` as `<role>-keepalived.conf` in [`Lab::log_dir`] and starts keepalived in
    /// VRRP-only mode (`-n -l -D -P`, pid files next to it) in the namespace of `role`; returns
    /// its (parent) pid.
    pub fn start_keepalived(&self, role: &str, conf: &str) -> Result<u32, LabError> {
        self.start_keepalived_as(role, conf, "keepalived", &["-P"], ("-r", "vrrp.pid"))
    }

    /// Starts keepalived's BFD process only (keepalived with a file of `bfd_instance`s and
    /// nothing else: no VRRP or checker child starts) in `role`'s namespace, in the foreground.
    pub fn start_keepalived_bfd(&self, role: &str, conf: &str) -> Result<u32, LabError> {
        self.start_keepalived_as(role, conf, "keepalived-bfd", &[], ("-b", "bfd.pid"))
    }

    /// Writes `conf` as `<role>-<name>.conf` and starts keepalived on it in the foreground
    /// (`-n -l -D`, then `mode`), its pid file and its child's (`child`: the option naming
    /// it, the file's extension) next to it; returns the parent's pid.
    fn start_keepalived_as(
        &self,
        role: &str,
        conf: &str,
        name: &str,
        mode: &[&str],
        (child_flag, child_ext): (&str, &str),
    ) -> Result<u32, LabError> {
        let conf_path = self.write_file(&format!("{role}-{name}.conf"), conf)?;
        let base = self.log_dir.join(format!("{role}-{name}"));
        let pid = base.with_extension("pid").display().to_string();
        let child = base.with_extension(child_ext).display().to_string();
        let c = conf_path.display().to_string();
        let mut args = vec!["keepalived", "-n", "-l", "-D"];
        args.extend_from_slice(mode);
        args.extend(["-f", &c, "-p", &pid, child_flag, &child]);
        self.spawn(role, &args)
    }

    /// Waits until a TCP connection to `addr` from the namespace of `role` succeeds.
    pub fn wait_tcp(
        &self,
        role: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let connected = self.try_in_netns(role, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })?;
            if connected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{addr} to accept connections in {}", self.ns(role)),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Checks that a TCP connection from the namespace `from` reaches address `ip` in the namespace
    /// `to` (a listener on an ephemeral port is opened there for the check). This is the lab's
    /// "ping": it needs no ping binary and also proves routing in both directions.
    pub fn probe_tcp(&self, from: &str, to: &str, ip: IpAddr) -> Result<(), LabError> {
        let listener = self
            .try_in_netns(to, || TcpListener::bind(SocketAddr::new(ip, 0)))?
            .map_err(|e| LabError::io(format!("listening on {ip} in {}", self.ns(to)), e))?;
        let target = listener
            .local_addr()
            .map_err(|e| LabError::io("reading a bound address", e))?;
        self.try_in_netns(from, || TcpStream::connect_timeout(&target, PROBE_TIMEOUT))?
            .map(drop)
            .map_err(|e| {
                LabError::io(
                    format!(
                        "connecting from {} to {target} in {}",
                        self.ns(from),
                        self.ns(to)
                    ),
                    e,
                )
            })
    }

    /// Runs `f` on a thread that has entered the namespace of `role` and returns its result;
    /// std sockets created in `f` live in that namespace.
    ///
    /// # Panics
    /// If the namespace cannot be entered (it does not exist); use [`Lab::try_in_netns`] to get an
    /// error instead. A panic in `f` is passed on.
    pub fn in_netns<T: Send>(&self, role: &str, f: impl FnOnce() -> T + Send) -> T {
        match self.try_in_netns(role, f) {
            Ok(value) => value,
            Err(e) => panic!("in_netns: {e}"),
        }
    }

    /// Like [`Lab::in_netns`], but reports a namespace that cannot be entered as an error.
    pub fn try_in_netns<T: Send>(
        &self,
        role: &str,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, LabError> {
        netns::in_netns(&self.ns(role), f)
    }

    /// Leaves everything running and in place (namespaces, processes, logs): drop and teardown do
    /// nothing afterwards. `rvs-lab down <prefix>` removes it later.
    pub fn keep(&mut self) {
        let mut state = self.state();
        state.finished = true;
        state.children.clear();
    }

    /// Stops spawned processes (SIGTERM, bounded wait, SIGKILL), kills anything else left in the
    /// namespaces, deletes them and the lab's files. Idempotent; also runs on drop.
    pub fn teardown(&mut self) {
        let (children, namespaces, files) = {
            let mut state = self.state();
            if state.finished {
                return;
            }
            state.finished = true;
            (
                std::mem::take(&mut state.children),
                std::mem::take(&mut state.namespaces),
                std::mem::take(&mut state.extra_files),
            )
        };
        stop_all(children.into_iter().map(|t| t.child).collect());
        for name in namespaces.iter().rev() {
            netns::destroy(name);
        }
        for file in files {
            let _ = std::fs::remove_file(file);
        }
        if std::env::var_os("RVS_LAB_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Polls `pred` (every 50 ms, at most `limit`) until it holds; returns the time it took, or
/// `None` if it never held.
pub fn wait_for(limit: Duration, mut pred: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if pred() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `aa:bb:cc:dd:ee:ff` to bytes; `None` unless it is exactly six hex octets.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Where the logs of the lab with this prefix go.
pub fn log_dir_for(prefix: &str) -> PathBuf {
    std::env::temp_dir().join("rvs-lab").join(prefix)
}

/// SIGTERMs all children, waits up to [`STOP_GRACE`] for them, SIGKILLs the rest and reaps them.
fn stop_all(mut children: Vec<Child>) {
    for child in &children {
        netns::signal(child.id(), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        children.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
        if children.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trips() {
        assert_eq!(
            parse_prefix("rvsdemo-4242-7-client"),
            Some(("rvsdemo-4242-7".to_string(), 4242))
        );
        assert_eq!(parse_prefix("rvs-17-0"), Some(("rvs-17-0".to_string(), 17)));
        assert_eq!(parse_prefix("rvsX-17-0-a"), None);
        assert_eq!(parse_prefix("other-17-0"), None);
        assert_eq!(parse_prefix("rvsa-x-0"), None);
        assert_eq!(parse_prefix("rvsa-1-"), None);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:09\n"), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(parse_mac("02:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:09:01"), None);
    }

    #[test]
    fn roles_are_checked() {
        assert!(valid_role("rs1"));
        assert!(!valid_role(""));
        assert!(!valid_role("a-b"));
        assert!(!valid_role("Director"));
    }
}
