//! ipvsadm-save [-n]: the table as ipvsadm-save lines (`rvsadm -S [-n]`).

use std::process::ExitCode;

fn main() -> ExitCode {
    rvsadm::cli::main(Some(rvsadm::cli::Program::IpvsadmSave))
}
