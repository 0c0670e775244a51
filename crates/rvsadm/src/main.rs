//! rvsadm, ipvsadm for rvsd. Linked or copied as `ipvsadm`, `ipvsadm-save` or
//! `ipvsadm-restore`, it runs as that program (see `rvsadm::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    rvsadm::cli::main(None)
}
