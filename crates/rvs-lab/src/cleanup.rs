//! Removing labs from outside the process that built them: `rvs-lab down` and `rvs-lab sweep`.

use crate::lab::{log_dir_for, parse_prefix};
use crate::{netns, LabError};

/// Where labs' control sockets live.
const SOCKET_DIR: &str = "/run/rvs";

/// The control socket path of the lab with this prefix (see [`crate::NatTopology::start_rvsd`]).
pub fn socket_path_for(prefix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(SOCKET_DIR).join(format!("{prefix}.sock"))
}

/// The control socket path of director `role` in a lab of several directors (HA, ECMP).
pub fn role_socket_path_for(prefix: &str, role: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(SOCKET_DIR).join(format!("{prefix}-{role}.sock"))
}

/// Removes the lab's control sockets: its own and its directors'.
fn remove_sockets(prefix: &str) {
    let _ = std::fs::remove_file(socket_path_for(prefix));
    let Ok(entries) = std::fs::read_dir(SOCKET_DIR) else {
        return;
    };
    let owned = format!("{prefix}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&owned) && name.ends_with(".sock") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes every namespace `<prefix>-*` (killing the processes in it) and the lab's files.
/// Returns the namespaces deleted.
pub fn down(prefix: &str) -> Result<Vec<String>, LabError> {
    if parse_prefix(prefix).is_none_or(|(parsed, _)| parsed != prefix) {
        return Err(LabError::Invalid {
            what: "lab prefix",
            detail: format!("{prefix:?} is not of the form rvs<tag>-<pid>-<n>"),
        });
    }
    let owned = format!("{prefix}-");
    let victims: Vec<String> = netns::list()?
        .into_iter()
        .filter(|name| name.starts_with(&owned))
        .collect();
    for name in &victims {
        netns::destroy(name);
    }
    remove_sockets(prefix);
    let _ = std::fs::remove_dir_all(log_dir_for(prefix));
    Ok(victims)
}

/// Tears down every lab whose creating process no longer exists (a test killed by a signal, a kept
/// demo). Returns the prefixes removed.
pub fn sweep() -> Result<Vec<String>, LabError> {
    let mut dead: Vec<String> = netns::list()?
        .iter()
        .filter_map(|name| parse_prefix(name))
        .filter(|(_, pid)| !netns::pid_alive(*pid))
        .map(|(prefix, _)| prefix)
        .collect();
    dead.sort();
    dead.dedup();
    for prefix in &dead {
        down(prefix)?;
    }
    Ok(dead)
}
