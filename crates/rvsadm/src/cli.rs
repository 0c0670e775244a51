//! The programs: `rvsadm`, and ipvsadm's three names, which scripts and ldirectord call.
//!
//! One code path serves them all; the binary's name (`argv[0]`, so a link works too) or the
//! binary itself chooses the program:
//!
//! * `rvsadm`: ipvsadm's command line plus rvs's extensions.
//! * `ipvsadm`: the same commands, with ipvsadm's own `-v` line and usage text, and its
//!   `argv[0]` in "Try `ipvsadm -h' ..." (as ipvsadm's `tryhelp_exit` prints it).
//! * `ipvsadm-save [-n]`: ipvsadm 1.31's script: `-S`, numeric with `-n`; any other option
//!   prints the script's help to stderr and exits 1.
//! * `ipvsadm-restore`: ipvsadm 1.31's script: clears the table (`-C`), then reads the rules
//!   from stdin as `-R` does; the status is the restore's.
//!
//! All of them take rvsadm's `--socket PATH` (or `$RVS_SOCKET`).

use crate::action::{Action, Format};
use crate::help;
use crate::parse::{parse_args, ParseError};
use crate::run::{execute, LazyClient, Outcome};
use crate::take_socket_option;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

/// Which program an invocation runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `rvsadm`.
    Rvsadm,
    /// `ipvsadm`.
    Ipvsadm,
    /// `ipvsadm-save`.
    IpvsadmSave,
    /// `ipvsadm-restore`.
    IpvsadmRestore,
}

impl Program {
    /// The program `argv0`'s file name names; any name but ipvsadm's three is rvsadm.
    pub fn from_argv0(argv0: &str) -> Program {
        match basename(argv0) {
            "ipvsadm" => Program::Ipvsadm,
            "ipvsadm-save" => Program::IpvsadmSave,
            "ipvsadm-restore" => Program::IpvsadmRestore,
            _ => Program::Rvsadm,
        }
    }
}

/// The file name of `argv0` (the shell's `basename $0`).
fn basename(argv0: &str) -> &str {
    Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(argv0)
}

/// Runs one invocation of `program`: `argv0` is the name it was called by, `args` the rest of
/// the command line, `env_socket` `$RVS_SOCKET`. Connects to rvsd only when the command needs
/// it; returns what to print and the exit status.
pub fn invoke(
    program: Program,
    argv0: &str,
    args: Vec<String>,
    env_socket: Option<String>,
    stdin: &mut dyn BufRead,
) -> Outcome {
    let (socket, args) = match take_socket_option(args, env_socket) {
        Ok(split) => split,
        Err(message) => return failure(message, 255),
    };
    let mut daemon = LazyClient::new(socket);
    match program {
        Program::IpvsadmSave => {
            let mut format = Format::default();
            for arg in &args {
                if arg == "-n" {
                    format.numeric = true;
                } else if arg.starts_with('-') {
                    let name = basename(argv0);
                    return failure(
                        format!(
                            "{name}: Script to save the IPVS table to stdout.\n   \
                             With the -n option, prints out the table in numeric format."
                        ),
                        1,
                    );
                }
            }
            execute(&Action::Save(format), &mut daemon, stdin)
        }
        Program::IpvsadmRestore => crate::run::clear_and_restore(&mut daemon, stdin),
        Program::Ipvsadm | Program::Rvsadm => {
            // ipvsadm names itself as invoked; rvsadm keeps its own name.
            let shown = if program == Program::Ipvsadm {
                argv0
            } else {
                "rvsadm"
            };
            match parse_args(&args) {
                Ok(Action::Help) => text(help::usage_as(shown)),
                Ok(Action::Version) => text(help::version_as(shown)),
                Ok(action) => execute(&action, &mut daemon, stdin),
                Err(ParseError::TryHelp) => failure(
                    format!("Try `{shown} -h' or '{shown} --help' for more information."),
                    255,
                ),
                Err(e) => failure(e.to_string(), e.exit_code() as u8),
            }
        }
    }
}

fn text(stdout: String) -> Outcome {
    Outcome {
        stdout,
        ..Outcome::default()
    }
}

fn failure(message: impl Into<String>, status: u8) -> Outcome {
    let mut stderr = message.into();
    stderr.push('\n');
    Outcome {
        stderr,
        status,
        ..Outcome::default()
    }
}

/// The `main` of the binaries: runs the process's command line as `program` (by default the
/// one `argv[0]` names) and exits with its status.
pub fn main(program: Option<Program>) -> ExitCode {
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_else(|| "rvsadm".to_string());
    // Packaging's hidden command: the man page and completions (see `crate::dist`).
    let rest: Vec<String> = std::env::args().skip(1).collect();
    if rest.first().map(String::as_str) == Some("--generate-dist-files") {
        let dir = rest.get(1).map_or(".", String::as_str);
        return match crate::dist::write(std::path::Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rvsadm: writing to {dir}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let program = program.unwrap_or_else(|| Program::from_argv0(&argv0));
    let outcome = invoke(
        program,
        &argv0,
        argv.collect(),
        std::env::var("RVS_SOCKET").ok(),
        &mut std::io::stdin().lock(),
    );
    // Like ipvsadm, ignore a closed stdout (e.g. `rvsadm -Ln | head -1`).
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_by_name() {
        assert_eq!(Program::from_argv0("/usr/sbin/ipvsadm"), Program::Ipvsadm);
        assert_eq!(Program::from_argv0("ipvsadm-save"), Program::IpvsadmSave);
        assert_eq!(
            Program::from_argv0("./ipvsadm-restore"),
            Program::IpvsadmRestore
        );
        assert_eq!(Program::from_argv0("target/debug/rvsadm"), Program::Rvsadm);
        assert_eq!(Program::from_argv0("ipvsadm.old"), Program::Rvsadm);
    }

    fn run(program: Program, argv0: &str, args: &[&str]) -> Outcome {
        invoke(
            program,
            argv0,
            args.iter().map(|s| s.to_string()).collect(),
            Some("/nonexistent/rvsd.sock".into()),
            &mut std::io::Cursor::new(Vec::new()),
        )
    }

    #[test]
    fn texts_name_the_program_as_ipvsadm_does() {
        let out = run(Program::Ipvsadm, "/sbin/ipvsadm", &["-Q"]);
        assert_eq!(
            (out.status, out.stderr.as_str()),
            (
                255,
                "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information.\n"
            )
        );
        let out = run(Program::Rvsadm, "target/debug/rvsadm", &["-Q"]);
        assert_eq!(
            out.stderr,
            "Try `rvsadm -h' or 'rvsadm --help' for more information.\n"
        );
        let out = run(Program::Ipvsadm, "ipvsadm", &["-v"]);
        assert_eq!(out.stdout, help::IPVSADM_VERSION_LINE);
        let out = run(Program::IpvsadmSave, "/sbin/ipvsadm-save", &["-x"]);
        assert_eq!(
            (out.status, out.stderr.as_str()),
            (
                1,
                "ipvsadm-save: Script to save the IPVS table to stdout.\n   \
                 With the -n option, prints out the table in numeric format.\n"
            )
        );
    }
}
