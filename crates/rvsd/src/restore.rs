//! `rvsd --restore FILE`: applies an ipvsadm-save file (the format `rvsadm -S` prints and
//! `ipvsadm-restore` reads) before the daemon starts serving. A bad line stops the start with the
//! file and line named.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use rvs_api::Reply;
use rvs_engine::{Engine, Millis};
use rvsadm::Action;

use crate::convert;

/// Applies every rule of `path`; returns how many were applied.
/// `local_addrs` are the director's own addresses (their real servers become `Local`).
pub fn apply_file(engine: &Engine, local_addrs: &[IpAddr], path: &Path) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut applied = 0;
    for (index, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), index + 1);
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| w.starts_with('#')) || words.is_empty() {
            continue;
        }
        if words
            .first()
            .is_some_and(|w| *w == "ipvsadm" || *w == "rvsadm")
        {
            words.remove(0);
        }
        let action = rvsadm::parse_restore_args(&words).map_err(|e| anyhow!("{}: {e}", at()))?;
        let Action::Apply(cmd) = action else {
            bail!(
                "{}: only rule commands (-A -E -a -e -d -D -C --set) belong in a rules file",
                at()
            );
        };
        if let Reply::Error(err) = convert::execute(engine, local_addrs, Millis(0), cmd) {
            bail!("{}: {}", at(), err);
        }
        applied += 1;
    }
    Ok(applied)
}
