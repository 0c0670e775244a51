//! Builds the BPF programs in `bpf/` with clang (`-target bpf`) into `OUT_DIR`.
//!
//! Without clang the crate still builds: the object is left empty and the loader reports
//! `Error::NotBuilt`, so rvsd falls back to its packet path (scripts/install-deps installs
//! clang and the libbpf headers).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let object = out.join("rvs_lb.o");
    // The whole directory: the program is rvs_lb.c and the headers it includes.
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=RVS_CLANG");
    let clang = std::env::var("RVS_CLANG").unwrap_or_else(|_| "clang".into());
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64-linux-gnu",
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "",
    };
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
        ])
        .arg(format!("-I/usr/include/{arch}"))
        .args(["-c", "bpf/rvs_lb.c", "-o"])
        .arg(&object)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to build bpf/rvs_lb.c ({s})"),
        Err(e) => {
            println!(
                "cargo:warning=rvs-bpf: {clang} not found ({e}); the BPF data plane is not built \
                 (scripts/install-deps installs clang and libbpf-dev)"
            );
            std::fs::write(&object, b"").expect("write empty object");
        }
    }
}
