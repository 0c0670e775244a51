//! `rvsd --restore FILE`: applies an ipvsadm-save file (the format `rvsadm -S` prints and
//! `ipvsadm-restore` reads) before the daemon starts serving. A bad line stops the start with the
//! file and line named.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rvs_api::{ErrorReply, Reply};
use rvs_engine::{Engine, Millis};
use rvsadm::{Action, ParseError};

use super::executor;

/// Why a rules file was not (wholly) applied; the rules before a bad line stay applied.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file cannot be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A line that is not an ipvsadm command.
    #[error("{}:{line}: {error}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// What rvsadm's parser says.
        error: ParseError,
    },
    /// A command other than a rule (a listing, a daemon command...).
    #[error("{}:{line}: only rule commands (-A -E -a -e -d -D -C --set) belong in a rules file", .path.display())]
    NotARule {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
    },
    /// A rule the engine refused.
    #[error("{}:{line}: {error}", .path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// The engine's answer.
        error: ErrorReply,
    },
}

/// Applies every rule of `path`; returns how many were applied.
/// `local_addrs` are the director's own addresses (their real servers become `Local`).
pub fn apply_file(
    engine: &Engine,
    local_addrs: &[IpAddr],
    path: &Path,
) -> Result<usize, RestoreError> {
    let text = std::fs::read_to_string(path).map_err(|error| RestoreError::Read {
        path: path.to_owned(),
        error,
    })?;
    // One batch: the data plane sees the whole file at once, and each rule costs O(1).
    engine.batch(|| apply_text(engine, local_addrs, path, &text))
}

/// Applies the rules of `text` (read from `path`, named in errors).
fn apply_text(
    engine: &Engine,
    local_addrs: &[IpAddr],
    path: &Path,
    text: &str,
) -> Result<usize, RestoreError> {
    let mut applied = 0;
    for (index, text_line) in text.lines().enumerate() {
        let (path, line) = (path.to_owned(), index + 1);
        // The same reading as `rvsadm -R`: `#` starts a comment anywhere on the line, and the
        // words `ipvsadm` / `rvsadm` are dropped.
        let words = rvsadm::restore::restore_words(text_line);
        if words.is_empty() {
            continue;
        }
        let action = match rvsadm::parse_restore_args(&words) {
            Ok(action) => action,
            Err(error) => return Err(RestoreError::Syntax { path, line, error }),
        };
        let Action::Apply(cmd) = action else {
            return Err(RestoreError::NotARule { path, line });
        };
        if let Reply::Error(error) = executor::execute(engine, local_addrs, Millis(0), cmd) {
            return Err(RestoreError::Refused { path, line, error });
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
