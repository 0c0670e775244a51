//! `rvsd --restore FILE`: applies an ipvsadm-save file (the format `rvsadm -S` prints and
//! `ipvsadm-restore` reads) before the daemon starts serving. A bad line stops the start with the
//! file and line named.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use rvs_api::Reply;
use rvs_engine::{Engine, Millis};
use rvsadm::Action;

use super::executor;

/// Applies every rule of `path`; returns how many were applied.
/// `local_addrs` are the director's own addresses (their real servers become `Local`).
pub fn apply_file(engine: &Engine, local_addrs: &[IpAddr], path: &Path) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // One batch: the data plane sees the whole file at once, and each rule costs O(1).
    engine.batch(|| apply_text(engine, local_addrs, path, &text))
}

/// Applies the rules of `text` (read from `path`, named in errors).
fn apply_text(
    engine: &Engine,
    local_addrs: &[IpAddr],
    path: &Path,
    text: &str,
) -> anyhow::Result<usize> {
    let mut applied = 0;
    for (index, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), index + 1);
        // The same reading as `rvsadm -R`: `#` starts a comment anywhere on the line, and the
        // words `ipvsadm` / `rvsadm` are dropped.
        let words = rvsadm::restore::restore_words(line);
        if words.is_empty() {
            continue;
        }
        let action = rvsadm::parse_restore_args(&words).map_err(|e| anyhow!("{}: {e}", at()))?;
        let Action::Apply(cmd) = action else {
            bail!(
                "{}: only rule commands (-A -E -a -e -d -D -C --set) belong in a rules file",
                at()
            );
        };
        if let Reply::Error(err) = executor::execute(engine, local_addrs, Millis(0), cmd) {
            bail!("{}: {}", at(), err);
        }
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_command_names_are_ignored() {
        let path = std::env::temp_dir().join(format!("rvsd-restore-{}.rules", std::process::id()));
        std::fs::write(
            &path,
            "# saved rules\n\
             ipvsadm -A -t 10.0.0.1:80 -s rr # web front\n\
             \n\
             -a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1   # first real server\n",
        )
        .unwrap();
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let applied = apply_file(&engine, &[], &path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(applied.unwrap(), 2);
        let services = engine.services(Millis(0));
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].dests.len(), 1);
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let path =
            std::env::temp_dir().join(format!("rvsd-restore-bad-{}.rules", std::process::id()));
        std::fs::write(&path, "-A -t 10.0.0.1:80 -s rr\n-A -t nonsense # oops\n").unwrap();
        let engine = Engine::new(rvs_engine::EngineConfig::default());
        let err = apply_file(&engine, &[], &path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            format!("{err:#}").contains(&format!("{}:2", path.display())),
            "{err:#}"
        );
    }
}
