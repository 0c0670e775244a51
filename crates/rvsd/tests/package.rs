//! The Debian package (needs cargo-deb, which scripts/install-deps installs, and the binaries
//! built): `scripts/build-deb --profile dev --no-build` packages the debug binaries and checks
//! the package's files, control fields and systemd unit (`systemd-analyze verify`).

use std::process::Command;

#[test]
fn the_package_builds_and_passes_its_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/build-deb"))
        .args(["--profile", "dev", "--no-build"])
        .current_dir(&root)
        .output()
        .expect("run scripts/build-deb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("package checks: ok"), "{stdout}\n{stderr}");
}
