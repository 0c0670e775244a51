//! What the keepalived comparison tests share: the real keepalived binary.

use std::path::PathBuf;

/// The installed keepalived (`$PATH`, then the sbin directories). Its absence fails the test:
/// a comparison that skips would pass while rvs and keepalived disagree.
pub fn keepalived() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("keepalived"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "keepalived is not installed: run scripts/install-deps (these tests compare rvs \
                 with `keepalived -t`)"
            )
        })
}
