//! keepalived's notify scripts (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`): run as
//! written in the configuration (program and arguments, no arguments added), in the background,
//! killed after [`SCRIPT_TIMEOUT`]. Never blocks the caller.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a notify script may run before it is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `argv` in the background; `why` names the event in the log.
pub fn run(argv: &[String], why: &str) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(script = ?argv, "{why}: cannot run the notify script: {e}");
            return;
        }
    };
    tracing::info!(script = ?argv, "{why}: notify script started");
    let argv = argv.to_vec();
    let why = why.to_owned();
    let spawned = std::thread::Builder::new()
        .name("rvsd-notify".into())
        .spawn(move || {
            let deadline = Instant::now() + SCRIPT_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if !status.success() => {
                        tracing::warn!(script = ?argv, "{why}: notify script {status}");
                        return;
                    }
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() >= deadline => {
                        tracing::warn!(script = ?argv, "{why}: notify script timed out, killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("{e}: cannot watch a notify script");
    }
}
