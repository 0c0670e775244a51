//! `rvs-lab`: network-namespace labs for rvs.
//!
//! ```text
//! rvs-lab demo [--keep] [-- RVSD_ARGS...]
//!                              seed 004's LVS-NAT demo against rvsd (given RVSD_ARGS)
//! rvs-lab serve --text T --http PORT... --udp PORT...
//!                              the built-in real server (run it inside a namespace)
//! rvs-lab down <prefix>        delete a lab's namespaces and processes
//! rvs-lab sweep                delete labs whose creating process is gone
//! rvs-lab list                 show the labs on this host
//! ```

use std::process::ExitCode;

use rvs_lab::server::{self, ServeConfig};
use rvs_lab::{down, netns, parse_prefix, sweep, LabError};

const USAGE: &str = "usage: rvs-lab demo [--keep] [-- RVSD_ARGS...]
       rvs-lab serve --text TEXT [--http PORT]... [--udp PORT]...
       rvs-lab down PREFIX
       rvs-lab sweep
       rvs-lab list";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "demo" => demo(rest),
        "serve" => serve(rest),
        "down" => match rest {
            [prefix] => down(prefix).map(|deleted| {
                for ns in deleted {
                    println!("deleted {ns}");
                }
                true
            }),
            _ => usage_error(),
        },
        "sweep" => sweep().map(|prefixes| {
            for prefix in prefixes {
                println!("swept {prefix}");
            }
            true
        }),
        "list" => list(),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => usage_error(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error() -> Result<bool, LabError> {
    Err(LabError::Invalid {
        what: "command line",
        detail: format!("\n{USAGE}"),
    })
}

fn demo(rest: &[String]) -> Result<bool, LabError> {
    let (ours, rvsd_args) = match rest.iter().position(|a| a == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let keep = match ours {
        [] => false,
        [flag] if flag == "--keep" => true,
        _ => return usage_error(),
    };
    let rvsd_args: Vec<&str> = rvsd_args.iter().map(String::as_str).collect();
    let mut stdout = std::io::stdout();
    rvs_lab::demo::run_with(keep, &rvsd_args, &mut stdout)
}

fn serve(rest: &[String]) -> Result<bool, LabError> {
    let config = ServeConfig::from_args(rest)?;
    let running = server::start(&config)?;
    eprintln!(
        "rvs-lab serve: {:?} on http {:?} udp {:?}",
        config.text, running.http, running.udp
    );
    running.wait();
    Ok(true)
}

fn list() -> Result<bool, LabError> {
    for name in netns::list()? {
        if let Some((prefix, pid)) = parse_prefix(&name) {
            let owner = if netns::pid_alive(pid) {
                "alive"
            } else {
                "gone"
            };
            println!("{name}\tlab {prefix}\towner pid {pid} ({owner})");
        }
    }
    Ok(true)
}
