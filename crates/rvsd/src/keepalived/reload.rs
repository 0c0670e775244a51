//! Reloading keepalived.conf (SIGHUP, `rvsadm --reload`): virtual servers and checkers first,
//! then the VRRP instances.

use super::health::Health;
use super::load::LoadError;
use crate::vrrp::{VrrpError, VrrpRuntime};

/// Why a reload did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load: nothing changed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A VRRP instance of the new file cannot start; the rest of the new configuration is in
    /// force.
    #[error("{}", .0.chain())]
    Vrrp(VrrpError),
}

/// Re-reads keepalived.conf: virtual servers and checkers first, then the VRRP instances.
/// A file that does not load changes nothing; a VRRP instance that cannot start is reported
/// while the rest of the new configuration is in force.
pub fn reload(health: &Health, vrrp: Option<&VrrpRuntime>) -> Result<(), ReloadError> {
    let lowered = health.reload()?;
    match vrrp {
        Some(v) => v.reload(&lowered).map_err(ReloadError::Vrrp),
        None => Ok(()),
    }
}
