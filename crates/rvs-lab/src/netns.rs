//! Named network namespaces (`/run/netns/NAME`): create, list, find their processes, delete.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd;
use crate::LabError;

/// The file `ip netns` bind-mounts a named namespace on.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Creates the namespace `name`, brings up `lo` and switches off duplicate address detection so
/// IPv6 addresses added later are usable at once.
pub fn create(name: &str) -> Result<(), LabError> {
    cmd::run(Command::new("ip").args(["netns", "add", name]))?;
    cmd::ip_batch(Some(name), &["link set lo up".to_string()])?;
    for key in [
        "net.ipv6.conf.all.accept_dad",
        "net.ipv6.conf.default.accept_dad",
    ] {
        set_sysctl(name, key, "0")?;
    }
    Ok(())
}

/// Writes a sysctl (dotted `key`) as seen from inside namespace `name`.
pub fn set_sysctl(name: &str, key: &str, value: &str) -> Result<(), LabError> {
    let file = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    let value = value.to_string();
    in_netns(name, move || {
        std::fs::write(&file, value.as_bytes())
            .map_err(|e| LabError::io(format!("writing {}", file.display()), e))
    })?
}

/// Runs `f` on a new thread that has entered namespace `name`; sockets `f` creates live there.
/// A panic inside `f` is passed on to the caller.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    let ns_file = path(name);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<T, LabError> {
            let file = std::fs::File::open(&ns_file).map_err(|e| LabError::Netns {
                ns: name.to_string(),
                reason: format!("open {}: {e}", ns_file.display()),
            })?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                LabError::Netns {
                    ns: name.to_string(),
                    reason: format!("setns: {e}"),
                }
            })?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// The names of all named namespaces on this host.
pub fn list() -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("reading /run/netns", e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// The processes running in namespace `name` (empty if it does not exist).
pub fn pids(name: &str) -> Vec<u32> {
    let Ok(out) = cmd::output(Command::new("ip").args(["netns", "pids", name])) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Whether process `pid` lives in namespace `name` (compares the namespace inodes; false when
/// either is gone).
pub fn pid_in(name: &str, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = PathBuf::from("/proc").join(pid.to_string()).join("ns/net");
    match (std::fs::metadata(path(name)), std::fs::metadata(ns)) {
        (Ok(named), Ok(of_pid)) => named.dev() == of_pid.dev() && named.ino() == of_pid.ino(),
        _ => false,
    }
}

/// Whether a process with this pid exists and has not exited (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    let stat = PathBuf::from("/proc").join(pid.to_string()).join("stat");
    match std::fs::read_to_string(stat) {
        // The state letter follows the command name, which is in parentheses and may contain any
        // character, so look after the last ')'.
        Ok(text) => text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        if raw > 0 {
            let _ = kill(Pid::from_raw(raw), signal);
        }
    }
}

/// SIGKILLs every process in namespace `name`, waits (bounded) until they are gone, then deletes
/// the namespace. Errors are ignored: this is cleanup and must get as far as it can.
pub fn destroy(name: &str) {
    // A process may enter the namespace while the first ones are killed: look again, boundedly.
    for _ in 0..3 {
        let victims = pids(name);
        if victims.is_empty() {
            break;
        }
        for &pid in &victims {
            signal(pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while victims.iter().any(|&pid| pid_alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if exists(name) {
        let _ = cmd::output(Command::new("ip").args(["netns", "del", name]));
    }
}
