//! MISC_CHECK: run `misc_path` through `sh -c`; exit 0 passes. With `misc_dynamic`,
//! exit 1 fails and 2..=255 pass with weight `code - 2` (keepalived's rule).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::result::CheckResult;
use crate::spec::MiscSpec;

/// Map an exit code to (passed, new weight) per keepalived's MISC_CHECK rules.
pub fn misc_outcome(code: i32, dynamic: bool) -> (bool, Option<u32>) {
    match code {
        0 => (true, None),
        2..=255 if dynamic => (true, u32::try_from(code - 2).ok()),
        _ => (false, None),
    }
}

pub(super) async fn run(spec: &MiscSpec) -> CheckResult {
    let child = Command::new("sh")
        .arg("-c")
        .arg(&spec.misc_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::fail(
                format!("spawning {:?}: {e}", spec.misc_path),
                Duration::ZERO,
            )
        }
    };
    let status = match tokio::time::timeout(spec.misc_timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return CheckResult::fail(format!("waiting for script: {e}"), Duration::ZERO),
        Err(_) => {
            // kill_on_drop also covers this; kill explicitly so the child is reaped now.
            let _ = child.kill().await;
            return CheckResult::fail(
                format!(
                    "{:?} timed out after {:?}",
                    spec.misc_path, spec.misc_timeout
                ),
                Duration::ZERO,
            );
        }
    };
    let Some(code) = status.code() else {
        return CheckResult::fail(
            format!("{:?} killed by a signal", spec.misc_path),
            Duration::ZERO,
        );
    };
    let (ok, weight) = misc_outcome(code, spec.misc_dynamic);
    let detail = format!("{:?} exited with {code}", spec.misc_path);
    let result = if ok {
        CheckResult::pass(detail, Duration::ZERO)
    } else {
        CheckResult::fail(detail, Duration::ZERO)
    };
    match weight {
        Some(w) => result.with_weight(w),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(misc_outcome(0, false), (true, None));
        assert_eq!(misc_outcome(1, false), (false, None));
        assert_eq!(misc_outcome(5, false), (false, None));
        assert_eq!(misc_outcome(0, true), (true, None));
        assert_eq!(misc_outcome(1, true), (false, None));
        assert_eq!(misc_outcome(2, true), (true, Some(0)));
        assert_eq!(misc_outcome(255, true), (true, Some(253)));
    }
}
