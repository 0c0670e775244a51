//! rvsadm, ipvsadm for rvsd.

use rvsadm::{execute, parse_args, take_socket_option, LazyClient};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (socket, args) = match take_socket_option(args, std::env::var("RVS_SOCKET").ok()) {
        Ok(split) => split,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(255);
        }
    };
    let action = match parse_args(&args) {
        Ok(action) => action,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let mut daemon = LazyClient::new(socket);
    let outcome = execute(&action, &mut daemon, &mut std::io::stdin().lock());
    // Like ipvsadm, ignore a closed stdout (e.g. `rvsadm -Ln | head -1`).
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.status)
}
