//! MISC_CHECK: run `misc_path` (its already split argv, without a shell, as keepalived execs
//! it); exit 0 passes. With `misc_dynamic`,
//! exit 1 fails and 2..=255 pass with weight `code - 2` (keepalived's rule).

use std::process::Stdio;

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
    let Some((program, args)) = spec.misc_path.split_first() else {
        return CheckResult::fail("empty misc_path");
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return CheckResult::fail(format!("spawning {:?}: {e}", spec.misc_path)),
    };
    let status = match tokio::time::timeout(spec.misc_timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return CheckResult::fail(format!("waiting for script: {e}")),
        Err(_) => {
            // kill_on_drop also covers this; kill explicitly so the child is reaped now.
            let _ = child.kill().await;
            return CheckResult::fail(format!(
                "{:?} timed out after {:?}",
                spec.misc_path, spec.misc_timeout
            ));
        }
    };
    let Some(code) = status.code() else {
        return CheckResult::fail(format!("{:?} killed by a signal", spec.misc_path));
    };
    let (ok, weight) = misc_outcome(code, spec.misc_dynamic);
    let detail = format!("{:?} exited with {code}", spec.misc_path);
    let result = if ok {
        CheckResult::pass(detail)
    } else {
        CheckResult::fail(detail)
    };
    match weight {
        Some(w) => result.with_weight(w),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    fn spec(argv: &[&str], dynamic: bool) -> MiscSpec {
        MiscSpec {
            misc_path: argv.iter().map(|a| a.to_string()).collect(),
            misc_timeout: Duration::from_secs(5),
            misc_dynamic: dynamic,
        }
    }

    #[tokio::test]
    async fn arguments_arrive_unsplit_and_uninterpreted() {
        // `exit $# + 2` reports the argument count as the dynamic weight.
        let count = ["sh", "-c", "exit $(($# + 2))", "sh", "a b", "c"];
        let r = run(&spec(&count, true)).await;
        assert!(r.ok && r.weight == Some(2), "{r:?}");
        // The argument with a space is one argument, byte for byte.
        let same = ["sh", "-c", "[ \"$1\" = 'a b' ]", "sh", "a b"];
        assert!(run(&spec(&same, false)).await.ok);
        assert!(run(&spec(&["test", "a b", "=", "a b"], false)).await.ok);
        // Shell metacharacters in an argument are not interpreted.
        let r = run(&spec(&["test", "x; exit 0", "=", "y"], false)).await;
        assert!(!r.ok && r.detail.ends_with("exited with 1"), "{r:?}");
        assert!(!run(&spec(&["test", "$(echo a)", "=", "a"], false)).await.ok);
    }

    #[tokio::test]
    async fn empty_or_missing_program_fails() {
        let r = run(&spec(&[], false)).await;
        assert!(!r.ok && r.detail.contains("empty"), "{r:?}");
        let r = run(&spec(&["/nonexistent/rvs misc"], false)).await;
        assert!(!r.ok && r.detail.contains("spawning"), "{r:?}");
    }
}
