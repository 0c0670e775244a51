//! Every fuzz target in CI, without AFL: its seed corpus (fuzz/corpus/<target>/), then a short
//! deterministic mutation loop from those seeds (RVS_FUZZ_SMOKE_ITERS inputs, default 3000,
//! stopping early after RVS_FUZZ_SMOKE_SECS seconds, default 3). `RVS_FUZZ_REPLAY=target:file`
//! runs one file through one target (the ignored `replay` test, run with `-- --ignored`), e.g. a
//! crash AFL found.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rvs_fuzz::mutate::{mutate, Rng};

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let seeds: Vec<_> = files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("seed");
            (p, bytes)
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn smoke(name: &str) {
    let target = rvs_fuzz::target(name).expect("target").run;
    let seeds = corpus(name);
    for (path, bytes) in &seeds {
        eprintln!("{name}: {}", path.display());
        target(bytes);
    }
    let iters = env_or("RVS_FUZZ_SMOKE_ITERS", 3000);
    let deadline = Instant::now() + Duration::from_secs(env_or("RVS_FUZZ_SMOKE_SECS", 3));
    let max_len = seeds.iter().map(|s| s.1.len()).max().unwrap_or(0) * 2 + 64;
    let mut rng = Rng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let mut done = 0;
    while done < iters && Instant::now() < deadline {
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        let other = &seeds[rng.below(seeds.len())].1;
        mutate(&mut rng, &mut input, other, max_len);
        let hook = std::panic::catch_unwind(|| target(&input));
        if let Err(e) = hook {
            let out = std::env::temp_dir().join(format!("rvs-fuzz-{name}-{done}"));
            std::fs::write(&out, &input).expect("write the failing input");
            eprintln!("{name}: input {done} failed, saved as {}", out.display());
            std::panic::resume_unwind(e);
        }
        done += 1;
    }
    eprintln!("{name}: {} seeds, {done} mutated inputs", seeds.len());
}

#[test]
fn wire() {
    smoke("wire");
}

#[test]
fn engine() {
    smoke("engine");
}

#[test]
fn keepalived() {
    smoke("keepalived");
}

#[test]
fn rvsadm_args() {
    smoke("rvsadm_args");
}

#[test]
fn rvsadm_restore() {
    smoke("rvsadm_restore");
}

#[test]
fn api() {
    smoke("api");
}

#[test]
fn vrrp() {
    smoke("vrrp");
}

#[test]
fn sync() {
    smoke("sync");
}

#[test]
fn every_target_has_a_smoke_test() {
    let here = include_str!("smoke.rs");
    for t in rvs_fuzz::TARGETS {
        assert!(
            here.contains(&format!("smoke(\"{}\")", t.name)),
            "{}",
            t.name
        );
    }
}

/// A tool, not a check: runs one input through one target (`RVS_FUZZ_REPLAY=target:file`).
#[test]
#[ignore = "a tool: RVS_FUZZ_REPLAY=target:file cargo test -p rvs-fuzz --test smoke replay -- --ignored"]
fn replay() {
    let spec = std::env::var("RVS_FUZZ_REPLAY").expect("RVS_FUZZ_REPLAY=target:file");
    let (name, file) = spec.split_once(':').expect("RVS_FUZZ_REPLAY=target:file");
    let target = rvs_fuzz::target(name).expect("known target").run;
    // Cargo runs tests in fuzz/: a relative path is taken from the workspace root too.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let bytes = std::fs::read(file).or_else(|_| std::fs::read(root));
    target(&bytes.expect("input file"));
}
