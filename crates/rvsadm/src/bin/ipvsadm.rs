//! ipvsadm: rvsadm under ipvsadm's name, with ipvsadm's own `-v` and usage texts.

use std::process::ExitCode;

fn main() -> ExitCode {
    rvsadm::cli::main(Some(rvsadm::cli::Program::Ipvsadm))
}
