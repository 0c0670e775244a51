//! BIRD 2 (Debian's bird2) in a lab namespace: started in the foreground with its configuration,
//! control socket and pid file in the lab's log directory, stopped at teardown; queried with
//! birdc.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{cmd, wait_for, Lab, LabError};

/// How long BIRD may take to open its control socket.
const BIRD_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running BIRD.
#[derive(Debug, Clone)]
pub struct Bird {
    /// Its pid (for [`Lab::kill`]).
    pub pid: u32,
    /// Its control socket (what rvsd's `--bird-socket` and birdc's `-s` take).
    pub socket: PathBuf,
}

impl Bird {
    /// Runs `birdc -s <socket> <args>` and returns its output; fails unless birdc succeeds.
    pub fn birdc(&self, args: &[&str]) -> Result<String, LabError> {
        let mut command = Command::new("birdc");
        command.arg("-s").arg(&self.socket).args(args);
        let out = cmd::run(&mut command)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Lab {
    /// Starts BIRD in `role`'s namespace with `conf` (written as `<name>.conf` in the log
    /// directory; its socket is `<name>.ctl` there) and waits (bounded) until the control
    /// socket answers.
    pub fn start_bird(&self, role: &str, name: &str, conf: &str) -> Result<Bird, LabError> {
        let conf_path = self.write_file(&format!("{name}.conf"), conf)?;
        let socket = self.log_dir().join(format!("{name}.ctl"));
        let _ = std::fs::remove_file(&socket);
        let (conf_arg, socket_arg) = (
            conf_path.display().to_string(),
            socket.display().to_string(),
        );
        let pid = self.spawn(role, &["bird", "-f", "-c", &conf_arg, "-s", &socket_arg])?;
        let bird = Bird { pid, socket };
        let ready = wait_for(BIRD_READY_TIMEOUT, || {
            self.exit_status(pid).is_some() || bird.birdc(&["show", "status"]).is_ok()
        });
        if let Some(status) = self.exit_status(pid) {
            return Err(LabError::DaemonExited {
                name: "bird".into(),
                status,
                log: self.log_of(pid),
            });
        }
        if ready.is_none() {
            return Err(LabError::Timeout {
                what: format!("BIRD's control socket {}", bird.socket.display()),
                after: BIRD_READY_TIMEOUT,
            });
        }
        Ok(bird)
    }
}
