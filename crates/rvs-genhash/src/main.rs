//! `rvs-genhash`: print the MD5 digest of a URL's body as keepalived's genhash does.

use std::process::ExitCode;

use rvs_genhash::{parse_args, run, usage, Command};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let prog = args.first().map(String::as_str).unwrap_or("rvs-genhash");
    let opts = match parse_args(args.get(1..).unwrap_or(&[])) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            eprint!("{}", usage(prog));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            eprint!("{}", usage(prog));
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{prog}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&opts)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::FAILURE
        }
    }
}
