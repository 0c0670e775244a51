//! Running external programs (mostly `ip`) and turning failures into [`LabError`]s.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::LabError;

/// The command line of `cmd` as one string, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` to completion and returns its output whatever its exit status.
pub fn output(cmd: &mut Command) -> Result<Output, LabError> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| LabError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })
}

/// Fails with [`LabError::CommandFailed`] unless `out` reports success.
pub fn check(cmd: &Command, out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::CommandFailed {
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `cmd` and fails unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let out = output(cmd)?;
    check(cmd, out)
}

/// Runs `ip [-n NS] -batch -` with `lines` on stdin; fails on the first failing line.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        program: "ip".into(),
        source,
    })?;
    let script = lines.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| LabError::io("writing to ip -batch", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::io("waiting for ip -batch", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::CommandFailed {
            command: format!("{} <<< {:?}", describe(&cmd), script),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
