//! Finding the workspace's binaries (rvsd, rvsadm, rvs-lab) from tests and the demo.

use std::path::PathBuf;

use crate::LabError;

/// The cargo package that builds binary `name`.
fn package_of(name: &str) -> &str {
    match name {
        "rvs-lab" => "rvs-lab",
        "rvsadm" => "rvsadm",
        "rvs-tunrs" => "rvs-tunrs",
        _ => "rvsd",
    }
}

/// The directories searched for binaries: `$RVS_BIN_DIR`, the current executable's directory and
/// that directory's parent (integration tests run from `target/<profile>/deps/`).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("RVS_BIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(parent) = dir.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    dirs
}

/// The path of binary `name`, or an error that says how to build it.
pub fn find_bin(name: &str) -> Result<PathBuf, LabError> {
    let searched = search_dirs();
    searched
        .iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| LabError::BinaryNotFound {
            name: name.to_string(),
            package: package_of(name).to_string(),
            searched,
        })
}

/// The path of binary `name` as [`find_bin`] finds it, or else the bare name (looked up in `PATH`
/// when run). Use [`find_bin`] for an error that names the fix.
pub fn bin_path(name: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|_| PathBuf::from(name))
}
