//! ipvsadm-restore: clears the table, then applies ipvsadm-save lines from stdin (`-C`, `-R`).

use std::process::ExitCode;

fn main() -> ExitCode {
    rvsadm::cli::main(Some(rvsadm::cli::Program::IpvsadmRestore))
}
